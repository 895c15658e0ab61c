"""Generator families behind one protocol.

A family is everything that differs between DCGAN and StyleGAN2: how a generator and a student-sized
discriminator are built from a config, how a teacher is pruned (its criteria and the slicing), which
extra inputs a teacher and its student must share (StyleGAN2's per-layer noise), how its cost is
split, which graphs it exports, which training terms and student initialisations it supports, and a
tiny config for tests. The rest of gancompress asks `family_of(x)` and calls the protocol; it never
tests which family it holds. Each family is a package here (config, networks, importers, its
protocol class in `__init__`); a third family is a new package and one line in `_registry`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from gancompress.config import ConfigError


class Family:
    """The protocol. Subclasses set the class attributes and implement the methods."""

    name: str = ""  # as in configs and checkpoints
    title: str = ""  # as in messages
    config_class: type = type(None)
    discriminator_config_class: type = type(None)
    criteria: tuple[str, ...] = ()  # pruning criteria, the default first (docs/recipes.md: how it was chosen)
    export_parts: tuple[str, ...] = ("full",)
    init_modes: tuple[str, ...] = ("inherit", "random")
    student_convs: tuple[str, ...] = ("full",)  # student convolution kinds (StudentPlan.conv), the default first
    training_terms: frozenset[str] = frozenset()  # TrainConfig weights only this family supports
    has_shared_inputs: bool = False  # extra inputs (noise) that teacher and student must share

    @property
    def default_criterion(self) -> str:
        """The family's default pruning criterion (the first of `criteria`)."""
        return self.criteria[0]

    # -- networks
    def build_generator(self, config) -> nn.Module:
        raise NotImplementedError

    def build_discriminator(self, generator_config, width: float = 1.0) -> nn.Module:
        """The discriminator sized like a (student) generator, scaled by `width`."""
        return self.discriminator_from_config(self.discriminator_config_class.for_generator(generator_config, width))

    def discriminator_from_config(self, config) -> nn.Module:
        """A discriminator of this family from its own config (a saved or imported one)."""
        raise NotImplementedError

    def scratch_config(self, resolution: int, channels=None, z_dim=None, out_channels: int = 3, **extra):
        """A config for training from scratch, with this family's defaults for what is not given."""
        raise NotImplementedError

    def tiny_config(self, **changes):
        """A config small enough for tests (a second or two per training step on a CPU)."""
        raise NotImplementedError

    # -- training (the generic loop is distillation/trainer.py; these are what a family adds to it)
    def initial_training_state(self, device) -> dict[str, torch.Tensor]:
        """Tensors the family's training terms carry from step to step (checkpointed with the run)."""
        return {}

    def training_phases(self, trainer, step: int) -> list:
        """Extra (name, phase) pairs run after the generator step at `step`; a phase maps step -> losses."""
        return []

    def generator_terms(self, trainer, z: torch.Tensor, step: int) -> dict:
        """Extra generator losses at `step` (added after the distillation terms, before the adversarial one)."""
        return {}

    # -- checkpoints other code wrote
    foreign_catch_all: bool = False  # its importer reads any tensor dict; asked last, its error is the answer

    def import_foreign(self, path: Path, load) -> dict | None:
        """This family's reading of a checkpoint other code wrote: {"format", "generator": (generator,
        notes), "discriminator": the network or None}, or None when the file is none of its formats.
        `load()` returns the file as torch.load read it (tensors only unless pickles were allowed),
        loaded once for all families."""
        return None

    # -- pruning
    def channel_importance(self, generator, criterion: str, seed: int = 0, n_samples: int | None = None) -> dict:
        """{channel space: importance per channel}; `n_samples`: the data-driven criteria's sample count
        (None: each criterion's own)."""
        raise NotImplementedError

    def prune(self, teacher, widths: tuple[int, ...], importance: dict) -> tuple[nn.Module, dict[str, list[int]]]:
        """A student with `widths` channels per block, sliced from the teacher by `importance`; the kept indices."""
        raise NotImplementedError

    # -- running a generator
    def shared_inputs(self, generator, batch: int, rng: torch.Generator, device) -> dict:
        """Keyword arguments of `generator(z, ...)` that teacher and student must share (drawn from `rng`)."""
        return {}

    def shared_inputs_per_image(self, generator, rngs: list[torch.Generator], device) -> dict:
        """The same, with image i's inputs drawn from rngs[i] (independent of the batch size)."""
        return {}

    def style_mixing_inputs(self, generator, batch: int, rng: torch.Generator, device) -> dict:
        raise ConfigError(f"style mixing needs a StyleGAN2 generator, not {self.title}")

    def use_fp16(self, generator, discriminator, blocks: int) -> None:
        """Run the `blocks` highest-resolution blocks of both networks in fp16 (NVlabs' training scheme)."""
        raise ConfigError(f"precision fp16 is NVlabs' StyleGAN2 scheme; use --precision bf16 for {self.title}")

    def with_convs(self, generator, conv: str, inherit: bool) -> nn.Module:
        """`generator` rebuilt with `conv` convolutions: its weights carried over as far as they go
        when `inherit`, else a fresh network of that architecture."""
        if conv != "full":
            raise ConfigError(f"{self.title} students have full convolutions only, not {conv!r}")
        return generator

    def copy_mapping(self, teacher, student, freeze: bool = False) -> None:
        raise ConfigError(f"init 'mapping-only' needs StyleGAN2 teacher and student; use inherit or random for {self.title}")

    # -- cost and export
    def cost_split(self, generator) -> dict:
        """Parameter counts of the parts that run at different rates (StyleGAN2: mapping, synthesis)."""
        return {}

    def graph(self, generator, part: str = "full", psi: float = 1.0) -> tuple[nn.Module, torch.Tensor, str, str]:
        """(module to export, example input, input name, output name) for `part`."""
        raise NotImplementedError

    def reference_module(self, generator, graph: nn.Module) -> nn.Module:
        """What an exported graph is verified against (the model as trained, where that is the same function)."""
        return graph

    def export_notes(self, part: str, psi: float) -> dict:
        """Fields of an export record that describe this family's graph (truncation, noise)."""
        return {"psi": None, "noise": None}


