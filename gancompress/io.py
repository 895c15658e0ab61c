"""Checkpoints: one `.safetensors` file per network with its JSON config in the metadata, so
`load_generator(path)` rebuilds the network with no other input and no pickle. Every write is
atomic (temporary file in the same directory, then `os.replace`)."""

from __future__ import annotations

import contextlib
import errno
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
from gancompress.families import build_generator, config_from_dict

FORMAT_VERSION = "1"


class CheckpointError(GancompressError, ValueError):
    """A checkpoint file cannot be used; the message says why and what to do."""


class WriteError(GancompressError, OSError):
    """A file cannot be written (no space, no permission, a file where a folder should be)."""


class DiskFullError(WriteError):
    pass


def _is_disk_full(err: BaseException) -> bool:
    """ENOSPC as the writers report it: OSError errno 28, safetensors' "StorageFull"/"No space left"
    and torch.save's "[enforce fail at inline_container.cc] ... unexpected pos" (its zip writer)."""
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return True
    text = str(err)
    return "No space left" in text or "StorageFull" in text or ("inline_container" in text and "unexpected pos" in text) \
        or "file write failed" in text


def check_writable(path: str | os.PathLike) -> None:
    """Raise WriteError unless `path` could be created: its nearest existing ancestor is a folder
    we can create files in. Nothing is left on disk (the probe file is removed)."""
    path = Path(path).expanduser()
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise WriteError(f"cannot write {path}: {ancestor} is a file, not a folder; choose another output path")
    if path.is_dir() and path.suffix != ".mlpackage":
        raise WriteError(f"cannot write {path}: it is a folder; name a file")
    try:
        fd, probe = tempfile.mkstemp(prefix=".gancompress-probe-", dir=ancestor)
    except OSError as err:
        raise WriteError(f"cannot write {path}: {ancestor}: {err.strerror}; choose another output path") from None
    os.close(fd)
    os.unlink(probe)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to `path`; on success it replaces `path` in one step, so a
    reader never sees a half-written file and an interrupted write leaves the old file intact.
    A full disk or an unwritable folder becomes a one-line WriteError naming the file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except (FileExistsError, NotADirectoryError):
        raise WriteError(f"cannot write {path}: a file stands where a folder of its path should be") from None
    except OSError as err:
        if _is_disk_full(err):
            raise DiskFullError(f"cannot write {path}: no space left on device") from None
        raise WriteError(f"cannot write {path}: {err.strerror or err}") from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if _is_disk_full(err):
            raise DiskFullError(f"cannot write {path}: no space left on device"
                                + ("; its previous version is intact" if path.exists() else "")) from err
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
    if not raw:
        return {}
    try:
        metadata = json.loads(raw)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: its gancompress metadata is not valid JSON ({err}); the file is damaged or "
                              "was not written by gancompress") from None
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: its gancompress metadata is a {type(metadata).__name__}, not an object")
    return metadata


def tensor_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a .safetensors file, read from its header (no data loaded)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable .safetensors file ({err})") from err


def shape_mismatches(expected: dict[str, tuple], found: dict[str, tuple]) -> str:
    """'' when the two name -> shape maps agree, else a short description of the first differences."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    differ = [f"{k} {found[k]} (config implies {expected[k]})" for k in expected if k in found and found[k] != expected[k]]
    parts = [f"missing {missing[:3]}" if missing else "", f"unexpected {unexpected[:3]}" if unexpected else "",
             f"shapes {'; '.join(differ[:3])}" if differ else ""]
    return ", ".join(p for p in parts if p)


def config_of(metadata_config, path, kind: str = "generator", read=config_from_dict):
    """The `kind` config stored in a checkpoint's metadata (read by `read`), or a CheckpointError saying what is wrong."""
    if not isinstance(metadata_config, dict):
        raise CheckpointError(f"{path}: the config in its metadata is {metadata_config!r}, not an object of fields")
    try:
        return read(metadata_config)
    except GancompressError as err:
        raise CheckpointError(f"{path}: invalid {kind} config in its metadata: {err}") from None


def save_discriminator(path: str | os.PathLike, discriminator: torch.nn.Module, extra_metadata: dict | None = None) -> Path:
    """Write a discriminator (weights and config) to a `.safetensors` file that load_discriminator reads."""
    metadata = {"format": FORMAT_VERSION, "kind": "discriminator", "config": discriminator.config.to_dict()}
    save_tensors(path, discriminator.state_dict(), {**(extra_metadata or {}), **metadata})
    return Path(path)


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild a generator from a gancompress checkpoint (in eval mode)."""
    return load_network(path, "generator", config_of, build_generator, device,
                         "pass a DCGAN state_dict as a .pt/.pth file instead, or save the network with save_generator")


def load_discriminator(path: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild a discriminator from a file save_discriminator wrote (`gancompress import`'s `-D` file,
    a trained teacher's), in eval mode."""
    from gancompress.families import build_discriminator, discriminator_config_from_dict

    def config(data, path):
        return config_of(data, path, "discriminator", discriminator_config_from_dict)

    return load_network(path, "discriminator", config, build_discriminator, device,
                         "import a foreign checkpoint with `gancompress import`, which writes its -D file")


def load_network(path, kind: str, read_config, build, device, fix: str) -> torch.nn.Module:
    """A network of `kind` from a gancompress `.safetensors`: its config read from the metadata by
    `read_config(data, path)`, checked against the file's tensor shapes, then built by `build`; `fix`
    ends the error for a file that is not such a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    metadata = read_metadata(path)
    if metadata.get("kind") != kind or "config" not in metadata:
        raise CheckpointError(f"{path}: not a gancompress {kind} checkpoint (no {kind} config in its metadata); {fix}")
    config = read_config(metadata["config"], path)
    # The config's tensor shapes are checked against the file's header before any real network is
    # built: a wrong config (say z_dim 1e9) must fail here, not by allocating terabytes.
    with torch.device("meta"):
        skeleton = build(config)
    problem = shape_mismatches({k: tuple(v.shape) for k, v in skeleton.state_dict().items()}, tensor_shapes(path))
    if problem:
        raise CheckpointError(f"{path}: its tensors do not match the config in its metadata ({problem})")
    network = build(config)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: tensor data cannot be read ({err}); the file is truncated or damaged") from None
    network.load_state_dict(state)
    return network.to(device).eval()
