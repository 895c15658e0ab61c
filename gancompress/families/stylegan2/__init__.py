"""The StyleGAN2 family: networks in `gancompress.families.stylegan2.networks`; here its pruning, shared noise,
style mixing, StyleKD's mapping-only initialisation, cost split and export graphs.

Pruning works per channel space: the constant input (`b4_const`), each upsampling conv's output
(`b<r>_up`) and each block's output (`b<r>`, the feature distillation compares). A space's channels
are sliced consistently through the convolution that produces them (output channels and bias) and
every modulated convolution that consumes them (input channels and the style affine's rows); mapping
network, noise strengths, w average and toRGB biases are copied.
  cagan   CAGAN's content-aware gradient score (Liu et al. 2021), the default (the best distilled
          FID and LPIPS of the recipe search, docs/recipes.md): the mean |gradient| of the
          main-path modulated conv weight that reads the channel, summed over 400 samples (batches of
          10, fresh noise) of L = sum |salt-and-pepper(G(z)) - G(z)|, 5% of the pixels set to +-1; the
          whole image is the content mask (see `families.gradient_importance`)
  l1      input-side magnitude in the consumers, sum |W[:, j]| * E_w|s_j| with s the style of the
          consuming modulated conv over sampled w (the effective weight is W * s; Anycost GAN sorts
          channels by magnitude the same way; the default until 2026-12-07)
  random  seeded random scores
  diversity  how much a channel's activation moves when w moves along its top principal directions:
          E_w,j ||d a_c(w + t v_j) / dt||^2 over the top 8 principal directions v_j of sampled w
          (central differences at t = +-0.5 standard deviations; the same noise throughout). Channels
          that carry the latent's variation are kept, as DCP's diversity-aware pruning argues. The
          constant input does not depend on w, so its space falls back to the l1 score.

Export graphs: `full` z -> image, `mapping` z -> w, `synthesis` ws (N, num_ws, w_dim) -> image, all
through the non-fused modulated convolution with the stored per-layer noise buffers.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from gancompress.config import ConfigError
from gancompress.families.stylegan2.config import StyleGAN2Config, StyleGAN2DiscriminatorConfig
from gancompress.families import Family, gradient_importance
from gancompress.families.stylegan2.networks import StyleGAN2Discriminator, StyleGAN2Generator, fp16_resolution


class StyleGAN2Family(Family):
    name = "stylegan2"
    title = "StyleGAN2"
    config_class = StyleGAN2Config
    discriminator_config_class = StyleGAN2DiscriminatorConfig
    criteria = ("cagan", "l1", "random", "diversity")
    export_parts = ("full", "mapping", "synthesis")
    init_modes = ("inherit", "random", "mapping-only")
    student_convs = ("full", "separable")
    training_terms = frozenset({"style_mixing", "pl_weight", "relation"})
    has_shared_inputs = True

    def initial_training_state(self, device):
        return {"pl_mean": torch.zeros((), device=device)}  # running mean of path lengths

    def training_phases(self, trainer, step):
        from gancompress.families.stylegan2.training import path_length_step

        if trainer.config.pl_weight and step % trainer.config.pl_interval == 0:
            return [("G_pl", lambda s: path_length_step(trainer, s))]
        return []

    def generator_terms(self, trainer, z, step):
        from gancompress.families.stylegan2.training import relation_loss

        if trainer.config.mode == "distill" and trainer.config.relation:
            return relation_loss(trainer, z, step)
        return {}

    def import_foreign(self, path, load):
        from gancompress.families.stylegan2.importers.nvlabs import import_nvlabs, is_plain_pickle
        from gancompress.families.stylegan2.importers.rosinality import import_rosinality, rosinality_generator_state

        if is_plain_pickle(path):
            return {"format": "nvlabs", **import_nvlabs(path)}
        if rosinality_generator_state(load()) is not None:
            return {"format": "rosinality", **import_rosinality(load())}
        return None

    def build_generator(self, config):
        return StyleGAN2Generator(config)

    def discriminator_from_config(self, config):
        return StyleGAN2Discriminator(config)

    def scratch_config(self, resolution: int, channels=None, z_dim=None, out_channels: int = 3, w_dim: int = 512,
                       mapping_layers: int = 8, **extra):
        channels = channels or (128,) * (int(math.log2(resolution)) - 1)
        return StyleGAN2Config(resolution=resolution, channels=channels, z_dim=z_dim or 512, w_dim=w_dim,
                               mapping_layers=mapping_layers, out_channels=out_channels)

    def tiny_config(self, **changes):
        return StyleGAN2Config(**{"resolution": 32, "channels": (32, 32, 16, 8), "z_dim": 16, "w_dim": 16,
                                  "mapping_layers": 2, **changes})

    def channel_importance(self, generator, criterion: str, seed: int = 0, n_samples: int | None = None) -> dict:
        return _stylegan2_importance(generator, criterion, seed, n_samples)

    def prune(self, teacher, widths, importance):
        return _prune_stylegan2(teacher, widths, importance)

    def shared_inputs(self, generator, batch, rng, device):
        return {"noise": generator.make_noise(batch, rng, device)}

    def shared_inputs_per_image(self, generator, rngs, device):
        per_image = [generator.make_noise(1, rng, device) for rng in rngs]
        return {"noise": [torch.cat(layer) for layer in zip(*per_image)]}

    def style_mixing_inputs(self, generator, batch, rng, device):
        return {"mix_z": torch.randn(batch, generator.z_dim, generator=rng).to(device),
                "mix_cutoff": int(torch.randint(1, generator.num_ws, (), generator=rng))}

    def use_fp16(self, generator, discriminator, blocks):
        generator.synthesis.fp16_resolution = fp16_resolution(generator.resolution, blocks)
        discriminator.fp16_resolution = fp16_resolution(generator.resolution, blocks)

    def with_convs(self, generator, conv, inherit):
        if conv == generator.config.conv:
            return generator
        if conv == "separable" and inherit:
            return separable_student(generator)
        if conv not in self.student_convs or inherit:
            raise ConfigError(f"a {generator.config.conv}-conv StyleGAN2 cannot become {conv!r}; "
                              f"choose one of {', '.join(self.student_convs)}")
        return StyleGAN2Generator(dataclasses.replace(generator.config, conv=conv)).to(generator.w_avg.device)

    def copy_mapping(self, teacher, student, freeze: bool = False) -> None:
        """StyleKD's initialisation: the student's mapping network (and w average) are the teacher's,
        so both map a z to the same w; the synthesis keeps its fresh weights."""
        with torch.no_grad():
            student.mapping.load_state_dict(teacher.mapping.state_dict())
            student.w_avg.copy_(teacher.w_avg)
        student.mapping.requires_grad_(not freeze)

    def cost_split(self, generator) -> dict:
        from gancompress.metrics.cost import count_parameters

        # the mapping network runs once per z, the synthesis once per image
        return {"params_mapping": count_parameters(generator.mapping),
                "params_synthesis": count_parameters(generator.synthesis)}

    def graph(self, generator, part: str = "full", psi: float = 1.0):
        from gancompress.exporting import ExportError

        from gancompress.families.stylegan2.inference import StyleGAN2Inference

        generator = generator.eval()
        if part == "mapping":
            return _StyleGAN2Mapping(generator, psi).eval(), torch.randn(2, generator.z_dim), "z", "w"
        if part == "full":
            reference, example, names = _StyleGAN2Full(generator, psi), torch.randn(2, generator.z_dim), ("z", "image")
        else:
            if psi != 1:
                raise ExportError("the synthesis graph takes ws: apply truncation to ws before it (psi applies to full/mapping)")
            reference = _StyleGAN2Synthesis(generator)
            example, names = generator.ws(torch.randn(2, generator.z_dim), update_w_avg=False).detach(), ("ws", "image")
        graph = StyleGAN2Inference(generator, part, psi).eval()
        object.__setattr__(graph, "reference", reference.eval())  # not a submodule: it must not be exported
        return graph, example, *names

    def reference_module(self, generator, graph):
        # The graph built for inference is checked against the generator as trained.
        return getattr(graph, "reference", graph)

    def export_notes(self, part: str, psi: float) -> dict:
        return {"psi": psi if part != "synthesis" else None,
                "noise": "stored per-layer buffers (noise_const)" if part != "mapping" else None}


class _StyleGAN2Full(nn.Module):
    def __init__(self, generator, psi: float):
        super().__init__()
        self.generator, self.psi = generator, psi

    def forward(self, z):
        return self.generator(z, noise="const", psi=self.psi)


class _StyleGAN2Mapping(nn.Module):
    def __init__(self, generator, psi: float):
        super().__init__()
        self.generator, self.psi = generator, psi

    def forward(self, z):
        return self.generator.ws(z, self.psi, update_w_avg=False)[:, 0]  # every layer's w is the same


class _StyleGAN2Synthesis(nn.Module):
    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def forward(self, ws):
        return self.generator(None, noise="const", ws=ws)


@torch.no_grad()
def separable_student(generator: StyleGAN2Generator) -> StyleGAN2Generator:
    """The mobile student of `generator` (a full-conv StyleGAN2, usually just pruned): the same
    widths with separable modulated convolutions, each initialised by the best rank-1 factorisation
    of the full kernel per output channel (SVD of W[o] as an (in, k * k) matrix: pointwise
    sqrt(s1) u1, depthwise sqrt(s1) v1); mapping network, w average, constant, styles, biases, noise
    and toRGBs are copied. The convolutions keep what a rank-1 kernel can hold of the teacher's (on
    `stylegan2-fmnist32` 16-19% of each kernel's energy, no more than a random matrix), so
    distillation has more to recover than after pruning alone."""
    if generator.config.conv != "full":
        raise ValueError(f"separable_student takes a full-conv StyleGAN2, got conv={generator.config.conv!r}")
    device = generator.w_avg.device
    student = StyleGAN2Generator(dataclasses.replace(generator.config, conv="separable")).to(device)
    target = student.state_dict()
    student.load_state_dict({k: v for k, v in generator.state_dict().items() if k in target
                             and v.shape == target[k].shape}, strict=False)
    for key, layer in generator.synthesis.convs.items():
        full, separable = layer.conv, student.synthesis.convs[key].conv
        weight = full.weight * full.scale  # (out, in, k, k), effective
        out_channels, in_channels, k, _ = weight.shape
        u, singular, vh = torch.linalg.svd(weight.reshape(out_channels, in_channels, k * k), full_matrices=False)
        root = singular[:, :1].sqrt()  # (out, 1)
        separable.pointwise.copy_((u[:, :, 0] * root).reshape(out_channels, in_channels, 1, 1) / separable.pointwise_scale)
        # The upsampling conv runs as conv_transpose2d(x, W^T): per output channel the same kernel.
        separable.depthwise.copy_((vh[:, 0] * root).reshape(out_channels, 1, k, k) / separable.depthwise_scale)
    student.train(generator.training)
    return student


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
    _full_convs_only(generator, "pruned")
    spaces = stylegan2_spaces(generator)
    if criterion == "random":
        rng = torch.Generator().manual_seed(seed)
        widths = {space: _space_width(generator, space) for space in spaces}
        return {space: torch.rand(widths[space], generator=rng) for space in spaces}
    if criterion not in StyleGAN2Family.criteria:
        from gancompress.pruning import criterion_error

        raise criterion_error(criterion, StyleGAN2Family())
    if criterion == "cagan":
        return _stylegan2_cagan(generator, spaces, seed, n_samples)
    device = generator.w_avg.device
    z = torch.randn(n_samples or 256, generator.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
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


def _stylegan2_cagan(generator, spaces, seed, n_samples):
    """CAGAN's gradient score; a space is scored at the convolution of the main path that reads it (the
    next modulated conv, or the last to_rgb), as in CAGAN's code."""
    consumers = {}
    for space, (_, readers) in spaces.items():
        main = [path for path in readers if path.startswith("convs.")] or readers
        consumers[space] = (_modulated(generator.synthesis, main[0]).weight, (0, 2, 3))  # (out, in, k, k)
    device = generator.w_avg.device

    def sample(n, rng):
        z = torch.randn(n, generator.z_dim, generator=rng).to(device)
        return generator(z, noise=generator.make_noise(n, rng, device))

    return gradient_importance(generator, sample, consumers, seed, n_samples)


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


def _full_convs_only(generator, action: str) -> None:
    if generator.config.conv != "full":
        raise ConfigError(f"a StyleGAN2 with {generator.config.conv} convolutions cannot be {action}; "
                           "prune its full-conv teacher instead (--conv separable applies after pruning)")


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
    student = StyleGAN2Generator(dataclasses.replace(teacher.config, channels=widths)).to(device)
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
