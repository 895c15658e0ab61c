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


class ClassFromLatent(nn.Module):
    """A class-conditional generator's class when none is asked for: the bucket of z[:, 0] between
    the standard normal's K-quantiles, so classes are uniform for z ~ N(0, I), a teacher and its
    students agree on every latent, and the unconditional interface (evaluation, distillation,
    export) samples all classes. Comparisons only, so the exported graph needs no OneHot op."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        quantiles = torch.special.ndtri(torch.arange(1, num_classes, dtype=torch.float64) / num_classes).float()
        self.register_buffer("thresholds", quantiles, persistent=False)

    def classes(self, z: torch.Tensor) -> torch.Tensor:
        return (z.reshape(z.shape[0], -1)[:, :1] >= self.thresholds).sum(1)

    def move_into(self, z: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """z with z[:, 0] moved into the bucket of each asked class, at the same relative place inside
        it (unchanged where it lies there already). Training always shows the generator the class of
        z[:, 0], so it may read the class from either input: an asked class that z[:, 0] contradicts
        would get a blend of two classes."""
        flat = z.reshape(z.shape[0], -1)
        own = self.classes(z)
        place = (torch.special.ndtr(flat[:, 0].double()) * self.num_classes - own).clamp(1e-6, 1 - 1e-6)
        moved = torch.special.ndtri((classes.double() + place) / self.num_classes).to(z.dtype)
        first = torch.where(own == classes, flat[:, 0], moved)
        return torch.cat([first[:, None], flat[:, 1:]], 1).reshape(z.shape)

    def one_hot(self, z: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        if classes is None:  # one_hot(bucket) as differences of step functions
            above = (z.reshape(z.shape[0], -1)[:, :1] >= self.thresholds).to(z.dtype)
            ones = torch.ones_like(above[:, :1])
            return torch.cat([ones, above], 1) - torch.cat([above, torch.zeros_like(ones)], 1)
        return nn.functional.one_hot(classes.long(), self.num_classes).to(z.dtype)


class DCGANGenerator(nn.Module):
    """`forward(z)` maps z (N, z_dim) or (N, z_dim, 1, 1) to images in [-1, 1], NCHW.
    `forward(z, return_features=True)` also returns {block name: post-ReLU activation}. A
    class-conditional generator (config.num_classes K > 0) also takes `classes` (N,) in [0, K), and then
    moves z[:, 0] into their buckets; without them the class is `class_of(z)`."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = config
        self.z_dim = config.z_dim
        self.resolution = config.resolution
        self.out_channels = config.out_channels
        self.class_input = ClassFromLatent(config.num_classes) if config.num_classes else None
        in_channels = [config.z_dim + config.num_classes, *config.channels[:-1]]
        self.blocks = nn.ModuleDict(
            {
                name: DCGANBlock(cin, cout, config, first=(i == 0))
                for i, (name, cin, cout) in enumerate(zip(config.block_names, in_channels, config.channels))
            }
        )
        self.to_rgb = nn.ConvTranspose2d(
            config.channels[-1], config.out_channels, config.kernel_size, 2, 1, bias=config.conv_bias
        )

    def class_of(self, z: torch.Tensor) -> torch.Tensor | None:
        """The class each latent makes (None for an unconditional generator)."""
        return None if self.class_input is None else self.class_input.classes(z)

    def forward(self, z: torch.Tensor, return_features: bool = False, classes: torch.Tensor | None = None):
        x = z.reshape(z.shape[0], self.z_dim, 1, 1)
        if self.class_input is not None:
            if classes is not None:
                x = self.class_input.move_into(x, classes)
            x = torch.cat([x, self.class_input.one_hot(x, classes)[:, :, None, None]], 1)
        elif classes is not None:
            raise ValueError("this generator is unconditional: it takes no classes")
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
        self.class_input = ClassFromLatent(config.num_classes) if config.num_classes else None
        self.first = nn.Linear(config.z_dim + config.num_classes, config.channels[0] * k * k)
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
        z = z.reshape(-1, self.z_dim)
        if self.class_input is not None:  # the class of z, as the generator computes it
            z = torch.cat([z, self.class_input.one_hot(z)], 1)
        x = torch.relu(self.first(z)).reshape(-1, *self.first_shape)
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
        # Projection discriminator: the logit gains <embed(y), sum-pooled features>.
        self.embed = nn.Embedding(config.num_classes, cin) if config.num_classes else None

    def forward(self, images: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        """Images (N, C, R, R) in [-1, 1] (and for a conditional discriminator their classes (N,)) -> logits (N,)."""
        h = self.features(images)
        logits = self.head(h).flatten()
        if self.embed is None:
            return logits
        if classes is None:
            raise ValueError("a class-conditional discriminator needs the images' classes")
        return logits + (self.embed(classes.long()) * h.sum(dim=(2, 3))).sum(1)
