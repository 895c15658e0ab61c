"""Training speed of the trainer's execution options, side by side in one run: distillation
images/s and peak memory of a pruned student for each option (fp32, bf16 and fp16 autocast,
channels_last, torch.compile, gradient accumulation), in alternating rounds on one device.

    python eval/train_speed.py --teacher stylegan2-fmnist32 --width 0.5 --batch-size 32 \
        --out eval/results/train_speed_cpu

An option becomes a default only where this says it is faster (docs/design-notes.md, "Execution
options"). Run it on an otherwise idle machine."""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gancompress.distillation.trainer import Trainer, TrainConfig, _peak_memory_mb  # noqa: E402
from gancompress.metrics.lpips import load_lpips  # noqa: E402
from gancompress.pruning import prune_generator  # noqa: E402
from gancompress.teachers import resolve_generator  # noqa: E402

OPTIONS = {
    "fp32": {},
    "bf16": {"precision": "bf16"},
    "fp16 (NVlabs)": {"precision": "fp16"},
    "channels_last": {"channels_last": True},
    "compile (inductor)": {"compile": "inductor"},
    "grad_accum 2": {"grad_accum": 2},
}


def _images_per_s(trainer: Trainer, warmup: int, steps: int) -> float:
    trainer.train(until_step=warmup)  # compilation and first-call costs stay out of the figure
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    trainer.train(until_step=warmup + steps)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return steps * trainer.config.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="stylegan2-fmnist32")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per option and round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--options", default=",".join(OPTIONS), help="comma-separated names of OPTIONS")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    names = [n.strip() for n in args.options.split(",") if n.strip()]
    unknown = sorted(set(names) - set(OPTIONS))
    if unknown:
        parser.error(f"unknown options {unknown}; choose from {', '.join(OPTIONS)}")
    teacher, identity = resolve_generator(args.teacher, args.device)
    student, kept = prune_generator(teacher, width=args.width)
    lpips_model = load_lpips("alex").to(args.device)
    speeds, memory, failures = {n: [] for n in names}, {}, {}
    for _ in range(args.rounds):
        for name in names:
            if name in failures:
                continue
            config = TrainConfig(steps=args.warmup + args.steps, batch_size=args.batch_size, **OPTIONS[name])
            if args.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            try:
                trainer = Trainer(config, copy.deepcopy(student), teacher, None, None, args.device, kept=kept,
                                  lpips_model=lpips_model, progress=False)
                speeds[name].append(_images_per_s(trainer, args.warmup, args.steps))
            except Exception as err:  # an option this machine cannot run (no C++ compiler for inductor, ...)
                failures[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
                continue
            memory[name] = _peak_memory_mb(args.device)
    threads = torch.get_num_threads()
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"{platform.processor() or 'CPU'}, {threads} threads"
    rows = []
    base = statistics.median(speeds["fp32"]) if speeds.get("fp32") else None
    for name in names:
        if name in failures:
            rows.append({"option": name, "error": failures[name]})
            continue
        median = statistics.median(speeds[name])
        rows.append({"option": name, "img_per_s": median, "rounds": speeds[name], "peak_memory_mb": memory[name],
                     "vs_fp32": median / base if base else None})
    record = {"command": "python " + " ".join(sys.argv), "teacher": identity, "width": args.width,
              "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds,
              "device": device, "torch": torch.__version__, "rows": rows,
              "note": "distillation with the default losses (L1, LPIPS, features, adversarial, lazy R1); images/s "
                      "is the median over rounds of timed steps after warm-up; peak memory is CUDA's allocated "
                      "peak on a GPU, the process's peak resident set on a CPU (which only grows)"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_speed.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [f"# Training speed by execution option: {args.teacher} width {args.width}, batch {args.batch_size}",
             "", f"Device: {device}; torch {torch.__version__}. Command: `{record['command']}`", "",
             "| option | images/s | vs fp32 | peak memory (MB) | rounds |", "|---|---|---|---|---|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['option']} | not run: {row['error']} | | | |")
        else:
            ratio = f"{row['vs_fp32']:.2f}x" if row["vs_fp32"] else ""
            lines.append(f"| {row['option']} | {row['img_per_s']:.1f} | {ratio} | {row['peak_memory_mb']:.0f} | "
                         + ", ".join(f"{v:.1f}" for v in row["rounds"]) + " |")
    (args.out / "train_speed.md").write_text("\n".join(lines) + "\n" + f"\n{record['note']}.\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
