"""The lint configuration in pyproject.toml ([tool.ruff]) holds for the whole tree."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff") or pytest.fail("ruff is not installed (it is in the dev extra; run ./setup.sh)")
    result = subprocess.run([ruff, "check", "gancompress", "tests", "eval"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
