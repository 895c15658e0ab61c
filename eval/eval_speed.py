"""Our FID pipeline against torch-fidelity's own, side by side on one machine.

Speed: FID between two generator inputs of the same weights (`--generator`, latents from two seeds,
n each), computed end to end (sampling, uint8 rounding, Inception features, FID) by
`gancompress.evaluation` (ONNX Runtime features on a CPU) and by `torch_fidelity.calculate_metrics`
with two `GenerativeModelModuleWrapper` inputs (its eager module), alternating the two in rounds at
each thread count. Images/s counts both inputs' images.

Equality: both pipelines on the *same* images (the folders `gancompress generate` writes): FID must
agree to 1e-3.

  python eval/eval_speed.py --generator dcgan-face64 --n 1000 --threads 1,2 --rounds 2 \\
      --out eval/results/eval_speed_cpu
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch_fidelity

from gancompress import assets
from gancompress.evaluation import latents, sample_images, write_samples
from gancompress.io import atomic_write_text
from gancompress.metrics import fid as fid_metrics
from gancompress.metrics.images import to_uint8
from gancompress.report import markdown_table
from gancompress.teachers import resolve_generator


class Uint8Generator(torch.nn.Module):
    """torch-fidelity's generator input: z -> uint8 images, as its wrapper requires. torch-fidelity
    draws both inputs' latents from one seed, so the second input negates them (-z ~ N(0, I) too)."""

    def __init__(self, generator, negate: bool = False):
        super().__init__()
        self.generator, self.sign = generator.eval(), -1.0 if negate else 1.0

    @torch.inference_mode()
    def forward(self, z):
        return to_uint8(self.generator(self.sign * z))


def ours(generator, n: int, batch_size: int) -> float:
    extractor = fid_metrics.InceptionFeatures("cpu")
    feats = []
    for seed in (0, 1):
        chunks = [extractor(to_uint8(images)) for _, images in
                  sample_images(generator, latents(n, generator.z_dim, seed), batch_size, "cpu", noise_seed=seed)]
        feats.append(torch.cat(chunks))
    return fid_metrics.fid_from_features(*feats)


def theirs(generator, n: int, batch_size: int) -> float:
    wrapped = [torch_fidelity.GenerativeModelModuleWrapper(Uint8Generator(generator, negate), generator.z_dim, "normal", 0)
               for negate in (False, True)]
    metrics = torch_fidelity.calculate_metrics(
        input1=wrapped[0], input1_model_num_samples=n, input2=wrapped[1], input2_model_num_samples=n,
        fid=True, cuda=False, verbose=False, batch_size=batch_size, save_cpu_ram=True, cache=False, rng_seed=1,
        feature_extractor_weights_path=str(assets.resolve("fid-inception")))
    return metrics["frechet_inception_distance"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generator", default="dcgan-face64")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", type=Path, default=Path("eval/results/eval_speed_cpu"))
    args = p.parse_args(argv)
    generator, identity = resolve_generator(args.generator)
    fid_metrics.InceptionFeatures("cpu")  # the one-time ONNX export, outside the timings
    rows, timings = [], {}
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        for round_ in range(args.rounds):
            for name, pipeline in (("gancompress", ours), ("torch-fidelity", theirs)):
                start = time.perf_counter()
                value = pipeline(generator, args.n, args.batch_size)
                seconds = time.perf_counter() - start
                timings.setdefault((name, threads), []).append(seconds)
                print(f"{threads} threads, round {round_}: {name} {seconds:.1f} s (FID {value:.3f})", file=sys.stderr)
    for (name, threads), seconds in timings.items():
        rows.append({"pipeline": name, "threads": threads, "median_s": statistics.median(seconds),
                     "images_per_s": 2 * args.n / statistics.median(seconds), "rounds_s": seconds})
    ratios = {threads: next(r for r in rows if r["pipeline"] == "gancompress" and r["threads"] == threads)["images_per_s"] /
              next(r for r in rows if r["pipeline"] == "torch-fidelity" and r["threads"] == threads)["images_per_s"]
              for threads in {r["threads"] for r in rows}}

    with tempfile.TemporaryDirectory() as tmp:  # equality on the same images
        for seed in (0, 1):
            write_samples(args.generator, Path(tmp) / f"s{seed}", args.n, seed=seed, progress=False)
        extractor = fid_metrics.InceptionFeatures("cpu")
        feats = [torch.cat([extractor(to_uint8(images)) for _, images in sample_images(
            generator, latents(args.n, generator.z_dim, seed), args.batch_size, "cpu", noise_seed=seed)]) for seed in (0, 1)]
        our_fid = fid_metrics.fid_from_features(*feats)
        their_fid = torch_fidelity.calculate_metrics(
            input1=str(Path(tmp) / "s0"), input2=str(Path(tmp) / "s1"), fid=True, cuda=False, verbose=False,
            save_cpu_ram=True, cache=False, feature_extractor_weights_path=str(assets.resolve("fid-inception")),
        )["frechet_inception_distance"]

    command = "python eval/eval_speed.py " + " ".join(sys.argv[1:] if argv is None else argv)
    record = {"command": command, "generator": {k: identity[k] for k in ("name", "sha256")}, "n_per_input": args.n,
              "batch_size": args.batch_size, "device": "cpu", "cpu": platform.processor() or platform.machine(),
              "torch": torch.__version__, "torch_fidelity": torch_fidelity.__version__,
              "our_backend": re.sub(r", \d+ threads", ", threads as in each row", fid_metrics.InceptionFeatures("cpu").description),
              "rows": rows,
              "speedup_by_threads": ratios, "same_images": {"n": args.n, "fid_ours": our_fid, "fid_torch_fidelity": their_fid,
                                                            "difference": abs(our_fid - their_fid)}}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "eval_speed.json", json.dumps(record, indent=2) + "\n")
    body = [[r["pipeline"], str(r["threads"]), f"{r['median_s']:.1f}", f"{r['images_per_s']:.1f}",
             f"{ratios[r['threads']]:.2f}x" if r["pipeline"] == "gancompress" else ""] for r in rows]
    lines = [f"# FID pipeline speed: {identity['name']}, 2 x {args.n} images", "", f"Command: `{command}`", "",
             f"CPU ({record['cpu']}), torch {torch.__version__}, torch-fidelity {torch_fidelity.__version__}; "
             f"median of {args.rounds} alternating rounds. Ours: {record['our_backend']}.", "",
             *markdown_table(["pipeline", "threads", "median s", "images/s", "speed-up"], body), "",
             f"Same images (two `gancompress generate` folders): FID ours {our_fid:.4f}, torch-fidelity {their_fid:.4f}, "
             f"difference {abs(our_fid - their_fid):.1e}."]
    atomic_write_text(args.out / "eval_speed.md", "\n".join(lines) + "\n")
    print(args.out / "eval_speed.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
