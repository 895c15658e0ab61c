"""Networks of the generator families. `build_generator(config)` maps a config to its network through
the family registry (no construction from class-name strings)."""

from gancompress.config import ConfigError, DCGANConfig, StyleGAN2Config
from gancompress.models.dcgan import DCGANGenerator
from gancompress.models.stylegan2 import StyleGAN2Generator


def config_from_dict(data: dict):
    from gancompress.families import FAMILIES

    family = data.get("family")
    if family not in FAMILIES:
        raise ConfigError(f"unknown generator family {family!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[family].config_class.from_dict(data)


def build_generator(config):
    from gancompress.families import family_of

    return family_of(config).build_generator(config)


def build_discriminator_for(generator_config, width: float = 1.0):
    """The discriminator family that matches a generator, sized to it (times `width`)."""
    from gancompress.families import family_of

    return family_of(generator_config).build_discriminator(generator_config, width)


__all__ = ["DCGANGenerator", "DCGANConfig", "StyleGAN2Generator", "StyleGAN2Config", "build_generator",
           "build_discriminator_for", "config_from_dict"]
