"""DCGAN networks: the generator (PyTorch-tutorial structure) with named blocks so that a teacher and
every student derived from it expose features under the same names, its lean inference graph, and
the discriminator (sized independently of the generator)."""

from __future__ import annotations

import torch
from torch import nn

from gancompress.families.dcgan.config import DCGANConfig, DCGANDiscriminatorConfig


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


class DCGANInferenceGenerator(nn.Module):
    """The same function as a DCGANGenerator in eval mode, in the leanest graph we know for
    deployment (ONNX export, latency): each BatchNorm's running statistics and affine folded into
    its transposed convolution, and the first block (a transposed convolution of a 1x1 input,
    stride 1, no padding) computed as one matrix product, so the graph starts with z -> Gemm ->
    Reshape instead of Reshape -> ConvTranspose -> BatchNormalization. Measured effect in
    docs/design-notes.md. Build it with `from_generator`; it has no training behaviour."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = config
        self.z_dim, self.resolution, self.out_channels = config.z_dim, config.resolution, config.out_channels
        k = config.kernel_size
        self.first_shape = (config.channels[0], k, k)
        self.first = nn.Linear(config.z_dim, config.channels[0] * k * k)
        self.convs = nn.ModuleList(
            nn.ConvTranspose2d(cin, cout, k, 2, 1) for cin, cout in zip(config.channels[:-1], config.channels[1:])
        )
        self.to_rgb = nn.ConvTranspose2d(config.channels[-1], config.out_channels, k, 2, 1, bias=config.conv_bias)

    @staticmethod
    def _folded(conv: nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight (in, out, k, k) and bias (out,) of conv followed by bn in eval mode."""
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        return conv.weight * scale[None, :, None, None], bn.bias + (bias - bn.running_mean) * scale

    @classmethod
    @torch.no_grad()
    def from_generator(cls, generator: DCGANGenerator) -> DCGANInferenceGenerator:
        model = cls(generator.config)
        blocks = list(generator.blocks.values())
        weight, bias = cls._folded(blocks[0].conv, blocks[0].bn)  # (z_dim, C0, k, k), (C0,)
        model.first.weight.copy_(weight.reshape(weight.shape[0], -1).t())
        spatial = weight.shape[2] * weight.shape[3]
        model.first.bias.copy_(bias.repeat_interleave(spatial))  # flattened as (C0, k, k)
        for conv, block in zip(model.convs, blocks[1:]):
            weight, bias = cls._folded(block.conv, block.bn)
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)
        model.to_rgb.load_state_dict(generator.to_rgb.state_dict())
        return model.eval().to(generator.to_rgb.weight.device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # -1 rather than z.shape[0]: the exported graph gets a constant shape, no Shape/Gather ops.
        x = torch.relu(self.first(z.reshape(-1, self.z_dim))).reshape(-1, *self.first_shape)
        for conv in self.convs:
            x = torch.relu(conv(x))
        return torch.tanh(self.to_rgb(x))


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
