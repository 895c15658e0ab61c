"""How close each pruning criterion's student is to its teacher before any training: the teacher
pruned to one width by every criterion of its family, each student scored by FID/KID against fresh
teacher samples and LPIPS to the teacher on the same latents (the evaluator's protocol, in each
row). It shows where distillation starts from; the distilled comparison of the criteria is the
recipe search's (eval/tune_recipe.py, `criterion=...`, docs/recipes.md). Rows are one JSON each in
OUT/rows/ and are skipped when the command runs again:

  python eval/pruning_criteria.py --teacher dcgan-face64 --width 0.25 --n 1000 \\
      --out eval/results/pruning_criteria_dcgan_face64
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from gancompress.evaluation import evaluate
from gancompress.families import family_of
from gancompress.io import atomic_write_text
from gancompress.pipeline import save_student
from gancompress.pruning import prune_generator
from gancompress.report import markdown_table
from gancompress.study import Study, StudyError
from gancompress.teachers import resolve_generator


def row(args, teacher, identity: dict, criterion: str) -> dict:
    started = time.perf_counter()
    student, kept = prune_generator(teacher, width=args.width, criterion=criterion, seed=0)
    prune_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:  # the student is remade exactly by the same command
        path = save_student(Path(tmp) / f"{criterion}.safetensors", student,
                            {"teacher": args.teacher, "teacher_sha256": identity["sha256"], "criterion": criterion,
                             "kept": kept})
        record = evaluate(str(path), f"teacher:{args.teacher}", n=args.n, device=args.device, latency=False,
                          progress=False, log=lambda _: None)
    return {"criterion": criterion, "fid": record["metrics"]["fid"], "kid": record["metrics"]["kid"]["mean"],
            "lpips": record["metrics"]["lpips"]["mean"], "prune_s": prune_s, "channels": list(student.config.channels),
            "protocol": record["protocol"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="dcgan-face64")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--criteria", default=None, help="comma-separated (default: every criterion of the family)")
    parser.add_argument("--n", type=int, default=1000, help="samples for FID/KID/LPIPS")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    teacher, identity = resolve_generator(args.teacher, args.device)  # loaded once for every criterion
    family = family_of(teacher)
    criteria = args.criteria.split(",") if args.criteria else list(family.criteria)
    unknown = [c for c in criteria if c not in family.criteria]
    if unknown:
        parser.error(f"criteria {unknown} are not {family.title}'s; choose from {', '.join(family.criteria)}")
    try:
        study = Study(args.out, {"teacher": args.teacher, "width": args.width, "n": args.n}, what="comparison").open()
    except StudyError as error:
        raise SystemExit(f"error: {error}") from None
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    rows = [study.row(c, lambda c=c: row(args, teacher, identity, c), log) for c in criteria]
    floor = study.row("floor", lambda: evaluate(args.teacher, f"teacher:{args.teacher}", n=args.n, device=args.device,
                                                latency=False, progress=False, log=lambda _: None), log)
    command = "python eval/pruning_criteria.py " + " ".join(sys.argv[1:] if argv is None else argv)
    floor_fid = floor["metrics"]["fid"]
    atomic_write_text(args.out / "criteria.json", json.dumps({"command": command, "plan": study.plan,
                                                               "floor_fid": floor_fid, "rows": rows}, indent=2) + "\n")
    body = [[r["criterion"] + (" (default)" if r["criterion"] == family.default_criterion else ""),
             f"{r['fid']:.2f}", f"{r['fid'] / floor_fid:.2f}", f"{r['kid']:.4f}", f"{r['lpips']:.4f}",
             f"{r['prune_s']:.1f}"] for r in sorted(rows, key=lambda r: r["fid"])]
    lines = [f"# Pruning criteria, untrained: {args.teacher} width {args.width}", "", f"Command: `{command}`", "",
             f"Each criterion prunes the teacher to width {args.width} (prune seed 0; channels "
             f"{rows[0]['channels']}); the student is not trained. FID/KID vs {args.n} fresh teacher samples "
             f"(floor: teacher vs itself = {floor_fid:.2f}), LPIPS (AlexNet) to the teacher on the same latents; "
             f"Inception with torch-fidelity's weights, {rows[0]['protocol']['device']}, "
             f"{rows[0]['protocol']['threads']} thread(s) (criteria.json has the whole protocol). Ranked by FID. "
             "'prune s': the criterion's own time (the data-driven ones run the teacher).", "",
             *markdown_table(["criterion", "FID vs teacher", "FID / floor", "KID", "LPIPS", "prune s"], body)]
    atomic_write_text(args.out / "criteria.md", "\n".join(lines) + "\n")
    print(args.out / "criteria.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
