"""Channel pruning: teacher -> student by importance-sorted slicing.

For every block the `k` most important output channels of the teacher are kept, in their original
order, and their weights are sliced into the student: the block's transposed convolution (output
channels, and input channels kept by the previous block), its BatchNorm parameters and running
statistics, and the next layer's input channels. The kept indices per block are returned and stored
with the student, so feature distillation can compare the teacher's kept channels directly.

Criteria (importance of output channel j of a block):
  l1      sum of |W[:, j]| of the block's convolution (filter magnitude; the default)
  bn      |gamma_j| of the block's BatchNorm scale
  random  a seeded random score (the baseline every criterion must beat)
  taylor  output sensitivity: the expected squared first-order change of the generated image when
          the channel's activation is zeroed, E_z,r[(sum_hw a_j * dL/da_j)^2] with L = <G(z), r>
          for random Gaussian r, so E_r gives ||J_j a_j||^2 (Molchanov et al. 2019, on the output)

StyleGAN2 generators are pruned per channel space: the constant input (`b4_const`), each upsampling
conv's output (`b<r>_up`) and each block's output (`b<r>`, the feature distillation compares). A
space's channels are sliced consistently through the convolution that produces them (output
channels and bias) and every modulated convolution that consumes them (input channels and the
style affine's rows); mapping network, noise strengths, w average and toRGB biases are copied.
  l1      input-side magnitude in the consumers, sum |W[:, j]| * E_w|s_j| with s the style of the
          consuming modulated conv over sampled w (the effective weight is W * s; Anycost GAN sorts
          channels by magnitude the same way)
  random  seeded random scores
  diversity  how much a channel's activation moves when w moves along its top principal directions:
          E_w,j ||d a_c(w + t v_j) / dt||^2 over the top 8 principal directions v_j of sampled w
          (central differences at t = +-0.5 standard deviations; the same noise throughout). Channels
          that carry the latent's variation are kept, as DCP's diversity-aware pruning argues. The
          constant input does not depend on w, so its space falls back to the l1 score.
"""

from __future__ import annotations

import dataclasses

import torch

from gancompress.config import ConfigError
from gancompress.models import DCGANGenerator, StyleGAN2Generator, build_generator

CRITERIA = ("l1", "bn", "random", "taylor")
STYLEGAN2_CRITERIA = ("l1", "random", "diversity")


def _blocks(generator: DCGANGenerator):
    if not isinstance(generator, DCGANGenerator):
        raise ConfigError(f"pruning supports DCGAN generators, got {type(generator).__name__}")
    return generator.blocks


def channel_importance(
    generator: DCGANGenerator, criterion: str = "l1", seed: int = 0, n_samples: int = 256, batch_size: int = 64
) -> dict[str, torch.Tensor]:
    """{block name (or StyleGAN2 channel space): importance per channel} (higher = keep)."""
    if isinstance(generator, StyleGAN2Generator):
        return _stylegan2_importance(generator, criterion, seed, n_samples)
    blocks = _blocks(generator)
    if criterion == "l1":
        return {name: b.conv.weight.detach().abs().sum(dim=(0, 2, 3)) for name, b in blocks.items()}
    if criterion == "bn":
        return {name: b.bn.weight.detach().abs().clone() for name, b in blocks.items()}
    if criterion == "random":
        rng = torch.Generator().manual_seed(seed)
        return {name: torch.rand(b.bn.num_features, generator=rng) for name, b in blocks.items()}
    if criterion == "taylor":
        return _taylor_importance(generator, seed, n_samples, batch_size)
    raise _criterion_error(criterion, "DCGAN", CRITERIA)


def _criterion_error(criterion: str, family: str, choices) -> ConfigError:
    known = set(CRITERIA) | set(STYLEGAN2_CRITERIA)
    what = f"criterion {criterion!r} does not apply to {family}" if criterion in known else \
        f"unknown pruning criterion {criterion!r}"
    return ConfigError(f"{what}; choose one of {', '.join(choices)}")


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


