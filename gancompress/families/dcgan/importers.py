"""Import DCGAN generators saved by other code.

DCGAN `state_dict`s are recognised by tensor shapes and order, not key names: a chain of
ConvTranspose2d weights (in, out, k, k), each but the last followed by a BatchNorm2d group
(weight, bias, running_mean, running_var), optionally wrapped in a dict."""

from __future__ import annotations

import math
import re
from collections import OrderedDict

import torch

from gancompress.families.dcgan.config import DCGANConfig
from gancompress.families.dcgan.networks import DCGANGenerator
from gancompress.foreign import ForeignCheckpointError, unwrap_state_dict

BN_LEAVES = ("weight", "bias", "running_mean", "running_var")


def _natural_key(text: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _group_by_module(state: "OrderedDict[str, torch.Tensor]") -> list[tuple[str, dict[str, torch.Tensor]]]:
    groups: "OrderedDict[str, dict]" = OrderedDict()
    for key, tensor in state.items():
        prefix, _, leaf = key.rpartition(".")
        groups.setdefault(prefix, {})[leaf] = tensor
    return list(groups.items())


def _classify(groups) -> list[tuple[str, str, dict]]:
    layers = []
    for prefix, leaves in groups:
        weight = leaves.get("weight")
        if weight is not None and weight.dim() == 4:
            layers.append(("conv", prefix, leaves))
        elif all(k in leaves for k in ("running_mean", "running_var")):
            layers.append(("bn", prefix, leaves))
        else:
            shapes = {k: tuple(v.shape) for k, v in leaves.items()}
            raise ForeignCheckpointError(f"module {prefix or '<root>'!r} is neither a conv nor a BatchNorm: {shapes}")
    return layers


def _describe(layers) -> str:
    return ", ".join(
        f"{kind}:{prefix}{tuple(leaves['weight'].shape) if 'weight' in leaves else ''}" for kind, prefix, leaves in layers
    )


def _dcgan_layers(state):
    """Conv/BN layers in network order: the file's own order if it forms a valid chain, else the
    natural sort of module names (for dicts whose keys were re-sorted)."""
    candidates = [_group_by_module(state)]
    candidates.append(sorted(candidates[0], key=lambda g: _natural_key(g[0])))
    problem = ""
    for groups in candidates:
        layers = _classify(groups)
        problem = _check_chain(layers)
        if not problem:
            return layers
    raise ForeignCheckpointError(f"not a DCGAN generator: {problem}. Found: {_describe(layers)}")


def _check_chain(layers) -> str:
    kinds = [k for k, _, _ in layers]
    if len(kinds) < 3 or kinds[0] != "conv" or kinds[-1] != "conv":
        return "expected conv, (BatchNorm, conv)*"
    expected = ["conv" if i % 2 == 0 else "bn" for i in range(len(kinds))]
    if kinds != expected:
        return f"layer order {kinds} is not conv, BatchNorm, conv, ..."
    convs = [leaves["weight"] for kind, _, leaves in layers if kind == "conv"]
    bns = [leaves for kind, _, leaves in layers if kind == "bn"]
    for i, (w, bn) in enumerate(zip(convs, bns)):
        if bn["running_mean"].numel() != w.shape[1]:
            return f"BatchNorm {i} has {bn['running_mean'].numel()} channels but conv {i} outputs {w.shape[1]}"
        if convs[i + 1].shape[0] != w.shape[1]:
            return f"conv {i + 1} takes {convs[i + 1].shape[0]} channels but conv {i} outputs {w.shape[1]}"
    kernels = {tuple(w.shape[2:]) for w in convs}
    if len(kernels) != 1 or next(iter(kernels))[0] != next(iter(kernels))[1]:
        return f"convs need one square kernel size, found {sorted(kernels)}"
    return ""


def dcgan_from_state_dict(obj) -> DCGANGenerator:
    """Build a DCGANGenerator from a foreign DCGAN generator state_dict (inferring z_dim, per-block
    channels, output channels and resolution) and load its weights."""
    state = unwrap_state_dict(obj)
    state = OrderedDict((k, v) for k, v in state.items() if not k.endswith("num_batches_tracked"))
    layers = _dcgan_layers(state)
    convs = [leaves for kind, _, leaves in layers if kind == "conv"]
    bns = [leaves for kind, _, leaves in layers if kind == "bn"]
    has_bias = {"bias" in c for c in convs}
    if len(has_bias) != 1:
        raise ForeignCheckpointError("some convs have a bias and some do not; gancompress DCGANs use one rule for all")
    channels = tuple(c["weight"].shape[1] for c in convs[:-1])
    config = DCGANConfig(
        z_dim=convs[0]["weight"].shape[0],
        channels=channels,
        out_channels=convs[-1]["weight"].shape[1],
        resolution=4 * 2 ** len(channels),
        kernel_size=convs[0]["weight"].shape[-1],
        conv_bias=has_bias.pop(),
    )
    if config.resolution > 1024 or not math.log2(config.resolution).is_integer():
        raise ForeignCheckpointError(f"inferred resolution {config.resolution} is not supported")
    generator = DCGANGenerator(config)
    mapped = {}
    convs_dst = [block.conv for block in generator.blocks.values()] + [generator.to_rgb]
    bns_dst = [block.bn for block in generator.blocks.values()]
    for src, dst in zip(convs, convs_dst):
        mapped.update({f"{_name(generator, dst)}.{k}": src[k] for k in ("weight", "bias") if k in src})
    for src, dst in zip(bns, bns_dst):
        mapped.update({f"{_name(generator, dst)}.{k}": src[k] for k in BN_LEAVES if k in src})
    missing, unexpected = generator.load_state_dict(mapped, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ForeignCheckpointError(f"could not map every tensor (missing {missing}, unexpected {unexpected})")
    return generator.eval()


def _name(root: torch.nn.Module, module: torch.nn.Module) -> str:
    return next(name for name, m in root.named_modules() if m is module)
