"""prune / distill / train / compress through the real command line, on tiny networks."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from gancompress import assets
from gancompress.io import load_generator, read_metadata, save_generator
from tests.conftest import tiny_generator

TINY_TRAIN = ["--batch-size", "4", "--log-every", "1", "--lpips", "0", "--quiet"]


@pytest.fixture
def teacher_file(tmp_path):
    return save_generator(tmp_path / "teacher.safetensors", tiny_generator(channels=(32, 16, 16)))


@pytest.fixture
def env(ready_assets, tmp_path):
    environment = dict(os.environ)
    for name, path in ready_assets.items():
        environment[assets.get_asset(name).env_var] = str(path)
    environment[assets.CACHE_ENV] = str(tmp_path / "cache")
    return environment


def _gc(*args, env, check=True, **kwargs):
    return subprocess.run([sys.executable, "-m", "gancompress", *args], env=env, capture_output=True, text=True,
                          check=check, **kwargs)


def test_prune_writes_a_student_with_its_kept_channels(teacher_file, tmp_path, env):
    out = tmp_path / "student.safetensors"
    result = _gc("prune", "--teacher", str(teacher_file), "--width", "0.5", "--criterion", "bn", "--out", str(out), env=env)
    student = load_generator(out)
    assert student.config.channels == (16, 8, 8)
    meta = read_metadata(out)["pruning"]
    assert meta["criterion"] == "bn" and [len(meta["kept"][b]) for b in student.config.block_names] == [16, 8, 8]
    assert "x fewer" in result.stdout


def test_killed_distill_resumes_to_the_same_weights(teacher_file, tmp_path, env):
    args = ["distill", "--teacher", str(teacher_file), "--width", "0.5", "--steps", "40", "--checkpoint-every", "10",
            *TINY_TRAIN]
    _gc(*args, "--run-root", str(tmp_path / "straight"), env=env)
    proc = subprocess.Popen([sys.executable, "-m", "gancompress", *args, "--run-root", str(tmp_path / "killed")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = None
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        found = list((tmp_path / "killed").glob("*/checkpoints/latest"))
        if found and found[0].read_text().strip() != "step-0000040":
            latest = found[0]
            break
        time.sleep(0.05)
    if latest is None:
        proc.wait()
        pytest.skip("the run finished before it could be killed (machine too fast for this test's timing)")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = latest.parents[1]
    assert not (run_dir / "student.safetensors").exists()
    _gc("distill", "--resume", str(run_dir), "--quiet", env=env)
    straight = next((tmp_path / "straight").iterdir())
    a = load_file(str(straight / "student.safetensors"))
    b = load_file(str(run_dir / "student.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(l)["step"] for l in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 41))


def test_two_process_torchrun_makes_a_valid_student(teacher_file, tmp_path, env):
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
         "-m", "gancompress", "distill", "--teacher", str(teacher_file), "--width", "0.5", "--steps", "6",
         "--run-root", str(tmp_path / "runs"), "--device", "cpu", *TINY_TRAIN],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1  # one run directory: only rank 0 writes
    student = load_generator(runs[0] / "student.safetensors")
    assert student.config.channels == (16, 8, 8)
    assert torch.isfinite(student(torch.randn(3, 8))).all()
    lines = (runs[0] / "stats.jsonl").read_text().splitlines()
    assert len(lines) == 6  # one writer


def test_train_from_scratch_on_a_dataset(tmp_path, env):
    _gc("train", "--real", "mnist", "--resolution", "32", "--channels", "16,8,8", "--out-channels", "1",
        "--steps", "3", "--run-root", str(tmp_path / "runs"), "--batch-size", "4", "--quiet", env=env)
    run = next((tmp_path / "runs").iterdir())
    spec = json.loads((run / "run.json").read_text())
    assert spec["train"]["mode"] == "gan" and spec["train"]["real"] == "mnist" and spec["teacher"] is None
    assert load_generator(run / "student.safetensors").config.out_channels == 1


def test_train_a_stylegan2_from_scratch(tmp_path, env):
    _gc("train", "--family", "stylegan2", "--real", "mnist", "--resolution", "16", "--channels", "16,16,8",
        "--z-dim", "8", "--w-dim", "8", "--mapping-layers", "2", "--out-channels", "1", "--steps", "2",
        "--betas", "0,0.99", "--run-root", str(tmp_path / "runs"), "--batch-size", "4", "--quiet", env=env)
    run = next((tmp_path / "runs").iterdir())
    assert run.name.endswith("train-stylegan2-16px")
    assert json.loads((run / "run.json").read_text())["train"]["betas"] == [0.0, 0.99]  # StyleGAN2's Adam betas
    config = load_generator(run / "student.safetensors").config
    assert (config.family, config.channels, config.w_dim, config.out_channels) == ("stylegan2", (16, 16, 8), 8, 1)


def test_bad_betas_are_a_one_line_usage_error(tmp_path, env):
    result = _gc("train", "--betas", "0.5", "--dry-run", env=env, check=False)
    assert result.returncode == 2 and "expected two numbers in [0, 1)" in result.stderr


def test_compress_end_to_end(teacher_file, tmp_path, env):
    result = _gc("compress", "--teacher", str(teacher_file), "--width", "0.5", "--steps", "4", "--batch-size", "4",
                 "--n", "16", "--data", "mnist", "--run-root", str(tmp_path / "runs"), "--quiet", env=env)
    run = next((tmp_path / "runs").iterdir())
    report = json.loads((run / "report.json").read_text())
    cmp = report["comparison"]
    assert cmp["params"]["student_over_teacher"] < 0.5
    assert cmp["macs_per_image"]["student_over_teacher"] < 0.5
    assert cmp["lpips_to_teacher"]["teacher"] == 0 and cmp["lpips_to_teacher"]["student"] > 0
    assert report["student_eval"]["protocol"]["n_generated"] == 16
    assert (run / "grid.png").is_file() and (run / "student.safetensors").is_file()
    assert "| FID vs teacher samples |" in result.stdout and "Protocol:" in result.stdout
    assert "Latency: median ms per image, export graph (gancompress export), PyTorch eager on cpu" in result.stdout
    # FID vs data: both against the same 16 MNIST test images; random-ish colour images are far from digits.
    assert cmp["fid_vs_data"]["teacher"] > 50 and cmp["fid_vs_data"]["student"] > 50
    assert report["data_evals"]["student"]["protocol"]["n_reference"] == 16
    assert "mnist:test" in report["data_evals"]["student"]["protocol"]["reference"]
    assert "| FID vs data |" in result.stdout

    # Resuming the finished run without options keeps its evaluation budget (n = 16, not the quick preset's
    # 500) and its report names the command the run was started with.
    resumed = _gc("compress", "--teacher", str(teacher_file), "--resume", str(run), "--data", "none", "--quiet", env=env)
    report = json.loads((run / "report.json").read_text())
    assert report["student_eval"]["protocol"]["n_generated"] == 16
    assert report["command"].startswith("gancompress compress --teacher") and "--resume" not in report["command"]
    assert "--resume" in report["resumed_with"] and "(resumed with `gancompress compress" in resumed.stdout


def test_compress_tracks_quality_while_training_and_logs_the_final_metrics(teacher_file, tmp_path, env):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _gc("compress", "--teacher", str(teacher_file), "--width", "0.5", "--steps", "4", "--batch-size", "4", "--n", "16",
        "--metrics-every", "2", "--metrics-n", "16", "--data", "none", "--tensorboard", "--run-root",
        str(tmp_path / "runs"), "--quiet", env=env)
    run = next((tmp_path / "runs").iterdir())
    report = json.loads((run / "report.json").read_text())
    evals = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines() if '"eval"' in line]
    assert [e["step"] for e in evals] == [2, 4]
    last = evals[-1]["eval"]
    assert last["n"] == 16 and last["kid"] != 0 and 0 < last["lpips"] < 1
    # The in-training protocol is the final one at the same n: the same numbers for the same EMA.
    cmp = report["comparison"]
    assert last["fid"] == pytest.approx(cmp["fid_vs_teacher_samples"]["student"], abs=1e-6)
    assert last["fid_floor"] == pytest.approx(cmp["fid_vs_teacher_samples"]["teacher"], abs=1e-6)
    assert last["lpips"] == pytest.approx(cmp["lpips_to_teacher"]["student"], abs=1e-6)
    log = (run / "log.txt").read_text()
    assert "n = 16" in log and "biased upward" in log and f"{last['fid_floor']:.2f}" in log
    best = read_metadata(run / "best.safetensors")["best"]
    assert best["step"] in (2, 4) and best["fid"] == min(e["eval"]["fid"] for e in evals)
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    assert [e.step for e in events.Scalars("eval/fid")] == [2, 4]
    final = events.Scalars("final/fid_vs_teacher_samples")
    assert [e.step for e in final] == [4] and final[0].value == pytest.approx(cmp["fid_vs_teacher_samples"]["student"])
    assert events.Scalars("final/teacher_fid_floor")[0].value == pytest.approx(cmp["fid_vs_teacher_samples"]["teacher"])


def test_resumed_compress_runs_keep_their_preset(tmp_path):
    from gancompress.compression import _started_with

    run = tmp_path / "00000-compress-old"
    run.mkdir()
    assert _started_with(run) == {}  # no run.json: left to run_training's error
    (run / "run.json").write_text(json.dumps({"train": {"steps": 20000, "batch_size": 64}}))
    assert _started_with(run) == {"preset": "standard"}  # written before presets were recorded
    (run / "run.json").write_text(json.dumps({"train": {"steps": 123, "batch_size": 64}}))
    assert _started_with(run) == {}
    record = {"preset": "quick", "n_eval": 40, "command": "gancompress compress --n-eval 40"}
    (run / "run.json").write_text(json.dumps({"train": {"steps": 20000, "batch_size": 64}, "compress": record}))
    assert _started_with(run) == record


def test_compress_measures_fid_vs_data_for_teachers_with_a_dataset():
    from gancompress.compression import teacher_dataset

    assert teacher_dataset("dcgan-fmnist32") == "fashion-mnist"
    assert teacher_dataset("dcgan-face64") is None  # data-free: FID vs teacher samples only
    assert teacher_dataset("some/file.safetensors") is None
