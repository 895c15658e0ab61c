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
    decides which, by asking each family (StyleGAN2: NVlabs `.pkl` snapshots through a restricted
    unpickler, rosinality `.pt` files; DCGAN, asked last: state_dicts recognised by shape). Returns
    {"format", "generator": (generator, notes), "discriminator": the network or None}."""
    from gancompress.families import FAMILIES
    from gancompress.foreign import load_foreign_checkpoint

    path = Path(path)
    loaded = []

    def load():
        if not loaded:
            loaded.append(load_foreign_checkpoint(path, allow_pickle=allow_pickle))
        return loaded[0]

    try:
        for family in sorted(FAMILIES.values(), key=lambda f: f.foreign_catch_all):
            imported = family.import_foreign(path, load)
            if imported is not None:
                return imported
        raise TeacherError(f"{path}: no generator family reads this file")  # unreachable while DCGAN catches all
    except GancompressError:
        raise
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as err:
        # e.g. load_state_dict's "size mismatch": tensors whose shapes no generator of that family has
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise TeacherError(f"{path}: its tensors do not form a generator gancompress can rebuild "
                           f"({type(err).__name__}: {first})") from None
