"""The teacher manifest must be found from a regular (non-editable) install too."""

import subprocess
import sys
from pathlib import Path

from gancompress.teachers import manifest

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_from_this_install():
    assert manifest()["dcgan-face64"]["params"] == 3_576_704


def test_manifest_from_a_built_wheel(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(ROOT)], check=True)
    wheel = next((tmp_path / "dist").glob("gancompress-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(tmp_path / "site"), str(wheel)], check=True)
    code = ("import gancompress, gancompress.teachers as t; "
            "print(gancompress.__file__); print(sorted(t.manifest())); "
            "print(t.teacher_path('dcgan-fmnist32'))")
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r}); {code}"],
                         capture_output=True, text=True, cwd=tmp_path, check=True).stdout.splitlines()
    assert out[0].startswith(str(tmp_path / "site"))
    assert out[1] == str(sorted(manifest()))
    assert out[2].startswith(str(tmp_path / "site"))  # the shipped teacher file, sha256-checked on load
