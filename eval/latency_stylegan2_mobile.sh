#!/usr/bin/env bash
# Latency of stylegan2-fmnist32, its pruned students (widths 0.5, 0.25) and its mobile students
# (separable convolutions at widths 1.0, 0.5, 0.25) on every runtime installed here, batch 1, 1 and 2
# threads, in one `gancompress bench --repeats 3` run (latency does not depend on weight values:
# untrained students stand in for the trained ones of eval/stylegan2_mobile_study.py). Run it on an
# otherwise idle machine. Writes eval/results/stylegan2_fmnist32_mobile/latency.{json,txt}.
set -euo pipefail
cd "$(dirname "$0")/.."
out=eval/results/stylegan2_fmnist32_mobile
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
students=()
for width in 0.5 0.25; do
    python3 -m gancompress prune --teacher stylegan2-fmnist32 --width "$width" --out "$tmp/pruned-w$width.safetensors" >/dev/null
    students+=(--generator "$tmp/pruned-w$width.safetensors")
done
for width in 1.0 0.5 0.25; do
    python3 -m gancompress prune --teacher stylegan2-fmnist32 --width "$width" --conv separable \
        --out "$tmp/separable-w$width.safetensors" >/dev/null
    students+=(--generator "$tmp/separable-w$width.safetensors")
done
python3 -m gancompress bench --generator stylegan2-fmnist32 "${students[@]}" --batches 1 --threads 1,2 --repeats 3 \
    --out "$out/latency.json" 2>/dev/null | sed "s#$tmp/##g" | tee "$out/latency.txt"
