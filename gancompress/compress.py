"""The main job: prune -> distill -> evaluate -> sample grid -> report, in one run directory."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import torch

from gancompress.distill.trainer import TrainConfig
from gancompress.evaluate import evaluate, latents
from gancompress.io import load_generator
from gancompress.pipeline import STUDENT_FILE, run_training, start_run
from gancompress.report import comparison, save_grid, write_report
from gancompress.teachers import resolve_generator

# Budgets. quick: finishes on a 2-core CPU in under 10 minutes with evaluation (its FID uses few
# samples and says so); standard: the budget of the published-quality results, for a GPU or a
# long CPU run.
PRESETS = {
    "quick": {"train": {"steps": 600, "batch_size": 32, "log_every": 50, "sample_every": 200,
                        "checkpoint_every": 200}, "n_eval": 500},
    "standard": {"train": {"steps": 20000, "batch_size": 64, "log_every": 100, "sample_every": 2000,
                           "checkpoint_every": 1000}, "n_eval": 2000},
}


def compress(
    teacher: str = "dcgan-face64",
    width: float | None = 0.25,
    channels=None,
    criterion: str = "l1",
    preset: str = "quick",
    overrides: dict | None = None,
    n_eval: int | None = None,
    run_root: str | Path = "runs",
    resume: Path | None = None,
    device: str = "cpu",
    progress: bool = True,
    log=print,
) -> Path:
    """Returns the run directory holding student.safetensors, grid.png, report.json and report.md."""
    budget = PRESETS[preset]
    n_eval = n_eval or budget["n_eval"]
    if resume is None:
        config = TrainConfig(**{**budget["train"], **(overrides or {})})
        plan = {"init": "inherit", "criterion": criterion, "prune_seed": 0}
        plan.update({"channels": list(channels)} if channels else {"width": width})
        label = f"compress-{Path(teacher).stem}-" + (f"w{width}" if not channels else "custom")
        run_dir = start_run(run_root, label, config, teacher, plan, device)
    else:
        run_dir = Path(resume)
    _, trainer = run_training(run_dir, device, resume=resume is not None, progress=progress)
    if not trainer.rank.main:
        return run_dir

    student_path = run_dir / STUDENT_FILE
    teacher_net, teacher_identity = resolve_generator(teacher, device)
    student = load_generator(student_path, device)
    z = latents(16, student.z_dim, seed=0)
    with torch.inference_mode():
        grid = save_grid(run_dir / "grid.png", [teacher_net(z.to(device)), student(z.to(device))])

    log(f"evaluating teacher and student at n = {n_eval}" + (" (quick preset: a small n, FID is biased upwards "
                                                           "and noisy; compare only at equal n)" if preset == "quick" else ""))
    kwargs = dict(n=n_eval, device=device, progress=progress, log=log)
    teacher_record = evaluate(teacher, f"teacher:{teacher}", **kwargs)
    student_record = evaluate(str(student_path), f"teacher:{teacher}", **kwargs)
    summary = {
        "command": " ".join(shlex.quote(a) for a in ["gancompress", *sys.argv[1:]]),
        "teacher": teacher_identity["name"],
        "student_channels": list(student.config.channels),
        "teacher_channels": list(teacher_net.config.channels),
        "preset": preset,
        "training": {"steps": trainer.step, "batch_size": trainer.config.batch_size, "time_s": trainer.elapsed(),
                     "config": trainer.config.to_dict()},
        "comparison": comparison(teacher_record, student_record),
        "teacher_eval": teacher_record,
        "student_eval": student_record,
        "grid": grid.name,
        "note": f"quick preset: FID at n = {n_eval} is biased upwards and noisy; use --preset standard "
                "(n = 2000) for numbers to compare with other runs." if preset == "quick" else None,
    }
    write_report(run_dir, summary)
    return run_dir
