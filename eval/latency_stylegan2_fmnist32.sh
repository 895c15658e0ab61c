#!/usr/bin/env bash
# Latency of stylegan2-fmnist32 and its style-weighted-L1 students (widths 0.5, 0.25) on every
# runtime installed here, batch 1, 1 and 2 threads, in one `gancompress bench --repeats 3` run
# (latency does not depend on weight values: pruned, untrained students stand in for trained ones).
# Run it on an otherwise idle machine. Writes eval/results/latency_stylegan2-fmnist32.{json,txt}.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
students=()
for width in 0.5 0.25; do
    python3 -m gancompress prune --teacher stylegan2-fmnist32 --width "$width" --out "$tmp/w$width.safetensors" >/dev/null
    students+=(--generator "$tmp/w$width.safetensors")
done
python3 -m gancompress bench --generator stylegan2-fmnist32 "${students[@]}" --batches 1 --threads 1,2 --repeats 3 \
    --out eval/results/latency_stylegan2-fmnist32.json 2>/dev/null | sed "s#$tmp/##g" | tee eval/results/latency_stylegan2-fmnist32.txt
