"""Checkpoints: one `.safetensors` file per network with its JSON config in the metadata, so
`load_generator(path)` rebuilds the network with no other input and no pickle. Every write is
atomic (temporary file in the same directory, then `os.replace`)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from gancompress.errors import GancompressError
from gancompress.models import build_generator, config_from_dict

FORMAT_VERSION = "1"


class CheckpointError(GancompressError, ValueError):
    """A checkpoint file cannot be used; the message says why and what to do."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to `path`; on success it replaces `path` in one step, so a
    reader never sees a half-written file and an interrupted write leaves the old file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of a file, remembered per (path, size, mtime) so records can cite big files cheaply."""
    st = os.stat(path)
    return _sha256_file(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _sha256_file(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


METADATA_KEY = "gancompress"


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    """Atomic safetensors write. `metadata` (any JSON value) goes under one key, as sorted JSON:
    safetensors writes several metadata keys in hash-map order, which would make the bytes (and
    the sha256 that records cite) differ between two writes of the same content."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    header = {METADATA_KEY: json.dumps(metadata or {}, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)


def save_generator(path: str | os.PathLike, generator: torch.nn.Module, extra_metadata: dict | None = None) -> Path:
    """Write `generator` (weights, buffers and config) to a `.safetensors` checkpoint."""
    metadata = {"format": FORMAT_VERSION, "kind": "generator", "config": generator.config.to_dict()}
    save_tensors(path, generator.state_dict(), {**(extra_metadata or {}), **metadata})
    return Path(path)


def read_metadata(path: str | os.PathLike) -> dict:
    """The gancompress metadata of a .safetensors file ({} for files written by other tools)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable .safetensors file ({err})") from err
    return json.loads(raw) if raw else {}


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild a generator from a gancompress checkpoint (in eval mode)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    metadata = read_metadata(path)
    if metadata.get("kind") != "generator" or "config" not in metadata:
        raise CheckpointError(
            f"{path}: not a gancompress generator checkpoint (no generator config in its metadata); "
            "pass a DCGAN state_dict as a .pt/.pth file instead, or save the network with save_generator"
        )
    config = config_from_dict(metadata["config"])
    generator = build_generator(config)
    state = load_file(str(path))
    missing, unexpected = generator.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: tensors do not match its config (missing {missing}, unexpected {unexpected})")
    return generator.to(device).eval()
