"""DCGAN compression study on a teacher (default dcgan-face64): our recipe against baselines and
ablations at one training budget, every student evaluated with one protocol.

Rows, at each width:
  ours          inherit (L1-pruned) + output L1 3 + LPIPS 3 + feature MSE + adversarial (the default recipe)
  scratch-gan   same architecture, random init, plain GAN against teacher samples (no distillation)
  mse-only      random init, output MSE only (Aguinaldo et al. 2019)
  pruned-only   L1-pruned, no training
Ablations (at --ablation-width): ours without feature loss / adversarial loss / LPIPS, and ours
with random init instead of inherited weights.

Built on gancompress.study: the plan (teacher, widths, budget, n) is OUT/plan.json and a resumed
study must keep it; each finished row is stored in OUT/rows/<row>.json and skipped on the next run
(the teacher's floor too, as rows/floor.json); a row whose training was interrupted resumes from its
run directory. Usage:

  python eval/dcgan_study.py --widths 0.5,0.25 --steps 2000 --batch-size 32 --n 2000

or split over processes with --only (rows are shared through OUT/rows/).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from gancompress.distillation.trainer import TrainConfig
from gancompress.evaluation import evaluate
from gancompress.io import atomic_write_text, load_generator, save_generator
from gancompress.pipeline import STUDENT_FILE, StudentPlan, train_or_resume
from gancompress.pruning import prune_generator
from gancompress.report import markdown_table, sample_grid
from gancompress.study import Study, StudyError, select
from gancompress.sweeps import METHODS
from gancompress.teachers import resolve_generator

RECIPES = {name: (METHODS[method].student, METHODS[method].overrides("dcgan")) for name, method in
           (("ours", "distill"), ("scratch-gan", "scratch"), ("mse-only", "mse"), ("pruned-only", "pruned-only"))}
ABLATIONS = {
    "ours-no-feat": ({"init": "inherit"}, {"feat": 0.0}),
    "ours-no-adv": ({"init": "inherit"}, {"adv": 0.0}),
    "ours-no-lpips": ({"init": "inherit"}, {"lpips": 0.0}),
    "ours-random-init": ({"init": "random"}, {}),
}


def train_row(name, width, plan_extra, overrides, args, run_root: Path, device) -> tuple[Path, dict]:
    """Train (or resume, or just prune when overrides is None) one row's student; returns its file and
    training facts. `args` supplies teacher, steps, batch_size and seed."""
    if overrides is None:  # pruned only
        teacher, _ = resolve_generator(args.teacher, device)
        student, kept = prune_generator(teacher, width=width)
        student_path = save_generator(run_root / f"pruned-only-w{width}" / STUDENT_FILE, student, {"pruning": {"kept": kept}})
        train_info = {"steps": 0}
    else:
        config = TrainConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                             sample_every=max(args.steps // 4, 1), checkpoint_every=max(args.steps // 10, 1),
                             log_every=max(args.steps // 100, 1), **overrides)
        plan = StudentPlan(**{"width": width, "criterion": "l1", "prune_seed": 0, **plan_extra})
        run_dir, trainer = train_or_resume(run_root, f"{name}-w{width}", config, args.teacher, plan, device)
        student_path = run_dir / STUDENT_FILE
        train_info = {"steps": trainer.step, "batch_size": trainer.config.batch_size, "time_s": trainer.elapsed(),
                      "run_dir": str(run_dir)}
    return student_path, train_info


def study_options(parser: argparse.ArgumentParser, teacher: str, out: str) -> None:
    """The options every eval/ study shares (the plan's budget, where it lives, how it runs)."""
    parser.add_argument("--teacher", default=teacher)
    parser.add_argument("--widths", default="0.5,0.25")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=2000, help="samples for FID/KID/LPIPS")
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--only", default="", help="comma-separated ROW-wWIDTH names to run (default: all); "
                        "lets several processes share the study, e.g. one per width")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def widths(args) -> list[float]:
    return [float(w) for w in args.widths.split(",")]


def open_study(args, **plan) -> Study:
    """The study in args.out; its plan is the budget (a resumed study must keep it) plus `plan`."""
    if args.threads:
        torch.set_num_threads(args.threads)
    study = Study(args.out, {"teacher": args.teacher, "widths": widths(args), "steps": args.steps,
                             "batch_size": args.batch_size, "seed": args.seed, "n": args.n, **plan})
    try:
        return study.open()
    except StudyError as error:
        raise SystemExit(f"error: {error}") from None  # one line, exit 1