# CAGAN's content-aware importance (Liu et al. 2021, lychenyoko/content-aware-gan-compression), with
# the whole image as the content mask (we have no face parser, and our teachers are not all faces).
CAGAN_SAMPLES, CAGAN_BATCH, CAGAN_NOISE = 400, 10, 0.05


def salt_and_pepper(images: torch.Tensor, rng: torch.Generator, probability: float = CAGAN_NOISE) -> torch.Tensor:
    """A detached copy of `images` (in [-1, 1]) where each pixel, with `probability`, is set to +1 or -1
    (a fair coin per pixel, the same value in every channel)."""
    n, _, h, w = images.shape
    hit = torch.rand(n, 1, h, w, generator=rng) < probability
    value = torch.randint(0, 2, (n, 1, h, w), generator=rng).to(images.dtype) * 2 - 1
    return torch.where(hit.to(images.device), value.to(images.device), images.detach())


@torch.enable_grad()
def gradient_importance(generator, sample, consumers: dict, seed: int = 0, n_samples: int | None = None,
                        batch_size: int = CAGAN_BATCH) -> dict[str, torch.Tensor]:
    """CAGAN's criterion: {space: sum over batches of the mean |dL/dW| of the weight W that consumes the
    space's channels}, L = sum |salt_and_pepper(G(z)) - G(z)|, so a channel scores by how much the
    image it helps draw reacts to the noise. `sample(n, rng)` draws n images; `consumers` maps a space
    to (weight, the weight's axes other than its input-channel axis). The generator runs in eval mode
    (BatchNorm on its running statistics, as it generates) and is left as it was."""
    rng = torch.Generator().manual_seed(seed)
    n_samples = n_samples or CAGAN_SAMPLES
    weights = [weight for weight, _ in consumers.values()]
    flags = [weight.requires_grad for weight in weights]
    was_training = generator.training
    generator.eval()
    scores = {}
    try:
        for weight in weights:
            weight.requires_grad_(True)
        for start in range(0, n_samples, batch_size):
            image = sample(min(batch_size, n_samples - start), rng)
            for weight in weights:
                weight.grad = None
            (salt_and_pepper(image, rng) - image).abs().sum().backward()
            for space, (weight, dims) in consumers.items():
                scores[space] = scores.get(space, 0) + weight.grad.abs().mean(dims).double().cpu()
    finally:
        for weight, flag in zip(weights, flags):
            weight.grad = None
            weight.requires_grad_(flag)
        generator.zero_grad(set_to_none=True)
        generator.train(was_training)
    return {space: score.float() for space, score in scores.items()}


def _registry() -> dict[str, Family]:
    from gancompress.families.dcgan import DCGANFamily
    from gancompress.families.stylegan2 import StyleGAN2Family

    return {family.name: family for family in (DCGANFamily(), StyleGAN2Family())}


FAMILIES: dict[str, Family] = _registry()


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise ConfigError(f"unknown generator family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name]


def config_from_dict(data: dict):
    """The generator config a checkpoint's metadata describes, read by its family's config class."""
    return get_family(data.get("family")).config_class.from_dict(data)


def build_generator(config):
    return family_of(config).build_generator(config)


def discriminator_config_from_dict(data: dict):
    """The discriminator config a file's metadata describes ({"family": "dcgan-d" | "stylegan2-d", ...})."""
    for family in FAMILIES.values():
        if family.discriminator_config_class.family == data.get("family"):
            return family.discriminator_config_class.from_dict(data)
    known = sorted(f.discriminator_config_class.family for f in FAMILIES.values())
    raise ConfigError(f"unknown discriminator family {data.get('family')!r}; known: {known}")


def build_discriminator(config):
    """The discriminator a discriminator config describes, built by the family that owns the config."""
    for family in FAMILIES.values():
        if isinstance(config, family.discriminator_config_class):
            return family.discriminator_from_config(config)
    raise ConfigError(f"{type(config).__name__} is no family's discriminator config")


def build_discriminator_for(generator_config, width: float = 1.0):
    """The discriminator of a generator's family, sized to it (times `width`)."""
    return family_of(generator_config).build_discriminator(generator_config, width)


def family_of(thing) -> Family:
    """The family of a generator, a generator config (object or dict) or a checkpoint file."""
    if isinstance(thing, (str, os.PathLike)) and Path(thing).is_file():
        from gancompress.io import read_metadata

        thing = read_metadata(thing).get("config", {})
    if isinstance(thing, dict):
        return get_family(thing.get("family"))
    config = getattr(thing, "config", thing)
    return get_family(getattr(config, "family", None))
