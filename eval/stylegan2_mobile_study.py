"""The mobile StyleGAN2 student (issue 14): depthwise-separable modulated convolutions with
demodulation applied to the activations (MobileStyleGAN's layer; `--conv separable`), distilled by
the same trainer and losses as the pruned students, beside the pruned students of
eval/stylegan2_init_study.py (the same teacher, budget, seed and evaluation protocol; their rows are
read from that study's committed rows/, not retrained).

Rows: `separable-wW`: the teacher pruned to width W (style-weighted L1, W = 1.0 keeps every channel),
then each convolution replaced by its separable form, initialised by the best rank-1 factorisation
of the pruned kernel (families.stylegan2.separable_student), then distilled. Each row: FID/KID vs N
fresh teacher samples and LPIPS to the teacher on the same latents, FID/KID vs the test split.

Resumable like the other studies (OUT/plan.json, OUT/rows/, run directories under OUT/runs/). Usage:

  python eval/stylegan2_mobile_study.py --widths 1.0,0.5,0.25 --steps 2000 --batch-size 32 --n 2000

Latency of the same students beside the teacher and the pruned ones: eval/latency_stylegan2_mobile.sh.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dcgan_study import run_rows, study_options, widths  # eval/ is on sys.path when run as a script
from stylegan2_init_study import evaluated_row, floor_rows
from gancompress.io import atomic_write_text, load_generator
from gancompress.report import markdown_table, sample_grid
from gancompress.teachers import resolve_generator

SEPARABLE = {"init": "inherit", "conv": "separable"}
def _shown(path: Path) -> str:
    """`path` relative to the repository when inside it (records travel between machines)."""
    root = Path(__file__).resolve().parents[1]
    resolved = Path(path).resolve()
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(path)


PRUNED_ROWS = Path(__file__).parent / "results" / "stylegan2_fmnist32_init_study"  # the pruned (inherit) rows, same protocol


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    study_options(parser, "stylegan2-fmnist32", "eval/results/stylegan2_fmnist32_mobile")
    parser.set_defaults(widths="1.0,0.5,0.25")
    parser.add_argument("--data", default="fashion-mnist:test", help="reference for FID vs data")
    parser.add_argument("--pruned-rows", type=Path, default=PRUNED_ROWS,
                        help="study whose inherit-wW rows are the pruned students to compare with")
    args = parser.parse_args(argv)
    pruned = _pruned_rows(args)  # before any training: a study it cannot be compared with is refused
    planned = {f"separable-w{width}": ("separable", width) for width in widths(args)}
    study = run_rows(parser, args, planned, lambda study, name, width: evaluated_row(name, width, args, study, SEPARABLE),
                     data=args.data)
    if study is None:
        return 0
    floors = floor_rows(study, args)
    write_tables(study.rows(planned), pruned, floors, args)
    return 0


def _pruned_rows(args) -> list[dict]:
    """The pruned students' rows, refused unless their study used this one's budget and protocol."""
    try:
        plan = json.loads((args.pruned_rows / "study.json").read_text())
    except OSError as error:
        raise SystemExit(f"no pruned rows to compare with: {error}; pass --pruned-rows (a stylegan2_init_study output)")
    for key in ("n", "steps", "batch_size", "data"):
        if plan[key] != getattr(args, key):
            raise SystemExit(f"{args.pruned_rows} used {key} = {plan[key]}, this study {getattr(args, key)}: "
                             "their rows are not comparable; pass --pruned-rows of a study with the same budget")
    if plan.get("seed", 0) != args.seed:
        raise SystemExit(f"{args.pruned_rows} used seed {plan.get('seed', 0)}, this study {args.seed}")
    return [{**row, "row": "pruned"} for row in plan["rows"] if row["row"] == "inherit"]


def write_tables(rows, pruned, floors, args) -> None:
    out = args.out
    everything = sorted(pruned + rows, key=lambda r: (-r["width"], r["row"]))
    teacher, _ = resolve_generator(args.teacher, args.device)
    # the pruned rows' students live in their own study's (uncommitted) run folders
    sample_grid(out / "grid.png", [teacher] + [load_generator(r["student"], args.device) for r in rows],
                device=args.device)
    command = "python eval/stylegan2_mobile_study.py " + " ".join(sys.argv[1:])
    summary = {"floor_fid_vs_teacher": floors["teacher"]["metrics"]["fid"],
               "teacher_fid_vs_data": floors["data"]["metrics"]["fid"], "n": args.n, "steps": args.steps,
               "batch_size": args.batch_size, "data": args.data, "command": command,
               "pruned_rows_from": _shown(args.pruned_rows), "rows": rows}
    atomic_write_text(out / "study.json", json.dumps(summary, indent=2) + "\n")
    teacher_macs = floors["teacher"]["cost"]["macs_per_image"]
    body = [[r["row"], str(r["width"]), str(tuple(r["channels"])), f"{r['fid_vs_teacher']:.2f}", f"{r['fid_vs_data']:.2f}",
             f"{r['lpips_mean']:.4f}", f"{r['params']:,}", f"{r['macs'] / 1e6:.1f}", f"{teacher_macs / r['macs']:.1f}x"]
            for r in everything]
    head = ["student", "width", "channels", "FID vs teacher", "FID vs data", "LPIPS", "params", "MACs (M)",
            "fewer MACs"]
    floor_t, floor_d = floors["teacher"]["metrics"]["fid"], floors["data"]["metrics"]["fid"]
    lines = [f"# {args.teacher}: the mobile (separable) student beside the pruned one", "", f"Command: `{command}`", "",
             f"Budget {args.steps} steps of batch {args.batch_size}, default distillation losses, seed {args.seed}, for "
             f"every row. FID vs {args.n} fresh teacher samples (floor: teacher vs itself = {floor_t:.2f}) and vs "
             f"{args.data} (the teacher itself: {floor_d:.2f}); LPIPS (AlexNet) to the teacher on the same latents and "
             f"noise. `pruned` rows: the inherit rows of {_shown(args.pruned_rows)}/study.json (same budget and protocol). Teacher: "
             f"{teacher_macs / 1e6:.1f} M MACs per image (input-resolution rule).", "",
             *markdown_table(head, body), "",
             "Grid (`grid.png`): teacher first, then one row per separable student, same latents and noise.",
             "Latency of these architectures: `latency.txt` (eval/latency_stylegan2_mobile.sh)."]
    atomic_write_text(out / "study.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
