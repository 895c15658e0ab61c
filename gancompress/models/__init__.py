"""Generator families. `build_generator(config)` maps a config to its network through an explicit
table (no construction from class-name strings)."""

from gancompress.config import (ConfigError, DCGANConfig, DCGANDiscriminatorConfig, StyleGAN2Config,
                                StyleGAN2DiscriminatorConfig)
from gancompress.models.dcgan import DCGANGenerator
from gancompress.models.discriminator import DCGANDiscriminator
from gancompress.models.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator

CONFIG_CLASSES = {"dcgan": DCGANConfig, "stylegan2": StyleGAN2Config}
GENERATOR_CLASSES = {DCGANConfig: DCGANGenerator, StyleGAN2Config: StyleGAN2Generator}


def config_from_dict(data: dict):
    family = data.get("family")
    if family not in CONFIG_CLASSES:
        raise ConfigError(f"unknown generator family {family!r}; known: {sorted(CONFIG_CLASSES)}")
    return CONFIG_CLASSES[family].from_dict(data)


def build_generator(config):
    return GENERATOR_CLASSES[type(config)](config)


def build_discriminator_for(generator_config, width: float = 1.0):
    """The discriminator family that matches a generator, sized to it (times `width`)."""
    if isinstance(generator_config, StyleGAN2Config):
        return StyleGAN2Discriminator(StyleGAN2DiscriminatorConfig.for_generator(generator_config, width))
    return DCGANDiscriminator(DCGANDiscriminatorConfig.for_generator(generator_config, width))


__all__ = ["DCGANGenerator", "DCGANConfig", "StyleGAN2Generator", "StyleGAN2Config", "build_generator", "build_discriminator_for", "config_from_dict"]
