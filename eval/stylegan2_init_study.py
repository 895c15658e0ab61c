"""StyleGAN2 student initialisation study: for a StyleGAN2 teacher (default: the project-trained
`stylegan2-fmnist32`) at widths 0.5 and 0.25, students trained with our default distillation losses
from three initialisations, each evaluated with one protocol:

  inherit       the teacher's synthesis network sliced to the L1-kept channels (and its mapping network)
  mapping-only  the teacher's mapping network copied (and fine-tuned), synthesis freshly initialised (StyleKD)
  scratch       the pruned architecture from random initialisation

Every row: FID/KID vs N fresh teacher samples and LPIPS to the teacher on the same latents, and
FID/KID vs the dataset's test split. Plus the floors: the teacher vs itself and vs the test split.

Resumable like dcgan_study.py (gancompress.study: the plan in OUT/plan.json, rows and the two floors
in OUT/rows/, interrupted training resumes from its run directory; --only splits the rows over
processes). Usage:

  python eval/stylegan2_init_study.py --widths 0.5,0.25 --steps 2000 --batch-size 32 --n 2000
"""

from __future__ import annotations

import argparse
import json
import sys


from dcgan_study import log, run_rows, study_options, train_row, widths  # eval/ is on sys.path when run as a script
from gancompress.evaluation import evaluate
from gancompress.io import atomic_write_text, load_generator
from gancompress.report import markdown_table, sample_grid
from gancompress.teachers import resolve_generator

INITS = {"inherit": {"init": "inherit"}, "mapping-only": {"init": "mapping-only"}, "scratch": {"init": "random"}}


def _metrics(record: dict, prefix: str) -> dict:
    m = record["metrics"]
    out = {f"fid_vs_{prefix}": m["fid"], f"kid_vs_{prefix}": m["kid"]["mean"]}
    if (m.get("lpips") or {}).get("mean") is not None:  # only against a teacher
        out |= {"lpips_mean": m["lpips"]["mean"], "lpips_std": m["lpips"]["std"]}
    return out


def evaluated_row(name, width, args, study, plan_extra=None) -> dict:
    """Train one student (the plan INITS[name], or `plan_extra`) and evaluate it against the teacher and the data."""
    plan_extra = INITS[name] if plan_extra is None else plan_extra
    student_path, train_info = train_row(name, width, plan_extra, {}, args, study.out_dir / "runs", args.device)
    vs_teacher = evaluate(str(student_path), f"teacher:{args.teacher}", n=args.n, device=args.device, latency=False)
    vs_data = evaluate(str(student_path), args.data, n=args.n, device=args.device, latency=False)
    return {"row": name, "width": width, "channels": list(vs_teacher["generator"]["config"]["channels"]),
            **_metrics(vs_teacher, "teacher"), **_metrics(vs_data, "data"), "params": vs_teacher["cost"]["params"],
            "macs": vs_teacher["cost"]["macs_per_image"], "training": train_info, "student": str(student_path),
            "protocol": {"teacher": vs_teacher["protocol"], "data": vs_data["protocol"]}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    study_options(parser, "stylegan2-fmnist32", "eval/results/stylegan2_fmnist32_init_study")
    parser.add_argument("--data", default="fashion-mnist:test", help="reference for FID vs data")
    args = parser.parse_args(argv)
    planned = {f"{name}-w{width}": (name, width) for width in widths(args) for name in INITS}
    study = run_rows(parser, args, planned, lambda study, *row: evaluated_row(*row, args, study), data=args.data)
    if study is None:
        return 0
    write_tables(study.rows(planned), floor_rows(study, args), args)
    return 0


def floor_rows(study, args) -> dict:
    """The teacher evaluated against itself and against the data, with the rows' protocol."""
    return {"teacher": study.row("floor-teacher", lambda: evaluate(args.teacher, f"teacher:{args.teacher}", n=args.n,
                                                                   device=args.device, latency=False), log),
            "data": study.row("floor-data", lambda: evaluate(args.teacher, args.data, n=args.n, device=args.device,
                                                             latency=False), log)}


def table_lines(rows, floors, args, command: str) -> list[str]:
    """study.md, from the rows and the floors alone (so it can be rewritten from rows/)."""
    floor_t, floor_d = floors["teacher"]["metrics"]["fid"], floors["data"]["metrics"]["fid"]
    body = [[r["row"], str(r["width"]), str(tuple(r["channels"])), f"{r['fid_vs_teacher']:.2f}",
             f"{r['fid_vs_data']:.2f}", f"{r['lpips_mean']:.4f}", f"{r['params']:,}", f"{r['macs'] / 1e6:.1f}"]
            for r in rows]
    head = ["init", "width", "channels", "FID vs teacher", "FID vs data", "LPIPS", "params", "MACs (M)"]
    return [f"# {args.teacher} student initialisation study", "", f"Command: `{command}`", "",
            f"Budget {args.steps} steps of batch {args.batch_size}, default distillation losses. FID vs {args.n} fresh "
            f"teacher samples (floor: teacher vs itself = {floor_t:.2f}) and vs {args.data} (the teacher itself: "
            f"{floor_d:.2f}), n = {args.n}; LPIPS (AlexNet) to the teacher on the same latents and noise.", "",
            *markdown_table(head, body),
            "", "Grid (`grid.png`): teacher first, then one row per table row, same latents and noise."]


def write_tables(rows, floors, args) -> None:
    out = args.out
    teacher, _ = resolve_generator(args.teacher, args.device)
    # the same latents and noise for every row: rows differ by the network only
    sample_grid(out / "grid.png", [teacher] + [load_generator(r["student"], args.device) for r in rows],
                device=args.device)
    summary = {"floor_fid_vs_teacher": floors["teacher"]["metrics"]["fid"],
               "teacher_fid_vs_data": floors["data"]["metrics"]["fid"], "n": args.n, "steps": args.steps,
               "batch_size": args.batch_size, "data": args.data,
               "command": "python eval/stylegan2_init_study.py " + " ".join(sys.argv[1:]), "rows": rows}
    atomic_write_text(out / "study.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out / "study.md", "\n".join(table_lines(rows, floors, args, summary["command"])) + "\n")


if __name__ == "__main__":
    sys.exit(main())
