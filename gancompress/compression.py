"""The main job: prune -> distill -> evaluate -> sample grid -> report, in one run directory."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from gancompress.data import check_image_source
from gancompress.distillation.trainer import TrainConfig, init_distributed
from gancompress.evaluation import EvaluationError, evaluate, generate, generator_reference, latents
from gancompress.io import load_generator
from gancompress.pipeline import RUN_FILE, STUDENT_FILE, StudentPlan, read_run, run_lock, run_training, start_run
from gancompress.report import comparison, save_grid, write_report
from gancompress.teachers import file_identity, manifest, resolve_generator

# Budgets. quick: finishes on a 2-core CPU in under 10 minutes with evaluation (its FID uses few
# samples and says so); standard: the budget of the published-quality results, for a GPU or a
# long CPU run.
PRESETS = {
    "quick": {"train": {"steps": 600, "batch_size": 32, "log_every": 50, "sample_every": 200,
                        "checkpoint_every": 200}, "n_eval": 500},
    "standard": {"train": {"steps": 20000, "batch_size": 64, "log_every": 100, "sample_every": 2000,
                           "checkpoint_every": 1000}, "n_eval": 2000},
}


def teacher_dataset(teacher: str) -> str | None:
    """The dataset a registered teacher was trained on (None for files and data-free teachers)."""
    entry = manifest().get(teacher)
    return entry.get("dataset") if entry else None


def _started_with(run_dir: Path) -> dict:
    """The preset, n_eval and command line a compress run was started with (from run.json). Runs
    written before these were recorded get the preset whose training budget their config matches."""
    spec_file = run_dir / RUN_FILE
    if not spec_file.is_file():
        return {}  # run_training says what is wrong with the directory
    spec = json.loads(spec_file.read_text())
    if "compress" in spec:
        return spec["compress"]
    train = spec.get("train", {})
    for name, budget in PRESETS.items():
        if all(train.get(key) == budget["train"][key] for key in ("steps", "batch_size")):
            return {"preset": name}
    return {}


DEFAULT_TEACHER = "dcgan-face64"


def check_n_eval(n_eval) -> int:
    if isinstance(n_eval, bool) or not isinstance(n_eval, int) or n_eval < 2:
        raise EvaluationError(f"--n must be an integer of at least 2 (FID needs a covariance), got {n_eval!r}")
    return n_eval


def check_data_reference(data: str | None) -> None:
    """A reference for FID against real images (a dataset, images, or their statistics .npz), checked
    before any training."""
    if data and data.endswith(".npz") and Path(data).expanduser().is_file():
        from gancompress.evaluation import load_statistics

        load_statistics(Path(data).expanduser())
    elif data:
        check_image_source(data)


def resolve_plan(teacher=None, width=0.25, channels=None, criterion=None, preset=None, overrides=None, n_eval=None,
                 data="auto", conv=None) -> dict:
    """What a new compress run will do, checked, before anything is created: {"teacher", "student"
    (the plan), "train" (the TrainConfig: the preset's numbers with `overrides`), "compress" (preset,
    n_eval, data)}. `compress --dry-run` prints it."""
    teacher = teacher or DEFAULT_TEACHER
    preset = preset or "quick"
    if preset not in PRESETS:
        raise EvaluationError(f"unknown preset {preset!r}; choose {', '.join(PRESETS)}")
    n_eval = check_n_eval(PRESETS[preset]["n_eval"] if n_eval is None else n_eval)
    data = teacher_dataset(teacher) if data == "auto" else data
    check_data_reference(data)
    config = TrainConfig(**{**PRESETS[preset]["train"], **(overrides or {})})
    plan = StudentPlan("inherit", width=None if channels else width, channels=channels or None, criterion=criterion,
                       prune_seed=0, conv=conv)
    return {"teacher": teacher, "student": plan, "train": config,
            "compress": {"preset": preset, "n_eval": n_eval, "data": data}}


def compress(
    teacher: str | None = None,
    width: float | None = 0.25,
    channels=None,
    criterion: str | None = None,
    preset: str | None = None,
    overrides: dict | None = None,
    n_eval: int | None = None,
    run_root: str | Path = "runs",
    resume: Path | None = None,
    device: str = "cpu",
    progress: bool = True,
    log=print,
    data: str | None = "auto",
    command: str | None = None,
    conv: str | None = None,
) -> Path:
    """Returns the run directory holding student.safetensors, grid.png, report.json and report.md.
    `teacher`: a registered name or a file (default dcgan-face64); a resumed run always uses its own.
    `data`: a reference (dataset[:split] or folder) for FID against real images as well; "auto" uses
    the registered teacher's dataset when it has one, None skips it. Every argument is checked
    before the first training step. `command`: how the run was asked for, for its record (the CLI
    passes its command line; by default the Python call)."""
    if command is None:
        shown = {"width": width, "channels": channels, "preset": preset, "n_eval": n_eval, "resume": resume,
                 "conv": conv}
        command = f"gancompress.compress({teacher!r}, " + ", ".join(
            f"{k}={str(v) if isinstance(v, Path) else v!r}" for k, v in shown.items() if v is not None) + ")"
    started = {}
    if resume is None:
        resolved = resolve_plan(teacher, width, channels, criterion, preset, overrides, n_eval, data, conv)
        teacher, config, plan = resolved["teacher"], resolved["train"], resolved["student"]
        preset, n_eval, data = (resolved["compress"][k] for k in ("preset", "n_eval", "data"))
        run_dir = start_run(run_root, plan.run_label("compress", teacher), config, teacher, plan, device,
                            extra={"compress": {**resolved["compress"], "command": command}})
    else:
        run_dir = Path(resume)
        spec = read_run(run_dir)
        if teacher is not None and teacher != spec["teacher"]:  # the CLI checks every option (resume_run)
            raise EvaluationError(f"{run_dir} distils teacher {spec['teacher']!r}, not {teacher!r}; a resumed run keeps "
                                  "its teacher (leave out --teacher)")
        teacher = spec["teacher"]
        started = _started_with(run_dir)
        if preset is None:  # a resumed run keeps the evaluation budget it was started with
            preset = started.get("preset") or "quick"
            n_eval = started.get("n_eval") if n_eval is None else n_eval
        n_eval = check_n_eval(PRESETS[preset]["n_eval"] if n_eval is None else n_eval)
        if data == "auto":
            data = started.get("data", teacher_dataset(teacher))
        check_data_reference(data)
    if not init_distributed(device).main:
        run_training(run_dir, device, resume=resume is not None, progress=progress)
        return run_dir
    with run_lock(run_dir):  # through the evaluation too: a second process must not rewrite the report
        _, trainer = run_training(run_dir, device, resume=resume is not None, progress=progress)
        _evaluate_and_report(run_dir, trainer, teacher, preset, n_eval, data, device, progress, log, command,
                             started, resume)
    return run_dir


def _evaluate_and_report(run_dir, trainer, teacher, preset, n_eval, data, device, progress, log, command, started,
                         resume) -> None:
    # Teacher and student are loaded once here and passed on as objects (with the identities their
    # files give them, so records and feature caches are the same as for a spec).
    student_path = run_dir / STUDENT_FILE
    teacher_net, teacher_identity = resolve_generator(teacher, device)
    student = load_generator(student_path, device)
    student_identity = file_identity(student_path.name, student_path, student)
    teacher_samples = generator_reference(teacher_net, teacher_identity, device)
    z = latents(16, student.z_dim, seed=0)
    with torch.inference_mode():
        grid = save_grid(run_dir / "grid.png", [generate(teacher_net, z, device), generate(student, z, device)])

    log(f"evaluating teacher and student at n = {n_eval}" + (" (quick preset: a small n, FID is biased upwards "
                                                           "and noisy; compare only at equal n)" if preset == "quick" else ""))
    kwargs = dict(n=n_eval, device=device, progress=progress, log=log)
    teacher_record = evaluate(teacher_net, teacher_samples, identity=teacher_identity, **kwargs)
    student_record = evaluate(student, teacher_samples, identity=student_identity, **kwargs)
    data_records = None
    if data:
        log(f"evaluating teacher and student against {data} at n = {n_eval}")
        kwargs["latency"] = False  # measured above
        data_records = (evaluate(teacher_net, data, identity=teacher_identity, **kwargs),
                        evaluate(student, data, identity=student_identity, **kwargs))
    summary = {
        "command": started.get("command", command),
        "resumed_with": command if resume is not None else None,
        "teacher": teacher_identity["name"],
        "student_channels": list(student.config.channels),
        "teacher_channels": list(teacher_net.config.channels),
        "preset": preset,
        "training": {"steps": trainer.step, "batch_size": trainer.config.batch_size, "time_s": trainer.elapsed(),
                     "config": trainer.config.to_dict()},
        "comparison": comparison(teacher_record, student_record, data_records),
        "teacher_eval": teacher_record,
        "student_eval": student_record,
        "data_evals": {"teacher": data_records[0], "student": data_records[1]} if data_records else None,
        "grid": grid.name,
        "note": f"quick preset: FID at n = {n_eval} is biased upwards and noisy; use --preset standard "
                "(n = 2000) for numbers to compare with other runs." if preset == "quick" else None,
    }
    write_report(run_dir, summary)
    if trainer.config.tensorboard:
        from gancompress.distillation.run_files import log_final_metrics

        log_final_metrics(run_dir, final_metrics(summary["comparison"]), trainer.step)


def final_metrics(comparison: dict) -> dict:
    """The student's final numbers (and the teacher's FID floor) from a report's comparison, for TensorBoard."""
    student = {key: row["student"] for key, row in comparison.items()
               if key.startswith(("fid_", "kid_", "lpips_"))}
    return {**student, "teacher_fid_floor": comparison["fid_vs_teacher_samples"]["teacher"]}
