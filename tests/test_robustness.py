"""Faults and misuse that used to give a wrong number with exit code 0, or lost work: damaged cached
assets, diverged training, NaN generators in eval and export, resumes that ignored the run's own
config, two processes on one run, cut-off log lines, full disks, and torchrun device choice."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from gancompress import assets
from gancompress.cli import main
from gancompress.distillation import distributed, trainer as trainer_module
from gancompress.io import DiskFullError, atomic_path, load_generator, save_generator
from tests.conftest import one_line_error, snapshot, tiny_generator

TINY = ["--batch-size", "4", "--lpips", "0", "--quiet"]


def distill(work, *extra, steps=6):
    argv = ["distill", "--teacher", str(work / "teacher.safetensors"), "--width", "0.5", "--steps", str(steps),
            "--checkpoint-every", "3", "--log-every", "1", "--run-root", str(work / "runs"), *TINY, *extra]
    assert main(argv) == 0
    return next((work / "runs").iterdir())


# ----------------------------------------------------------------------------- cached assets

@pytest.mark.parametrize("damage", ["64 bytes flipped", "truncated"])
def test_a_damaged_cached_asset_is_refused_by_name(damage, work, capsys, monkeypatch, ready_assets):
    """The cached fid-inception file is checked against the sha256 recorded at conversion."""
    asset = assets.get_asset("fid-inception")
    monkeypatch.delenv(asset.env_var)
    asset.cached_path.parent.mkdir(parents=True)
    shutil.copy(ready_assets["fid-inception"], asset.cached_path)
    asset.recorded_sha256_path.write_text(assets.sha256_file(asset.cached_path) + "\n")
    assert assets.resolve("fid-inception") == asset.cached_path  # intact: used as it is
    raw = bytearray(asset.cached_path.read_bytes())
    if damage == "truncated":
        raw = raw[: len(raw) // 3]
    else:
        middle = len(raw) // 2
        raw[middle:middle + 64] = bytes(b ^ 0xFF for b in raw[middle:middle + 64])
    asset.cached_path.write_bytes(bytes(raw))
    message = one_line_error(capsys, ["eval", "--generator", work / "teacher.safetensors", "--reference", "mnist",
                                      "--n", "4", "--quiet"])
    assert "asset 'fid-inception'" in message and "gancompress assets fetch --force fid-inception" in message


def test_a_converted_file_without_its_recorded_sha256_is_not_trusted(work, monkeypatch):
    asset = assets.get_asset("mnist")
    monkeypatch.delenv(asset.env_var)
    asset.cached_path.parent.mkdir(parents=True)
    asset.cached_path.write_bytes(b"left by an interrupted conversion")
    assert assets.status("mnist") == ("missing", None)  # so resolve() converts it again


# ----------------------------------------------------------------------------- non-finite values

def test_diverged_training_stops_and_keeps_the_last_good_checkpoint(work, capsys, monkeypatch):
    step_of_nan = 4
    real_step = trainer_module.Trainer.generator_step

    def diverging(self, step):
        terms = real_step(self, step)
        return {**terms, "g_l1": float("nan")} if step >= step_of_nan else terms

    monkeypatch.setattr(trainer_module.Trainer, "generator_step", diverging)
    argv = ["distill", "--teacher", str(work / "teacher.safetensors"), "--width", "0.5", "--steps", "9",
            "--checkpoint-every", "3", "--run-root", str(work / "runs"), *TINY]
    message = one_line_error(capsys, argv)
    run = next((work / "runs").iterdir())
    assert "non-finite loss (g_l1) at step 4" in message and "step-0000003" in message
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-0000003"
    assert not (run / "student.safetensors").exists()
    good = load_generator(run / "checkpoints" / "step-0000003" / "G_ema.safetensors")
    assert all(torch.isfinite(p).all() for p in good.state_dict().values())


def test_a_real_divergence_exits_non_zero(work, capsys):
    """The issue's reproduction: absurd learning rates used to finish with NaN in every loss, exit 0."""
    message = one_line_error(capsys, ["distill", "--teacher", work / "teacher.safetensors", "--lr-g", "1e6", "--lr-d",
                                      "1e6", "--steps", "20", "--run-root", work / "runs", *TINY])
    assert "training diverged" in message
    assert not list((work / "runs").glob("*/student.safetensors"))


@pytest.fixture
def nan_student(work):
    student = tiny_generator(channels=(16, 8, 8))
    with torch.no_grad():
        student.to_rgb.weight.fill_(float("nan"))
    return save_generator(work / "nan.safetensors", student)


def test_eval_refuses_a_generator_that_makes_nan(work, capsys, nan_student):
    message = one_line_error(capsys, ["eval", "--generator", nan_student, "--reference", "teacher:" +
                                      str(work / "teacher.safetensors"), "--n", "4", "--no-latency", "--quiet"])
    assert "non-finite values" in message


def test_export_verification_fails_on_nan(work, capsys, nan_student):
    message = one_line_error(capsys, ["export", "--generator", nan_student, "--out", work / "nan.onnx"])
    assert "non-finite values" in message
    assert not (work / "nan.onnx").exists() and not list(work.glob(".nan.onnx*"))


# ----------------------------------------------------------------------------- honest resume