def student_channels(teacher: DCGANGenerator, width: float | None = None, channels=None) -> tuple[int, ...]:
    """Per-block student widths from a width multiplier or an explicit list, validated."""
    if (width is None) == (channels is None):
        raise ConfigError("give exactly one of width or channels")
    if width is not None:
        return teacher.config.with_width(width).channels
    channels = tuple(int(c) for c in channels)
    t = teacher.config.channels
    if len(channels) != len(t):
        raise ConfigError(f"the teacher has {len(t)} blocks {t}; got {len(channels)} channel counts {channels}")
    bad = [i for i, (c, tc) in enumerate(zip(channels, t)) if not 1 <= c <= tc]
    if bad:
        raise ConfigError(f"block channels must be between 1 and the teacher's {t}; got {channels}")
    return channels


def prune_generator(
    teacher: DCGANGenerator, width: float | None = None, channels=None, criterion: str = "l1", seed: int = 0,
    importance: dict[str, torch.Tensor] | None = None,
) -> tuple[DCGANGenerator, dict[str, list[int]]]:
    """A student with the teacher's most important channels per block, and the kept indices."""
    widths = student_channels(teacher, width, channels)
    importance = importance if importance is not None else channel_importance(teacher, criterion, seed)
    if isinstance(teacher, StyleGAN2Generator):
        return _prune_stylegan2(teacher, widths, importance)
    blocks = _blocks(teacher)
    kept = {}
    for (name, _), k in zip(blocks.items(), widths):
        order = torch.argsort(importance[name], descending=True, stable=True)
        kept[name] = sorted(order[:k].tolist())
    with torch.no_grad():
        student = build_generator(dataclasses.replace(teacher.config, channels=widths)).to(next(teacher.parameters()).device)
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


# ---------------------------------------------------------------------------------------- StyleGAN2


def stylegan2_spaces(generator: StyleGAN2Generator) -> dict[str, tuple[str | None, list[str]]]:
    """{channel space: (producing conv in synthesis.convs or None for the constant, [consuming
    modulated convs as 'convs.<key>' / 'to_rgbs.<key>'])}, in network order."""
    names = generator.config.block_names
    spaces = {f"{names[0]}_const": (None, [f"convs.{names[0]}_conv1"])}
    for i, name in enumerate(names):
        if i:
            spaces[f"{name}_up"] = (f"{name}_conv0", [f"convs.{name}_conv1"])
        consumers = [f"to_rgbs.{name}"] + ([f"convs.{names[i + 1]}_conv0"] if i + 1 < len(names) else [])
        spaces[name] = (f"{name}_conv1", consumers)
    return spaces


def _modulated(synthesis, path: str):
    kind, key = path.split(".", 1)
    return getattr(synthesis, kind)[key].conv


