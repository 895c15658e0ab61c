"""DCGAN discriminator family (sized independently of the generator)."""

from __future__ import annotations

import torch
from torch import nn

from gancompress.config import DCGANDiscriminatorConfig


class DCGANDiscriminator(nn.Module):
    def __init__(self, config: DCGANDiscriminatorConfig):
        super().__init__()
        self.config = config
        layers, cin = [], config.in_channels
        for i, cout in enumerate(config.channels):
            layers.append(nn.Conv2d(cin, cout, 4, 2, 1, bias=config.norm == "none" or i == 0))
            if config.norm == "batch" and i > 0:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(cin, 1, 4, 1, 0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, C, R, R) in [-1, 1] -> logits (N,)."""
        return self.head(self.features(images)).flatten()
