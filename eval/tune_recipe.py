"""Search for the default distillation recipe: each setting is the recipe the search started from
(SEARCH_START: TrainConfig's defaults before it) with some TrainConfig fields changed, trained at a
short budget with several seeds and scored by FID (and LPIPS) against fresh teacher samples. The
defaults in TrainConfig are the winners of this search (docs/recipes.md).

A setting is named by its changes, `field=value` joined by `+` (`default`: none), e.g.
`feat=0+adv=0.3`; values are JSON, or a bare word for a string (`d_init=teacher`; `diffaug=none`
means no DiffAugment). Every row is one
(setting, seed) pair, stored in OUT/rows/ and skipped when the search is run again, so a first stage
of one-field changes can be followed by a stage that combines the winners in the same directory:

  python eval/tune_recipe.py --teacher dcgan-face64 --width 0.25 --steps 1000 --batch-size 64 --n 1000 \\
      --seeds 0,1 --settings default,feat=0,adv=0,...

The table (search.md, search.json) has every setting's mean and spread over its seeds, ranked by FID.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from gancompress.distillation.trainer import TrainConfig
from gancompress.evaluation import evaluate
from gancompress.pruning import ALL_CRITERIA
from gancompress.io import atomic_write_text
from gancompress.pipeline import STUDENT_FILE, StudentPlan, train_or_resume
from gancompress.report import markdown_table
from gancompress.study import Study, StudyError

# The recipe the search started from: TrainConfig's defaults before the search moved them (to lr_g
# 0.002, feat 0, d_init auto). `default` names it, so the committed rows keep their meaning; every
# setting is a change from it.
SEARCH_START = {"lr_g": 1e-3, "feat": 1.0, "d_init": "student"}
# One field changed at a time from the start: the terms the issue names (feature, adversarial and
# LPIPS weights; discriminator width and learning rate; R1; DiffAugment; EMA) and the generator's
# learning rate
STAGE_ONE = ["default", "feat=0", "adv=0", "adv=0.3", "lpips=1", "lpips=10", "d_width=2", "lr_d=0.0005",
             "r1_gamma=0", "diffaug=none", "ema_decay=0", "lr_g=0.002"]


# Fields of the student's plan rather than of TrainConfig: the pruning criterion (e.g. CAGAN's)
PLAN_FIELDS = ("criterion",)


def parse_setting(name: str) -> dict:
    """{field: value} of a setting name such as 'feat=0+diffaug=none' ('default': {}); the fields are
    TrainConfig's and PLAN_FIELDS."""
    if name == "default":
        return {}
    changes = {}
    for part in name.split("+"):
        field, sep, text = part.partition("=")
        if not sep:
            raise StudyError(f"setting {name!r}: {part!r} is not field=value")
        try:
            value = [] if text == "none" else json.loads(text)
        except ValueError:
            value = text  # a bare word: d_init=teacher
        changes[field] = tuple(value) if isinstance(value, list) else value
    plan = {k: v for k, v in changes.items() if k in PLAN_FIELDS}
    if plan.get("criterion", "l1") not in ALL_CRITERIA:
        raise StudyError(f"setting {name!r}: criterion must be one of {', '.join(ALL_CRITERIA)}")
    TrainConfig(**{k: v for k, v in changes.items() if k not in PLAN_FIELDS})  # unknown fields, bad values: fail now
    return changes


def row(study: Study, setting: str, seed: int, args) -> dict:
    changes = parse_setting(setting)
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, seed=seed, sample_every=args.steps,
                         checkpoint_every=max(args.steps // 4, 1), log_every=max(args.steps // 20, 1),
                         metrics_every=args.metrics_every, metrics_n=args.metrics_n,
                         **{k: v for k, v in {**SEARCH_START, **changes}.items() if k not in PLAN_FIELDS})
    plan = StudentPlan(width=args.width, criterion=changes.get("criterion", "l1"), prune_seed=0, init="inherit")
    run_dir, trainer = train_or_resume(study.out_dir / "runs", f"{setting}-s{seed}", config, args.teacher, plan,
                                       args.device, progress=False)
    record = evaluate(str(run_dir / STUDENT_FILE), f"teacher:{args.teacher}", n=args.n, device=args.device,
                      latency=False, progress=False, log=lambda _: None)
    return {"setting": setting, "seed": seed, "fid": record["metrics"]["fid"], "kid": record["metrics"]["kid"]["mean"],
            "lpips": record["metrics"]["lpips"]["mean"], "train_s": trainer.elapsed(), "protocol": record["protocol"]}


