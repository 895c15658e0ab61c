"""Classifier distillation on Fashion-MNIST: every method and transfer set for one student size,
several seeds each, against the same student trained alone.

Every (setting, seed) is one `gancompress kd` run under OUT/runs and one row in OUT/rows (resumable:
run the command again and finished rows are skipped, an interrupted run resumes). When every row is
done, OUT/results.md and OUT/results.json give each setting's mean and std over the seeds, its share
of the teacher's accuracy, and (with --pgd) robust accuracy.

  python eval/classifier_kd.py --teacher fmnist-cnn --width 0.25 --steps 2000 --seeds 0,1,2 \\
      --pgd 0.1,20 --out eval/results/classifier_kd_fmnist

The wider student on the longer schedule, for the generator-made rows and their references:

  python eval/classifier_kd.py --teacher fmnist-cnn --width 0.5 --steps 8000 --seeds 0,1,2 \\
      --settings alone,hinton,gen-dcgan-fm,gen-stylegan2-fm --pgd 0.1,20 --out eval/results/classifier_kd_fmnist_w05

The same student at 2000 steps on the real data (with ARD) and on each generator's pool, at 16000
steps on generator-made images with function matching, and the long DFAD study (docs/classifier-kd.md
puts them into one table with classifier_kd_summary.py):

  python eval/classifier_kd.py --teacher fmnist-cnn --width 0.5 --steps 2000 --seeds 0,1,2 \\
      --settings alone,hinton,logit-mse,adversarial,ard --pgd 0.1,20 --out eval/results/classifier_kd_fmnist_w05_2k
  python eval/classifier_kd.py --teacher fmnist-cnn --width 0.5 --steps 2000 --seeds 0,1,2 \\
      --settings gen-dcgan,gen-stylegan2,gen-cdcgan --out eval/results/classifier_kd_fmnist_w05_2k_gen
  python eval/classifier_kd.py --teacher fmnist-cnn --width 0.5 --steps 16000 --seeds 0,1,2 \\
      --settings gen-dcgan-fm --out eval/results/classifier_kd_fmnist_w05_16k
  python eval/classifier_kd.py --teacher fmnist-cnn --width 0.5 --steps 16000 --seeds 0,1,2 \\
      --settings gen-cdcgan-fm,gen-stylegan2-fm --out eval/results/classifier_kd_fmnist_w05_16k_pools
  python eval/classifier_kd.py --teacher fmnist-cnn --width 0.5 --steps 8000 --seeds 0,1,2 \\
      --settings dfad-bn-tanh-replay --out eval/results/classifier_kd_fmnist_w05_dfad
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from gancompress.classifiers.runs import kd
from gancompress.io import atomic_write_text
from gancompress.report import markdown_table
from gancompress.study import Study, select

# name: (method, transfer, extra KDConfig fields); generator transfer sets draw from a fixed pool of
# --pool generated images (as many as the real train split by default), made once per generator
POOL = {"transfer_pool": "POOL"}
FUNCTION_MATCHING = {**POOL, "flip": True, "mixup": 1.0}  # the teacher labels flipped and mixed pool images
SETTINGS = {
    "alone": ("ce", "data", {}),
    "hinton": ("hinton", "data", {}),
    "logit-mse": ("logit-mse", "data", {}),
    "adversarial": ("adversarial", "data", {}),
    "gen-dcgan": ("hinton", "generator:dcgan-fmnist32", POOL),
    "gen-stylegan2": ("hinton", "generator:stylegan2-fmnist32", POOL),
    "gen-cdcgan": ("hinton", "generator:cdcgan-fmnist32", POOL),
    "dfad": ("mae", "dfad", {}),
    "ard": ("ard", "data", {}),
    # added after the first nine: function matching (the teacher labels flipped and mixed images) on
    # the dcgan pool (the three generators' plain rows lie within a point of each other), and DFAD with
    # DeepInversion's BatchNorm prior on its generator
    "gen-dcgan-fm": ("hinton", "generator:dcgan-fmnist32", FUNCTION_MATCHING),
    "dfad-bn": ("mae", "dfad", {"bn_prior": 10.0}),
    # added later: the same with the generator ending at its tanh (--dfad-output tanh), not DFAD's BatchNorm
    "dfad-bn-tanh": ("mae", "dfad", {"bn_prior": 10.0, "dfad_output": "tanh"}),
    # for the longer, wider study (eval/results/classifier_kd_fmnist_w05): function matching on the
    # stylegan2 pool too
    "gen-stylegan2-fm": ("hinton", "generator:stylegan2-fmnist32", FUNCTION_MATCHING),
    # for the long DFAD study (eval/results/classifier_kd_fmnist_w05_dfad): half of each batch replayed
    # from the generator's last 60,000 images (--replay), as many as the real train split holds
    "dfad-bn-tanh-replay": ("mae", "dfad", {"bn_prior": 10.0, "dfad_output": "tanh", "replay": 60000}),
    # for eval/results/classifier_kd_fmnist_w05_16k_pools: function matching on the class-conditional
    # generator's pool, to test whether the 98% of the dcgan pool holds for the other generators
    "gen-cdcgan-fm": ("hinton", "generator:cdcgan-fmnist32", FUNCTION_MATCHING),
}
# the default study's settings (eval/results/classifier_kd_fmnist): all but those added for the later
# studies, which name theirs with --settings
FOR_LATER_STUDIES = ("gen-stylegan2-fm", "dfad-bn-tanh-replay", "gen-cdcgan-fm")
DEFAULT_SETTINGS = [name for name in SETTINGS if name not in FOR_LATER_STUDIES]
# rows whose robust accuracy is measured: ARD and the students it is compared with (PGD on the test
# split costs pgd_steps forward and backward passes per image, so the others skip it)
ROBUST = ("alone", "hinton", "ard")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", default="fmnist-cnn")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--pgd", default="0.1,20", help=f"EPS,STEPS of the robust-accuracy evaluation ({', '.join(ROBUST)})")
    p.add_argument("--pool", type=int, default=60000, help="generated images per generator transfer set")
    p.add_argument("--settings", default=",".join(DEFAULT_SETTINGS), help=f"comma-separated, from {', '.join(SETTINGS)}")
    p.add_argument("--only", default="", help="rows to run now (setting-sSEED), the rest later")
    p.add_argument("--out", type=Path, default=Path("eval/results/classifier_kd_fmnist"))
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: write results.md/json from the rows finished so far (marked partial)")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = [s for s in args.settings.split(",") if s]
    eps, pgd_steps = args.pgd.split(",")
    pgd = (float(eps), int(pgd_steps))
    command = "python eval/classifier_kd.py " + " ".join(a for a in (sys.argv[1:] if argv is None else argv) if a != "--report-only")
    plan = {"teacher": args.teacher, "width": args.width, "steps": args.steps, "batch_size": args.batch_size,
            "seeds": seeds, "settings": settings, "pgd": list(pgd), "pool": args.pool}
    study = Study(args.out, plan).open()
    names = [f"{s}-s{seed}" for seed in seeds for s in settings]  # every setting once before any repeats

    def compute(setting: str, seed: int) -> dict:
        method, transfer, extra = SETTINGS[setting]
        extra = {k: args.pool if v == "POOL" else v for k, v in extra.items()}
        label = f"{setting}-s{seed}"
        root = args.out / "runs" / label
        started = sorted(root.glob("*/checkpoints/latest"))  # an interrupted row resumes its run
        run_dir = kd(None if method == "ce" else args.teacher, method, transfer, args.width, None,
                     {"steps": args.steps, "batch_size": args.batch_size, "seed": seed, **extra},
                     root, started[-1].parents[1] if started else None, "cpu", False,
                     pgd=pgd if setting in ROBUST else None, command=command)
        report = json.loads((run_dir / "report.json").read_text())
        s = report["student_eval"]
        teacher = report["teacher_eval"]
        return {"setting": setting, "seed": seed, "method": method, "transfer": transfer, "accuracy": s["accuracy"],
                "robust_accuracy": s["robust"]["accuracy"] if "robust" in s else None, "params": s["params"], "macs": s["macs_per_image"],
                "teacher_accuracy": teacher["accuracy"] if teacher else None,
                "real_training_images": report["transfer"].get("real_training_images", report["transfer"].get("size")),
                "train_s": report["training"]["time_s"], "run": str(run_dir.relative_to(args.out))}

    planned = names
    if args.report_only:
        names = [name for name in names if study.done(name)]
        settings = [s for s in settings if any(name.rsplit("-s", 1)[0] == s for name in names)]
    else:
        for name in select(names, args.only):
            setting, seed = name.rsplit("-s", 1)
            study.row(name, lambda: compute(setting, int(seed)), print)
        if args.only:
            return 0
    missing = [name for name in planned if name not in names]
    rows = study.rows(names)
    teacher_acc = next(r["teacher_accuracy"] for r in rows if r["teacher_accuracy"])
    table = aggregate(rows, settings, teacher_acc)
    verdicts = targets(table, rows)
    record = {"command": command, "plan": plan, "teacher_accuracy": teacher_acc, "table": table, "rows_missing": missing,
              "targets": verdicts, "threads": torch.get_num_threads()}
    atomic_write_text(args.out / "results.json", json.dumps(record, indent=2) + "\n")
    lines = [f"# Classifier distillation on Fashion-MNIST ({args.teacher} -> width {args.width})", "",
             f"Command: `{command}`", "",
             *([f"**Partial**: {len(names)} of {len(planned)} rows done; not yet run: {', '.join(missing)}. The same "
                "command without --report-only runs them (finished rows are kept).", ""] if missing else []),
             f"Teacher test accuracy {100 * teacher_acc:.2f}%. Each student: {args.steps} steps of batch "
             f"{args.batch_size}, seeds {args.seeds} (mean +- std over the seeds done; n_seeds per row in results.json); test split of 10,000 images; robust accuracy "
             f"under L-infinity PGD eps {pgd[0]:g} ([0, 1] pixels), {pgd[1]} steps.", "",
             *table_lines(table), "", *target_lines(verdicts, len(seeds))]
    atomic_write_text(args.out / "results.md", "\n".join(lines) + "\n")
    print(args.out / "results.md")
    return 0


def aggregate(rows: list[dict], settings: list[str], teacher_acc: float) -> list[dict]:
    """One line per setting: mean and std of its rows' accuracy (and robust accuracy) over the seeds."""
    table = []
    for setting in settings:
        mine = [r for r in rows if r["setting"] == setting]
        acc = [r["accuracy"] for r in mine]
        rob = [r["robust_accuracy"] for r in mine if r["robust_accuracy"] is not None]
        table.append({"setting": setting, "method": mine[0]["method"], "transfer": mine[0]["transfer"],
                      "accuracy_mean": statistics.mean(acc), "accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                      "of_teacher": statistics.mean(acc) / teacher_acc, "robust_mean": statistics.mean(rob) if rob else None,
                      "robust_std": statistics.stdev(rob) if len(rob) > 1 else 0.0, "n_seeds": len(mine),
                      "params": mine[0]["params"]})
    return table


