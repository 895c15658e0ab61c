"""DCGAN generator and discriminator configs."""

from __future__ import annotations

import math
from dataclasses import dataclass

from gancompress.config import ConfigError, SerializableConfig, WidthMixin, make_divisible


@dataclass(frozen=True)
class DCGANConfig(WidthMixin, SerializableConfig):
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
    # Class-conditional (`gancompress train --conditional`): K > 0 classes, the one-hot class read
    # beside z by the first block. Without an explicit class the class is a function of z (class_of).
    num_classes: int = 0

    family = "dcgan"
    omit_when_default = ("num_classes",)  # unconditional files and records stay as they were

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
        if self.num_classes < 0 or self.num_classes == 1:
            raise ConfigError(f"num_classes must be 0 (unconditional) or at least 2, got {self.num_classes}")

    @property
    def block_names(self) -> tuple[str, ...]:
        return tuple(f"b{4 * 2**i}" for i in range(len(self.channels)))


@dataclass(frozen=True)
class DCGANDiscriminatorConfig(SerializableConfig):
    """DCGAN discriminator: one stride-2 Conv2d(k=4) + LeakyReLU(0.2) block per halving, from
    `resolution` down to 4x4 (`channels[i]` is block i's width, narrowest first), then a 4x4
    convolution to one logit. No BatchNorm by default: it interacts badly with R1 and with the
    small batches of distillation."""

    in_channels: int = 3
    channels: tuple[int, ...] = (64, 128, 256, 512)
    resolution: int = 64
    norm: str = "none"  # "none" or "batch"
    num_classes: int = 0  # K > 0: a projection discriminator (Miyato and Koyama 2018) of the class

    family = "dcgan-d"
    omit_when_default = ("num_classes",)

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        expected = int(math.log2(self.resolution)) - 2
        if self.resolution < 8 or self.resolution & (self.resolution - 1) or len(self.channels) != expected:
            raise ConfigError(
                f"a {self.resolution}px discriminator needs {expected} block widths, got {self.channels}"
            )
        if any(c < 1 for c in self.channels) or self.norm not in ("none", "batch"):
            raise ConfigError(f"need channels >= 1 and norm 'none' or 'batch', got {self.channels}, {self.norm!r}")
        if self.num_classes < 0 or self.num_classes == 1:
            raise ConfigError(f"num_classes must be 0 (unconditional) or at least 2, got {self.num_classes}")

    @classmethod
    def for_generator(cls, generator_config: DCGANConfig, width: float = 1.0) -> "DCGANDiscriminatorConfig":
        """The discriminator mirroring a generator (its block widths reversed), scaled by `width`:
        the fresh discriminator is student-sized by default (a fresh full-size one did worse in
        docs/recipes.md's ablation; the teacher's own, already trained, did better: d_init auto)."""
        widths = tuple(max(8, make_divisible(c * width)) for c in reversed(generator_config.channels))
        return cls(in_channels=generator_config.out_channels, channels=widths, resolution=generator_config.resolution,
                   num_classes=generator_config.num_classes)