def summarise(rows: list[dict], floor_fid: float) -> list[dict]:
    """Each setting's mean and range over its seeds, and its paired difference from `default` on the
    seeds both have: a seed fixes the latents and the order of the batches, so the same-seed
    difference removes the seed-to-seed spread that the means carry."""
    settings = {}
    for r in rows:
        settings.setdefault(r["setting"], []).append(r)
    default_fid = {r["seed"]: r["fid"] for r in settings.get("default", [])}
    summary = []
    for setting, group in settings.items():
        fids, lpips = [r["fid"] for r in group], [r["lpips"] for r in group]
        paired = [] if setting == "default" else [r["fid"] - default_fid[r["seed"]] for r in group if r["seed"] in default_fid]
        summary.append({"setting": setting, "seeds": [r["seed"] for r in group], "fid_mean": statistics.mean(fids),
                        "fid_min": min(fids), "fid_max": max(fids), "lpips_mean": statistics.mean(lpips),
                        "fid_over_floor": statistics.mean(fids) / floor_fid,
                        "fid_minus_default": statistics.mean(paired) if paired else None,
                        "seeds_better_than_default": sum(d < 0 for d in paired),
                        "seeds_paired": len(paired)})
    return sorted(summary, key=lambda s: s["fid_mean"])


def _paired_cell(s: dict) -> str:
    if s["fid_minus_default"] is None:
        return ""
    return f"{s['fid_minus_default']:+.2f} ({s['seeds_better_than_default']}/{s['seeds_paired']} better)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="dcgan-face64")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n", type=int, default=1000, help="samples for FID/KID/LPIPS")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--settings", default=",".join(STAGE_ONE))
    parser.add_argument("--out", type=Path, default=Path("eval/results/tune_recipe_dcgan_face64"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--metrics-every", type=int, default=0,
                        help="also evaluate each run's EMA student every N steps (its FID against steps, in its "
                             "stats.jsonl; does not change what it trains)")
    parser.add_argument("--metrics-n", type=int, default=1000, help="samples of those evaluations")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = args.settings.split(",")
    try:
        for setting in settings:
            parse_setting(setting)
        study = Study(args.out, {"teacher": args.teacher, "width": args.width, "steps": args.steps,
                                 "batch_size": args.batch_size, "n": args.n}, what="search").open()
    except (StudyError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    for setting in settings:
        for seed in seeds:
            study.row(f"{setting}-s{seed}", lambda: row(study, setting, seed, args),
                      lambda m: print(m, file=sys.stderr))
            print(f"{setting} seed {seed}: {json.loads(study.row_file(f'{setting}-s{seed}').read_text())['fid']:.2f}",
                  file=sys.stderr, flush=True)
    floor = study.row("floor", lambda: evaluate(args.teacher, f"teacher:{args.teacher}", n=args.n, device=args.device,
                                                latency=False, progress=False, log=lambda _: None))
    rows = [json.loads(p.read_text()) for p in sorted(study.rows_dir.glob("*.json")) if p.stem != "floor"]
    summary = summarise(rows, floor["metrics"]["fid"])
    command = "python eval/tune_recipe.py " + " ".join(sys.argv[1:] if argv is None else argv)
    atomic_write_text(args.out / "search.json", json.dumps({"command": command, "floor_fid": floor["metrics"]["fid"],
                                                            "plan": study.plan, "settings": summary, "rows": rows},
                                                           indent=2) + "\n")
    body = [[s["setting"], ",".join(map(str, s["seeds"])), f"{s['fid_mean']:.2f}", f"{s['fid_min']:.2f}-{s['fid_max']:.2f}",
             f"{s['fid_over_floor']:.2f}", _paired_cell(s), f"{s['lpips_mean']:.4f}"] for s in summary]
    lines = [f"# Recipe search: {args.teacher} width {args.width}", "", f"Command: `{command}`", "",
             f"Each setting: the recipe the search started from ('default': L1 3, LPIPS 3, GAN 0.1, "
             f"features {SEARCH_START['feat']:g}, lr_g {SEARCH_START['lr_g']:g}, discriminator "
             f"{SEARCH_START['d_init']}; "
             f"inherited L1-pruned student) with the fields named changed; {args.steps} steps "
             f"of batch {args.batch_size} per seed; FID/KID vs {args.n} fresh teacher samples (floor: teacher vs itself "
             f"= {floor['metrics']['fid']:.2f}), LPIPS (AlexNet) to the teacher on the same latents. Ranked by mean FID. 'FID - default' is the "
             "mean same-seed difference from the default (negative: better), with the seeds on which the setting was better.",
             "", *markdown_table(["setting", "seeds", "FID mean", "FID range", "FID / floor", "FID - default (same seed)", "LPIPS"], body)]
    atomic_write_text(args.out / "search.md", "\n".join(lines) + "\n")
    print(args.out / "search.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
