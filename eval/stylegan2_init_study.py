"""StyleGAN2 student initialisation study: for a StyleGAN2 teacher (default: the project-trained
`stylegan2-fmnist32`) at widths 0.5 and 0.25, students trained with our default distillation losses
from three initialisations, each evaluated with one protocol:

  inherit       the teacher's synthesis network sliced to the L1-kept channels (and its mapping network)
  mapping-only  the teacher's mapping network copied (and fine-tuned), synthesis freshly initialised (StyleKD)
  scratch       the pruned architecture from random initialisation

Every row: FID/KID vs N fresh teacher samples and LPIPS to the teacher on the same latents, and
FID/KID vs the dataset's test split. Plus the floors: the teacher vs itself and vs the test split.

Resumable like dcgan_study.py (rows in OUT/rows/, interrupted training resumes from its run
directory; --only splits the rows over processes). Usage:

  python eval/stylegan2_init_study.py --widths 0.5,0.25 --steps 2000 --batch-size 32 --n 2000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from dcgan_study import train_row  # eval/ is on sys.path when this file is run as a script
from gancompress.evaluation import evaluate, latents
from gancompress.io import atomic_write_text, load_generator
from gancompress.report import save_grid
from gancompress.teachers import resolve_generator

INITS = {"inherit": {"init": "inherit"}, "mapping-only": {"init": "mapping-only"}, "scratch": {"init": "random"}}


def _metrics(record: dict, prefix: str) -> dict:
    m = record["metrics"]
    out = {f"fid_vs_{prefix}": m["fid"], f"kid_vs_{prefix}": m["kid"]["mean"]}
    if (m.get("lpips") or {}).get("mean") is not None:  # only against a teacher
        out |= {"lpips_mean": m["lpips"]["mean"], "lpips_std": m["lpips"]["std"]}
    return out


def run_row(name, width, args, device) -> dict:
    row_file = args.out / "rows" / f"{name}-w{width}.json"
    if row_file.is_file():
        print(f"{name} w{width}: done before, skipped", file=sys.stderr)
        return json.loads(row_file.read_text())
    student_path, train_info = train_row(name, width, INITS[name], {}, args, args.out / "runs", device)
    vs_teacher = evaluate(str(student_path), f"teacher:{args.teacher}", n=args.n, device=device, latency=False)
    vs_data = evaluate(str(student_path), args.data, n=args.n, device=device, latency=False)
    row = {"row": name, "width": width, "channels": list(vs_teacher["generator"]["config"]["channels"]),
           **_metrics(vs_teacher, "teacher"), **_metrics(vs_data, "data"), "params": vs_teacher["cost"]["params"],
           "macs": vs_teacher["cost"]["macs_per_image"], "training": train_info, "student": str(student_path),
           "protocol": {"teacher": vs_teacher["protocol"], "data": vs_data["protocol"]}}
    atomic_write_text(row_file, json.dumps(row, indent=2) + "\n")
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="stylegan2-fmnist32")
    parser.add_argument("--data", default="fashion-mnist:test", help="reference for FID vs data")
    parser.add_argument("--widths", default="0.5,0.25")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=2000, help="samples for FID/KID/LPIPS")
    parser.add_argument("--out", type=Path, default=Path("eval/results/stylegan2_fmnist32_init_study"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--only", default="", help="comma-separated ROW-wWIDTH names to run (default: all)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    planned = [(name, float(w)) for w in args.widths.split(",") for name in INITS]
    only = {item for item in args.only.split(",") if item}
    unknown = only - {f"{name}-w{width}" for name, width in planned}
    if unknown:
        parser.error(f"--only names no planned row: {sorted(unknown)}")
    rows = [run_row(name, width, args, args.device) for name, width in planned
            if not only or f"{name}-w{width}" in only]
    if len(rows) < len(planned):
        print(f"{len(rows)} rows run; run without --only to write the tables", file=sys.stderr)
        return 0
    floors = {"teacher": evaluate(args.teacher, f"teacher:{args.teacher}", n=args.n, device=args.device, latency=False),
              "data": evaluate(args.teacher, args.data, n=args.n, device=args.device, latency=False)}
    write_tables(rows, floors, args)
    return 0


def write_tables(rows, floors, args) -> None:
    out = args.out
    teacher, _ = resolve_generator(args.teacher, args.device)
    z = latents(8, teacher.z_dim, seed=0).to(args.device)
    noise = teacher.make_noise(8, torch.Generator().manual_seed(0), args.device)  # shared: rows differ by the network only
    with torch.inference_mode():
        images = [teacher(z, noise=noise)] + [load_generator(r["student"], args.device)(z, noise=noise) for r in rows]
    save_grid(out / "grid.png", images)
    floor_t, floor_d = floors["teacher"]["metrics"]["fid"], floors["data"]["metrics"]["fid"]
    summary = {"floor_fid_vs_teacher": floor_t, "teacher_fid_vs_data": floor_d, "n": args.n, "steps": args.steps,
               "batch_size": args.batch_size, "data": args.data,
               "command": "python eval/stylegan2_init_study.py " + " ".join(sys.argv[1:]), "rows": rows}
    atomic_write_text(out / "study.json", json.dumps(summary, indent=2) + "\n")
    lines = [f"# {args.teacher} student initialisation study", "", f"Command: `{summary['command']}`", "",
             f"Budget {args.steps} steps of batch {args.batch_size}, default distillation losses. FID vs {args.n} fresh "
             f"teacher samples (floor: teacher vs itself = {floor_t:.2f}) and vs {args.data} (the teacher itself: "
             f"{floor_d:.2f}), n = {args.n}; LPIPS (AlexNet) to the teacher on the same latents and noise.", "",
             "| init | width | channels | FID vs teacher | FID vs data | LPIPS | params | MACs (M) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['row']} | {r['width']} | {tuple(r['channels'])} | {r['fid_vs_teacher']:.2f} | "
                     f"{r['fid_vs_data']:.2f} | {r['lpips_mean']:.4f} | {r['params']:,} | {r['macs'] / 1e6:.1f} |")
    lines += ["", "Grid (`grid.png`): teacher first, then one row per table row, same latents and noise."]
    atomic_write_text(out / "study.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
