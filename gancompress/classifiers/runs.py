"""`gancompress kd` as a library call: a run directory for one classifier distillation (run.json,
log.txt, stats.jsonl, checkpoints, student.safetensors), trained or resumed, then the student and
the teacher evaluated on the test split and compared in report.json / report.md."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from gancompress.classifiers.checkpoints import resolve_classifier
from gancompress.classifiers.evaluation import evaluate_classifier
from gancompress.classifiers.networks import TEACHER_CONFIG, ClassifierConfig, build_classifier
from gancompress.classifiers.training import ClassifierTrainer, KDConfig
from gancompress.config import ConfigError
from gancompress.distillation.trainer import Rank
from gancompress.io import atomic_write_text
from gancompress.pipeline import RUN_FILE, make_run_dir, read_run, run_lock, run_logger
from gancompress.report import format_number, markdown_table

STUDENT_FILE = "student.safetensors"


def student_config(teacher, width: float | None, channels: tuple[int, ...] | None) -> ClassifierConfig:
    """The student's architecture: explicit channels, or the teacher's (or the default teacher
    architecture, with no teacher) scaled by width."""
    base = teacher.config if teacher is not None else TEACHER_CONFIG
    if channels:
        return ClassifierConfig(base.in_channels, base.num_classes, base.resolution, tuple(channels))
    return base.with_width(1.0 if width is None else width)


def _label(config: KDConfig, student: ClassifierConfig) -> str:
    transfer = config.transfer.split(":")[0] if config.transfer.startswith("data") else \
        config.transfer.replace("generator:", "gen-").replace("/", "_")
    return f"kd-{config.method}-{transfer}-c{'.'.join(map(str, student.channels))}"


def kd_plan(teacher: str | None = None, method: str = "hinton", transfer: str = "data", width: float | None = 0.25,
            channels: tuple[int, ...] | None = None, overrides: dict | None = None, device: str = "cpu",
            eval_data: str = "fashion-mnist:test", pgd: tuple[float, int] | None = None,
            command: str | None = None) -> dict:
    """The run.json record of a new kd run, every setting checked and resolved (the teacher loaded to
    read its architecture); nothing is written. `gancompress kd --dry-run` prints it."""
    config = KDConfig(**{**(overrides or {}), "method": method, "transfer": transfer})
    if config.needs_teacher and teacher is None:
        raise ConfigError(f"method {method!r} distils a teacher: pass --teacher (e.g. fmnist-cnn)")
    teacher_net = resolve_classifier(teacher, device)[0] if teacher else None
    s_config = student_config(teacher_net, width, channels)
    if pgd is not None and not (pgd[0] > 0 and pgd[1] >= 1):
        raise ConfigError(f"--pgd needs eps > 0 and at least 1 step, got {pgd}")
    return {"teacher": teacher, "student": s_config.to_dict(), "kd": config.to_dict(), "device": device,
            "eval": {"data": eval_data, "pgd": list(pgd) if pgd else None},
            "command": command or f"gancompress.kd({teacher!r}, method={method!r}, transfer={transfer!r})"}


def kd(teacher: str | None = None, method: str = "hinton", transfer: str = "data", width: float | None = 0.25,
       channels: tuple[int, ...] | None = None, overrides: dict | None = None, run_root: str | Path = "runs",
       resume: str | Path | None = None, device: str = "cpu", progress: bool = True, eval_data: str = "fashion-mnist:test",
       pgd: tuple[float, int] | None = None, log=print, command: str | None = None) -> Path:
    """Distil `teacher` (a registered classifier or a file; None with method "ce": train alone) into a
    student of `width` (or `channels`) on `transfer`; evaluate both on `eval_data` (with `pgd` =
    (eps, steps), also under attack). Returns the run directory. `resume`: continue that run."""
    if resume is not None:
        run_dir = Path(resume)
        spec = read_run(run_dir)
        config = KDConfig.from_dict(spec["kd"])
        teacher = spec["teacher"]
        eval_data, pgd = spec["eval"]["data"], tuple(spec["eval"]["pgd"]) if spec["eval"]["pgd"] else None
        s_config = ClassifierConfig.from_dict(spec["student"])
    else:
        record = kd_plan(teacher, method, transfer, width, channels, overrides, device, eval_data, pgd, command)
        config, s_config = KDConfig.from_dict(record["kd"]), ClassifierConfig.from_dict(record["student"])
        run_dir = make_run_dir(run_root, _label(config, s_config))
        atomic_write_text(run_dir / RUN_FILE, json.dumps(record, indent=2, sort_keys=True) + "\n")
    with run_lock(run_dir):
        teacher_net, teacher_identity = resolve_classifier(teacher, device) if teacher else (None, None)
        torch.manual_seed(config.seed)  # the student's initial weights are part of the seeded run
        student = build_classifier(s_config)
        log_file = run_logger(run_dir, Rank(device=device))
        trainer = ClassifierTrainer(config, student, teacher_net, run_dir, device, progress, log_file.info)
        if resume is not None and (run_dir / "checkpoints" / "latest").is_file():
            trainer.load_checkpoint(run_dir)
            log_file.info("resumed at step %d", trainer.step)
        trainer.train()
        trainer.save_student(run_dir / STUDENT_FILE, {"teacher": teacher_identity and
                                                      {k: teacher_identity[k] for k in ("name", "sha256")}})
        log(f"evaluating on {eval_data}" + (f" (and under PGD eps {pgd[0]:g}, {pgd[1]} steps)" if pgd else ""))
        student_record = evaluate_classifier(trainer.student, eval_data, pgd)
        # The teacher's clean accuracy only: PGD on the teacher costs more than most students' training,
        # and `gancompress eval-classifier --classifier TEACHER --pgd EPS,STEPS` measures it once.
        teacher_record = evaluate_classifier(teacher_net, eval_data) if teacher_net is not None else None
        write_kd_report(run_dir, read_run(run_dir), trainer, student_record, teacher_record, teacher_identity)
    return run_dir


def _augmentations(config: KDConfig) -> str:
    """The report's sentence on the trainer's augmentations (none: empty)."""
    done = (["random left-right flips"] if config.flip else []) + \
        ([f"mixup within the batch, weight ~ Beta({config.mixup:g}, {config.mixup:g})"] if config.mixup else [])
    return f" Augmented (the teacher labels the same image): {', '.join(done)}." if done else ""


def write_kd_report(run_dir: Path, spec: dict, trainer: ClassifierTrainer, student: dict, teacher: dict | None,
                    teacher_identity: dict | None) -> None:
    transfer = trainer.transfer.identity if trainer.transfer is not None else \
        {"kind": "dfad", "real_training_images": 0, "generator": "trained against the student (DFAD), ending in " +
         ("tanh and BatchNorm without affine" if trainer.config.dfad_output == "bn" else "tanh") +
         (f"; half of each batch replayed from its last {trainer.config.replay} images" if trainer.config.replay else "")}
    summary = {"command": spec.get("command"), "teacher": teacher_identity, "kd": trainer.config.to_dict(),
               "transfer": transfer, "training": {"steps": trainer.step, "time_s": trainer.elapsed()},
               "student_eval": student, "teacher_eval": teacher}
    if teacher is not None:
        summary["accuracy_of_teacher"] = student["accuracy"] / teacher["accuracy"]
    atomic_write_text(run_dir / "report.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    rows = [["accuracy", f"{100 * teacher['accuracy']:.2f}%" if teacher else "", f"{100 * student['accuracy']:.2f}%",
             f"{student['accuracy'] / teacher['accuracy']:.4f}" if teacher else ""]]
    if "robust" in student:
        rows.append(["robust accuracy", "not measured" if teacher else "", f"{100 * student['robust']['accuracy']:.2f}%", ""])
    for key, name in (("params", "parameters"), ("macs_per_image", "MACs / image")):
        rows.append([name, format_number(teacher[key]) if teacher else "", format_number(student[key]),
                     f"{student[key] / teacher[key]:.4f}" if teacher else ""])
    for i, lat in enumerate(student.get("latency", [])):
        t_lat = teacher["latency"][i]["median_ms_per_image"] if teacher else None
        rows.append([f"latency b{lat['batch_size']} (ms/img)", f"{t_lat:.4f}" if t_lat else "",
                     f"{lat['median_ms_per_image']:.4f}", f"{lat['median_ms_per_image'] / t_lat:.3f}" if t_lat else ""])
    p = student["protocol"]
    lines = [f"# Classifier distillation: {trainer.config.method} on {trainer.config.transfer}", "",
             f"Command: `{spec.get('command')}`", "",
             *markdown_table(["metric", "teacher", "student", "student / teacher"], rows), "",
             f"Transfer set: {json.dumps(transfer)}." + _augmentations(trainer.config) + f" Training: {trainer.step} steps of batch "
             f"{trainer.config.batch_size} in {trainer.elapsed():.0f} s.", "",
             f"Protocol: {p['data']}; {p['preprocessing']}; {p['accuracy']}; MACs: {p['macs']}; "
             f"device {p['device']}, {p['threads']} threads, torch {p['torch']}." +
             (f" Robust accuracy: {student['robust']['attack']}." if "robust" in student else "")]
    atomic_write_text(run_dir / "report.md", "\n".join(lines) + "\n")
