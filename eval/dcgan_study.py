"""DCGAN compression study on a teacher (default dcgan-face64): our recipe against baselines and
ablations at one training budget, every student evaluated with one protocol.

Rows, at each width:
  ours          inherit (L1-pruned) + output L1 3 + LPIPS 3 + feature MSE + adversarial (the default recipe)
  scratch-gan   same architecture, random init, plain GAN against teacher samples (no distillation)
  mse-only      random init, output MSE only (Aguinaldo et al. 2019)
  pruned-only   L1-pruned, no training
Ablations (at --ablation-width): ours without feature loss / adversarial loss / LPIPS, and ours
with random init instead of inherited weights.

Resumable: each finished row is stored in OUT/rows/<row>.json and skipped on the next run; a row
whose training was interrupted resumes from its run directory. Usage:

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
from gancompress.evaluation import evaluate, latents
from gancompress.io import atomic_write_text, load_generator, save_generator
from gancompress.pipeline import STUDENT_FILE, train_or_resume
from gancompress.pruning import prune_generator
from gancompress.report import save_grid
from gancompress.sweeps import METHODS
from gancompress.teachers import resolve_generator

RECIPES = {
    "ours": METHODS["distill"],
    "scratch-gan": METHODS["scratch"],
    "mse-only": METHODS["mse"],
    "pruned-only": ({"init": "inherit"}, None),
}
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
        plan = {"width": width, "criterion": "l1", "prune_seed": 0, **plan_extra}
        run_dir, trainer = train_or_resume(run_root, f"{name}-w{width}", config, args.teacher, plan, device)
        student_path = run_dir / STUDENT_FILE
        train_info = {"steps": trainer.step, "batch_size": trainer.config.batch_size, "time_s": trainer.elapsed(),
                      "run_dir": str(run_dir)}
    return student_path, train_info


def run_row(name, width, plan_extra, overrides, args, out: Path, device) -> dict:
    row_file = out / "rows" / f"{name}-w{width}.json"
    if row_file.is_file():
        print(f"{name} w{width}: done before, skipped", file=sys.stderr)
        return json.loads(row_file.read_text())
    student_path, train_info = train_row(name, width, plan_extra, overrides, args, out / "runs", device)
    record = evaluate(str(student_path), f"teacher:{args.teacher}", n=args.n, device=device, latency=False)
    row = {"row": name, "width": width, "channels": list(record["generator"]["config"]["channels"]),
           "fid_vs_teacher": record["metrics"]["fid"], "kid_vs_teacher": record["metrics"]["kid"]["mean"],
           "lpips_mean": record["metrics"]["lpips"]["mean"], "lpips_std": record["metrics"]["lpips"]["std"],
           "params": record["cost"]["params"], "macs": record["cost"]["macs_per_image"], "training": train_info,
           "student": str(student_path), "protocol": record["protocol"]}
    atomic_write_text(row_file, json.dumps(row, indent=2) + "\n")
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="dcgan-face64")
    parser.add_argument("--widths", default="0.5,0.25")
    parser.add_argument("--ablation-width", type=float, default=0.25)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=2000, help="samples for FID/LPIPS")
    parser.add_argument("--out", type=Path, default=Path("eval/results/dcgan_face64_study"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--only", default="", help="comma-separated ROW-wWIDTH names to run (default: all); "
                        "lets several processes share the study, e.g. one per width")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    widths = [float(w) for w in args.widths.split(",")]
    planned = [(name, width, *RECIPES[name]) for width in widths for name in RECIPES]
    planned += [(name, args.ablation_width, *ABLATIONS[name]) for name in ABLATIONS]
    only = {item for item in args.only.split(",") if item}
    unknown = only - {f"{name}-w{width}" for name, width, _, _ in planned}
    if unknown:
        parser.error(f"--only names no planned row: {sorted(unknown)}")
    rows = [run_row(name, width, plan, overrides, args, args.out, args.device)
            for name, width, plan, overrides in planned if not only or f"{name}-w{width}" in only]
    if len(rows) < len(planned):
        done = [n for n, w, _, _ in planned if (args.out / "rows" / f"{n}-w{w}.json").is_file()]
        print(f"{len(done)}/{len(planned)} rows done; run without --only to write the tables", file=sys.stderr)
        return 0
    floor = evaluate(args.teacher, f"teacher:{args.teacher}", n=args.n, device=args.device, latency=False)
    write_tables(rows, floor, args)
    return 0


def write_tables(rows, floor, args) -> None:
    out = args.out
    teacher, _ = resolve_generator(args.teacher, args.device)
    z = latents(8, teacher.z_dim, seed=0).to(args.device)
    with torch.inference_mode():
        images = [teacher(z)] + [load_generator(r["student"], args.device)(z) for r in rows]
    save_grid(out / "grid.png", images)
    summary = {"floor_fid": floor["metrics"]["fid"], "n": args.n, "steps": args.steps, "batch_size": args.batch_size,
               "command": "python eval/dcgan_study.py " + " ".join(sys.argv[1:]), "rows": rows}
    atomic_write_text(out / "study.json", json.dumps(summary, indent=2) + "\n")
    lines = [f"# {args.teacher} compression study", "", f"Command: `{summary['command']}`", "",
             f"FID vs {args.n} fresh teacher samples (floor: teacher vs itself = {floor['metrics']['fid']:.2f}); "
             f"LPIPS (AlexNet) to the teacher on the same latents; budget {args.steps} steps of batch {args.batch_size}.",
             "", "| row | width | channels | FID | FID / floor | LPIPS | params | MACs (M) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['row']} | {r['width']} | {tuple(r['channels'])} | {r['fid_vs_teacher']:.2f} | "
                     f"{r['fid_vs_teacher'] / floor['metrics']['fid']:.2f} | {r['lpips_mean']:.4f} | {r['params']:,} | "
                     f"{r['macs'] / 1e6:.1f} |")
    lines += ["", "Grid (`grid.png`): teacher first, then one row per table row, same latents."]
    atomic_write_text(out / "study.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
