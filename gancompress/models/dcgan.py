"""DCGAN generator (PyTorch-tutorial structure) with named blocks so that a teacher and every
student derived from it expose features under the same names."""

from __future__ import annotations

import torch
from torch import nn

from gancompress.config import DCGANConfig


class DCGANBlock(nn.Module):
    """ConvTranspose2d + BatchNorm2d + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, config: DCGANConfig, first: bool):
        super().__init__()
        stride, padding = (1, 0) if first else (2, 1)
        self.conv = nn.ConvTranspose2d(
            in_channels, out_channels, config.kernel_size, stride, padding, bias=config.conv_bias
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=config.bn_eps)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class DCGANGenerator(nn.Module):
    """`forward(z)` maps z (N, z_dim) or (N, z_dim, 1, 1) to images in [-1, 1], NCHW.
    `forward(z, return_features=True)` also returns {block name: post-ReLU activation}."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = config
        self.z_dim = config.z_dim
        self.resolution = config.resolution
        self.out_channels = config.out_channels
        in_channels = [config.z_dim, *config.channels[:-1]]
        self.blocks = nn.ModuleDict(
            {
                name: DCGANBlock(cin, cout, config, first=(i == 0))
                for i, (name, cin, cout) in enumerate(zip(config.block_names, in_channels, config.channels))
            }
        )
        self.to_rgb = nn.ConvTranspose2d(
            config.channels[-1], config.out_channels, config.kernel_size, 2, 1, bias=config.conv_bias
        )

    def forward(self, z: torch.Tensor, return_features: bool = False):
        x = z.reshape(z.shape[0], self.z_dim, 1, 1)
        features = {}
        for name, block in self.blocks.items():
            x = block(x)
            if return_features:
                features[name] = x
        image = torch.tanh(self.to_rgb(x))
        return (image, features) if return_features else image
