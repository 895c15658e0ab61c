#!/usr/bin/env bash
# The 256 px config-f teacher against its width-0.3 students, pruned and mobile (separable
# convolutions), on every runtime installed here: batch 1, 1 and 2 threads, one
# `gancompress bench --repeats 3` run (random weights: latency does not depend on weight values).
# Run it on an otherwise idle machine. Writes eval/results/stylegan2_256/latency_mobile.{json,txt}.
set -euo pipefail
cd "$(dirname "$0")/.."
out=eval/results/stylegan2_256
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 eval/make_rosinality_config_f.py --size 256 --out "$tmp/teacher256.pt" >/dev/null
python3 -m gancompress prune --teacher "$tmp/teacher256.pt" --width 0.3 --out "$tmp/pruned-w0.3.safetensors" >/dev/null
python3 -m gancompress prune --teacher "$tmp/teacher256.pt" --width 0.3 --conv separable \
    --out "$tmp/separable-w0.3.safetensors" >/dev/null
python3 -m gancompress bench --generator "$tmp/teacher256.pt" --generator "$tmp/pruned-w0.3.safetensors" \
    --generator "$tmp/separable-w0.3.safetensors" --batches 1 --threads 1,2 --repeats 3 \
    --out "$out/latency_mobile.json" 2>/dev/null | sed "s#$tmp/##g" | tee "$out/latency_mobile.txt"
