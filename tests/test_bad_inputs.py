"""Bad input: one line on stderr (`gancompress: error: ...`), exit code 2, no traceback, checked
before any work, and (where it applies) nothing on disk changed. Each case is the command a user
would type, run in process through `gancompress.cli.main` (the same code path as the console script)."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from gancompress import assets
from gancompress.cli import main
from gancompress.io import METADATA_KEY
from tests.conftest import one_line_error, tiny_generator

TINY = ["--batch-size", "4", "--lpips", "0", "--quiet"]


def safetensors_with(path: Path, tensors: dict, metadata) -> Path:
    raw = metadata if isinstance(metadata, str) else json.dumps(metadata)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={METADATA_KEY: raw})
    return path


def tiny_state():
    return tiny_generator(channels=(16, 8, 8)).state_dict()


def tiny_config(**changes):
    return {**tiny_generator(channels=(16, 8, 8)).config.to_dict(), **changes}


CHECKPOINT_CASES = {
    "metadata is not JSON": ("{not json", "not valid JSON"),
    "channels is a string": ({"format": "1", "kind": "generator", "config": tiny_config(channels="abc")}, "channels"),
    "config is a string": ({"format": "1", "kind": "generator", "config": "hello"}, "not an object"),
    "channels do not match the tensors": ({"format": "1", "kind": "generator", "config": tiny_config(channels=[32, 16, 16])},
                                          "do not match the config"),
    "z_dim far too large": ({"format": "1", "kind": "generator", "config": tiny_config(z_dim=10_000_000)},
                            "do not match the config"),
    "z_dim a float": ({"format": "1", "kind": "generator", "config": tiny_config(z_dim=1e9)}, "z_dim must be int"),
}


@pytest.mark.parametrize("case", CHECKPOINT_CASES)
def test_broken_checkpoints(case, work, capsys):
    metadata, expected = CHECKPOINT_CASES[case]
    bad = safetensors_with(work / "bad.safetensors", tiny_state(), metadata)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    message = one_line_error(capsys, ["prune", "--teacher", bad, "--width", "0.5", "--out", work / "s.safetensors"],
                             unchanged=work)
    assert expected in message and str(bad) in message
    # The shapes are compared with the file's header before any network is built (z_dim 10 million would
    # need gigabytes): peak memory grew by less than 200 MB.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 200_000


def test_foreign_dcgan_state_dict_with_a_wrong_shape(work, capsys):
    state = {k: v for k, v in tiny_state().items() if not k.endswith("num_batches_tracked")}
    key = next(k for k in state if k.endswith(".bias") and state[k].dim() == 1)
    state[key] = torch.zeros(state[key].numel() + 3)  # a BatchNorm bias one size off its running stats
    torch.save(state, work / "netG.pth")
    message = one_line_error(capsys, ["prune", "--teacher", work / "netG.pth", "--width", "0.5"], unchanged=work)
    assert "netG.pth" in message


def test_random_bytes_are_not_called_a_pickle_problem(work, capsys):
    (work / "noise.pt").write_bytes(os.urandom(4096))
    message = one_line_error(capsys, ["prune", "--teacher", work / "noise.pt", "--width", "0.5"], unchanged=work)
    assert "not a readable PyTorch checkpoint" in message and "--allow-pickle" not in message


def test_a_corrupt_jpeg_in_an_image_folder_is_named(work, capsys):
    from PIL import Image

    folder = work / "images"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (16, 16), (40 * i, 90, 200)).save(folder / f"ok{i}.jpg")
    (folder / "broken.jpg").write_bytes((folder / "ok0.jpg").read_bytes()[:200])  # cut off mid-file
    message = one_line_error(capsys, ["eval", "--generator", work / "teacher.safetensors", "--reference", folder,
                                      "--n", "4", "--no-latency", "--no-cache", "--quiet"])
    assert "broken.jpg" in message and "not a readable image" in message


def test_an_asset_override_that_is_another_file(work, capsys, monkeypatch, ready_assets):
    monkeypatch.setenv(assets.get_asset("fid-inception").env_var, str(ready_assets["lpips-alex"]))
    message = one_line_error(capsys, ["eval", "--generator", work / "teacher.safetensors", "--reference",
                                      "teacher:" + str(work / "teacher.safetensors"), "--n", "4", "--quiet"])
    assert "asset 'fid-inception'" in message and "GANCOMPRESS_ASSET_FID_INCEPTION" in message


@pytest.mark.parametrize("damage", ["truncated", "zero bytes", "flipped bytes"])
def test_a_damaged_feature_cache_entry(damage, work, capsys):
    argv = ["eval", "--generator", work / "teacher.safetensors", "--reference", "mnist", "--n", "4", "--no-latency",
            "--quiet"]
    assert main([str(a) for a in argv]) == 0
    capsys.readouterr()
    entries = sorted((work / "cache" / "features").glob("*.safetensors"))
    assert len(entries) == 2  # the reference's and the generator's features
    raw = entries[0].read_bytes()
    if damage == "truncated":
        entries[0].write_bytes(raw[: len(raw) // 2])
    elif damage == "zero bytes":
        entries[0].write_bytes(b"")
    else:
        entries[0].write_bytes(raw[:-64] + bytes(b ^ 0xFF for b in raw[-64:]))
    message = one_line_error(capsys, argv)
    assert "cached features" in message and entries[0].name in message and "--no-cache" in message


@pytest.mark.parametrize("where", ["parent is a file", "unwritable"])
def test_export_to_a_path_that_cannot_be_written(where, work, capsys):
    (work / "afile").write_text("x")
    out = work / "afile" / "g.onnx" if where == "parent is a file" else Path("/sys/gancompress-test/g.onnx")
    if where == "unwritable" and not Path("/sys").is_dir():
        pytest.skip("no /sys here")
    message = one_line_error(capsys, ["export", "--generator", work / "teacher.safetensors", "--out", out],
                             unchanged=work)
    assert "cannot write" in message


OPTION_CASES = {
    "eval batch size 0": (["eval", "--generator", "{teacher}", "--reference", "mnist", "--batch-size", "0"], "--batch-size"),
    "lr-g nan": (["distill", "--teacher", "{teacher}", "--lr-g", "nan", "--steps", "2", *TINY], "lr_g"),
    "lr-g negative": (["distill", "--teacher", "{teacher}", "--lr-g", "-1", "--steps", "2", *TINY], "lr_g"),
    "lr-d inf": (["distill", "--teacher", "{teacher}", "--lr-d", "inf", "--steps", "2", *TINY], "lr_d"),
    "unknown teacher": (["distill", "--teacher", "no-such-teacher", "--steps", "2", *TINY], "no-such-teacher"),
    "width above 1": (["distill", "--teacher", "{teacher}", "--width", "2", "--steps", "2", *TINY], "width"),
    "unknown real images": (["distill", "--teacher", "{teacher}", "--real", "nosuchdataset", "--steps", "2", *TINY],
                            "nosuchdataset"),
    "compress n 0": (["compress", "--teacher", "{teacher}", "--n", "0", "--steps", "2", "--quiet"], "--n must"),
    "compress n 1": (["compress", "--teacher", "{teacher}", "--n", "1", "--steps", "2", "--quiet"], "--n must"),
    "compress unknown data": (["compress", "--teacher", "{teacher}", "--data", "nosuchdataset", "--steps", "2", "--quiet"],
                              "nosuchdataset"),
}


@pytest.mark.parametrize("case", OPTION_CASES)
def test_bad_options_fail_before_any_work(case, work, capsys):
    argv, expected = OPTION_CASES[case]
    argv = [a.format(teacher=work / "teacher.safetensors") for a in argv] + (
        ["--run-root", str(work / "runs")] if argv[0] in ("distill", "compress") else [])
    message = one_line_error(capsys, argv, unchanged=work)
    assert expected in message
    assert not (work / "runs").exists()  # no run directory is left behind


def test_an_old_option_spelling_still_works_with_a_note(work, capsys):
    """Renamed options keep their old spelling for one release (compress/sweep --n-eval is now --n)."""
    message = one_line_error(capsys, ["compress", "--teacher", work / "teacher.safetensors", "--n-eval", "1",
                                      "--run-root", work / "runs", "--quiet"])
    assert "--n must be an integer of at least 2" in message
    code = main(["compress", "--teacher", str(work / "teacher.safetensors"), "--n-eval", "8", "--dry-run"])
    captured = capsys.readouterr()
    assert code == 0 and json.loads(captured.out)["compress"]["n_eval"] == 8
    assert "--n-eval is deprecated and will be removed in the next release; use --n" in captured.err
