"""Optional extras: which importable modules each needs, and one error that names the extra.

A base install (`pip install gancompress`) runs compress, eval, prune, distill and train; export,
bench's ONNX Runtime and ExecuTorch columns, sweep and TensorBoard logging need an extra. Commands
call `require` before doing any work, so a missing extra costs the user nothing."""

from __future__ import annotations

import importlib.util

from gancompress.errors import GancompressError

# extra -> the modules it provides (import names), as declared in pyproject.toml
EXTRAS = {
    "export": ("onnx", "onnxruntime", "onnxscript"),
    "mobile": ("executorch", "coremltools"),
    "sweep": ("matplotlib", "onnx", "onnxruntime", "onnxscript"),
    "tensorboard": ("tensorboard",),
}


class ExtraMissing(GancompressError, ImportError):
    pass


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing(extra: str, modules: tuple[str, ...] | None = None) -> list[str]:
    """The modules of `extra` (or just `modules` of it) that cannot be imported here."""
    return [m for m in (modules or EXTRAS[extra]) if not _importable(m)]


def available(extra: str, modules: tuple[str, ...] | None = None) -> bool:
    return not missing(extra, modules)


def require(extra: str, what: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise one clear error when `what` cannot run because `extra` is not installed."""
    lacking = missing(extra, modules)
    if lacking:
        raise ExtraMissing(f"{what} needs the {extra} extra: pip install 'gancompress[{extra}]' "
                           f"(missing: {', '.join(lacking)})")
