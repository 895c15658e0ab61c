"""What every frozen configuration dataclass shares: the JSON round trip with type checks, the
width scaling of per-block channels, and ConfigError. A config holds every number needed to rebuild
a network exactly (per-block channels included), so a pruned student is reconstructed from its
checkpoint metadata alone. The generator and discriminator configs live with their family
(`families/<name>/config.py`); the training config with the trainer."""

from __future__ import annotations

import dataclasses
import json
import math

from gancompress.errors import GancompressError


class ConfigError(GancompressError, ValueError):
    """A configuration value is out of range; the message names the field and the fix."""


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of `divisor` without going more than 10% below it
    (the torchvision MobileNet rule), never below `min_value` (default: `divisor`)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _has_type(value, annotation: str) -> bool:
    """Does a JSON value fit a field annotation (as written in this module)? Unknown ones pass."""
    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    def is_number(v):
        return (is_int(v) or isinstance(v, float)) and math.isfinite(v)

    if annotation == "int":
        return is_int(value)
    if annotation == "float":
        return is_number(value)
    if annotation == "float | None":
        return value is None or is_number(value)
    if annotation == "bool":
        return isinstance(value, bool)
    if annotation == "str":
        return isinstance(value, str)
    if annotation == "tuple[int, ...]":
        return isinstance(value, (list, tuple)) and all(is_int(v) for v in value)
    if annotation == "tuple[float, float]":
        return isinstance(value, (list, tuple)) and len(value) == 2 and all(is_number(v) for v in value)
    if annotation == "tuple[str, ...]":
        return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    return True


class SerializableConfig:
    """JSON round trip for frozen config dataclasses; `family` names the network family."""

    omit_when_default: tuple[str, ...] = ()  # fields added later: left out at their default (older records match)

    def to_dict(self) -> dict:
        return {"family": self.family, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                                          if not (f.name in self.omit_when_default and getattr(self, f.name) == f.default)}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict):
        data = {k: v for k, v in data.items() if k != "family"}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} fields {sorted(unknown)}")
        for f in dataclasses.fields(cls):  # JSON from a file: check types before any arithmetic on them
            if f.name in data and not _has_type(data[f.name], f.type):
                raise ConfigError(f"{cls.__name__}.{f.name} must be {f.type}, got {data[f.name]!r}")
        try:
            return cls(**data)
        except (TypeError, ValueError, OverflowError) as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(f"invalid {cls.__name__}: {err}") from None


class WidthMixin:
    """Generator configs with a per-block `channels` tuple."""

    def with_width(self, width: float, divisor: int = 8):
        """This architecture with every block scaled by `width` (0 < width <= 1), rounded with
        `make_divisible` but never above the original count."""
        if not 0 < width <= 1:
            raise ConfigError(f"width must satisfy 0 < width <= 1, got {width}")
        channels = tuple(min(c, make_divisible(c * width, divisor, min_value=min(c, divisor))) for c in self.channels)
        return dataclasses.replace(self, channels=channels)
