"""Named teachers (`pretrained/manifest.json`, shipped inside the package as
`gancompress.pretrained`) and the resolution of a generator spec: a name or a file."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch

from gancompress import assets
from gancompress.errors import GancompressError
from gancompress.io import load_generator, sha256_file


class TeacherError(GancompressError, ValueError):
    pass


def manifest() -> dict:
    text = resources.files("gancompress.pretrained").joinpath("manifest.json").read_text()
    return json.loads(text)


def teacher_path(name: str) -> Path:
    """Checkpoint file of a registered teacher (an asset, fetched if needed, or a shipped file)."""
    entries = manifest()
    if name not in entries:
        raise TeacherError(f"unknown teacher {name!r}; registered: {', '.join(entries)} (or pass a checkpoint path)")
    entry = entries[name]
    if "asset" in entry:
        return assets.resolve(entry["asset"])
    path = Path(str(resources.files("gancompress.pretrained").joinpath(entry["file"])))
    if entry.get("sha256") and sha256_file(path) != entry["sha256"]:
        raise TeacherError(f"teacher {name!r}: {path} does not match the manifest's sha256; reinstall gancompress")
    return path


def resolve_generator(spec: str, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Load a generator from a registered name or a file; return it with its identity
    (name, file, sha256) for records. Foreign DCGAN state_dicts (.pt/.pth/.tar) are imported."""
    path = Path(spec).expanduser()
    if path.exists():
        name = path.name
    elif spec in manifest():
        name, path = spec, teacher_path(spec)
    else:
        raise TeacherError(
            f"{spec!r} is neither a registered teacher ({', '.join(manifest())}) nor an existing file"
        )
    if path.suffix == ".safetensors":
        generator = load_generator(path, device)
    else:
        generator = _import_foreign(path).to(device)
    return generator, file_identity(name, path, generator)


def file_identity(name: str, path: Path, generator) -> dict:
    """What records say about a generator read from `path` (its sha256 also keys cached features)."""
    return {"name": name, "file": str(path), "sha256": sha256_file(path), "config": generator.config.to_dict()}


def _import_foreign(path: Path) -> torch.nn.Module:
    return read_foreign(path)["generator"][0]


def read_foreign(path: str | Path, allow_pickle: bool = False) -> dict:
    """A checkpoint saved by other code, read by the importer its format needs; the one place that
    decides which: NVlabs StyleGAN2 `.pkl` snapshots (restricted unpickler), rosinality StyleGAN2
    `.pt` files, or DCGAN state_dicts recognised by shape. Returns {"format", "generator":
    (generator, notes), "discriminator": the network or None}."""
    from gancompress.importers import dcgan_from_state_dict
    from gancompress.importers_nvlabs import import_nvlabs, is_plain_pickle
    from gancompress.importers_stylegan2 import import_rosinality, load_foreign_checkpoint, rosinality_generator_state

    path = Path(path)
    try:
        if is_plain_pickle(path):
            return {"format": "nvlabs", **import_nvlabs(path)}
        obj = load_foreign_checkpoint(path, allow_pickle=allow_pickle)
        if rosinality_generator_state(obj) is not None:
            return {"format": "rosinality", **import_rosinality(obj)}
        generator = dcgan_from_state_dict(obj)
        return {"format": "dcgan", "generator": (generator, {"format": "DCGAN state_dict"}), "discriminator": None}
    except GancompressError:
        raise
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as err:
        # e.g. load_state_dict's "size mismatch": tensors whose shapes no generator of that family has
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise TeacherError(f"{path}: its tensors do not form a generator gancompress can rebuild "
                           f"({type(err).__name__}: {first})") from None
