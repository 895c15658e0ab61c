"""gancompress: shrink image GAN generators into small, fast students, with honest metrics.

The public Python API (documented with examples in docs/api.md):

    import gancompress as gc
    teacher = gc.load_generator("dcgan-fmnist32")
    student, kept = gc.prune(teacher, width=0.5)
    student, run_dir = gc.distill(teacher, width=0.5, steps=200)
    record = gc.evaluate(student, "teacher:dcgan-fmnist32", n=500)
    run_dir = gc.compress("dcgan-fmnist32", width=0.25)
    run_dir = gc.kd("fmnist-cnn", method="hinton", width=0.25)   # classifier distillation

Names are imported on first use, so `import gancompress` (and the command line's start) stays light.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gancompress")  # one source: pyproject.toml, through the installed metadata
except PackageNotFoundError:  # a source tree on sys.path, not installed
    __version__ = "0.0.0+unknown"

_API = {
    "load_generator": "gancompress.api",
    "prune": "gancompress.api",
    "distill": "gancompress.api",
    "evaluate": "gancompress.api",
    "compress": "gancompress.api",
    "sweep": "gancompress.api",
    "export": "gancompress.api",
    "bench": "gancompress.api",
    "kd": "gancompress.classifiers.runs",
    "evaluate_classifier": "gancompress.classifiers.evaluation",
    "load_classifier": "gancompress.classifiers.checkpoints",
    "FAMILIES": "gancompress.families",
    "family_of": "gancompress.families",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        value = getattr(import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gancompress' has no attribute {name!r}")
