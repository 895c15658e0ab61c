"""FID-vs-size sweeps: every (width, method) pair trained, evaluated and benchmarked with one
protocol in one directory, then a table (CSV, JSON), trade-off plots, a sample grid and a report
page (report.md, self-contained report.html).

Layout of a sweep directory:
  sweep.json            the plan (teacher, widths, methods, preset, overrides, n)
  runs/NNNNN-<method>-w<width>/   one training run per pair (resumable)
  pairs/<method>-w<width>.json    one finished row per pair (a finished pair is never redone)
  pairs/teacher.json    the teacher's row (its FID vs itself is the floor)
  latency_rounds.json   every model timed in turn over LATENCY_ROUNDS rounds (what the report shows)
  table.csv, table.json, fid_vs_macs.png/.csv, fid_vs_latency.png/.csv, fid_data_vs_macs.png/.csv (with a
  dataset), speedup_vs_macs.png/.csv, fid_vs_steps.png/.csv (when the runs were evaluated during
  training, --metrics-every), grid.png, report.md, report.html
"""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from gancompress.io import atomic_path, atomic_write_text
from gancompress.report import format_number, markdown_table, sample_grid
from gancompress.study import Study, StudyError

@dataclass(frozen=True)
class Recipe:
    """A method a sweep compares: how its student starts (StudentPlan fields besides the width) and
    its TrainConfig overrides, with further ones for StyleGAN2 teachers (terms DCGAN does not have).
    train None: no training, the pruned student as it is. `teacher_d`: start from the teacher's
    discriminator when the teacher has one, else from a fresh one mirroring the teacher (full width).
    What each published recipe keeps and changes from its paper and code: docs/recipes.md."""

    student: dict
    train: dict | None
    stylegan2: dict = field(default_factory=dict)
    families: tuple[str, ...] = ("dcgan", "stylegan2")
    teacher_d: bool = False

    baseline: bool = True  # a published recipe or reference: the settings it does not name are _BASELINE_SHARED

    def overrides(self, family: str, teacher_has_d: bool = False) -> dict | None:
        if self.train is None:
            return None
        d_init = {"d_init": "teacher" if teacher_has_d else "teacher-size"} if self.teacher_d else {}
        shared = _BASELINE_SHARED if self.baseline else {}
        return {**shared, **self.train, **(self.stylegan2 if family == "stylegan2" else {}), **d_init}


# The published recipes' settings their papers leave to the toolkit, pinned to the toolkit's defaults
# before the default-recipe search (eval/tune_recipe.py), so that tuning our recipe's defaults never
# changes a baseline: a committed sweep's baseline rows stay valid when the defaults move.
_BASELINE_SHARED = {"lr_g": 1e-3, "lr_d": 2e-4, "betas": (0.5, 0.999), "ema_decay": 0.999, "r1_gamma": 0.1,
                    "r1_interval": 16, "diffaug": ("color", "translation", "cutout"), "d_width": 1.0,
                    "d_init": "student", "adv_loss": "nonsat"}
_OUTPUT_KD = {"l1": 3.0, "lpips": 3.0, "feat": 0.0, "mse": 0.0}  # CAGAN's and StyleKD's output terms
# rosinality / CAGAN StyleGAN2 training: R1 10 every 16 steps, path length 2 every 4, style mixing
# 0.9, Adam lr 0.002 with betas (0, 0.99), no DiffAugment
_ROSINALITY = {"adv": 1.0, "adv_loss": "nonsat", "r1_gamma": 10.0, "r1_interval": 16, "diffaug": ()}
_ROSINALITY_STYLEGAN2 = {"style_mixing": 0.9, "pl_weight": 2.0, "pl_interval": 4, "lr_g": 0.002, "lr_d": 0.002,
                         "betas": (0.0, 0.99)}
_AGUINALDO = Recipe({"init": "random"}, {"l1": 0.0, "lpips": 0.0, "feat": 0.0, "adv": 0.0, "mse": 1.0})