def table_lines(table: list[dict], extra: dict[str, list[str]] | None = None) -> list[str]:
    """The markdown table of `aggregate`'s lines; `extra` adds columns (header: one value per line)."""
    def spread(mean: float, std: float, n: int) -> str:  # one seed has no spread to show
        return f"{100 * mean:.2f} +- {100 * std:.2f}" if n > 1 else f"{100 * mean:.2f} (1 seed)"

    extra = extra or {}
    body = [[t["setting"], t["method"], t["transfer"], *(values[i] for values in extra.values()),
             spread(t["accuracy_mean"], t["accuracy_std"], t["n_seeds"]), f"{100 * t['of_teacher']:.1f}%",
             spread(t["robust_mean"], t["robust_std"], t["n_seeds"]) if t["robust_mean"] is not None else "not measured"]
            for i, t in enumerate(table)]
    return markdown_table(["setting", "method", "transfer", *extra, "test accuracy %", "of teacher", "robust accuracy %"], body)


def target_lines(verdicts: list[dict], n_seeds: int) -> list[str]:
    return ["Targets (issue 17):", "",
            *(f"- {v['target']}: **{'met' if v['met'] else 'not met'}**{'' if v['seeds'] >= n_seeds else ' so far'} "
              f"({v['evidence']}; {v['seeds']} of {n_seeds} seeds)" for v in verdicts)]


