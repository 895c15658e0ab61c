"""A plain (non-editable) `pip install` must work like the checkout: every package folder is in the
wheel, every imported third-party module is declared, and the installed wheel runs the commands a
base install promises (compress, eval, prune, distill, train) from another directory, while export,
bench's ONNX Runtime column and sweep name the extra they need before doing any work."""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from gancompress import assets
from gancompress.extras import EXTRAS
from gancompress.io import save_generator
from gancompress.teachers import manifest
from tests.conftest import tiny_generator

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_manifest_from_this_install():
    assert manifest()["dcgan-face64"]["params"] == 3_576_704


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy of the sources: setuptools would reuse a stale build/ folder of the checkout.
    source = tmp_path_factory.mktemp("source") / "gancompress"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".git", "runs"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(source)], check=True, capture_output=True)
    return next(out.glob("gancompress-*.whl"))


def test_the_wheel_holds_every_package_and_the_shipped_teachers(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = sorted(str(p.parent.relative_to(ROOT)) for p in (ROOT / "gancompress").rglob("__init__.py"))
    assert "gancompress/distillation" in packages and len(packages) >= 4
    missing = [p for p in packages if f"{p}/__init__.py" not in names]
    assert not missing, f"packages left out of the wheel: {missing}"
    modules = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "gancompress").rglob("*.py"))
    assert [m for m in modules if m not in names] == []
    shipped = sorted(f"gancompress/pretrained/{p.name}" for p in (ROOT / "pretrained").iterdir()
                     if p.suffix in (".json", ".safetensors"))
    assert "gancompress/pretrained/manifest.json" in shipped and [s for s in shipped if s not in names] == []


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    def names(requirements):
        return {re.split(r"[<>=!~;\[ ]", r.strip(), maxsplit=1)[0].lower().replace("_", "-") for r in requirements}

    project = PYPROJECT["project"]
    return names(project["dependencies"]), {k: names(v) for k, v in project["optional-dependencies"].items()}