METHODS = {
    "distill": Recipe({"init": "inherit"}, {}, baseline=False),  # our default recipe, as TrainConfig's defaults
    "scratch": Recipe({"init": "random"}, {"mode": "gan", "l1": 0.0, "lpips": 0.0, "feat": 0.0, "adv": 1.0}),
    "mse": _AGUINALDO,  # the name the committed sweeps use
    "aguinaldo": _AGUINALDO,  # Aguinaldo et al. 2019, Compressing GANs using Knowledge Distillation
    "pruned-only": Recipe({"init": "inherit"}, None),
    "cagan": Recipe({"init": "inherit", "criterion": "cagan"}, {**_OUTPUT_KD, **_ROSINALITY}, _ROSINALITY_STYLEGAN2,
                    teacher_d=True),
    "stylekd": Recipe({"init": "mapping-only"}, {**_OUTPUT_KD, **_ROSINALITY, "relation": 30.0, "relation_strength": 5.0},
                      _ROSINALITY_STYLEGAN2, families=("stylegan2",)),
    # GAN Compression (Li et al. 2020): a student from scratch, features through learnable 1x1
    # adapters (MSE, lambda_distill 0.01), L1 reconstruction (lambda_recon 10) and a hinge GAN loss
    "gan-compression": Recipe({"init": "random"}, {"l1": 10.0, "lpips": 0.0, "mse": 0.0, "feat": 0.01, "adv": 1.0,
                                                    "adv_loss": "hinge"}, teacher_d=True),
}
PLAN_FILE = "sweep.json"
LATENCY_RUNTIMES = ("torch-cpu", "onnxruntime-cpu")
LATENCY_BATCHES = (1, 16)
LATENCY_ROUNDS = 3  # the report's latency: every model in turn, this many rounds (latency_rounds.json)
LATENCY_FILE = "latency_rounds.json"
_LATENCY_KEYS = {("torch-cpu", 1): "latency_torch_b1_ms", ("torch-cpu", 16): "latency_torch_b16_ms",
                 ("onnxruntime-cpu", 1): "latency_ort_b1_ms", ("onnxruntime-cpu", 16): "latency_ort_b16_ms"}
COLUMNS = ["model", "method", "width", "channels", "params", "macs", "fid_vs_teacher", "kid_vs_teacher", "fid_vs_data",
           "kid_vs_data", "lpips_to_teacher", "n", "latency_torch_b1_ms", "latency_torch_b16_ms", "latency_ort_b1_ms",
           "latency_ort_b16_ms", "threads", "steps", "batch_size", "train_time_s"]


SweepError = StudyError  # a sweep plan is invalid or does not match the directory it resumes