def targets(table: list[dict], rows: list[dict]) -> list[dict]:
    """The issue's targets, each with the numbers that decide it and the fewest seeds among the settings
    it reads (settings absent from the study are skipped)."""
    by = {t["setting"]: t for t in table}
    spread = {t["setting"]: max(r["accuracy"] for r in rows if r["setting"] == t["setting"]) -
              min(r["accuracy"] for r in rows if r["setting"] == t["setting"]) for t in table}
    out = []

    def verdict(target: str, met: bool, evidence: str, *names: str) -> None:
        out.append({"target": target, "met": bool(met), "evidence": evidence,
                    "seeds": min(by[name]["n_seeds"] for name in names)})

    if "alone" in by and "hinton" in by:
        gain, margin = by["hinton"]["accuracy_mean"] - by["alone"]["accuracy_mean"], max(spread["alone"], spread["hinton"])
        verdict("soft-label KD beats the student alone by more than the seeds' spread", gain > margin,
                f"gain {100 * gain:+.2f} points, largest range over seeds {100 * margin:.2f}", "alone", "hinton")
    for name in by:
        if name.startswith("gen-"):
            share = by[name]["of_teacher"]
            verdict(f"{name}: KD on generator-made images reaches 98% of the teacher", share >= 0.98,
                    f"{100 * share:.1f}% of the teacher's accuracy, no real training image", name)
    for name in by:
        if name == "dfad" or name.startswith("dfad-"):
            share = by[name]["of_teacher"]
            verdict(f"{name}: DFAD reaches 95% of the teacher", share >= 0.95,
                    f"{100 * share:.1f}% of the teacher's accuracy, no data", name)
    plain = [k for k in ("alone", "hinton") if k in by and by[k]["robust_mean"] is not None]
    if "ard" in by and by["ard"]["robust_mean"] is not None and plain:
        verdict("ARD's robust accuracy is above the plain student's",
                by["ard"]["robust_mean"] > max(by[k]["robust_mean"] for k in plain),
                f"ARD {100 * by['ard']['robust_mean']:.2f}% vs " +
                ", ".join(f"{k} {100 * by[k]['robust_mean']:.2f}%" for k in plain), "ard", *plain)
    return out


if __name__ == "__main__":
    sys.exit(main())
