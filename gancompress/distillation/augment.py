"""DiffAugment (Zhao et al. 2020): differentiable colour, translation and cutout augmentations,
applied identically in kind (independently sampled per image) to real and fake images before the
discriminator, so it cannot overfit a small set of real images."""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def _color(x, g):
    n = x.shape[0]
    x = x + (torch.rand(n, 1, 1, 1, generator=g, device=x.device) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(n, 1, 1, 1, generator=g, device=x.device) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, generator=g, device=x.device) + 0.5) + mean


def _translation(x, g, ratio=0.125):
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (n, 1, 1), generator=g, device=x.device)
    tx = torch.randint(-sw, sw + 1, (n, 1, 1), generator=g, device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gy = torch.clamp(gy.unsqueeze(0) + ty + 1, 0, h + 1)
    gx = torch.clamp(gx.unsqueeze(0) + tx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])  # zeros outside: translated-in pixels are black/grey
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, gy, gx].permute(0, 3, 1, 2)


def _cutout(x, g, ratio=0.5):
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=g, device=x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=g, device=x.device)
    gy, gx = torch.meshgrid(torch.arange(ch, device=x.device), torch.arange(cw, device=x.device), indexing="ij")
    gy = torch.clamp(gy.unsqueeze(0) + oy - ch // 2, 0, h - 1)
    gx = torch.clamp(gx.unsqueeze(0) + ox - cw // 2, 0, w - 1)
    mask = torch.ones(n, h, w, device=x.device, dtype=x.dtype)
    mask[torch.arange(n, device=x.device).view(n, 1, 1), gy, gx] = 0
    return x * mask.unsqueeze(1)


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    for name in policy:
        x = _OPS[name](x, generator)
    return x