def parse_plan(teacher: str, widths, methods, preset: str, overrides: dict | None, n_eval: int | None, data) -> dict:
    try:
        widths = [float(w) for w in widths]
    except ValueError:
        raise SweepError(f"widths must be numbers in (0, 1] separated by commas, got {widths}") from None
    if not widths or any(not 0 < w <= 1 for w in widths):
        raise SweepError(f"widths must be in (0, 1], got {widths}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise SweepError(f"unknown methods {unknown or methods}; choose from {', '.join(METHODS)}")
    from gancompress.teachers import resolve_discriminator

    identity = resolve_discriminator(teacher)[1]  # the recipes that inherit it, when there is one
    plan = {"teacher": teacher, "widths": widths, "methods": list(methods), "preset": preset,
            "overrides": overrides or {}, "n_eval": n_eval, "data": data,
            "teacher_discriminator": {"file": Path(identity["file"]).name, "sha256": identity["sha256"]} if identity else None}
    check_plan(plan)
    return plan


def check_plan(plan: dict) -> None:
    """Every error a sweep would meet in one of its pairs, raised before the first pair trains."""
    from gancompress.compression import PRESETS, check_data_reference, check_n_eval, teacher_dataset
    from gancompress.families import family_of
    from gancompress.pipeline import build_student, check_run
    from gancompress.teachers import resolve_generator

    if plan["preset"] not in PRESETS:
        raise SweepError(f"unknown preset {plan['preset']!r}; choose {', '.join(PRESETS)}")
    if plan["n_eval"] is not None:
        check_n_eval(plan["n_eval"])
    check_data_reference(teacher_dataset(plan["teacher"]) if plan["data"] == "auto" else plan["data"])
    teacher = resolve_generator(plan["teacher"])[0]  # loaded once for every pair's check
    family = family_of(teacher)
    for method in plan["methods"]:
        recipe = METHODS[method]
        if family.name not in recipe.families:
            raise SweepError(f"method {method!r} is for {', '.join(recipe.families)} teachers, and "
                             f"{plan['teacher']} is {family.title}; leave it out of --methods")
        config = _train_config(plan, method, family.name)
        for width in plan["widths"]:
            student_plan = _student_plan(recipe.student, width)
            if config is None:
                build_student(teacher, student_plan)  # pruned only: the plan must build
            else:
                check_run(config, teacher, student_plan)


def _train_config(plan: dict, method: str, family: str):
    """The TrainConfig of `method`'s pairs in `plan` (None: the method does not train)."""
    from gancompress.compression import PRESETS
    from gancompress.distillation.trainer import TrainConfig

    overrides = METHODS[method].overrides(family, bool(plan.get("teacher_discriminator")))
    if overrides is None:
        return None
    return TrainConfig(**{**PRESETS[plan["preset"]]["train"], **overrides, **plan["overrides"]})


def _student_plan(method_plan: dict, width: float):
    from gancompress.pipeline import StudentPlan

    return StudentPlan(**{"width": width, "prune_seed": 0, **method_plan})  # no criterion: the family's default


def _row(model: str, method: str | None, width: float | None, generator_spec: str, plan: dict, device,
         train_info: dict, log) -> dict:
    from gancompress.compression import teacher_dataset
    from gancompress.evaluation import evaluate
    from gancompress.teachers import resolve_generator

    teacher, n, threads = plan["teacher"], _n_eval(plan), os.cpu_count() or 1
    data = teacher_dataset(teacher) if plan["data"] == "auto" else plan["data"]
    vs_teacher = evaluate(generator_spec, f"teacher:{teacher}", n=n, device=device, latency=False, log=log)
    vs_data = evaluate(generator_spec, data, n=n, device=device, latency=False, log=log) if data else None
    generator, _ = resolve_generator(generator_spec)
    row = {"model": model, "method": method, "width": width, "channels": list(generator.config.channels),
           "params": vs_teacher["cost"]["params"], "macs": vs_teacher["cost"]["macs_per_image"],
           "fid_vs_teacher": vs_teacher["metrics"]["fid"], "kid_vs_teacher": vs_teacher["metrics"]["kid"]["mean"],
           "fid_vs_data": vs_data["metrics"]["fid"] if vs_data else None,
           "kid_vs_data": vs_data["metrics"]["kid"].get("mean") if vs_data else None,
           "lpips_to_teacher": vs_teacher["metrics"]["lpips"].get("mean"), "n": n,
           "threads": threads, **train_info, "generator": generator_spec,  # latency: latency_rounds()
           "protocol": {"vs_teacher": vs_teacher["protocol"], "vs_data": vs_data["protocol"] if vs_data else None}}
    return row


def sweep_study(plan: dict, out_dir: Path) -> Study:
    """The study of `plan` in `out_dir` (its rows are pairs/<method>-w<width>.json and pairs/teacher.json)."""
    return Study(out_dir, plan, PLAN_FILE, "pairs", what="sweep")


def prepare_sweep_dir(plan: dict, out_dir: Path) -> Path:
    """Write `plan` to a new sweep directory, or check that an existing one holds the same plan."""
    return sweep_study(plan, out_dir).open().out_dir


def pair_names(plan: dict) -> list[str]:
    """The (method, width) pairs of `plan` by name, in table order."""
    return [pair_name(method, width) for width in plan["widths"] for method in plan["methods"]]


def pair_name(method: str, width: float) -> str:
    return f"{method}-w{width}"


def train_pair(plan: dict, out_dir: Path, width: float, method: str, device: str = "cpu", progress: bool = True,
               log=print):
    """Train (or resume, or find finished) the run of one (width, method) pair of `plan` under
    `out_dir/runs`. Returns (run_dir, trainer). Training a sweep's pairs in separate processes or on
    another machine, then `sweep --resume` on the sweep directory, gives the same sweep."""
    from gancompress.families import family_of
    from gancompress.pipeline import train_or_resume
    from gancompress.teachers import resolve_generator

    teacher, _ = resolve_generator(plan["teacher"])
    config = _train_config(plan, method, family_of(teacher).name)
    full_plan = _student_plan(METHODS[method].student, width)
    name = pair_name(method, width)
    if config is None:
        return _pruned_pair(Path(out_dir) / "runs" / name, teacher, full_plan, plan["teacher"], log), None
    log(f"{name}: training {config.steps} steps of batch {config.batch_size}")
    return train_or_resume(Path(out_dir) / "runs", name, config, plan["teacher"], full_plan, device, progress)


# How a run is logged and kept, not what it trains: the trainer's draws are seeded by step and stream,
# so runs that differ only in these fields end with the same weights.
_BOOKKEEPING = ("log_every", "sample_every", "checkpoint_every", "keep_every", "tensorboard")


def adopt_run(plan: dict, out_dir: Path, width: float, method: str, source: Path, log=print) -> Path:
    """Copy the finished run `source` into the sweep as the run of one (width, method) pair, when it
    trained exactly what the pair would (teacher, student plan, every training setting but
    _BOOKKEEPING; d_init compared as the discriminator it starts from), so that a run a recipe search
    already trained is not trained twice. Refused, naming each difference, otherwise."""
    import dataclasses
    import shutil

    from gancompress.distillation.trainer import TrainConfig, inherits_teacher_discriminator
    from gancompress.families import family_of
    from gancompress.pipeline import (FINISHED_FILE, RunError, StudentPlan, finished_run, labelled_runs,
                                      make_run_dir, read_run, same_setting)
    from gancompress.teachers import resolve_generator

    source, name = Path(source), pair_name(method, width)
    try:
        finished = finished_run(source) if (source / "run.json").is_file() else None
    except RunError as error:
        raise SweepError(str(error)) from None
    if finished is None:
        raise SweepError(f"{source}: not a finished run (no {FINISHED_FILE} at its last step); finish it, or train the pair")
    teacher, _ = resolve_generator(plan["teacher"])
    config = _train_config(plan, method, family_of(teacher).name)
    if config is None:
        raise SweepError(f"{name}: {method!r} does not train, so there is no run to adopt")
    record, has_d = read_run(source), bool(plan.get("teacher_discriminator"))

    def d_start(c: TrainConfig) -> str:
        return "teacher" if inherits_teacher_discriminator(c, has_d) else "student" if c.d_init == "auto" else c.d_init

    theirs = TrainConfig.from_dict(record["train"])
    differ = [f"train.{k} {getattr(theirs, k)!r} (the pair: {getattr(config, k)!r})"
              for k in (f.name for f in dataclasses.fields(TrainConfig))
              if k not in _BOOKKEEPING + ("d_init",) and not same_setting(getattr(config, k), getattr(theirs, k))]
    if d_start(config) != d_start(theirs):
        differ.append(f"discriminator start {d_start(theirs)} (the pair: {d_start(config)})")
    wanted = _student_plan(METHODS[method].student, width).resolved(teacher)
    if StudentPlan.of(record["student"]) != wanted:
        differ.append(f"student {record['student']} (the pair: {wanted.to_dict()})")
    if record.get("teacher") != plan["teacher"]:
        differ.append(f"teacher {record.get('teacher')!r} (the pair: {plan['teacher']!r})")
    if differ:
        raise SweepError(f"{source} did not train pair {name}: " + "; ".join(differ))
    runs = Path(out_dir) / "runs"
    if labelled_runs(runs, name):
        raise SweepError(f"{name} has a run in {runs} already; delete it to adopt {source}")
    run_dir = make_run_dir(runs, name)
    shutil.copytree(source, run_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".lock"))
    log(f"{name}: adopted {source} as {run_dir} (the same training; step {finished.step})")
    return run_dir