def test_compress_resume_takes_the_runs_own_teacher(work, capsys):
    argv = ["compress", "--teacher", str(work / "teacher.safetensors"), "--width", "0.5", "--steps", "2",
            "--batch-size", "4", "--n", "8", "--data", "none", "--run-root", str(work / "runs"), "--quiet"]
    assert main(argv) == 0
    run = next((work / "runs").iterdir())
    capsys.readouterr()
    # Without --teacher: the run's teacher, not the default dcgan-face64 (which used to crash after training).
    assert main(["compress", "--resume", str(run), "--quiet"]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["teacher"] == "teacher.safetensors" and report["student_eval"]["protocol"]["n_generated"] == 8
    capsys.readouterr()
    # Another teacher: refused, and the report is left as it was.
    message = one_line_error(capsys, ["compress", "--resume", run, "--teacher", work / "other.safetensors", "--quiet"],
                             unchanged=run)
    assert "--teacher" in message and "teacher.safetensors" in message


def test_distill_resume_refuses_conflicting_options_and_records_a_longer_run(work, capsys):
    run = distill(work)
    capsys.readouterr()
    message = one_line_error(capsys, ["distill", "--resume", run, "--width", "0.25", "--lr-g", "5", "--quiet"],
                             unchanged=run)
    assert "--width 0.25 (the run has 0.5)" in message and "--lr-g 5.0 (the run has 0.002)" in message
    message = one_line_error(capsys, ["distill", "--resume", run, "--steps", "2", "--quiet"], unchanged=run)
    assert "--steps 2 (the run is at step 6 already)" in message
    # Repeating a recorded value is no conflict; a larger --steps extends the run and is recorded.
    assert main(["distill", "--resume", str(run), "--width", "0.5", "--steps", "9", "--quiet"]) == 0
    spec = json.loads((run / "run.json").read_text())
    assert spec["train"]["steps"] == 9
    assert spec["history"][-1]["changed"] == {"train.steps": [6, 9]} and spec["history"][-1]["at_step"] == 6
    steps = [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 10))
    # The execution options may follow the machine the run moves to (a smaller GPU: micro-batches).
    assert main(["distill", "--resume", str(run), "--grad-accum", "2", "--steps", "10", "--quiet"]) == 0
    spec = json.loads((run / "run.json").read_text())
    assert spec["train"]["grad_accum"] == 2
    assert spec["history"][-1]["changed"] == {"train.grad_accum": [1, 2], "train.steps": [9, 10]}


# ----------------------------------------------------------------------------- concurrency, partial writes

def test_a_run_in_use_is_refused_at_once(work, capsys):
    from gancompress.pipeline import run_lock

    run = distill(work)
    capsys.readouterr()
    holder = subprocess.Popen(["python3", "-c", "import sys, time; sys.path.insert(0, '.');"
                               "from gancompress.pipeline import run_lock\n"
                               f"with run_lock({str(run)!r}):\n print('held', flush=True); time.sleep(60)"],
                              cwd=Path(__file__).parents[1], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        message = one_line_error(capsys, ["distill", "--resume", run, "--steps", "8", "--quiet"], unchanged=run)
        assert "in use by another gancompress process (pid" in message
    finally:
        holder.kill()
        holder.wait()
    with run_lock(run):  # released when its holder died
        pass


def test_resume_repairs_a_cut_off_log_line_and_removes_stale_temporary_files(work):
    run = distill(work)
    with open(run / "stats.jsonl", "a") as f:
        f.write('{"g_l1": 0.3, "st')  # a write cut off by a crash
    stale = run / "checkpoints" / "step-0000006" / ".G.safetensors.abc123.tmp"
    stale.write_bytes(b"half a file")
    assert main(["distill", "--resume", str(run), "--steps", "8", "--quiet"]) == 0
    steps = [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9)) and not stale.exists()


def test_a_full_disk_names_itself_and_keeps_the_previous_checkpoint(work, capsys, monkeypatch):
    run = distill(work)
    before = snapshot(run / "checkpoints")

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4288 vs 4176")

    monkeypatch.setattr(trainer_module.torch, "save", full)  # torch.save's own message on a full disk
    capsys.readouterr()
    message = one_line_error(capsys, ["distill", "--resume", run, "--steps", "9", "--quiet"])
    assert "no space left on device" in message and "the previous one (step-0000006) is intact" in message
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-0000006"
    kept = {k: v for k, v in snapshot(run / "checkpoints").items() if k.startswith("step-0000006")}
    assert kept == {k: v for k, v in before.items() if k.startswith("step-0000006")}


def test_a_really_full_disk(tmp_path):
    """ENOSPC from a real 64 KiB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        (mount / "kept.safetensors").write_bytes(b"old")
        with pytest.raises(DiskFullError, match="no space left on device; its previous version is intact"):
            save_generator(mount / "kept.safetensors", tiny_generator(channels=(64, 64, 64)))
        assert (mount / "kept.safetensors").read_bytes() == b"old"
        assert [p.name for p in mount.iterdir()] == ["kept.safetensors"]  # no temporary file left
        with pytest.raises(DiskFullError):
            with atomic_path(mount / "x.pt") as tmp, open(tmp, "wb") as f:
                torch.save({"w": torch.zeros(100_000)}, f)
    finally:
        subprocess.run(["umount", str(mount)], check=False)


# ----------------------------------------------------------------------------- torchrun

def test_each_torchrun_rank_gets_its_own_gpu(monkeypatch):
    chosen = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "get_rank", lambda: 1)
    monkeypatch.setattr(distributed.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(distributed.torch.cuda, "set_device", lambda device: chosen.append(str(device)))
    rank = distributed.init_distributed("cuda")
    assert (rank.rank, rank.world, rank.device) == (1, 2, "cuda:1") and chosen == ["cuda:1"]
    assert distributed.init_distributed("cpu").device == "cpu" and chosen == ["cuda:1"]
    assert distributed.init_distributed("cuda:3").device == "cuda:3"  # an explicit choice stays
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.init_distributed("cuda").device == "cuda"
