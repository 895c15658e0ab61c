#!/usr/bin/env bash
# Latency of dcgan-face64 and its L1-pruned students (widths 0.5, 0.25, 0.125) on every runtime
# installed here (PyTorch eager, ONNX Runtime, ExecuTorch + XNNPACK), batch 1 and 16, 1 thread and
# all cores, with an ONNX Runtime per-node profile of each, all in one `gancompress bench` run of
# three rounds over all generators (each cell: the median over rounds).
# Latency does not depend on the weights' values, so pruned (untrained) students stand in for
# trained ones of the same shape. Run it on an otherwise idle machine.
# Writes eval/results/latency_dcgan-face64.json and .txt (the printed tables).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
students=()
for width in 0.5 0.25 0.125; do
    python3 -m gancompress prune --teacher dcgan-face64 --width "$width" --out "$tmp/w$width.safetensors" >/dev/null
    students+=(--generator "$tmp/w$width.safetensors")
done
python3 -m gancompress bench --generator dcgan-face64 "${students[@]}" --profile --repeats 3 \
    --out eval/results/latency_dcgan-face64.json 2>/dev/null | tee eval/results/latency_dcgan-face64.txt
