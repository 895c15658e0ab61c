#!/usr/bin/env bash
# The 256 px StyleGAN2 flow a user runs, timed on this CPU: a rosinality config-f checkpoint
# (random weights: no offline source has a trained one, and cost and latency do not depend on weight
# values) imported and pruned to width 0.3, both exported to ONNX and ExecuTorch, then both timed
# side by side in one `gancompress bench` run (batch 1, 1 and 2 threads, 3 rounds), and an ONNX
# Runtime per-node profile of the student (2 threads), its graph as trained against the exported one. Run it on an otherwise idle machine.
# Writes eval/results/stylegan2_256/{steps.txt,latency.json,latency.txt,profiles_student_w0.3.{md,json}}.
set -euo pipefail
cd "$(dirname "$0")/.."
out=eval/results/stylegan2_256
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
step() { local start=$SECONDS; "$@" >/dev/null; echo "$(( SECONDS - start )) s: ${*/#$tmp\//}" | sed "s#$tmp/##g"; }
{
    step python3 eval/make_rosinality_config_f.py --size 256 --out "$tmp/teacher256.pt"
    step python3 -m gancompress prune --teacher "$tmp/teacher256.pt" --width 0.3 --out "$tmp/student256.safetensors"
    for who in teacher256.pt student256.safetensors; do
        step python3 -m gancompress export --generator "$tmp/$who" --out "$tmp/${who%%.*}.onnx"
        step python3 -m gancompress export --generator "$tmp/$who" --out "$tmp/${who%%.*}.pte"
    done
} | tee "$out/steps.txt"
python3 -m gancompress bench --generator "$tmp/teacher256.pt" --generator "$tmp/student256.safetensors" \
    --batches 1 --threads 1,2 --repeats 3 --out "$out/latency.json" 2>/dev/null | sed "s#$tmp/##g" | tee "$out/latency.txt"
python3 eval/stylegan2_graph_profiles.py --generator "$tmp/student256.safetensors" --threads 2 --runs 50 \
    --out "$out/profiles_student_w0.3.md" >/dev/null