def _third_party_imports() -> dict[str, str]:
    """Top-level module -> first place it is imported, over the whole package."""
    found = {}
    for path in sorted((ROOT / "gancompress").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top != "gancompress" and top not in sys.stdlib_module_names:
                    found.setdefault(top, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_imported_module_is_declared():
    base, extras = _declared()
    everything = base.union(*extras.values())
    distributions = md.packages_distributions()
    undeclared = []
    for module, where in _third_party_imports().items():
        dists = {d.lower().replace("_", "-") for d in distributions.get(module, [])}
        if not dists:
            undeclared.append(f"{module} (not installed here; first import {where})")
        elif not dists & everything:
            undeclared.append(f"{module} from {sorted(dists)} (first import {where})")
    assert not undeclared, "imported but declared in no dependency list of pyproject.toml: " + "; ".join(undeclared)


def test_the_extras_module_agrees_with_pyproject():
    _, extras = _declared()
    distributions = md.packages_distributions()
    for extra, modules in EXTRAS.items():
        for module in modules:
            dists = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
            assert dists & extras[extra], f"{module} is not in pyproject's {extra} extra"
        assert extras[extra] <= extras["dev"], f"the dev extra lacks part of {extra}"


# Modules only extras bring: left out of the fresh environment below, so it is a base install.
EXTRA_ONLY_MODULES = sorted({m for modules in EXTRAS.values() for m in modules})


@pytest.fixture(scope="module")
def fresh_env(wheel, tmp_path_factory):
    """A new virtual environment holding the wheel, non-editable, with no extras. It reuses this
    machine's installed dependencies (torch and the rest, without re-installing gigabytes) through a
    folder of links to them that leaves out the extras' modules and every .pth file: the checkout's
    editable-install hook stays out, so a module missing from the wheel cannot be found in the checkout."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    links = venv / "machine-packages"
    links.mkdir()
    for folder in sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}):
        for entry in Path(folder).iterdir():
            top = re.split(r"[-.]", entry.name, maxsplit=1)[0].lower()
            if top in EXTRA_ONLY_MODULES or "gancompress" in entry.name.lower() or entry.suffix == ".pth":
                continue
            if not (links / entry.name).exists():
                (links / entry.name).symlink_to(entry)
    (site / "machine-packages.pth").write_text(f"{links}\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True)
    return venv


def _run(venv: Path, *args, cwd: Path, env: dict):
    return subprocess.run([str(venv / "bin" / "gancompress"), *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_installed_wheel_is_a_working_base_install(fresh_env, tmp_path, ready_assets):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    for name, path in ready_assets.items():
        env[assets.get_asset(name).env_var] = str(path)
    env[assets.CACHE_ENV] = str(tmp_path / "cache")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    python = fresh_env / "bin" / "python"
    where = subprocess.run([str(python), "-c", "import gancompress.distillation.trainer as t, gancompress.teachers as m; "
                            "print(t.__file__); print(m.teacher_path('dcgan-fmnist32'))"],
                           cwd=elsewhere, env=env, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(fresh_env)) for line in where.stdout.split()), where.stdout
    hidden = subprocess.run([str(python), "-c", "import matplotlib"], cwd=elsewhere, env=env, capture_output=True)
    assert hidden.returncode != 0  # the guard works: this really is a base install

    assert _run(fresh_env, "--help", cwd=elsewhere, env=env).returncode == 0
    teacher = save_generator(elsewhere / "teacher.safetensors", tiny_generator(channels=(32, 16, 16)))
    result = _run(fresh_env, "compress", "--teacher", teacher, "--width", "0.5", "--steps", "2", "--batch-size", "4",
                  "--n", "8", "--data", "none", "--quiet", cwd=elsewhere, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(next((elsewhere / "runs").glob("*/report.json")).read_text())
    assert report["student_eval"]["protocol"]["n_generated"] == 8 and report["student_channels"] == [16, 8, 8]
    for args in (("prune", "--teacher", teacher, "--width", "0.5", "--out", elsewhere / "pruned.safetensors"),
                 ("train", "--real", "mnist", "--resolution", "16", "--channels", "8,8", "--out-channels", "1",
                  "--steps", "2", "--batch-size", "4", "--run-root", elsewhere / "trained", "--quiet"),
                 ("eval", "--generator", elsewhere / "pruned.safetensors", "--reference", "mnist", "--n", "4",
                  "--no-latency", "--quiet")):
        result = _run(fresh_env, *args, cwd=elsewhere, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
    assert list((elsewhere / "trained").glob("*/student.safetensors"))

    bench = _run(fresh_env, "bench", "--generator", teacher, "--batches", "1", "--threads", "1", "--min-run-time",
                 "0.05", cwd=elsewhere, env=env)
    assert bench.returncode == 0, bench.stderr[-3000:]
    assert "ONNX Runtime is not installed" in bench.stdout and "onnxruntime-cpu" not in bench.stdout.split("installed")[1]
    for args, extra in ((("export", "--generator", teacher, "--out", elsewhere / "g.onnx"), "export"),
                        (("export", "--generator", teacher, "--out", elsewhere / "g.pte"), "mobile"),
                        (("bench", "--generator", teacher, "--runtimes", "onnxruntime-cpu"), "export"),
                        (("sweep", "--teacher", teacher, "--widths", "0.5", "--run-root", elsewhere / "sweeps"), "sweep")):
        result = _run(fresh_env, *args, cwd=elsewhere, env=env)
        assert result.returncode == 2, result.stderr
        assert f"needs the {extra} extra: pip install 'gancompress[{extra}]'" in result.stderr
        assert "Traceback" not in result.stderr
    assert not (elsewhere / "g.onnx").exists() and not (elsewhere / "sweeps").exists()  # refused before any work
