#!/usr/bin/env bash
# FID sampling-noise floor of the default teacher: dcgan-face64 against fresh samples of itself,
# timed from a cold feature cache (assets already fetched). Usage: eval/noise_floor.sh [N ...]
# (default: 500 2000). Writes eval/results/noise_floor_dcgan-face64_n<N>.json and prints wall times.
# Run it on an otherwise idle machine: the times are part of the result.
set -euo pipefail
cd "$(dirname "$0")/.."
out=eval/results
export GANCOMPRESS_CACHE=${GANCOMPRESS_CACHE:-$(mktemp -d)}
python3 -m gancompress assets fetch --quiet >/dev/null
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(500 2000)
for n in "${sizes[@]}"; do
    SECONDS=0
    python3 -m gancompress eval --generator dcgan-face64 --reference teacher:dcgan-face64 --n "$n" --quiet \
        --out "$out/noise_floor_dcgan-face64_n$n.json"
    echo "n=$n wall_s=$SECONDS"
done
