"""Image sources as uint8 NCHW tensors: the MNIST / Fashion-MNIST assets, and image folders or
tar archives of images (any layout, found recursively, sorted by path)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from gancompress import assets
from gancompress.errors import GancompressError

DATASETS = {"mnist": ("mnist", ("train", "valid", "test")), "fashion-mnist": ("fashion-mnist", ("train", "test"))}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}


class DataError(GancompressError, ValueError):
    pass


def _split_tensors(name: str, split: str) -> tuple[str, dict[str, torch.Tensor]]:
    """(asset name, its converted tensors) of a registered dataset split, the names checked."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    asset, splits = DATASETS[name]
    if split not in splits:
        raise DataError(f"dataset {name!r} has splits {', '.join(splits)}, not {split!r}")
    return asset, load_file(str(assets.resolve(asset)))


def load_dataset(name: str, split: str = "test") -> torch.Tensor:
    """All images of a registered dataset split as uint8 (N, 1, 28, 28)."""
    asset, tensors = _split_tensors(name, split)
    key = f"{split}_images"
    if key not in tensors:
        raise DataError(f"asset {asset!r} file lacks {key}; it must hold uint8 {{split}}_images (N, 28, 28)")
    return tensors[key].unsqueeze(1)


def load_labels(name: str, split: str = "test") -> torch.Tensor:
    """The int64 class labels (N,) of a registered dataset split, in the order of `load_dataset`."""
    asset, tensors = _split_tensors(name, split)
    if f"{split}_labels" not in tensors:
        raise DataError(f"asset {asset!r} file lacks {split}_labels; fetch it again: gancompress assets fetch --force {asset}")
    return tensors[f"{split}_labels"].long()


def check_image_source(spec: str) -> None:
    """Fail now, with one line, if `spec` names no dataset split or image folder/tar (only a listing:
    no image is decoded), so a run never trains for an hour before finding out."""
    name, _, split = spec.partition(":")
    if name in DATASETS:
        if split and split not in DATASETS[name][1]:
            raise DataError(f"dataset {name!r} has splits {', '.join(DATASETS[name][1])}, not {split!r}")
        return
    path = Path(spec[len("folder:"):] if spec.startswith("folder:") else spec).expanduser()
    if not path.exists():
        raise DataError(f"images {spec!r}: not a dataset ({', '.join(DATASETS)}) or an existing folder/tar")
    ImageFiles.open(path)


@dataclass
class ImageFiles:
    """The images of a folder or a tar archive, in sorted path order."""

    root: Path
    names: list[str]

    @classmethod
    def open(cls, path: str | os.PathLike) -> "ImageFiles":
        root = Path(path).expanduser()
        if root.is_dir():
            names = sorted(
                str(p.relative_to(root)) for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
        elif root.is_file() and tarfile.is_tarfile(root):
            with tarfile.open(root) as tf:
                names = sorted(m.name for m in tf.getmembers() if m.isfile() and Path(m.name).suffix.lower() in IMAGE_SUFFIXES)
        else:
            raise DataError(f"{root}: not an image folder or a tar of images")
        if not names:
            raise DataError(f"{root}: contains no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return cls(root, names)

    def fingerprint(self) -> str:
        """Hash of the file list with sizes and modification times (content changes show up there)."""
        digest = hashlib.sha256()
        if self.root.is_dir():
            for name in self.names:
                st = (self.root / name).stat()
                digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        else:
            st = self.root.stat()
            digest.update(f"{self.root.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            digest.update("\n".join(self.names).encode())
        return digest.hexdigest()

    def load(self, indices, channels: int, size: int | None) -> torch.Tensor:
        """uint8 (len(indices), channels, H, W); images resized to `size` (bicubic) when given."""
        mode = "L" if channels == 1 else "RGB"
        if self.root.is_dir():
            raws = [open(self.root / self.names[i], "rb").read() for i in indices]
        else:
            with tarfile.open(self.root) as tf:
                raws = [tf.extractfile(self.names[i]).read() for i in indices]
        arrays = []
        for index, raw in zip(indices, raws):
            try:  # convert() decodes the whole file, so a truncated or corrupt image fails here
                image = Image.open(io.BytesIO(raw)).convert(mode)
            except (OSError, ValueError, Image.DecompressionBombError) as err:
                where = self.root / self.names[index] if self.root.is_dir() else f"{self.root}:{self.names[index]}"
                raise DataError(f"{where}: not a readable image ({err}); remove or replace that file") from None
            if size is not None and image.size != (size, size):
                image = image.resize((size, size), Image.BICUBIC)
            arrays.append(np.asarray(image).reshape(image.size[1], image.size[0], channels))
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise DataError(f"{self.root}: images differ in size {sorted(shapes)[:3]}; pass a resize size")
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