def _pruned_pair(run_dir: Path, teacher, student_plan, teacher_spec: str, log) -> Path:
    """A method without training: the pruned student, written as a run's student file."""
    from gancompress.pipeline import STUDENT_FILE, build_student, save_student

    student_plan = student_plan.resolved(teacher)
    student, kept = build_student(teacher, student_plan)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_student(run_dir / STUDENT_FILE, student, {"teacher": teacher_spec, "kept": kept,
                                                   "criterion": student_plan.criterion})
    log(f"{run_dir.name}: pruned, not trained")
    return run_dir


FINAL_METRICS = ("fid_vs_teacher", "kid_vs_teacher", "lpips_to_teacher", "fid_vs_data", "kid_vs_data")


def run_sweep(plan: dict, out_dir: Path, device: str = "cpu", progress: bool = True, log=print,
              budget_ms: float | None = None, budget_macs: float | None = None) -> Path:
    """Run (or resume) every pair of `plan` in `out_dir`, then write the table, plots and report."""
    study = sweep_study(plan, out_dir).open()
    study.row("teacher", lambda: _teacher_row(plan, device, log))  # silently reused: nothing to resume
    for width in plan["widths"]:
        for method in plan["methods"]:
            _measure_pair(study, plan, width, method, device, progress, log)
    write_outputs(study.out_dir, plan, device, budget_ms, budget_macs)
    return study.out_dir


def measure_pair(plan: dict, out_dir: Path, width: float, method: str, device: str = "cpu", progress: bool = True,
                 log=print) -> dict:
    """The row of one (width, method) pair, pairs/<pair>.json: its run trained (or resumed, or found
    finished) and its student measured, unless a row is there already. A pair measured on its own
    (eval/sweep_train_pairs.py --measure) is the same row the straight-through sweep writes; the
    latency is not part of it (latency_rounds(), every model in turn, when the report is written)."""
    return _measure_pair(sweep_study(plan, out_dir).open(), plan, width, method, device, progress, log)


def _measure_pair(study: Study, plan: dict, width: float, method: str, device: str, progress: bool, log) -> dict:
    from gancompress.pipeline import STUDENT_FILE

    def student_row():
        run_dir, trainer = train_pair(plan, study.out_dir, width, method, device, progress, log)
        train_info = {"steps": 0, "batch_size": None, "train_time_s": 0.0} if trainer is None else \
            {"steps": trainer.step, "batch_size": trainer.config.batch_size, "train_time_s": trainer.elapsed()}
        train_info["run_dir"] = str(run_dir.relative_to(study.out_dir))
        row = _row(pair_name(method, width), method, width, str(run_dir / STUDENT_FILE), plan, device, train_info, log)
        if trainer is not None and trainer.config.tensorboard:  # beside the pair's training logs
            from gancompress.distillation.run_files import log_final_metrics

            log_final_metrics(run_dir, {k: row[k] for k in FINAL_METRICS}, trainer.step)
        return row

    return study.row(pair_name(method, width), student_row, log)


def _teacher_row(plan: dict, device: str, log) -> dict:
    log(f"teacher {plan['teacher']}: evaluating (n = {_n_eval(plan)})")
    return _row("teacher", None, 1.0, plan["teacher"], plan, device, {}, log)


def _n_eval(plan: dict) -> int:
    from gancompress.compression import PRESETS

    return plan["n_eval"] or PRESETS[plan["preset"]]["n_eval"]


def load_rows(out_dir: Path, plan: dict) -> list[dict]:
    return sweep_study(plan, out_dir).rows(["teacher"] + pair_names(plan))


