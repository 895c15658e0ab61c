"""Runs: prune, distill and train as library calls that the CLI wraps.

A run directory (`runs/NNNNN-label/`) holds `run.json` (everything needed to rebuild the run:
teacher, student architecture and how it was initialised, training config), `log.txt`,
`stats.jsonl`, `samples/`, `checkpoints/` and, when finished, `student.safetensors` (the EMA
student) and `finished.json` (its step, training time and sha256). `--resume RUN_DIR` rebuilds the
run from `run.json` and continues from its latest checkpoint. A finished run stays finished without
its checkpoints, so a sweep's runs can be kept (or committed) as their small final files."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import re
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from gancompress import extras
from gancompress.data import DATASETS, ImageFiles, check_image_source, load_dataset, load_labels
from gancompress.distillation.trainer import EXECUTION_FIELDS, MONITOR_FIELDS, Rank, TrainConfig, Trainer, init_distributed
from gancompress.errors import GancompressError
from gancompress.families import FAMILIES, build_generator, config_from_dict, family_of
from gancompress.io import atomic_write_text, save_discriminator, save_generator, sha256_file
from gancompress.pruning import criterion_error, prune_generator
from gancompress.teachers import discriminator_sibling, resolve_generator

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
STUDENT_FILE = "student.safetensors"
FINISHED_FILE = "finished.json"


class RunError(GancompressError, ValueError):
    pass


@dataclass(frozen=True)
class StudentPlan:
    """How a run builds its student (run.json's "student"): one of
      init "inherit", width | channels, criterion, prune_seed   prune the teacher (its weights)
      init "random", width | channels                           the pruned architecture, fresh weights
      init "mapping-only", width | channels, freeze_mapping     StyleGAN2: fresh synthesis with the
                                                                teacher's mapping network (StyleKD)
      init "random", config                                     any architecture (training from scratch)
    and, with a width or channels, conv: the student's convolutions (StyleGAN2 "separable": the
    mobile student, initialised from the pruned teacher's kernels under "inherit"; None: "full").
    Unset fields are None and are left out of run.json, so records keep the shape they always had."""

    init: str = "inherit"
    width: float | None = None
    channels: tuple[int, ...] | None = None
    criterion: str | None = None  # None: the family's default (start_run records the one it resolves to)
    prune_seed: int | None = None  # None: 0
    freeze_mapping: bool | None = None
    config: dict | None = None  # a generator config (to_dict form)
    conv: str | None = None  # None: "full"

    def __post_init__(self):
        init_modes = sorted({mode for family in FAMILIES.values() for mode in family.init_modes})
        if self.init not in init_modes:
            raise RunError(f"unknown student init {self.init!r}; choose {', '.join(init_modes)}")
        if self.conv == "full":  # the default is recorded as absent, as before the option existed
            object.__setattr__(self, "conv", None)
        convs = sorted({conv for family in FAMILIES.values() for conv in family.student_convs})
        if self.conv is not None and self.conv not in convs:
            raise RunError(f"unknown student conv {self.conv!r}; choose {', '.join(convs)}")
        if self.conv is not None and self.config is not None:
            raise RunError("a student given as a config names its convolutions in the config, not in conv")
        if self.channels is not None:
            object.__setattr__(self, "channels", tuple(self.channels))
        if self.config is not None and (self.width is not None or self.channels is not None):
            raise RunError("a student plan gives its architecture once: a config, or a width or channels of the teacher")

    @classmethod
    def of(cls, plan: "StudentPlan | dict") -> "StudentPlan":
        """A plan from itself or from its run.json form (unknown keys refused)."""
        if isinstance(plan, cls):
            return plan
        unknown = set(plan) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise RunError(f"unknown student plan fields {sorted(unknown)}")
        return cls(**plan)

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}
        if "channels" in out:
            out["channels"] = list(out["channels"])
        return out

    def run_label(self, mode: str, teacher) -> str:
        """The run directory's name after its counter: mode, teacher stem, width (or "custom"), conv."""
        shape = f"w{self.width}" if self.channels is None else "custom"
        return f"{mode}-{Path(str(teacher)).stem}-{shape}" + (f"-{self.conv}" if self.conv else "")

    @property
    def _prunes_by_default(self) -> bool:
        """It prunes the teacher and names no criterion."""
        return self.init == "inherit" and self.config is None and self.criterion is None

    def recorded(self) -> "StudentPlan":
        """This plan as read from a run.json: start_run names the criterion of every plan that prunes,
        so one without a name was written before the families had defaults, when it meant l1."""
        return dataclasses.replace(self, criterion="l1") if self._prunes_by_default else self

    def resolved(self, teacher) -> "StudentPlan":
        """This plan with its pruning criterion named: the teacher family's default when it has none
        (a plan that prunes; the others keep None)."""
        return dataclasses.replace(self, criterion=family_of(teacher).default_criterion) if self._prunes_by_default \
            else self


def run_dir_label(label: str) -> str:
    """The label as it appears in a run directory's name (characters other than letters, digits and
    `_.-` become `_`: a search setting `feat=0+adv=1` names `NNNNN-feat_0_adv_1`)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)


def labelled_runs(root: str | Path, label: str) -> list[Path]:
    """The run directories `root/NNNNN-label` of `label`, oldest first."""
    root = Path(root)
    pattern = re.compile(r"\d{5}-" + re.escape(run_dir_label(label)))
    return sorted(p for p in root.iterdir() if p.is_dir() and pattern.fullmatch(p.name)) if root.is_dir() else []


def make_run_dir(root: str | Path, label: str) -> Path:
    """`root/NNNNN-label`, numbered one past the highest existing run."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := re.match(r"(\d{5})-", p.name))]
    run_dir = root / f"{max(numbers, default=-1) + 1:05d}-{run_dir_label(label)}"
    run_dir.mkdir()
    return run_dir


class RealImages:
    """Real training images, drawn uniformly with replacement by the caller's generator and read
    lazily: a registered dataset stays in memory as uint8, a folder or tar is decoded batch by batch
    (only the drawn images) by `workers` threads. Images stay uint8 until they reach `device`, where
    they become [-1, 1] at the generator's resolution (bilinear, antialiased when shrinking)."""

    def __init__(self, spec: str, resolution: int, channels: int, workers: int = 4):
        name, _, split = spec.partition(":")
        self.resolution, self.channels, self._files, self._images = resolution, channels, None, None
        self.labels = None  # int64 class labels of a registered dataset (class-conditional training)
        if name in DATASETS:
            self._images = load_dataset(name, split or "train")
            self.labels = load_labels(name, split or "train")
            if self._images.shape[1] != channels:
                raise RunError(f"real images {spec!r} have {self._images.shape[1]} channels but the generator makes {channels}")
            self.count = len(self._images)
        else:
            path = Path(spec[len("folder:"):] if spec.startswith("folder:") else spec)
            if not path.exists():
                raise RunError(f"real images {spec!r}: not a dataset ({', '.join(DATASETS)}) or an existing folder/tar")
            self._files = ImageFiles.open(path)  # decoded as `channels` (L or RGB) at `resolution` (bicubic)
            self.count = len(self._files.names)
            self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="real-images")
            self.workers = max(1, workers)

    def _read(self, indices: list[int]) -> torch.Tensor:
        if self._images is not None:
            return self._images[indices]
        # Pillow decodes and resizes with the GIL released, so threads decode in parallel; unlike
        # worker processes they need no fork after CUDA has started, nor pickling.
        size = -(-len(indices) // self.workers)
        chunks = [indices[i:i + size] for i in range(0, len(indices), size)]  # in order: cat keeps the draw order
        return torch.cat(list(self._pool.map(lambda chunk: self._files.load(chunk, self.channels, self.resolution), chunks)))

    def __call__(self, generator: torch.Generator, n: int, device="cpu") -> torch.Tensor:
        return self.draw(generator, n, device)[0]

    def draw(self, generator: torch.Generator, n: int, device="cpu") -> tuple[torch.Tensor, torch.Tensor | None]:
        """(n images, their class labels or None for a folder), drawn as __call__ draws them."""
        indices = torch.randint(0, self.count, (n,), generator=generator).tolist()
        images = self._read(indices).to(device).float().div(127.5).sub(1)
        if images.shape[-1] != self.resolution:
            images = F.interpolate(images, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False,
                                   antialias=images.shape[-1] > self.resolution)
        return images, None if self.labels is None else self.labels[indices].to(device)


def real_image_source(spec: str, resolution: int, channels: int, workers: int = 4) -> RealImages:
    """The training images `spec` names (a dataset[:split], or an image folder or tar), see RealImages."""
    return RealImages(spec, resolution, channels, workers)


def prune_teacher(teacher_spec: str, width=None, channels=None, criterion=None, seed=0, device="cpu", conv="full"):
    """(teacher, teacher identity, student, kept indices); `conv` (e.g. "separable"): the student's
    convolutions, initialised from the pruned kernels."""
    teacher, identity = resolve_generator(teacher_spec, device)
    student, kept = prune_generator(teacher, width=width, channels=channels, criterion=criterion, seed=seed)
    return teacher, identity, family_of(teacher).with_convs(student, conv, inherit=True), kept


def build_student(teacher, plan: "StudentPlan") -> tuple[torch.nn.Module, dict | None]:
    """(student, kept channel indices or None) as `plan` says, from `teacher` (None for a config plan)."""
    kept = None
    if plan.config is not None:
        return build_generator(config_from_dict(plan.config)), None
    if plan.init == "inherit":
        student, kept = prune_generator(teacher, width=plan.width, channels=plan.channels,
                                        criterion=plan.criterion, seed=plan.prune_seed or 0)
    else:
        shape, _ = prune_generator(teacher, width=plan.width, channels=plan.channels, criterion="l1")
        student = build_generator(shape.config)
    if plan.conv is not None:
        student = family_of(teacher).with_convs(student, plan.conv, inherit=plan.init == "inherit")
    if plan.init == "mapping-only":
        copy_mapping(teacher, student, freeze=bool(plan.freeze_mapping))
    return student, kept


def copy_mapping(teacher, student, freeze: bool = False) -> None:
    """StyleKD's initialisation (the family's): the student's mapping network is the teacher's."""
    family_of(teacher).copy_mapping(teacher, student, freeze)


def save_student(path: Path, student, pruning: dict | None) -> Path:
    return save_generator(path, student, {"pruning": pruning} if pruning else None)


def run_logger(run_dir: Path | None, rank: Rank) -> logging.Logger:
    """The run's log.txt (timestamped lines), written by the main rank only."""
    log = logging.getLogger(f"gancompress.run.{run_dir}")
    log.setLevel(logging.INFO)
    log.propagate = False
    if run_dir is not None and rank.main and not log.handlers:
        handler = logging.FileHandler(run_dir / "log.txt")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
    return log


def start_run(
    run_root: str | Path,
    label: str,
    config: TrainConfig,
    teacher_spec: str | None,
    student_plan: StudentPlan | dict,
    device: str = "cpu",
    extra: dict | None = None,
    teacher_d: str | None = None,
) -> Path:
    """Create a run directory and its run.json. `student_plan` says how the student is built
    (a StudentPlan, or its dict form). `teacher_d`: the teacher's discriminator file, for d_init
    'teacher' and d_distill (None: the one shipped with or found beside the teacher; see
    teachers.resolve_discriminator); the run records the file and sha256 of the one it uses.
    `extra`: further top-level entries of run.json (e.g. the compress command's preset and command line).
    Everything is validated first: a run that cannot start leaves no directory behind."""
    rank = init_distributed(device)
    run_dir = None
    if rank.main:
        student_plan = StudentPlan.of(student_plan)
        student_plan = check_run(config, teacher_spec, student_plan, rank.device)
        discriminator = teacher_discriminator(config, teacher_spec, teacher_d)[1]
        run_dir = make_run_dir(run_root, label)
        record = {"teacher": teacher_spec, "student": student_plan.to_dict(), "train": config.to_dict(), "device": device,
                  **({"teacher_d": teacher_d} if teacher_d else {}),
                  **({"teacher_discriminator": discriminator} if discriminator else {}), **(extra or {})}
        atomic_write_text(run_dir / RUN_FILE, json.dumps(record, indent=2, sort_keys=True) + "\n")
    if rank.world > 1:  # every rank reads run.json: rank 0 sends the name only once it is written
        names = [str(run_dir) if run_dir else None]
        torch.distributed.broadcast_object_list(names, 0)
        run_dir = Path(names[0])
    return run_dir


def needs_teacher_discriminator(config: TrainConfig) -> bool:
    return config.adv > 0 and (config.d_init == "teacher" or config.d_distill > 0)


def wants_teacher_discriminator(config: TrainConfig) -> bool:
    """Needs it, or takes it when there is one (d_init 'auto' at d_width 1)."""
    return needs_teacher_discriminator(config) or (config.adv > 0 and config.d_init == "auto" and config.d_width == 1)


def teacher_discriminator(config: TrainConfig, teacher_spec: str | None, teacher_d: str | None, device="cpu",
                          recorded: dict | None = None, in_run: bool = False):
    """(the teacher's discriminator, its identity) when the run's config uses it, else (None, None); a
    RunError naming the fix when it is needed and there is none, or when it is not the file `recorded`.
    `in_run`: for a run already created, whose record says whether it took one (`recorded`): under
    d_init 'auto' a run that started without one stays without one, even if one appeared since."""
    from gancompress.teachers import resolve_discriminator

    if not wants_teacher_discriminator(config):
        return None, None
    if in_run and recorded is None and not needs_teacher_discriminator(config):
        return None, None
    required = needs_teacher_discriminator(config) or recorded is not None  # a run that started with one keeps it
    if teacher_spec is None and teacher_d is None:
        if not required:
            return None, None
        raise RunError("d_init 'teacher' and d_distill need a teacher's discriminator: pass --teacher-d FILE")
    network, identity = resolve_discriminator(teacher_spec, teacher_d, device)
    if network is None and not required:
        return None, None
    if network is None and recorded is not None:
        raise RunError(f"the run started from the teacher's discriminator {recorded.get('file')} (sha256 "
                       f"{recorded.get('sha256')}) and it is gone; restore it (or pass --teacher-d FILE) to resume")
    if network is None:  # required by d_init 'teacher' or d_distill
        raise RunError(f"d_init 'teacher' and d_distill need the teacher's discriminator; {teacher_spec} carries none "
                       "and has no -D.safetensors beside it: pass --teacher-d FILE, or use --d-init student or "
                       "teacher-size with --d-distill 0")
    if recorded is not None and identity["sha256"] != recorded.get("sha256"):
        raise RunError(f"the teacher's discriminator {identity['file']} is not the one the run started with "
                       f"(sha256 {recorded.get('sha256')}); restore that file or start a new run")
    return network, identity


def check_run(config: TrainConfig, teacher, plan: StudentPlan | dict, device: str = "cpu") -> StudentPlan:
    """Raise the error a run would meet while it is being built (teacher, student plan, images), cheaply:
    the student's shape is derived but nothing is trained or decoded. `teacher`: a spec, an already
    loaded generator (a sweep checks many plans against one teacher), or None. Returns the plan with
    its pruning criterion named (StudentPlan.resolved)."""
    if teacher is not None and not isinstance(teacher, torch.nn.Module):
        teacher = resolve_generator(teacher, device)[0]
    plan = StudentPlan.of(plan)
    if plan.config is not None:
        config_from_dict(plan.config)
    elif teacher is None:
        raise RunError("a student derived from a teacher needs --teacher")
    else:
        prune_generator(teacher, width=plan.width, channels=plan.channels, criterion="l1")
        family = family_of(teacher)
        if plan.criterion is not None and plan.criterion not in family.criteria:
            raise criterion_error(plan.criterion, family)
        plan = plan.resolved(teacher)
        if plan.init not in family.init_modes:
            raise RunError(f"init {plan.init!r} does not apply to {family.title} teachers; choose "
                           f"{', '.join(family.init_modes)}")
        if (plan.conv or "full") not in family.student_convs:
            raise RunError(f"conv {plan.conv!r} does not apply to {family.title} students; choose "
                           f"{', '.join(family.student_convs)}")
    if config.real != "teacher":
        check_image_source(config.real)
    if config.tensorboard:
        extras.require("tensorboard", "--tensorboard")
    return plan


def read_run(run_dir: str | Path) -> dict:
    spec_file = Path(run_dir) / RUN_FILE
    if not spec_file.is_file():
        raise RunError(f"{run_dir}: not a gancompress run directory (no {RUN_FILE})")
    try:
        return json.loads(spec_file.read_text())
    except json.JSONDecodeError as err:
        raise RunError(f"{spec_file}: not valid JSON ({err})") from None


def checkpoint_step(run_dir: str | Path) -> int:
    """The step of the run's latest checkpoint (0 when it has none)."""
    latest = Path(run_dir) / "checkpoints" / "latest"
    match = re.fullmatch(r"step-(\d+)", latest.read_text().strip()) if latest.is_file() else None
    return int(match.group(1)) if match else 0


def same_setting(given, recorded) -> bool:
    if isinstance(given, (list, tuple)) or isinstance(recorded, (list, tuple)):
        return isinstance(given, (list, tuple)) and isinstance(recorded, (list, tuple)) and \
            [float(g) if isinstance(g, (int, float)) else g for g in given] == \
            [float(r) if isinstance(r, (int, float)) else r for r in recorded]
    if isinstance(given, (int, float)) and isinstance(recorded, (int, float)) and not isinstance(given, bool):
        return float(given) == float(recorded)
    return given == recorded


def resume_run(run_dir: str | Path, given: dict[str, tuple[str, object]], device: str, may_change: dict | None = None) -> dict:
    """Check what a resume command says against the run's record, and record the resume.

    `given`: what the command line set explicitly, as {key in run.json ('train.lr_g', 'student.width',
    'teacher', ...): (option as typed, value)}. A value that differs from the record is refused, naming
    every such option: a resumed run keeps the config it was started with. Only `train.steps` may grow
    (to extend a run past its end), plus the keys of `may_change` ({key: (option, value)} for options
    the user gave, e.g. the evaluation budget of compress); accepted changes and the device go into
    run.json's `history`.
    Returns the updated run record."""
    run_dir = Path(run_dir)
    read_run(run_dir)  # a clear error for a folder that is not a run, before it is locked
    with run_lock(run_dir):
        spec = read_run(run_dir)
        conflicts, changed = [], {}
        for key, (option, value) in given.items():
            section, _, field_name = key.partition(".")
            recorded = spec.get(section, {}).get(field_name) if field_name else spec.get(section)
            absent = _absent_means(key)  # a field left out of run.json at its default
            value, recorded = (absent if value is None else value), (absent if recorded is None else recorded)
            if same_setting(value, recorded):
                continue
            if section == "train" and field_name in EXECUTION_FIELDS + MONITOR_FIELDS:  # not what the run trains
                changed[key] = [recorded, value]
                spec["train"][field_name] = value
                continue
            if key == "train.steps":
                done = checkpoint_step(run_dir)
                if value < done:
                    conflicts.append(f"{option} {value} (the run is at step {done} already)")
                    continue
                changed[key] = [recorded, value]
                spec["train"]["steps"] = value
                continue
            conflicts.append(f"{option} {_show(value)} (the run has {_show(recorded)})")
        if conflicts:
            raise RunError(f"{run_dir} was started with other settings: {', '.join(conflicts)}. A resumed run keeps its "
                           "recorded config (only a larger --steps, --device and the execution and monitoring options " +
                           ", ".join("--" + f.replace("_", "-") for f in EXECUTION_FIELDS + MONITOR_FIELDS) +
                           " may change); start a new run to change it")
        for key, (option, value) in (may_change or {}).items():
            section, _, field_name = key.partition(".")
            recorded = spec.setdefault(section, {}).get(field_name)
            if not same_setting(value, recorded):
                changed[key] = [recorded, value]
                spec[section][field_name] = value
        spec.setdefault("history", []).append(
            {"resumed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "at_step": checkpoint_step(run_dir), "device": device,
             "changed": changed})
        atomic_write_text(run_dir / RUN_FILE, json.dumps(spec, indent=2, sort_keys=True) + "\n")
    return spec


def _absent_means(key: str):
    """What a field left out of run.json at its default means: StudentPlan.conv's "full", or the
    TrainConfig default of a field recorded only when it differs (SerializableConfig.omit_when_default)."""
    section, _, field_name = key.partition(".")
    if key == "student.conv":
        return "full"
    if section == "train" and field_name in TrainConfig.omit_when_default:
        return next(f.default for f in dataclasses.fields(TrainConfig) if f.name == field_name)
    return None


def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "none"
    return str(value)


_HELD_LOCKS: dict[Path, object] = {}


@contextlib.contextmanager
def run_lock(run_dir: str | Path):
    """Hold the run directory for this process (re-entrant). A second process gets a RunError at
    once instead of racing for the same checkpoints and log. The lock is the kernel's (flock), so a
    killed process releases it."""
    key = Path(run_dir).resolve()
    if key in _HELD_LOCKS:
        yield
        return
    handle = open(key / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunError(f"{run_dir} is in use by another gancompress process ({holder}); wait for it to finish "
                       "(a second resume of the same run would corrupt it)") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    _HELD_LOCKS[key] = handle
    try:
        yield
    finally:
        del _HELD_LOCKS[key]
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def run_training(run_dir: str | Path, device: str = "cpu", resume: bool = False, progress: bool = True,
                 lpips_model=None):
    """Build (or rebuild) the run described by run.json and train it to the end. Returns the EMA student."""
    run_dir = Path(run_dir)
    rank = init_distributed(device)
    spec = read_run(run_dir)
    if rank.main:
        with run_lock(run_dir):
            return _train_run(run_dir, spec, rank, resume, progress, lpips_model)
    return _train_run(run_dir, spec, rank, resume, progress, lpips_model)


def _train_run(run_dir: Path, spec: dict, rank: Rank, resume: bool, progress: bool, lpips_model):
    device = rank.device
    config = TrainConfig.from_dict(spec["train"])
    plan = StudentPlan.of(spec["student"]).recorded()
    teacher, teacher_identity = None, None
    if spec["teacher"]:
        teacher, teacher_identity = resolve_generator(spec["teacher"], device)
    torch.manual_seed(config.seed)
    student, kept = build_student(teacher, plan)
    if config.mode == "distill" and config.lpips and lpips_model is None:
        from gancompress.metrics.lpips import load_lpips

        lpips_model = load_lpips("alex", device)
    real = None
    if config.real != "teacher":
        real = real_image_source(config.real, student.resolution, student.out_channels)
    teacher_d = teacher_discriminator(config, spec["teacher"], spec.get("teacher_d"), device,
                                      recorded=spec.get("teacher_discriminator"), in_run=True)[0]
    log = run_logger(run_dir, rank)
    monitor = quality_monitor(config, teacher, teacher_identity, student, device, lpips_model, log.info, progress) \
        if config.metrics_every and rank.main else None
    trainer = Trainer(config, student, teacher, real, run_dir, device=device, kept=kept,
                      lpips_model=lpips_model, rank=rank, progress=progress, log_line=log.info,
                      teacher_discriminator=teacher_d, monitor=monitor)
    if resume:
        trainer.load_checkpoint(run_dir)
        log.info("resumed at step %d", trainer.step)
    else:
        log.info("started: %s", json.dumps(spec, sort_keys=True))
    student_ema = trainer.train()
    if rank.main:
        pruning = {"teacher": spec["teacher"], "kept": kept, "criterion": plan.criterion} if kept else None
        save_student(run_dir / STUDENT_FILE, student_ema, pruning)
        if config.adv:  # the discriminator it was trained against, where teachers.resolve_discriminator looks
            save_discriminator(discriminator_sibling(run_dir / STUDENT_FILE), trainer.D,
                               {"trained_with": {"run": run_dir.name, "step": trainer.step}})
        atomic_write_text(run_dir / FINISHED_FILE, json.dumps(
            {"step": trainer.step, "elapsed_s": trainer.elapsed(),
             "student_sha256": sha256_file(run_dir / STUDENT_FILE)}, indent=2) + "\n")
        log.info("finished at step %d after %.1f s; EMA student written to %s", trainer.step, trainer.elapsed(),
                 run_dir / STUDENT_FILE)
    return student_ema, trainer


def quality_monitor(config: TrainConfig, teacher, teacher_identity, student, device, lpips_model, log, progress=True):
    """The in-training evaluator of --metrics-every: against the teacher's samples when there is a
    teacher (distillation, or GAN training toward one), else against the run's real images. What it
    measures, at which n and with what bias goes into log.txt (and stderr)."""
    from gancompress.evaluation import QualityMonitor, generator_reference, parse_reference

    if teacher is not None:
        reference = generator_reference(teacher, teacher_identity, device)
    else:
        reference = parse_reference(config.real, device, student.resolution, student.out_channels)
    monitor = QualityMonitor(reference, config.metrics_n, device, lpips_model, log=log)
    log(monitor.description)
    if progress:
        print(monitor.description, file=sys.stderr)
    return monitor


@dataclass(frozen=True)
class FinishedRun:
    """A run found finished (finished.json beside its student): the step, config and training time a
    caller would read from its Trainer."""

    step: int
    config: TrainConfig
    elapsed_s: float

    def elapsed(self) -> float:
        return self.elapsed_s


def finished_run(run_dir: str | Path) -> FinishedRun | None:
    """The run's FinishedRun when it trained to the end of its run.json (None: not finished). A student
    file that is not the one the run wrote is refused rather than measured as if it were."""
    run_dir = Path(run_dir)
    record_file = run_dir / FINISHED_FILE
    if not record_file.is_file():
        return None
    try:
        record = json.loads(record_file.read_text())
        step, elapsed_s, digest = int(record["step"]), float(record["elapsed_s"]), record["student_sha256"]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise RunError(f"{record_file}: unreadable ({err}); delete it to resume the run from its checkpoint") from None
    config = TrainConfig.from_dict(read_run(run_dir)["train"])
    if step < config.steps:
        return None
    student = run_dir / STUDENT_FILE
    if not student.is_file() or sha256_file(student) != digest:
        raise RunError(f"{student}: missing or not the student this run wrote (sha256 {digest[:12]}... in "
                       f"{FINISHED_FILE}); restore it, or delete {FINISHED_FILE} to finish the run from its checkpoint")
    return FinishedRun(step, config, elapsed_s)


def train_or_resume(run_root: str | Path, label: str, config: TrainConfig, teacher_spec: str | None,
                    plan: StudentPlan | dict,
                    device: str = "cpu", progress: bool = True, teacher_d: str | None = None):
    """Train the run called `label` under `run_root` to its end: resume the latest such run that has a
    checkpoint, else start a new one (a run started but killed before its first checkpoint starts
    over). Returns (run_dir, trainer), or (run_dir, FinishedRun) when the run had already finished (its
    checkpoints may be gone). Lets sweeps and studies pick up where they were interrupted."""
    existing = labelled_runs(run_root, label)
    stale = []  # runs killed before their first checkpoint: no longer runs (their run.json goes)
    for run_dir in reversed(existing):  # the newest run that finished or has a checkpoint
        done = finished_run(run_dir)
        if done is not None:
            return run_dir, done
        if (run_dir / "checkpoints" / "latest").is_file():
            resume = True
            break
        stale.append(run_dir)
    else:
        run_dir, resume = None, False
    for path in stale:
        (path / RUN_FILE).unlink(missing_ok=True)
    if run_dir is None:
        run_dir = start_run(run_root, label, config, teacher_spec, plan, device, teacher_d=teacher_d)
    _, trainer = run_training(run_dir, device, resume=resume, progress=progress)
    return run_dir, trainer

