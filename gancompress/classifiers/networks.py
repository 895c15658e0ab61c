"""Image classifiers for distillation: a small VGG-style CNN family with a width knob, as the
generator families have one. A config holds every channel count, so a student is rebuilt from its
checkpoint's metadata alone, and `forward(x, return_features=True)` exposes the pooled features
that feature-level and adversarial distillation read."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gancompress.config import ConfigError, SerializableConfig, WidthMixin


@dataclass(frozen=True)
class ClassifierConfig(WidthMixin, SerializableConfig):
    """Stages of two 3x3 conv-BN-ReLU layers; every stage but the last halves the resolution (max
    pool), the last is averaged globally before the linear head. Input: images in [-1, 1]."""

    in_channels: int = 1
    num_classes: int = 10
    resolution: int = 32
    channels: tuple[int, ...] = (32, 64, 128)

    family = "classifier"

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if self.in_channels not in (1, 3):
            raise ConfigError(f"in_channels must be 1 or 3, got {self.in_channels}")
        if self.num_classes < 2:
            raise ConfigError(f"num_classes must be at least 2, got {self.num_classes}")
        if not self.channels or any(c < 1 for c in self.channels):
            raise ConfigError(f"channels must be positive counts, one per stage, got {self.channels}")
        if self.resolution % (2 ** (len(self.channels) - 1)) or self.resolution < 2 ** len(self.channels):
            raise ConfigError(f"resolution {self.resolution} must be divisible by 2^(stages - 1) = "
                              f"{2 ** (len(self.channels) - 1)} and leave at least 2 px at the last stage")

    @classmethod
    def from_dict(cls, data: dict) -> "ClassifierConfig":
        if data.get("family", cls.family) != cls.family:
            raise ConfigError(f"not a classifier config (family {data.get('family')!r})")
        return super().from_dict(data)


TEACHER_CONFIG = ClassifierConfig()  # the shipped Fashion-MNIST teacher's architecture


class Classifier(nn.Module):
    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        stages, previous = [], config.in_channels
        for index, width in enumerate(config.channels):
            layers = [nn.Conv2d(previous, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                      nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            if index < len(config.channels) - 1:
                layers.append(nn.MaxPool2d(2))
            stages.append(nn.Sequential(*layers))
            previous = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(previous, config.num_classes)

    @property
    def feature_dim(self) -> int:
        return self.config.channels[-1]

    def forward(self, x: torch.Tensor, return_features: bool = False):
        features = self.stages(x).mean(dim=(2, 3))
        logits = self.head(features)
        return (logits, features) if return_features else logits


def build_classifier(config: ClassifierConfig) -> Classifier:
    return Classifier(config)
