"""Generator families. `build_generator(config)` maps a config to its network through an explicit
table (no construction from class-name strings)."""

from gancompress.config import ConfigError, DCGANConfig, StyleGAN2Config
from gancompress.models.dcgan import DCGANGenerator
from gancompress.models.stylegan2 import StyleGAN2Generator

CONFIG_CLASSES = {"dcgan": DCGANConfig, "stylegan2": StyleGAN2Config}
GENERATOR_CLASSES = {DCGANConfig: DCGANGenerator, StyleGAN2Config: StyleGAN2Generator}


def config_from_dict(data: dict):
    family = data.get("family")
    if family not in CONFIG_CLASSES:
        raise ConfigError(f"unknown generator family {family!r}; known: {sorted(CONFIG_CLASSES)}")
    return CONFIG_CLASSES[family].from_dict(data)


def build_generator(config):
    return GENERATOR_CLASSES[type(config)](config)


__all__ = ["DCGANGenerator", "DCGANConfig", "StyleGAN2Generator", "StyleGAN2Config", "build_generator", "config_from_dict"]
