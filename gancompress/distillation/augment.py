"""DiffAugment (Zhao et al. 2020): differentiable colour, translation and cutout augmentations,
applied identically in kind (independently sampled per image) to real and fake images before the
discriminator, so it cannot overfit a small set of real images."""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def _per_image(draw, x, rows):
    """draw(m) for the images of x: m = len(x), or the rows (start, total) of a draw for `total`
    images when x is one micro-batch of a larger batch (gradient accumulation)."""
    n = x.shape[0]
    if rows is None:
        return draw(n)
    start, total = rows
    return draw(total)[start:start + n]


def _color(x, g, rows=None):
    def uniform(m):
        return torch.rand(m, 1, 1, 1, generator=g, device=x.device)

    x = x + (_per_image(uniform, x, rows) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_per_image(uniform, x, rows) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_per_image(uniform, x, rows) + 0.5) + mean


def _offsets(x, g, rows, low, high):
    return _per_image(lambda m: torch.randint(low, high, (m, 1, 1), generator=g, device=x.device), x, rows)


def _translation(x, g, rows=None, ratio=0.125):
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = _offsets(x, g, rows, -sh, sh + 1)
    tx = _offsets(x, g, rows, -sw, sw + 1)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gy = torch.clamp(gy.unsqueeze(0) + ty + 1, 0, h + 1)
    gx = torch.clamp(gx.unsqueeze(0) + tx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])  # zeros outside: translated-in pixels are black/grey
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, gy, gx].permute(0, 3, 1, 2)


def _cutout(x, g, rows=None, ratio=0.5):
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = _offsets(x, g, rows, 0, h + (1 - ch % 2))
    ox = _offsets(x, g, rows, 0, w + (1 - cw % 2))
    gy, gx = torch.meshgrid(torch.arange(ch, device=x.device), torch.arange(cw, device=x.device), indexing="ij")
    gy = torch.clamp(gy.unsqueeze(0) + oy - ch // 2, 0, h - 1)
    gx = torch.clamp(gx.unsqueeze(0) + ox - cw // 2, 0, w - 1)
    mask = torch.ones(n, h, w, device=x.device, dtype=x.dtype)
    mask[torch.arange(n, device=x.device).view(n, 1, 1), gy, gx] = 0
    return x * mask.unsqueeze(1)


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], generator: torch.Generator | None = None,
                 rows: tuple[int, int] | None = None) -> torch.Tensor:
    """x augmented per image. rows=(start, total): x is rows start.. of a batch of `total` images,
    and gets exactly the augmentations those rows would get in the whole batch."""
    for name in policy:
        x = _OPS[name](x, generator, rows)
    return x