@torch.no_grad()
def _stylegan2_importance(generator, criterion, seed, n_samples):
    spaces = stylegan2_spaces(generator)
    if criterion == "random":
        rng = torch.Generator().manual_seed(seed)
        widths = {space: _space_width(generator, space) for space in spaces}
        return {space: torch.rand(widths[space], generator=rng) for space in spaces}
    if criterion not in STYLEGAN2_CRITERIA:
        raise _criterion_error(criterion, "StyleGAN2", STYLEGAN2_CRITERIA)
    device = generator.w_avg.device
    z = torch.randn(n_samples, generator.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    w = generator.mapping(z)
    scores = {}
    for space, (_, consumers) in spaces.items():
        total = 0
        for path in consumers:
            conv = _modulated(generator.synthesis, path)
            total = total + conv.weight.abs().sum((0, 2, 3)) * conv.affine(w).abs().mean(0)
        scores[space] = total.cpu()
    if criterion == "diversity":
        scores |= _stylegan2_diversity(generator, w[:64])
    return scores


@torch.no_grad()
def _stylegan2_diversity(generator, w, directions: int = 8, step: float = 0.5, batch_size: int = 16):
    """{space produced by a convolution: E ||d a_c / dt||^2 along the top principal directions of w}."""
    centred = w - w.mean(0)
    _, singular, v = torch.linalg.svd(centred, full_matrices=False)
    std = singular / max(len(w) - 1, 1) ** 0.5
    outputs = {}
    hooks = [module.register_forward_hook(lambda m, i, o, key=key: outputs.__setitem__(key, o))
             for key, module in generator.synthesis.convs.items()]
    sums = {}
    try:
        for j in range(min(directions, len(std))):
            delta = step * std[j] * v[j]
            for start in range(0, len(w), batch_size):
                chunk = w[start:start + batch_size]
                captured = []
                for sign in (1, -1):
                    ws = (chunk + sign * delta)[:, None].repeat(1, generator.num_ws, 1)
                    generator(None, ws=ws, noise="const")
                    captured.append(dict(outputs))
                for key in outputs:
                    rate = (captured[0][key] - captured[1][key]) / (2 * step * std[j])
                    sums[key] = sums.get(key, 0) + rate.square().sum((0, 2, 3))
    finally:
        for hook in hooks:
            hook.remove()
    count = min(directions, len(std)) * len(w)
    return {key.replace("_conv0", "_up").replace("_conv1", ""): (total / count).cpu() for key, total in sums.items()}


def _space_width(generator, space: str) -> int:
    _, consumers = stylegan2_spaces(generator)[space]
    return _modulated(generator.synthesis, consumers[0]).weight.shape[1]


@torch.no_grad()
def _prune_stylegan2(teacher, widths, importance):
    spaces = stylegan2_spaces(teacher)
    names = teacher.config.block_names
    width_of = {}
    for i, name in enumerate(names):
        width_of[name] = widths[i]
        width_of[f"{name}_up" if i else f"{name}_const"] = widths[i]
    kept = {}
    for space in spaces:
        order = torch.argsort(importance[space], descending=True, stable=True)
        kept[space] = sorted(order[: width_of[space]].tolist())
    device = teacher.w_avg.device
    student = build_generator(dataclasses.replace(teacher.config, channels=widths)).to(device)
    student.load_state_dict({k: v for k, v in teacher.state_dict().items() if not k.startswith("synthesis.")}, strict=False)
    t_syn, s_syn = teacher.synthesis, student.synthesis
    index = {space: torch.tensor(idx, device=device) for space, idx in kept.items()}
    s_syn.const.copy_(t_syn.const[:, index[f"{names[0]}_const"]])
    for space, (producer, consumers) in spaces.items():
        idx = index[space]
        if producer is not None:  # output side: conv weight rows and the activation bias
            t_conv, s_conv = t_syn.convs[producer], s_syn.convs[producer]
            s_conv.bias.copy_(t_conv.bias[idx])
            s_conv.noise_strength.copy_(t_conv.noise_strength)
        for path in consumers:  # input side: conv weight columns and the style affine's rows
            t_mod, s_mod = _modulated(t_syn, path), _modulated(s_syn, path)
            s_mod.affine.weight.copy_(t_mod.affine.weight[idx])
            s_mod.affine.bias.copy_(t_mod.affine.bias[idx])
    # Conv weights need both their input and output kept sets. Equalised-lr weights are scaled by
    # 1/sqrt(fan-in) at run time and the student's fan-in is smaller: rescale so that the effective
    # weights are the teacher's (toRGB has no demodulation to cancel the difference).
    for key, t_layer in t_syn.convs.items():
        out_space = key.replace("_conv0", "_up").replace("_conv1", "")
        in_space = next(space for space, (_, consumers) in spaces.items() if f"convs.{key}" in consumers)
        s_mod = s_syn.convs[key].conv
        s_mod.weight.copy_(t_layer.conv.weight[index[out_space]][:, index[in_space]] * (t_layer.conv.scale / s_mod.scale))
    for key, t_rgb in t_syn.to_rgbs.items():
        s_mod = s_syn.to_rgbs[key].conv
        s_mod.weight.copy_(t_rgb.conv.weight[:, index[key]] * (t_rgb.conv.scale / s_mod.scale))
        s_syn.to_rgbs[key].bias.copy_(t_rgb.bias)
    student.train(teacher.training)
    return student, kept
