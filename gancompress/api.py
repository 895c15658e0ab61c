"""The public Python API: `import gancompress as gc; gc.compress(...)`. Each function is a thin,
documented entry over the library module that does the work, with the same defaults as the command
line (which calls the same modules). Examples: docs/api.md (executed by tests/test_api.py)."""

from __future__ import annotations

from pathlib import Path

import torch

from gancompress.compression import compress as _compress
from gancompress.evaluation import default_device
from gancompress.evaluation import evaluate as _evaluate


def load_generator(spec: str | Path, device: str = "cpu") -> torch.nn.Module:
    """A generator in eval mode from a registered teacher name (`gancompress assets list` and
    `pretrained/manifest.json` list them) or a checkpoint file: a gancompress `.safetensors`, a DCGAN
    `state_dict` (`.pt`/`.pth`), a rosinality StyleGAN2 `.pt` or an NVlabs `.pkl` snapshot.

    >>> teacher = gc.load_generator("dcgan-fmnist32")"""
    from gancompress.teachers import resolve_generator

    return resolve_generator(str(spec), device)[0]


def _module(generator, device: str = "cpu") -> torch.nn.Module:
    return generator if isinstance(generator, torch.nn.Module) else load_generator(generator, device)


def prune(teacher, width: float | None = None, channels=None, criterion: str | None = None, seed: int = 0):
    """(student, kept): the teacher's most important channels per block sliced into a narrower
    student (`width` multiplies every block, or `channels` lists them), and the kept indices.
    `criterion`: one of the family's (`gc.FAMILIES["dcgan"].criteria`, ...); None: its default, the first.

    >>> student, kept = gc.prune("dcgan-fmnist32", width=0.5)"""
    from gancompress.pruning import prune_generator

    return prune_generator(_module(teacher), width=width, channels=channels, criterion=criterion, seed=seed)


def distill(teacher: str | Path, width: float | None = 0.25, channels=None, steps: int = 2000, *,
            criterion: str | None = None, init: str = "inherit", conv: str | None = None, run_root: str | Path = "runs", device: str | None = None,
            progress: bool = True, teacher_d: str | Path | None = None, **train):
    """(student, run_dir): prune `teacher` (a name or a file, recorded in the run so it can resume) and
    distil the student for `steps` steps; `train` takes any TrainConfig field (batch_size, lr_g, l1,
    lpips, feat, adv, ...). The run directory holds run.json, logs, checkpoints and
    student.safetensors (the EMA student, also returned). `conv="separable"` (StyleGAN2): the
    mobile student's separable convolutions, initialised from the pruned kernels. `criterion` None: the
    family's default pruning criterion (run.json records the one used). `teacher_d`: the
    teacher's discriminator file for d_init="teacher" / d_distill (default: shipped with or beside it).

    >>> student, run_dir = gc.distill("dcgan-fmnist32", width=0.5, steps=200, batch_size=16)"""
    from gancompress.distillation.trainer import TrainConfig
    from gancompress.pipeline import StudentPlan, run_training, start_run

    device = device or default_device()
    config = TrainConfig(steps=steps, **train)
    plan = StudentPlan(init, width=None if channels else width, channels=channels or None, criterion=criterion,
                       prune_seed=0, conv=conv)
    run_dir = start_run(run_root, plan.run_label("distill", teacher), config, str(teacher), plan, device,
                        teacher_d=str(teacher_d) if teacher_d else None)
    student, _ = run_training(run_dir, device, progress=progress)
    return student, run_dir


def evaluate(generator, reference: str, n: int = 2000, **options) -> dict:
    """The metrics record of `generator` (an nn.Module, a name or a checkpoint) against `reference`
    (`teacher:NAME|PATH` for data-free FID/KID plus LPIPS to that teacher, `mnist[:split]`,
    `fashion-mnist[:split]`, or an image folder/tar), with its protocol. `options`: n_ref, seed,
    ref_seed, batch_size, device, lpips_net, latency, use_cache, progress, log.

    >>> record = gc.evaluate(student, "teacher:dcgan-fmnist32", n=500)
    >>> record["metrics"]["fid"], record["protocol"]["n_generated"]"""
    return _evaluate(generator, reference, n=n, **options)


def compress(teacher: str | Path | None = None, width: float | None = 0.25, **options) -> Path:
    """The main job: prune, distil (preset `quick` or `standard`), evaluate teacher and student with one
    protocol and write grid.png, report.json and report.md; returns the run directory. `teacher`: a
    name or a file (default dcgan-face64; a resumed run uses its own). `options`:
    channels, criterion, preset, overrides (TrainConfig fields), n_eval, run_root, resume, device,
    progress, log, data.

    >>> run_dir = gc.compress("dcgan-fmnist32", width=0.25)"""
    options.setdefault("device", default_device())
    return _compress(str(teacher) if teacher is not None else None, width, **options)


def sweep(teacher: str | Path, widths=(0.5, 0.25, 0.125), methods=("distill", "scratch"), *, preset: str = "quick",
          steps: int | None = None, batch_size: int | None = None, n: int | None = None, data: str | None = "auto",
          run_root: str | Path = "runs", device: str | None = None, progress: bool = True) -> Path:
    """Every (width, method) pair trained and evaluated with one protocol, then table, plots, grid and
    report pages in a new numbered sweep directory (returned). Needs the `sweep` extra.

    >>> out = gc.sweep("dcgan-face64", widths=(0.5, 0.25), methods=("distill", "mse"))"""
    from gancompress import extras
    from gancompress.pipeline import make_run_dir
    from gancompress.sweeps import parse_plan, run_sweep

    extras.require("sweep", "sweep (its plots and ONNX Runtime latency)")
    overrides = {k: v for k, v in (("steps", steps), ("batch_size", batch_size)) if v is not None}
    plan = parse_plan(str(teacher), [str(w) for w in widths], list(methods), preset, overrides, n, data)
    out_dir = make_run_dir(run_root, f"sweep-{Path(str(teacher)).stem}")
    return run_sweep(plan, out_dir, device or default_device(), progress=progress)


def export(generator, path: str | Path, part: str = "full", psi: float = 1.0, **options) -> dict:
    """Write `generator` in the format `path`'s suffix names (.onnx, .pte, .mlpackage), verified
    against PyTorch before it is kept; returns the export record. `part`: the family's graphs
    (`gc.FAMILIES[...].export_parts`). Needs the `export` (ONNX) or `mobile` extra.

    >>> gc.export(student, "student.onnx")["verification"]["max_abs_diff"]"""
    from gancompress.exporting import check_export_target
    from gancompress.exporting import export as _export

    check_export_target(path)
    return _export(_module(generator), path, part=part, psi=psi, **options)


def bench(generators, batches=(1, 16), threads=None, runtimes=None, min_run_time: float = 1.0, repeats: int = 1,
          profile: bool = False) -> list[dict]:
    """Latency of each generator (nn.Module, name or checkpoint) on every available runtime (or
    `runtimes`), batch size and thread count, side by side: one entry per generator in the given
    order; later entries get speedups over the first and their MACs reduction.

    >>> entries = gc.bench([teacher, student], batches=(1,))
    >>> entries[1]["best_speedup"][0]["speedup"]"""
    from gancompress.benchmark import bench_generators
    from gancompress.evaluation import in_memory_identity
    from gancompress.teachers import resolve_generator

    pairs = [(g, in_memory_identity(g)) if isinstance(g, torch.nn.Module) else resolve_generator(str(g))
             for g in generators]
    return bench_generators(pairs, batches, threads, runtimes, min_run_time, repeats, profile)