def latency_rounds(rows: list[dict], out_dir: Path, device: str = "cpu", log=print) -> dict:
    """The record of latency_rounds.json, its "latency" {model: {latency key: [ms per round]}}: the
    one latency measurement of a sweep, every model timed in turn, LATENCY_ROUNDS rounds, so a
    drift of the machine falls on all of them alike (one measurement per row, taken when the row was
    made, can rank width 0.25 behind width 0.5). Kept in latency_rounds.json for the same models and
    files (by sha256), so a resumed sweep re-times only when a model changed."""
    from gancompress.benchmark import bench_generators
    from gancompress.teachers import resolve_generator

    path = Path(out_dir) / LATENCY_FILE
    generators = [resolve_generator(r["generator"], device) for r in rows]
    models = [[r["model"], identity.get("sha256")] for r, (_, identity) in zip(rows, generators)]
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("models") == models and cached.get("rounds") == LATENCY_ROUNDS and "environment" in cached:
            return cached
    log(f"latency: {len(rows)} models in turn, {LATENCY_ROUNDS} rounds")
    entries = bench_generators(generators, LATENCY_BATCHES, [rows[0]["threads"]], list(LATENCY_RUNTIMES),
                               min_run_time=0.5, repeats=LATENCY_ROUNDS)
    latency = {r["model"]: {_LATENCY_KEYS[(c["runtime"], c["batch_size"])]: c["rounds_ms_per_image"]
                            for c in entry["results"]} for r, entry in zip(rows, entries)}
    record = {"models": models, "rounds": LATENCY_ROUNDS, "threads": rows[0]["threads"], "latency": latency,
              "environment": entries[0]["environment"],
              "onnx_max_abs_diff": {r["model"]: e["onnx_verification"]["max_abs_diff"] for r, e in zip(rows, entries)}}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return record


def _with_rounds(rows: list[dict], record: dict) -> list[dict]:
    """The rows with each latency the median of its rounds (the rounds beside it), the machine they
    ran on, the ONNX export's verification and the sha256 of the file that was timed."""
    import statistics

    merged, sha256 = [], dict(map(tuple, record["models"]))
    for r in rows:
        r = dict(r, latency_environment=record["environment"], onnx_max_abs_diff=record["onnx_max_abs_diff"][r["model"]],
                 sha256=sha256[r["model"]])
        for key, rounds in record["latency"][r["model"]].items():
            r[key], r[key + "_rounds"] = statistics.median(rounds), rounds
        merged.append(r)
    return merged


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both cost and FID (lower is better for both)."""
    front = []
    for i, (cost, fid) in enumerate(points):
        dominated = any((c <= cost and f <= fid) and (c < cost or f < fid) for j, (c, f) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return front


def spans_a_decade(values: list[float]) -> bool:
    """Whether a plot's values need a log axis: a failed baseline at 10x the floor or more would
    squash the leaders into one line on a linear axis (the StyleGAN2 sweep: 12.9 to 361)."""
    positive = [v for v in values if v > 0]
    return bool(positive) and max(positive) / min(positive) > 10


def _plot(rows: list[dict], x_key: str, x_label: str, path: Path, y_key: str = "fid_vs_teacher",
          y_label: str = "FID vs teacher samples") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    students = [r for r in rows if r["method"]]
    teacher = rows[0]
    front = set(pareto_front([(r[x_key], r[y_key]) for r in students]))
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for method in dict.fromkeys(r["method"] for r in students):
        pts = sorted((r[x_key], r[y_key], r["width"]) for r in students if r["method"] == method)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=method)
        for x, y, w in pts:
            ax.annotate(f"{w:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if front:  # drawn over the methods' lines, each point on it ringed, so it is seen
        fpts = sorted((students[i][x_key], students[i][y_key]) for i in front)
        ax.plot([p[0] for p in fpts], [p[1] for p in fpts], color="crimson", lw=1.8, ls="--", zorder=4,
                marker="o", markersize=11, markerfacecolor="none", markeredgewidth=1.8, label="Pareto front")
    ax.scatter([teacher[x_key]], [teacher[y_key]], marker="*", s=180, color="black", zorder=5,
               label="teacher" + (" (FID floor)" if y_key == "fid_vs_teacher" else ""))
    rounds = x_key + "_rounds"
    if all(rounds in r for r in rows):  # the spread of the alternating latency rounds
        ax.errorbar([r[x_key] for r in rows], [r[y_key] for r in rows], fmt="none", ecolor="grey", elinewidth=1,
                    capsize=3, zorder=2, xerr=[[r[x_key] - min(r[rounds]) for r in rows],
                                               [max(r[rounds]) - r[x_key] for r in rows]])
    ax.set_xscale("log")
    ax.set_xlabel(x_label + (" (median, bars: range over rounds)" if all(rounds in r for r in rows) else ""))
    log_y = spans_a_decade([r[y_key] for r in rows])
    if log_y:
        ax.set_yscale("log")
    ax.set_ylabel(f"{y_label} (n = {teacher['n']}{', log' if log_y else ''})")
    data = [[r["model"], r["method"] or "", r["width"], r[x_key], r[y_key],
             int(r["method"] is not None and students.index(r) in front)] for r in rows]
    return _save_plot(fig, ax, path, ["model", "method", "width", x_key, y_key, "pareto"], data)


def _save_plot(fig, ax, path: Path, header: list[str], data: list[list]) -> Path:
    """Grid, legend and layout; the PNG and, beside it, the plotted data as a CSV (both atomic)."""
    import matplotlib.pyplot as plt

    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    with atomic_path(path.with_suffix(".csv")) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(data)
    return path


def _speedup_plot(rows: list[dict], path: Path) -> Path:
    """Measured speedup over the teacher against the MACs reduction, per runtime at batch 1, with
    the ideal line (speedup = MACs reduction) every point is measured against."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    teacher, students = rows[0], [r for r in rows if r["method"]]
    runtimes = (("ONNX Runtime", "latency_ort_b1_ms"), ("PyTorch", "latency_torch_b1_ms"))
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    reductions = [teacher["macs"] / r["macs"] for r in students]
    for (name, key), marker in zip(runtimes, ("o", "s")):
        ax.scatter(reductions, [teacher[key] / r[key] for r in students], marker=marker, label=f"{name}, batch 1",
                   zorder=3)
    for width, x in dict(sorted({r["width"]: x for r, x in zip(students, reductions)}.items())).items():
        ax.annotate(f"width {width:g}", (x, 1), textcoords="offset points", xytext=(2, 4), fontsize=8)  # methods share it
    top = max(reductions + [1.0]) * 1.3
    ax.plot([1, top], [1, top], color="black", lw=1, ls=":", label="ideal: speedup = MACs reduction")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("MACs reduction over the teacher (log)")
    ax.set_ylabel("measured speedup over the teacher (log)")
    data = [[r["model"], x, teacher["latency_ort_b1_ms"] / r["latency_ort_b1_ms"],
             teacher["latency_torch_b1_ms"] / r["latency_torch_b1_ms"]] for r, x in zip(students, reductions)]
    return _save_plot(fig, ax, path, ["model", "macs_reduction", "speedup_ort_b1", "speedup_torch_b1"], data)


