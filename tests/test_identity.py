"""Behaviour pinned before the code is reorganised: tiny fixed-seed runs of prune, distill and train
for both families, and one compress at a tiny n, must keep producing the same students (the same
tensor bytes) and the same report numbers. A change that alters these must say so in its commit and
update the digests here on purpose."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
import torch
from safetensors import safe_open

from gancompress.cli import main
from gancompress.io import read_metadata, save_generator
from tests.conftest import tiny_stylegan2

TINY = ["--batch-size", "4", "--lpips", "0", "--quiet", "--seed", "7"]


def fingerprint(path) -> str:
    """sha256 of a checkpoint's tensors (names, dtypes, shapes, bytes) and its network config; paths and
    other provenance in the metadata are left out."""
    digest = hashlib.sha256(json.dumps(read_metadata(path)["config"], sort_keys=True).encode())
    with safe_open(str(path), framework="pt") as f:
        for key in sorted(f.keys()):
            tensor = f.get_tensor(key).contiguous()
            digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture
def teachers(work):
    return {"dcgan": work / "teacher.safetensors",
            "stylegan2": save_generator(work / "sg2.safetensors", tiny_stylegan2())}


def _record(name, value) -> None:
    """GANCOMPRESS_RECORD_IDENTITY=FILE: append what was computed, to pin new values on purpose."""
    target = os.environ.get("GANCOMPRESS_RECORD_IDENTITY")
    if target:
        with open(target, "a") as f:
            f.write(json.dumps({name: value}) + "\n")


def _student(run_root):
    return next(run_root.glob("*/student.safetensors"))


RUNS = {
    "dcgan prune": (["prune", "--teacher", "{dcgan}", "--width", "0.5", "--criterion", "bn", "--out", "{out}"], None),
    "stylegan2 prune": (["prune", "--teacher", "{stylegan2}", "--width", "0.5", "--out", "{out}"], None),
    "dcgan distill": (["distill", "--teacher", "{dcgan}", "--width", "0.5", "--steps", "5", *TINY], "runs"),
    "stylegan2 distill": (["distill", "--teacher", "{stylegan2}", "--width", "0.5", "--steps", "3", "--betas", "0,0.99",
                           *TINY], "runs"),
    "dcgan train": (["train", "--real", "mnist", "--resolution", "16", "--channels", "16,8", "--out-channels", "1",
                     "--steps", "3", *TINY], "runs"),
    "stylegan2 train": (["train", "--family", "stylegan2", "--real", "mnist", "--resolution", "16", "--channels",
                         "16,16,8", "--z-dim", "8", "--w-dim", "8", "--mapping-layers", "2", "--out-channels", "1",
                         "--steps", "2", "--betas", "0,0.99", *TINY], "runs"),
}
DIGESTS = {  # computed on 2026-12-02 by the code before the family redesign (and equal to the code before issue 12)
    'dcgan prune': '5f1ed3b1fe6e1964fd4b9b6e2897eba089218b17112ed42b28ed65c5438b2502',
    'stylegan2 prune': '844311e8d094ae02fb9e86f2de248a9c3445f9aff7bc0220a0ff8a2f54d970bb',
    'dcgan distill': 'c435f28ccbccdf2ee0a32df9039cb2ea953343d1eab46265aa46769a95567a0e',
    'stylegan2 distill': '0b40158fbaf13db621c12aaf154753f13ea89ba59d925314b8d484d5c17d1cd6',
    'dcgan train': '8c7d87c7606c92412b45507a9d041e0c26036d4c06031fa415df2a230806384b',
    'stylegan2 train': '92e09b03da9c94449cc05fd1b732d5e07a7b2fba6d9547b4610b6b0d53b05f3b',
    'compress student': '46f55339db663fc05f390cce1603ac53b9576cdcd63443b08479582a8165edc2',
}


@pytest.mark.parametrize("name", RUNS)
def test_students_keep_their_bytes(name, work, teachers):
    argv, run_root = RUNS[name]
    out = work / "out.safetensors"
    argv = [a.format(out=out, **{k: str(v) for k, v in teachers.items()}) for a in argv]
    if run_root:
        argv += ["--run-root", str(work / run_root)]
    assert main(argv) == 0
    got = fingerprint(_student(work / run_root) if run_root else out)
    _record(name, got)
    assert got == DIGESTS[name], f"{name}: student changed ({got})"


def test_a_compress_report_keeps_its_numbers(work, capsys):
    argv = ["compress", "--teacher", str(work / "teacher.safetensors"), "--width", "0.5", "--steps", "3",
            "--batch-size", "4", "--n", "8", "--data", "mnist", "--seed", "7", "--run-root", str(work / "runs"),
            "--quiet"]
    assert main(argv) == 0
    report = json.loads(next((work / "runs").glob("*/report.json")).read_text())
    got = {who: {"fid": r["metrics"]["fid"], "kid": r["metrics"]["kid"]["mean"],
                 "lpips": r["metrics"]["lpips"].get("mean")}
           for who, r in (("teacher", report["teacher_eval"]), ("student", report["student_eval"]),
                          ("student_vs_data", report["data_evals"]["student"]))}
    _record("compress numbers", got)
    _record("compress student", fingerprint(next((work / "runs").glob("*/student.safetensors"))))
    for who, metrics in COMPRESS_NUMBERS.items():
        for key, value in metrics.items():
            expected = None if value is None else pytest.approx(value, abs=1e-6, rel=1e-9)
            assert got[who][key] == expected, (who, key, got)
    assert fingerprint(next((work / "runs").glob("*/student.safetensors"))) == DIGESTS["compress student"]


COMPRESS_NUMBERS = {
    'teacher': {'fid': 0.3134309033555828, 'kid': -4.686137806533708e-05, 'lpips': 0.0},
    'student': {'fid': 50.423399318086545, 'kid': 0.08583069492488078, 'lpips': 0.004518051573541015},
    'student_vs_data': {'fid': 361.0409462308892, 'kid': 0.43776155332841205, 'lpips': None},
}
