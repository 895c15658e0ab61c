"""Channel pruning: teacher -> student by importance-sorted slicing.

For every block the `k` most important output channels of the teacher are kept, in their original
order, and their weights are sliced into the student. The kept indices per block are returned and
stored with the student, so feature distillation can compare the teacher's kept channels directly.
Each family defines its criteria and its slicing (`gancompress.families.dcgan`, `.stylegan2`,
whose docstrings describe them); this module chooses the widths and dispatches.
"""

from __future__ import annotations

import torch

from gancompress.config import ConfigError
from gancompress.families import FAMILIES, Family, family_of

CRITERIA = FAMILIES["dcgan"].criteria  # kept for callers of the DCGAN-era name
STYLEGAN2_CRITERIA = FAMILIES["stylegan2"].criteria
ALL_CRITERIA = tuple(sorted({c for family in FAMILIES.values() for c in family.criteria}))  # of any family


def criterion_error(criterion: str, family: Family) -> ConfigError:
    what = (f"criterion {criterion!r} does not apply to {family.title}" if criterion in ALL_CRITERIA
            else f"unknown pruning criterion {criterion!r}")
    return ConfigError(f"{what}; choose one of {', '.join(family.criteria)}")


def resolve_criterion(generator, criterion: str | None) -> str:
    """`criterion`, or the generator family's default (its first) when None."""
    return criterion or family_of(generator).default_criterion


def channel_importance(generator, criterion: str | None = None, seed: int = 0,
                       n_samples: int | None = None) -> dict[str, torch.Tensor]:
    """{block name (or StyleGAN2 channel space): importance per channel} (higher = keep); `criterion`
    None: the family's default; `n_samples` for the data-driven criteria (None: each criterion's own,
    e.g. CAGAN's 400)."""
    return family_of(generator).channel_importance(generator, resolve_criterion(generator, criterion), seed, n_samples)


def student_channels(teacher, width: float | None = None, channels=None) -> tuple[int, ...]:
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


def prune_generator(teacher, width: float | None = None, channels=None, criterion: str | None = None, seed: int = 0,
                    importance: dict[str, torch.Tensor] | None = None):
    """(student, kept indices): a student with the teacher's most important channels per block
    (`criterion` None: the family's default)."""
    widths = student_channels(teacher, width, channels)
    importance = importance if importance is not None else channel_importance(teacher, criterion, seed)
    return family_of(teacher).prune(teacher, widths, importance)
