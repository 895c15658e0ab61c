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
    return shipped_file(name, entry)


def shipped_file(name: str, entry: dict) -> Path:
    """A file shipped in gancompress.pretrained (a teacher, its discriminator, a classifier), checked
    against its manifest entry's sha256."""
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


def discriminator_sibling(generator_path: str | Path) -> Path:
    """Where a generator file's discriminator lies: `X-G.safetensors` -> `X-D.safetensors` (what
    `gancompress import` writes), any other `X.safetensors` -> `X-D.safetensors` (what `train` writes)."""
    path = Path(generator_path)
    return path.with_name(path.stem.removesuffix("-G") + "-D.safetensors")


def resolve_discriminator(teacher_spec: str, d_spec: str | None = None,
                          device: str | torch.device = "cpu") -> tuple[torch.nn.Module | None, dict | None]:
    """The teacher's discriminator and its identity (file, sha256), or (None, None) when it has none:
    `d_spec` when given (a gancompress -D file, or a foreign checkpoint that carries one), else the
    registered teacher's shipped one, else the one a foreign teacher file carries, else the
    `-D.safetensors` sibling of a gancompress teacher file."""
    from gancompress.io import load_discriminator

    if d_spec is not None:
        path = Path(d_spec).expanduser()
        if not path.is_file():
            raise TeacherError(f"--teacher-d {d_spec}: no such file")
        if path.suffix == ".safetensors":
            network = load_discriminator(path, device)
        else:
            network = read_foreign(path)["discriminator"]
            if network is None:
                raise TeacherError(f"--teacher-d {d_spec}: the file carries no discriminator that gancompress reads")
        return network.to(device).eval(), {"file": str(path), "sha256": sha256_file(path)}
    path = Path(teacher_spec).expanduser()
    if not path.exists() and teacher_spec not in manifest():
        raise TeacherError(f"{teacher_spec!r} is neither a registered teacher ({', '.join(manifest())}) nor an existing file")
    if not path.exists():
        entry = manifest()[teacher_spec].get("discriminator")
        if entry is None:
            return None, None
        path = shipped_file(teacher_spec, entry)
        return load_discriminator(path, device), {"file": str(path), "sha256": entry["sha256"]}
    if path.suffix != ".safetensors":
        network = read_foreign(path)["discriminator"]
        return (network.to(device).eval(), {"file": str(path), "sha256": sha256_file(path)}) if network else (None, None)
    sibling = discriminator_sibling(path)
    if not sibling.is_file():
        return None, None
    return load_discriminator(sibling, device), {"file": str(sibling), "sha256": sha256_file(sibling)}


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
