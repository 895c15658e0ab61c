"""StyleGAN2 checkpoints of other code: rosinality/stylegan2-pytorch `.pt` (rosinality.py) and NVlabs
`.pkl` (nvlabs.py). Both discriminators load through `load_discriminator`, given each parameter's
foreign key."""

from __future__ import annotations

from gancompress.families.stylegan2.config import StyleGAN2DiscriminatorConfig
from gancompress.families.stylegan2.networks import StyleGAN2Discriminator

# Our discriminator's parameters in the order load_discriminator takes their sources.
D_BLOCK_KEYS = ("conv1.conv.weight", "conv1.act_bias", "conv2.conv.weight", "conv2.act_bias", "skip.conv.weight")
D_TAIL_KEYS = ("final_conv.conv.weight", "final_conv.act_bias", "final_linear.weight", "final_linear.bias",
               "head.weight", "head.bias")


def load_discriminator(config: StyleGAN2DiscriminatorConfig, state: dict, from_rgb: tuple[str, str],
                       blocks: list[tuple[str, ...]], tail: tuple[str, ...]) -> StyleGAN2Discriminator:
    """A StyleGAN2Discriminator loaded from a foreign state_dict, given the foreign key of each of our
    parameters: fromRGB (weight, bias), per residual block (from the image resolution down) the keys
    in D_BLOCK_KEYS order, and the head in D_TAIL_KEYS order."""
    ours = dict(zip(("from_rgb.conv.weight", "from_rgb.act_bias"), from_rgb))
    for j, keys in enumerate(blocks):
        ours |= {f"blocks.{j}.{key}": source for key, source in zip(D_BLOCK_KEYS, keys)}
    ours |= dict(zip(D_TAIL_KEYS, tail))
    discriminator = StyleGAN2Discriminator(config)
    discriminator.load_state_dict({key: state[source].float() for key, source in ours.items()})
    return discriminator.eval()