def _steps_plot(rows: list[dict], out_dir: Path, path: Path) -> Path | None:
    """FID of each pair's EMA student against training steps, from its run's in-training
    evaluations (`--metrics-every`), with the teacher's floor at that n: what a longer run would
    give. None when no run has two such points."""
    from gancompress.distillation.run_files import in_training_evals

    curves = {r["model"]: [e for e in in_training_evals(out_dir / r["run_dir"]) if e.get("fid") is not None]
              for r in rows if r.get("run_dir")}
    curves = {model: evals for model, evals in curves.items() if len(evals) >= 2}
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    students = [r for r in rows if r["model"] in curves]  # a colour per method (as the other plots), a dash per width
    colours = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(r.get("method") for r in rows if r.get("method")))}
    dashes = {w: ("-", "--", "-.", ":")[i % 4] for i, w in enumerate(sorted({r.get("width") or 0 for r in students},
                                                                         reverse=True))}
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for r in students:
        evals = curves[r["model"]]
        ax.plot([e["step"] for e in evals], [e["fid"] for e in evals], marker="o", markersize=3, label=r["model"],
                color=colours.get(r.get("method")), ls=dashes[r.get("width") or 0])
    floors = {(e["n"], e["fid_floor"]) for evals in curves.values() for e in evals if e.get("fid_floor") is not None}
    for n, floor in sorted(floors):
        ax.axhline(floor, color="black", lw=1.2, label=f"teacher floor (n = {n})")
    ns = sorted({e["n"] for evals in curves.values() for e in evals})
    log_y = spans_a_decade([e["fid"] for evals in curves.values() for e in evals] + [f for _, f in floors])
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"FID of the EMA student vs teacher samples (n = {', '.join(map(str, ns))}{', log' if log_y else ''})")
    data = [[model, e["step"], e["fid"], e.get("n"), e.get("fid_floor"), e.get("lpips")]
            for model, evals in curves.items() for e in evals]
    return _save_plot(fig, ax, path, ["model", "step", "fid_vs_teacher", "n", "fid_floor", "lpips_to_teacher"], data)


def recommended(rows: list[dict], budget_ms: float | None = None, budget_macs: float | None = None) -> dict | None:
    """The student with the lowest FID vs the teacher among those within the budgets (ONNX Runtime
    batch-1 latency, MACs per image); None without a budget or when none fits."""
    if budget_ms is None and budget_macs is None:
        return None
    fits = [r for r in rows if r["method"] and (budget_ms is None or r["latency_ort_b1_ms"] <= budget_ms)
            and (budget_macs is None or r["macs"] <= budget_macs)]
    return min(fits, key=lambda r: r["fid_vs_teacher"], default=None)


