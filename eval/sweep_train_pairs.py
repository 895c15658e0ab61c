"""Train the pairs of a `gancompress sweep` without evaluating them, e.g. on a GPU machine that cannot
fetch the Inception weights, or as one process per pair. `gancompress sweep --resume DIR` afterwards
(on any machine) finds the runs finished, then evaluates, benchmarks and writes the report; the
sweep is the same as one run straight through. With --measure each process also measures its pairs
(their rows of the table), and `sweep --resume` is left only the teacher's row, the latency rounds
and the report. The sweep options mean what they mean for `gancompress sweep` (--metrics-every and
--metrics-n too: each run logs FID against steps in its stats.jsonl). Usage (the committed
sweeps trained this way on a lent H100, and pair by pair on CPU):

  python eval/sweep_train_pairs.py --out runs/sweep-dcgan-face64 --teacher dcgan-face64 \\
      --widths 0.5,0.25,0.125 --methods distill,scratch,mse --preset standard --steps 5000 \\
      --batch-size 64 --n 2000 --pairs distill-w0.5 --device cuda      # one process per pair
  gancompress sweep --resume runs/sweep-dcgan-face64

A run a recipe search (eval/tune_recipe.py) already trained with exactly a pair's settings is copied
in rather than trained twice: `--pairs distill-w0.25 --adopt SEARCH_RUN_DIR` (refused, naming each
difference, unless teacher, student plan and every training setting but the log, sample and
checkpoint intervals match).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gancompress.study import StudyError, select
from gancompress.sweeps import adopt_run, measure_pair, pair_name, parse_plan, prepare_sweep_dir, train_pair


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the sweep directory (created, or resumed)")
    parser.add_argument("--teacher", default="dcgan-face64")
    parser.add_argument("--widths", default="0.5,0.25,0.125")
    parser.add_argument("--methods", default="distill,scratch")
    parser.add_argument("--preset", choices=["quick", "standard"], default="quick")
    parser.add_argument("--steps", type=int, default=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=argparse.SUPPRESS)
    parser.add_argument("--metrics-every", type=int, default=argparse.SUPPRESS,
                        help="every N steps, FID/KID/LPIPS of the EMA student in each run's stats.jsonl (FID-vs-steps)")
    parser.add_argument("--metrics-n", type=int, default=argparse.SUPPRESS)
    parser.add_argument("--n", "--n-eval", dest="n_eval", type=int, default=None)
    parser.add_argument("--data", default="auto")
    parser.add_argument("--pairs", default="", help="comma-separated METHOD-wWIDTH to train (default: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--adopt", type=Path, default=None, metavar="RUN_DIR",
                        help="with one pair in --pairs: a finished run that trained exactly that pair (e.g. a recipe "
                             "search's; only its log, sample and checkpoint intervals may differ), copied in as the "
                             "pair's run instead of training it again")
    parser.add_argument("--measure", action="store_true",
                        help="also measure each pair (its row of the sweep table, pairs/PAIR.json; not the latency, "
                             "which `sweep --resume` times for every model in turn)")
    args = parser.parse_args(argv)
    overrides = {k: getattr(args, k) for k in ("steps", "batch_size", "seed", "metrics_every", "metrics_n")
                 if hasattr(args, k)}
    plan = parse_plan(args.teacher, args.widths.split(","), args.methods.split(","), args.preset, overrides,
                      args.n_eval, None if args.data == "none" else args.data)
    planned = {pair_name(m, w): (w, m) for w in plan["widths"] for m in plan["methods"]}
    try:
        chosen = select(planned, args.pairs, option="--pairs")
    except StudyError as error:
        parser.error(str(error))
    if args.adopt is not None and len(chosen) != 1:
        parser.error("--adopt copies one run in: name its one pair with --pairs")
    out = prepare_sweep_dir(plan, args.out)
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if args.adopt is not None:
        try:
            adopt_run(plan, out, *planned[chosen[0]], args.adopt, log)
        except StudyError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    for name in chosen:
        if args.measure:
            row = measure_pair(plan, out, *planned[name], args.device, progress=False, log=log)
            print(f"{name}: FID vs teacher {row['fid_vs_teacher']:.2f}, LPIPS {row['lpips_to_teacher']:.4f} "
                  f"({out / 'pairs' / name}.json)")
            continue
        run_dir, trainer = train_pair(plan, out, *planned[name], args.device, progress=False, log=log)
        print(f"{run_dir}: " + (f"step {trainer.step}" if trainer is not None else "pruned, not trained"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
