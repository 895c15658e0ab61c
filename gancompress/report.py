"""Grids, plots and reports."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from gancompress.io import atomic_path


def save_grid(path: str | Path, rows: list[torch.Tensor]) -> Path:
    """One row per tensor of images in [-1, 1] (same count each; 1-channel shown as grey), PNG, atomic."""
    images = torch.cat([r.detach().float().cpu() for r in rows])
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    grid = make_grid(images, nrow=len(rows[0]), padding=2, normalize=True, value_range=(-1, 1), pad_value=1.0)
    path = Path(path)
    with atomic_path(path) as tmp:
        save_image(grid, tmp, format="png")
    return path