def _grid(rows: list[dict], path: Path, device: str) -> Path:
    from gancompress.teachers import resolve_generator

    return sample_grid(path, [resolve_generator(r["generator"], device)[0] for r in rows], device=device,
                       labels=[r["model"] for r in rows])


def _table_lines(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """One row per model; for each runtime and batch size the student's speedup over the teacher
    on that same runtime with, in brackets, the speedup divided by the MACs reduction (1.0: the
    runtime turns every MAC saved into time saved)."""
    teacher = rows[0]
    cells = [("torch", "latency_torch_b1_ms"), ("ORT", "latency_ort_b1_ms"), ("torch b16", "latency_torch_b16_ms"),
             ("ORT b16", "latency_ort_b16_ms")]
    head = ["model", "channels", "params", "MACs (M)", "MACs reduction", "FID vs teacher", "FID vs data", "LPIPS",
            "torch b1 ms", "ORT b1 ms", "ORT b16 ms"]
    head += [f"speedup {name if 'b16' in name else name + ' b1'} (/ MACs reduction)" for name, _ in cells]
    head += ["Pareto (FID, MACs)", "train s"]
    students = [r for r in rows if r["method"]]
    front = {students[i]["model"] for i in pareto_front([(r["macs"], r["fid_vs_teacher"]) for r in students])}
    body = []
    for r in rows:
        reduction = teacher["macs"] / r["macs"]
        line = [r["model"], "-".join(map(str, r["channels"])), format_number(r["params"]), f"{r['macs'] / 1e6:.1f}",
                f"{reduction:.1f}x"]
        line += [format_number(r[key]) for key in ("fid_vs_teacher", "fid_vs_data", "lpips_to_teacher")]
        line += [_with_range(r, key) for key in ("latency_torch_b1_ms", "latency_ort_b1_ms", "latency_ort_b16_ms")]
        for _, key in cells:
            speedup = teacher[key] / r[key]
            line.append(f"{speedup:.2f}x ({speedup / reduction:.2f})")
        body.append(line + ["yes" if r["model"] in front else "", format_number(r.get("train_time_s"), 3)])
    return head, body


def _with_range(row: dict, key: str) -> str:
    rounds = row.get(key + "_rounds")
    if not rounds or len(rounds) < 2:
        return format_number(row[key])
    return f"{format_number(row[key])} ({format_number(min(rounds))}-{format_number(max(rounds))})"


def plan_command(plan: dict) -> str:
    """The `gancompress sweep` command line that makes this plan (how a resumed sweep was started)."""
    args = ["gancompress", "sweep", "--teacher", plan["teacher"], "--widths", ",".join(f"{w:g}" for w in plan["widths"]),
            "--methods", ",".join(plan["methods"]), "--preset", plan["preset"]]
    for key, value in plan["overrides"].items():
        args += ["--" + key.replace("_", "-"), str(value)]
    if plan["n_eval"]:
        args += ["--n", str(plan["n_eval"])]
    if plan["data"] != "auto":
        args += ["--data", plan["data"] or "none"]
    return " ".join(shlex.quote(a) for a in args)


def write_outputs(out_dir: Path, plan: dict, device: str = "cpu", budget_ms: float | None = None,
                  budget_macs: float | None = None) -> dict:
    """Table, plots, grid and report pages from the finished rows; with a budget (ONNX Runtime
    batch-1 ms, MACs per image) the report names and highlights the best student within it."""
    out_dir = Path(out_dir)
    rows = load_rows(out_dir, plan)
    rows = _with_rounds(rows, latency_rounds(rows, out_dir, device))
    with atomic_path(out_dir / "table.csv") as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "channels": "-".join(map(str, r["channels"]))})
    atomic_write_text(out_dir / "table.json", json.dumps({"plan": plan, "rows": rows}, indent=2) + "\n")
    plots = {"FID vs MACs": _plot(rows, "macs", "MACs per image (log)", out_dir / "fid_vs_macs.png"),
             "FID vs latency": _plot(rows, "latency_ort_b1_ms", "ONNX Runtime latency, batch 1 (ms/image, log)",
                                     out_dir / "fid_vs_latency.png")}
    if all(r["fid_vs_data"] is not None for r in rows):
        plots["FID vs data against MACs"] = _plot(rows, "macs", "MACs per image (log)", out_dir / "fid_data_vs_macs.png",
                                                  "fid_vs_data", "FID vs the dataset")
    plots["speedup vs MACs reduction"] = _speedup_plot(rows, out_dir / "speedup_vs_macs.png")
    steps_plot = _steps_plot(rows, out_dir, out_dir / "fid_vs_steps.png")
    if steps_plot is not None:  # runs evaluated during training (--metrics-every)
        plots["FID against training steps"] = steps_plot
    grid = _grid(rows, out_dir / "grid.png", device)
    head, body = _table_lines(rows)
    choice = recommended(rows, budget_ms, budget_macs)
    budget = ", ".join(b for b in (f"ONNX Runtime batch 1 <= {budget_ms:g} ms" if budget_ms is not None else "",
                                   f"MACs <= {budget_macs:.4g}" if budget_macs is not None else "") if b)
    if not budget:
        advice = "No budget given (--budget-ms, --budget-macs): no student is recommended."
    elif choice is None:
        advice = f"No student fits the budget ({budget})."
    else:
        advice = (f"Recommended within the budget ({budget}): **{choice['model']}**, the lowest FID vs teacher "
                  f"({format_number(choice['fid_vs_teacher'])}) at {format_number(choice['latency_ort_b1_ms'])} ms "
                  f"and {choice['macs'] / 1e6:.1f} M MACs.")
    links = {r["model"]: r["run_dir"] for r in rows if r.get("run_dir")}
    teacher = rows[0]
    env = teacher["latency_environment"]
    protocol = (f"FID/KID vs {teacher['n']} fresh teacher samples (the teacher row is the floor: teacher vs itself) and "
                f"vs {plan['data'] if plan['data'] != 'auto' else 'the teacher dataset'} when there is one, n = "
                f"{teacher['n']}, Inception (torch-fidelity weights, 299 px bilinear); LPIPS (AlexNet) to the teacher "
                f"on the same latents. Latency: median ms per image after warm-up over {LATENCY_ROUNDS} rounds that time "
                f"every model in turn (range in brackets), {teacher['threads']} threads, "
                f"{env['cpu']}, torch {env['torch']}, ONNX Runtime {env['onnxruntime']}. Training: preset "
                f"{plan['preset']} {json.dumps(plan['overrides']) if plan['overrides'] else ''}.")
    protocol = f"Command: {plan_command(plan)}. " + protocol
    md_body = [[f"**{line[0]}**" if choice and line[0] == choice["model"] else line[0], *line[1:]] for line in body]
    md = [f"# Sweep: {plan['teacher']}", "", protocol, "", advice, "",
          *markdown_table(head, md_body), "", "Pareto: not beaten on both FID vs teacher and MACs by another student. "
          "Each model's run directory: " + ", ".join(f"[{m}]({d})" for m, d in links.items()) + ".", "",
          f"Students (re-evaluate one with `gancompress eval --generator FILE --reference teacher:{plan['teacher']}"
          f" --n {teacher['n']}`):", "", *markdown_table(["model", "file", "sha256"], [
              [r["model"], f"{r['run_dir']}/{Path(r['generator']).name}", f"`{r['sha256']}`"]
              for r in rows if r.get("run_dir")])]
    for title, path in plots.items():
        md += ["", f"![{title}]({path.name})"]
    md += ["", "Samples (`grid.png`): teacher first, then one row per model in table order (labelled), same latents.",
           "", "![samples](grid.png)", ""]
    atomic_write_text(out_dir / "report.md", "\n".join(md))
    atomic_write_text(out_dir / "report.html", _html(plan, protocol, advice, head, body, list(plots.values()) + [grid],
                                                     links, choice["model"] if choice else None))
    return {"rows": rows, "report": out_dir / "report.html", "recommended": choice["model"] if choice else None}


