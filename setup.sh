#!/usr/bin/env bash
# Installs everything gancompress and its tests need into the active Python (use a venv if you
# want isolation). Safe to run repeatedly: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

# Debian carrier of the Fashion-MNIST asset (the asset code can also unpack the .deb itself).
if command -v apt-get >/dev/null 2>&1 && ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        echo "setup.sh: not root, skipping apt-get install dataset-fashion-mnist (gancompress will unpack the .deb itself)" >&2
    fi
fi

# Headless Chromium renders the sweep's report.html in the tests (Debian package; optional for users).
if command -v apt-get >/dev/null 2>&1 && ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

"$PY" -m pip install -q --root-user-action=ignore -e ".[dev]"
