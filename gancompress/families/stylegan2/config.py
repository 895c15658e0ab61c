"""StyleGAN2 generator and discriminator configs."""

from __future__ import annotations

import math
from dataclasses import dataclass

from gancompress.config import ConfigError, SerializableConfig, WidthMixin, make_divisible


@dataclass(frozen=True)
class StyleGAN2Config(WidthMixin, SerializableConfig):
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
    conv: str = "full"  # "separable": the mobile student's pointwise + depthwise modulated convolutions

    family = "stylegan2"
    CONVS = ("full", "separable")
    # Left out of the record at its default, so the files of full-conv generators stay as they were.
    omit_when_default = ("conv",)

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
        if self.conv not in self.CONVS:
            raise ConfigError(f"conv must be one of {', '.join(self.CONVS)}, got {self.conv!r}")
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
class StyleGAN2DiscriminatorConfig(SerializableConfig):
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
