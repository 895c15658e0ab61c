"""The public Python API: every documented name exists, docs/api.md's example runs as written, and
evaluate takes generator objects."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

import gancompress as gc
from gancompress.cli import main

ROOT = Path(__file__).resolve().parents[1]
API = ["load_generator", "prune", "distill", "evaluate", "compress", "sweep", "export", "bench", "kd", "evaluate_classifier",
       "load_classifier", "FAMILIES", "family_of"]


def test_every_public_name_exists_with_a_docstring():
    for name in API:
        value = getattr(gc, name)
        assert name == "FAMILIES" or value.__doc__, name
    assert set(gc.FAMILIES) == {"dcgan", "stylegan2"}
    assert gc.__version__ == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]  # one source


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"gancompress {gc.__version__}"


def test_the_documented_example_runs(work):
    text = (ROOT / "docs" / "api.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    result = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "dcgan (256, 128, 64) -> (128, 64, 32)"
    assert re.fullmatch(r"FID \d+\.\d vs 40 teacher samples, LPIPS 0\.\d{3}, 0\.\d\d M parameters", lines[1]), lines[1]
    assert list((work / "api-runs").glob("*/student.safetensors"))


def test_evaluate_takes_a_module_and_names_it_by_its_weights(work):
    teacher = gc.load_generator(work / "teacher.safetensors")
    kwargs = dict(n=8, latency=False, progress=False, log=lambda message: None)
    by_file = gc.evaluate(work / "teacher.safetensors", "mnist", **kwargs)
    by_object = gc.evaluate(teacher, "mnist", **kwargs)
    assert by_object["metrics"]["fid"] == pytest.approx(by_file["metrics"]["fid"], abs=1e-6)
    assert by_object["generator"]["name"] == "dcgan generator (in memory)"
    with torch.no_grad():
        teacher.to_rgb.weight.mul_(0.5)
    changed = gc.evaluate(teacher, "mnist", **kwargs)
    assert changed["generator"]["sha256"] != by_object["generator"]["sha256"]  # never a stale cache hit
    assert changed["generator_features"]["cache"].startswith("computed")
    assert abs(changed["metrics"]["fid"] - by_object["metrics"]["fid"]) > 1e-3
