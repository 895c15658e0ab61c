"""The DCGAN family (PyTorch-tutorial generator): networks in `gancompress.families.dcgan.networks` and
`gancompress.families.dcgan.networks`; here its pruning, export graph and defaults.

Pruning criteria (importance of output channel j of a block):
  bn      |gamma_j| of the block's BatchNorm scale (the default: the best FID of the five after
          distillation, docs/recipes.md)
  l1      sum of |W[:, j]| of the block's convolution (filter magnitude; the default until 2026-12-07)
  random  a seeded random score (the baseline every criterion must beat)
  taylor  output sensitivity: the expected squared first-order change of the generated image when
          the channel's activation is zeroed, E_z,r[(sum_hw a_j * dL/da_j)^2] with L = <G(z), r>
          for random Gaussian r, so E_r gives ||J_j a_j||^2 (Molchanov et al. 2019, on the output)
  cagan   CAGAN's content-aware gradient score (Liu et al. 2021): the mean |gradient| of the weights
          that read channel j (the next block's transposed convolution, or to_rgb), summed over 400
          samples in batches of 10, of L = sum |salt-and-pepper(G(z)) - G(z)| with 5% of the pixels
          set to +-1; the whole image is the content mask (see `families.gradient_importance`)
A block's kept output channels are sliced through its transposed convolution (and the next layer's
input channels) and its BatchNorm parameters and running statistics.
"""

from __future__ import annotations

import dataclasses

import torch

from gancompress.families.dcgan.config import DCGANConfig, DCGANDiscriminatorConfig
from gancompress.families import Family, gradient_importance


class DCGANFamily(Family):
    name = "dcgan"
    title = "DCGAN"
    config_class = DCGANConfig
    discriminator_config_class = DCGANDiscriminatorConfig
    criteria = ("bn", "l1", "random", "taylor", "cagan")

    foreign_catch_all = True

    def import_foreign(self, path, load):
        from gancompress.families.dcgan.importers import dcgan_from_state_dict

        generator = dcgan_from_state_dict(load())
        return {"format": "dcgan", "generator": (generator, {"format": "DCGAN state_dict"}), "discriminator": None}

    def build_generator(self, config):
        from gancompress.families.dcgan.networks import DCGANGenerator

        return DCGANGenerator(config)

    def discriminator_from_config(self, config):
        from gancompress.families.dcgan.networks import DCGANDiscriminator

        return DCGANDiscriminator(config)

    def scratch_config(self, resolution: int, channels=None, z_dim=None, out_channels: int = 3, num_classes: int = 0,
                       **extra):
        return DCGANConfig(z_dim=z_dim or 100, channels=channels or (256, 128, 64), out_channels=out_channels,
                           resolution=resolution, num_classes=num_classes)

    def tiny_config(self, **changes):
        return DCGANConfig(**{"z_dim": 8, "channels": (16, 8, 8), "resolution": 32, **changes})

    def channel_importance(self, generator, criterion: str, seed: int = 0, n_samples: int | None = None) -> dict:
        blocks = generator.blocks
        if criterion == "l1":
            return {name: b.conv.weight.detach().abs().sum(dim=(0, 2, 3)) for name, b in blocks.items()}
        if criterion == "bn":
            return {name: b.bn.weight.detach().abs().clone() for name, b in blocks.items()}
        if criterion == "random":
            rng = torch.Generator().manual_seed(seed)
            return {name: torch.rand(b.bn.num_features, generator=rng) for name, b in blocks.items()}
        if criterion == "taylor":
            return _taylor_importance(generator, seed, n_samples or 256, batch_size=64)
        if criterion == "cagan":
            return _cagan_importance(generator, seed, n_samples)
        from gancompress.pruning import criterion_error

        raise criterion_error(criterion, self)

    def prune(self, teacher, widths, importance):
        blocks = teacher.blocks
        kept = {}
        for (name, _), k in zip(blocks.items(), widths):
            order = torch.argsort(importance[name], descending=True, stable=True)
            kept[name] = sorted(order[:k].tolist())
        with torch.no_grad():
            student = self.build_generator(dataclasses.replace(teacher.config, channels=widths))
            student = student.to(next(teacher.parameters()).device)
            previous = None  # kept input channels of the current layer (None: all, i.e. z)
            for (name, t_block), s_block in zip(blocks.items(), student.blocks.values()):
                out_idx = torch.tensor(kept[name], device=t_block.conv.weight.device)
                weight = t_block.conv.weight if previous is None else t_block.conv.weight[previous]
                s_block.conv.weight.copy_(weight[:, out_idx])
                if t_block.conv.bias is not None:
                    s_block.conv.bias.copy_(t_block.conv.bias[out_idx])
                for attr in ("weight", "bias", "running_mean", "running_var"):
                    getattr(s_block.bn, attr).copy_(getattr(t_block.bn, attr)[out_idx])
                s_block.bn.num_batches_tracked.copy_(t_block.bn.num_batches_tracked)
                previous = out_idx
            student.to_rgb.weight.copy_(teacher.to_rgb.weight[previous])
            if teacher.to_rgb.bias is not None:
                student.to_rgb.bias.copy_(teacher.to_rgb.bias)
            student.train(teacher.training)
        return student, kept

    def graph(self, generator, part: str = "full", psi: float = 1.0):
        from gancompress.exporting import ExportError
        from gancompress.families.dcgan.networks import DCGANInferenceGenerator

        if part != "full" or psi != 1:
            raise ExportError(f"a {self.name} generator has only the 'full' graph and no truncation")
        return DCGANInferenceGenerator.from_generator(generator.eval()), torch.randn(2, generator.z_dim), "z", "image"

    def reference_module(self, generator, graph):
        return generator  # the model as trained: the check covers the BatchNorm folding too


def _cagan_importance(generator, seed, n_samples):
    device = next(generator.parameters()).device
    names = list(generator.blocks)
    readers = [generator.blocks[name].conv for name in names[1:]] + [generator.to_rgb]
    # A ConvTranspose2d weight is (in, out, k, k): the channel read is axis 0.
    consumers = {name: (reader.weight, (1, 2, 3)) for name, reader in zip(names, readers)}
    return gradient_importance(generator, lambda n, rng: generator(torch.randn(n, generator.z_dim, generator=rng).to(device)),
                               consumers, seed, n_samples)


@torch.enable_grad()
def _taylor_importance(generator, seed, n_samples, batch_size):
    device = next(generator.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    was_training = generator.training
    generator.eval()
    scores = {name: torch.zeros(b.bn.num_features, dtype=torch.float64) for name, b in generator.blocks.items()}
    for start in range(0, n_samples, batch_size):
        n = min(batch_size, n_samples - start)
        z = torch.randn(n, generator.z_dim, generator=rng).to(device)
        probe = torch.randn(n, generator.out_channels, generator.resolution, generator.resolution, generator=rng)
        image, feats = generator(z, return_features=True)
        for f in feats.values():
            f.retain_grad()
        (image * probe.to(device)).sum().backward()
        for name, f in feats.items():
            per_sample = (f * f.grad).sum(dim=(2, 3))  # (n, C): first-order output change along r
            scores[name] += per_sample.detach().double().pow(2).sum(0).cpu()
        generator.zero_grad(set_to_none=True)
    generator.train(was_training)
    return {name: (s / n_samples).float() for name, s in scores.items()}