def run_rows(parser, args, planned: dict, make_row, **plan) -> Study | None:
    """Run the rows `--only` picks of `planned` ({name: row arguments}) with make_row(study, *arguments);
    the study when every planned row is done, else None (after saying how many are)."""
    try:
        chosen = select(planned, args.only)
    except StudyError as error:
        parser.error(str(error))
    study = open_study(args, **plan)
    for key in chosen:
        study.row(key, lambda: make_row(study, *planned[key]), log)
    if len(chosen) < len(planned):
        print(f"{sum(map(study.done, planned))}/{len(planned)} rows done; run without --only to write the tables",
              file=sys.stderr)
        return None
    return study


def log(message: str) -> None:
    print(message, file=sys.stderr)


def evaluated_row(name, width, plan_extra, overrides, args, study: Study) -> dict:
    student_path, train_info = train_row(name, width, plan_extra, overrides, args, study.out_dir / "runs", args.device)
    record = evaluate(str(student_path), f"teacher:{args.teacher}", n=args.n, device=args.device, latency=False)
    return {"row": name, "width": width, "channels": list(record["generator"]["config"]["channels"]),
            "fid_vs_teacher": record["metrics"]["fid"], "kid_vs_teacher": record["metrics"]["kid"]["mean"],
            "lpips_mean": record["metrics"]["lpips"]["mean"], "lpips_std": record["metrics"]["lpips"]["std"],
            "params": record["cost"]["params"], "macs": record["cost"]["macs_per_image"], "training": train_info,
            "student": str(student_path), "protocol": record["protocol"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    study_options(parser, "dcgan-face64", "eval/results/dcgan_face64_study")
    parser.add_argument("--ablation-width", type=float, default=0.25)
    args = parser.parse_args(argv)
    planned = {f"{name}-w{width}": (name, width, *RECIPES[name]) for width in widths(args) for name in RECIPES}
    planned |= {f"{name}-w{args.ablation_width}": (name, args.ablation_width, *ABLATIONS[name]) for name in ABLATIONS}
    study = run_rows(parser, args, planned, lambda study, *row: evaluated_row(*row, args, study),
                     ablation_width=args.ablation_width)
    if study is None:
        return 0
    floor = study.row("floor", lambda: evaluate(args.teacher, f"teacher:{args.teacher}", n=args.n, device=args.device,
                                                latency=False), log)
    write_tables(study.rows(planned), floor, args)
    return 0


def table_lines(rows, floor, args, command: str) -> list[str]:
    """study.md, from the rows and the floor alone (so it can be rewritten from rows/)."""
    fid_floor = floor["metrics"]["fid"]
    body = [[r["row"], str(r["width"]), str(tuple(r["channels"])), f"{r['fid_vs_teacher']:.2f}",
             f"{r['fid_vs_teacher'] / fid_floor:.2f}", f"{r['lpips_mean']:.4f}", f"{r['params']:,}",
             f"{r['macs'] / 1e6:.1f}"] for r in rows]
    return [f"# {args.teacher} compression study", "", f"Command: `{command}`", "",
            f"FID vs {args.n} fresh teacher samples (floor: teacher vs itself = {fid_floor:.2f}); "
            f"LPIPS (AlexNet) to the teacher on the same latents; budget {args.steps} steps of batch {args.batch_size}.",
            "", *markdown_table(["row", "width", "channels", "FID", "FID / floor", "LPIPS", "params", "MACs (M)"], body),
            "", "Grid (`grid.png`): teacher first, then one row per table row, same latents."]


def write_tables(rows, floor, args) -> None:
    out = args.out
    teacher, _ = resolve_generator(args.teacher, args.device)
    sample_grid(out / "grid.png", [teacher] + [load_generator(r["student"], args.device) for r in rows],
                device=args.device)
    summary = {"floor_fid": floor["metrics"]["fid"], "n": args.n, "steps": args.steps, "batch_size": args.batch_size,
               "command": "python eval/dcgan_study.py " + " ".join(sys.argv[1:]), "rows": rows}
    atomic_write_text(out / "study.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out / "study.md", "\n".join(table_lines(rows, floor, args, summary["command"])) + "\n")


if __name__ == "__main__":
    sys.exit(main())
