"""Channel pruning: teacher -> student by importance-sorted slicing.

For every block the `k` most important output channels of the teacher are kept, in their original
order, and their weights are sliced into the student: the block's transposed convolution (output
channels, and input channels kept by the previous block), its BatchNorm parameters and running
statistics, and the next layer's input channels. The kept indices per block are returned and stored
with the student, so feature distillation can compare the teacher's kept channels directly.

Criteria (importance of output channel j of a block):
  l1      sum of |W[:, j]| of the block's convolution (filter magnitude; the default)
  bn      |gamma_j| of the block's BatchNorm scale
  random  a seeded random score (the baseline every criterion must beat)
  taylor  output sensitivity: the expected squared first-order change of the generated image when
          the channel's activation is zeroed, E_z,r[(sum_hw a_j * dL/da_j)^2] with L = <G(z), r>
          for random Gaussian r, so E_r gives ||J_j a_j||^2 (Molchanov et al. 2019, on the output)
"""

from __future__ import annotations

import dataclasses

import torch

from gancompress.config import ConfigError
from gancompress.models import DCGANGenerator, build_generator

CRITERIA = ("l1", "bn", "random", "taylor")


def _blocks(generator: DCGANGenerator):
    if not isinstance(generator, DCGANGenerator):
        raise ConfigError(f"pruning supports DCGAN generators, got {type(generator).__name__}")
    return generator.blocks


def channel_importance(
    generator: DCGANGenerator, criterion: str = "l1", seed: int = 0, n_samples: int = 256, batch_size: int = 64
) -> dict[str, torch.Tensor]:
    """{block name: importance per output channel} (higher = keep)."""
    blocks = _blocks(generator)
    if criterion == "l1":
        return {name: b.conv.weight.detach().abs().sum(dim=(0, 2, 3)) for name, b in blocks.items()}
    if criterion == "bn":
        return {name: b.bn.weight.detach().abs().clone() for name, b in blocks.items()}
    if criterion == "random":
        rng = torch.Generator().manual_seed(seed)
        return {name: torch.rand(b.bn.num_features, generator=rng) for name, b in blocks.items()}
    if criterion == "taylor":
        return _taylor_importance(generator, seed, n_samples, batch_size)
    raise ConfigError(f"unknown pruning criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")


@torch.enable_grad()
def _taylor_importance(generator, seed, n_samples, batch_size):
    device = next(generator.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    was_training = generator.training
    generator.eval()
    scores = {name: torch.zeros(b.bn.num_features, dtype=torch.float64) for name, b in generator.blocks.items()}
    for start in range(0, n_samples, batch_size):
        n = min(batch_size, n_samples - start)
        z = torch.randn(n, generator.z_dim, generator=rng).to(device)
        probe = torch.randn(n, generator.out_channels, generator.resolution, generator.resolution, generator=rng)
        image, feats = generator(z, return_features=True)
        for f in feats.values():
            f.retain_grad()
        (image * probe.to(device)).sum().backward()
        for name, f in feats.items():
            per_sample = (f * f.grad).sum(dim=(2, 3))  # (n, C): first-order output change along r
            scores[name] += per_sample.detach().double().pow(2).sum(0).cpu()
        generator.zero_grad(set_to_none=True)
    generator.train(was_training)
    return {name: (s / n_samples).float() for name, s in scores.items()}


def student_channels(teacher: DCGANGenerator, width: float | None = None, channels=None) -> tuple[int, ...]:
    """Per-block student widths from a width multiplier or an explicit list, validated."""
    if (width is None) == (channels is None):
        raise ConfigError("give exactly one of width or channels")
    if width is not None:
        return teacher.config.with_width(width).channels
    channels = tuple(int(c) for c in channels)
    t = teacher.config.channels
    if len(channels) != len(t):
        raise ConfigError(f"the teacher has {len(t)} blocks {t}; got {len(channels)} channel counts {channels}")
    bad = [i for i, (c, tc) in enumerate(zip(channels, t)) if not 1 <= c <= tc]
    if bad:
        raise ConfigError(f"block channels must be between 1 and the teacher's {t}; got {channels}")
    return channels


def prune_generator(
    teacher: DCGANGenerator, width: float | None = None, channels=None, criterion: str = "l1", seed: int = 0,
    importance: dict[str, torch.Tensor] | None = None,
) -> tuple[DCGANGenerator, dict[str, list[int]]]:
    """A student with the teacher's most important channels per block, and the kept indices."""
    blocks = _blocks(teacher)
    widths = student_channels(teacher, width, channels)
    importance = importance if importance is not None else channel_importance(teacher, criterion, seed)
    kept = {}
    for (name, _), k in zip(blocks.items(), widths):
        order = torch.argsort(importance[name], descending=True, stable=True)
        kept[name] = sorted(order[:k].tolist())
    with torch.no_grad():
        student = build_generator(dataclasses.replace(teacher.config, channels=widths)).to(next(teacher.parameters()).device)
        previous = None  # kept input channels of the current layer (None: all, i.e. z)
        for (name, t_block), s_block in zip(blocks.items(), student.blocks.values()):
            out_idx = torch.tensor(kept[name], device=t_block.conv.weight.device)
            weight = t_block.conv.weight if previous is None else t_block.conv.weight[previous]
            s_block.conv.weight.copy_(weight[:, out_idx])
            if t_block.conv.bias is not None:
                s_block.conv.bias.copy_(t_block.conv.bias[out_idx])
            for attr in ("weight", "bias", "running_mean", "running_var"):
                getattr(s_block.bn, attr).copy_(getattr(t_block.bn, attr)[out_idx])
            s_block.bn.num_batches_tracked.copy_(t_block.bn.num_batches_tracked)
            previous = out_idx
        student.to_rgb.weight.copy_(teacher.to_rgb.weight[previous])
        if teacher.to_rgb.bias is not None:
            student.to_rgb.bias.copy_(teacher.to_rgb.bias)
        student.train(teacher.training)
    return student, kept
