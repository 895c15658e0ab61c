"""ONNX Runtime per-node profiles of a StyleGAN2 generator's graph before and after the inference
rewrite (families/stylegan2/inference.py): the plain graph (the generator as trained, traced) and
the exported one, both timed in one process, batch 1.

    python eval/stylegan2_graph_profiles.py --generator student256.safetensors --threads 2 \\
        --out eval/results/stylegan2_256/profiles_student_w0.3.md

Writes the markdown (time per op type, the 12 slowest nodes) and a .json beside it."""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import warnings
from pathlib import Path

import torch

from gancompress.api import load_generator
from gancompress.benchmark import profile_onnxruntime
from gancompress.exporting import graph_for
from gancompress.report import markdown_table


def _export(module, example, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=17, input_names=["z"],
                          output_names=["image"], dynamic_axes={"z": {0: "batch"}, "image": {0: "batch"}})


def _by_op(profile: dict) -> dict[str, tuple[int, float]]:
    total = collections.defaultdict(lambda: [0, 0.0])
    for node in profile["nodes"]:
        total[node["op"]][0] += 1
        total[node["op"]][1] += node["median_us"]
    return dict(sorted(((op, tuple(v)) for op, v in total.items()), key=lambda kv: -kv[1][1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    generator = load_generator(args.generator).eval()
    graph, example, _, _ = graph_for(generator, "full")
    profiles = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, module in (("plain (as trained)", graph.reference), ("inference graph (exported)", graph)):
            path = Path(tmp) / "g.onnx"
            _export(module, example, path)
            profiles[name] = profile_onnxruntime(path, example, batch=1, threads=args.threads, runs=args.runs)
    lines = [f"# ONNX Runtime profile: {Path(args.generator).name}, batch 1, {args.threads} threads", "",
             f"Command: `python eval/stylegan2_graph_profiles.py --generator {Path(args.generator).name} "
             f"--threads {args.threads} --runs {args.runs}`. Median kernel time per node over {args.runs} profiled calls "
             "(profiling adds a little to every node); 'outside nodes' is the runtime's per-call overhead.", ""]
    summary = [[name, str(len(p["nodes"])), f"{p['call_median_us'] / 1e3:.1f}", f"{p['outside_nodes_us'] / 1e3:.1f}"]
               for name, p in profiles.items()]
    lines += markdown_table(["graph", "nodes", "call ms (profiled)", "outside nodes ms"], summary) + [""]
    for name, p in profiles.items():
        ops = _by_op(p)
        lines += [f"## {name}", "", *markdown_table(["op", "nodes", "ms"], [[op, str(n), f"{us / 1e3:.2f}"]
                                                                           for op, (n, us) in ops.items()]), ""]
        slowest = sorted(p["nodes"], key=lambda node: -node["median_us"])[:12]
        lines += ["Slowest nodes:", "", *markdown_table(["node", "op", "ms"], [[n["node"], n["op"], f"{n['median_us'] / 1e3:.2f}"]
                                                                              for n in slowest]), ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    args.out.with_suffix(".json").write_text(json.dumps(profiles, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
