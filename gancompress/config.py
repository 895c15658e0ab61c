"""Frozen configuration dataclasses. A config holds every number needed to rebuild a network
exactly (per-block channels included), so a pruned student is reconstructed from its checkpoint
metadata alone."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

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


class _SerializableConfig:
    """JSON round trip for frozen config dataclasses; `family` names the network family."""

    def to_dict(self) -> dict:
        return {"family": self.family, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}

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


class _WidthMixin:
    """Generator configs with a per-block `channels` tuple."""

    def with_width(self, width: float, divisor: int = 8):
        """This architecture with every block scaled by `width` (0 < width <= 1), rounded with
        `make_divisible` but never above the original count."""
        if not 0 < width <= 1:
            raise ConfigError(f"width must satisfy 0 < width <= 1, got {width}")
        channels = tuple(min(c, make_divisible(c * width, divisor, min_value=min(c, divisor))) for c in self.channels)
        return dataclasses.replace(self, channels=channels)


@dataclass(frozen=True)
class DCGANConfig(_WidthMixin, _SerializableConfig):
    """PyTorch-tutorial DCGAN generator: a ConvTranspose2d(z -> 4x4) block, then one stride-2
    ConvTranspose2d + BatchNorm + ReLU block per doubling, and a stride-2 ConvTranspose2d to the
    output channels with tanh. `channels[i]` is the width of block i (resolution 4 * 2**i)."""

    z_dim: int = 100
    channels: tuple[int, ...] = (512, 256, 128, 64)
    out_channels: int = 3
    resolution: int = 64
    kernel_size: int = 4
    conv_bias: bool = False
    bn_eps: float = 1e-5

    family = "dcgan"

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if self.resolution < 8 or self.resolution & (self.resolution - 1):
            raise ConfigError(f"resolution must be a power of two >= 8, got {self.resolution}")
        expected = int(math.log2(self.resolution)) - 2
        if len(self.channels) != expected:
            raise ConfigError(
                f"a {self.resolution}px DCGAN needs {expected} block channel counts, got {len(self.channels)}: "
                f"{self.channels}"
            )
        if any(c < 1 for c in self.channels):
            raise ConfigError(f"every block needs at least one channel, got {self.channels}")
        if self.z_dim < 1 or self.out_channels not in (1, 3):
            raise ConfigError(f"need z_dim >= 1 and out_channels 1 or 3, got {self.z_dim}, {self.out_channels}")

    @property
    def block_names(self) -> tuple[str, ...]:
        return tuple(f"b{4 * 2**i}" for i in range(len(self.channels)))


@dataclass(frozen=True)
class StyleGAN2Config(_WidthMixin, _SerializableConfig):
    """StyleGAN2 generator (skip toRGB architecture). `channels[i]` is the width of the block at
    resolution 4 * 2**i (both its convolutions); `from_base` derives them the NVlabs way and
    `from_multiplier` the rosinality way."""

    resolution: int = 32
    channels: tuple[int, ...] = (512, 512, 512, 512)
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    out_channels: int = 3
    blur_taps: tuple[int, ...] = (1, 3, 3, 1)
    w_avg_beta: float = 0.995
    conv_clamp: float | None = None  # NVlabs clamps layer outputs to +-256 (set by its fp16 configs); None: off

    family = "stylegan2"

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "blur_taps", tuple(int(t) for t in self.blur_taps))
        if self.resolution < 4 or self.resolution > 1024 or self.resolution & (self.resolution - 1):
            raise ConfigError(f"resolution must be a power of two from 4 to 1024, got {self.resolution}")
        expected = int(math.log2(self.resolution)) - 1
        if len(self.channels) != expected:
            raise ConfigError(f"a {self.resolution}px StyleGAN2 needs {expected} block channel counts (4px up), "
                              f"got {len(self.channels)}: {self.channels}")
        if any(c < 1 for c in self.channels):
            raise ConfigError(f"every block needs at least one channel, got {self.channels}")
        if self.conv_clamp is not None and not self.conv_clamp > 0:
            raise ConfigError(f"conv_clamp must be positive or None, got {self.conv_clamp}")
        if min(self.z_dim, self.w_dim, self.mapping_layers) < 1 or self.out_channels not in (1, 3):
            raise ConfigError("need z_dim, w_dim, mapping_layers >= 1 and out_channels 1 or 3, got "
                              f"{self.z_dim}, {self.w_dim}, {self.mapping_layers}, {self.out_channels}")

    @property
    def block_names(self) -> tuple[str, ...]:
        return tuple(f"b{4 * 2**i}" for i in range(len(self.channels)))

    @classmethod
    def from_base(cls, resolution: int, channel_base: int = 16384, channel_max: int = 512, **kwargs):
        """NVlabs rule: the block at resolution r has min(channel_base // r, channel_max) channels."""
        n = int(math.log2(resolution)) - 1
        return cls(resolution=resolution, channels=tuple(min(channel_base // (4 * 2**i), channel_max) for i in range(n)),
                   **kwargs)

    @classmethod
    def from_multiplier(cls, resolution: int, channel_multiplier: int = 2, **kwargs):
        """rosinality rule: 512 up to 32px, then 256, 128, 64, 32, 16 times the multiplier."""
        table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
        n = int(math.log2(resolution)) - 1
        return cls(resolution=resolution, channels=tuple(
            table[4 * 2**i] * (channel_multiplier if 4 * 2**i >= 64 else 1) for i in range(n)), **kwargs)


@dataclass(frozen=True)
class DCGANDiscriminatorConfig(_SerializableConfig):
    """DCGAN discriminator: one stride-2 Conv2d(k=4) + LeakyReLU(0.2) block per halving, from
    `resolution` down to 4x4 (`channels[i]` is block i's width, narrowest first), then a 4x4
    convolution to one logit. No BatchNorm by default: it interacts badly with R1 and with the
    small batches of distillation."""

    in_channels: int = 3
    channels: tuple[int, ...] = (64, 128, 256, 512)
    resolution: int = 64
    norm: str = "none"  # "none" or "batch"

    family = "dcgan-d"

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        expected = int(math.log2(self.resolution)) - 2
        if self.resolution < 8 or self.resolution & (self.resolution - 1) or len(self.channels) != expected:
            raise ConfigError(
                f"a {self.resolution}px discriminator needs {expected} block widths, got {self.channels}"
            )
        if any(c < 1 for c in self.channels) or self.norm not in ("none", "batch"):
            raise ConfigError(f"need channels >= 1 and norm 'none' or 'batch', got {self.channels}, {self.norm!r}")

    @classmethod
    def for_generator(cls, generator_config: DCGANConfig, width: float = 1.0) -> "DCGANDiscriminatorConfig":
        """The discriminator mirroring a generator (its block widths reversed), scaled by `width`:
        a student-sized discriminator by default (a full-size one overpowers a small student)."""
        widths = tuple(max(8, make_divisible(c * width)) for c in reversed(generator_config.channels))
        return cls(in_channels=generator_config.out_channels, channels=widths, resolution=generator_config.resolution)


@dataclass(frozen=True)
class StyleGAN2DiscriminatorConfig(_SerializableConfig):
    """Residual StyleGAN2 discriminator. `channels[i]` is the width at resolution 4 * 2**i (the same
    order as the generator's), so the network runs fromRGB at `channels[-1]` down to a 4x4 head at
    `channels[0]` with minibatch standard deviation."""

    resolution: int = 32
    channels: tuple[int, ...] = (512, 512, 512, 512)
    in_channels: int = 3
    mbstd_group: int = 4
    mbstd_features: int = 1
    blur_taps: tuple[int, ...] = (1, 3, 3, 1)
    conv_clamp: float | None = None  # as in StyleGAN2Config

    family = "stylegan2-d"

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "blur_taps", tuple(int(t) for t in self.blur_taps))
        expected = int(math.log2(self.resolution)) - 1
        if self.resolution < 8 or self.resolution & (self.resolution - 1) or len(self.channels) != expected:
            raise ConfigError(f"a {self.resolution}px StyleGAN2 discriminator needs {expected} widths, got {self.channels}")
        if any(c < 1 for c in self.channels) or self.mbstd_group < 1 or self.mbstd_features < 1:
            raise ConfigError(f"need channels, mbstd_group and mbstd_features >= 1, got {self.channels}, "
                              f"{self.mbstd_group}, {self.mbstd_features}")

    @classmethod
    def for_generator(cls, generator_config: StyleGAN2Config, width: float = 1.0) -> "StyleGAN2DiscriminatorConfig":
        """The discriminator sized like a (student) generator, scaled by `width`, at least 8 wide."""
        return cls(resolution=generator_config.resolution, in_channels=generator_config.out_channels,
                   channels=tuple(max(8, make_divisible(c * width)) for c in generator_config.channels),
                   blur_taps=generator_config.blur_taps)
