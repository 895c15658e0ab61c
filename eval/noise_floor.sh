#!/usr/bin/env bash
# FID sampling-noise floor of the default teacher: dcgan-face64 against fresh samples of itself,
# at n = 500 and n = 2000, timed from a cold reference cache (assets already fetched).
# Writes eval/results/noise_floor_dcgan-face64_n{500,2000}.json and prints wall times.
set -euo pipefail
cd "$(dirname "$0")/.."
out=eval/results
export GANCOMPRESS_CACHE=${GANCOMPRESS_CACHE:-$(mktemp -d)}
python3 -m gancompress assets fetch --quiet >/dev/null
for n in 500 2000; do
    SECONDS=0
    python3 -m gancompress eval --generator dcgan-face64 --reference teacher:dcgan-face64 --n "$n" --quiet \
        --out "$out/noise_floor_dcgan-face64_n$n.json"
    echo "n=$n wall_s=$SECONDS"
done