def _html(plan, protocol, advice, head, body, images: list[Path], links: dict, chosen: str | None) -> str:
    def img(path: Path) -> str:
        data = base64.b64encode(path.read_bytes()).decode()
        return f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}"><figcaption>' \
               f"{html.escape(path.name)}</figcaption></figure>"

    def row(cells) -> str:
        model = cells[0]
        name = f"<a href='{html.escape(links[model])}/'>{html.escape(model)}</a>" if model in links else html.escape(model)
        classes = " ".join(c for c in ("recommended" if model == chosen else "", "pareto" if cells[-2] == "yes" else "") if c)
        return (f"<tr class='{classes}'>" if classes else "<tr>") + f"<td>{name}</td>" + \
            "".join(f"<td>{html.escape(c)}</td>" for c in cells[1:]) + "</tr>"

    table = "<table id='results'><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"
    table += "".join(row(cells) for cells in body) + "</tbody></table>"
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}img{max-width:100%}figure{margin:1.5em 0}"
             "tr.pareto td:first-child{border-left:4px solid crimson}tr.recommended{background:#fff3b0;font-weight:bold}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Sweep: {html.escape(plan['teacher'])}</title>"
            f"<style>{style}</style></head><body><h1>Sweep: {html.escape(plan['teacher'])}</h1>"
            f"<p>{html.escape(protocol)}</p><p id='advice'>{html.escape(advice.replace('**', ''))}</p>{table}"
            f"<p>Red edge: on the Pareto front (FID vs teacher against MACs). Model names link to their runs.</p>"
            f"{''.join(img(p) for p in images)}"
            f"<p>Generated by gancompress sweep on {time.strftime('%Y-%m-%d')}.</p></body></html>\n")
