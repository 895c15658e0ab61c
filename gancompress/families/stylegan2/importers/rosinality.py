"""Import StyleGAN2 checkpoints of rosinality/stylegan2-pytorch into gancompress networks.

A rosinality `.pt` is a dict with `g_ema` (and often `g`, `d`, optimizer states and an
`argparse.Namespace` under `args`). Architecture numbers are read from the tensors themselves
(resolution from the number of toRGB layers, channels from the convolution weights, z/w sizes
and mapping depth from the `style.*` layers), so any size and channel multiplier loads.

Key map (rosinality -> gancompress):
  style.<i>.weight/bias                -> mapping.layers.<i-1>.weight/bias     (i = 1..n_mlp)
  input.input                          -> synthesis.const
  conv1.*, to_rgb1.*                   -> synthesis.convs.b4_conv1.*, synthesis.to_rgbs.b4.*
  convs.<2k>.*, convs.<2k+1>.*         -> synthesis.convs.b<r>_conv0.*, b<r>_conv1.*   (r = 8 * 2**k)
  to_rgbs.<k>.*                        -> synthesis.to_rgbs.b<r>.*
  <conv>.conv.weight (1, out, in, k, k)-> <conv>.conv.weight (out, in, k, k)
  <conv>.conv.modulation.*             -> <conv>.conv.affine.*
  <conv>.noise.weight (1,)             -> <conv>.noise_strength ()
  <conv>.activate.bias                 -> <conv>.bias
  noises.noise_<i>                     -> noise_const_<i>
Discriminator: convs.0 (fromRGB), convs.<i> residual blocks (conv1, conv2, skip), final_conv,
final_linear.0 / .1, with the blur kernels (buffers) checked against the [1, 3, 3, 1] filter.
"""

from __future__ import annotations

import re

import torch

from gancompress.config import ConfigError
from gancompress.families.layers import fir_kernel
from gancompress.families.stylegan2.config import StyleGAN2Config, StyleGAN2DiscriminatorConfig
from gancompress.families.stylegan2.importers import load_discriminator
from gancompress.families.stylegan2.networks import StyleGAN2Discriminator, StyleGAN2Generator
from gancompress.foreign import ForeignCheckpointError

W_AVG_SAMPLES = 10000


def is_rosinality_generator(state: dict) -> bool:
    return "input.input" in state and "conv1.conv.weight" in state and "style.1.weight" in state


def rosinality_generator_state(obj) -> dict | None:
    """The generator state_dict in a loaded rosinality checkpoint (`g_ema`, else `g`, else the dict
    itself), or None when there is none."""
    if not isinstance(obj, dict):
        return None
    state = obj.get("g_ema") or obj.get("g") or obj
    return state if isinstance(state, dict) and is_rosinality_generator(state) else None


def _check_blur(state: dict, prefix: str, gain: float) -> None:
    kernel = state.get(prefix)
    if kernel is not None and not torch.allclose(kernel.float(), fir_kernel((1, 3, 3, 1), gain), atol=1e-6):
        raise ForeignCheckpointError(f"{prefix}: blur kernel is not the [1, 3, 3, 1] filter StyleGAN2 uses")


def rosinality_generator(state: dict, w_avg: torch.Tensor | None = None, lr_mlp: float = 0.01) -> tuple[StyleGAN2Generator, dict]:
    """A gancompress StyleGAN2 generator with the weights of a rosinality `Generator` state_dict,
    and notes on what was inferred."""
    if not is_rosinality_generator(state):
        raise ForeignCheckpointError(f"not a rosinality StyleGAN2 generator state_dict (found keys {sorted(state)[:6]} ...)")
    n_mlp = len({m.group(1) for k in state if (m := re.match(r"style\.(\d+)\.weight$", k))})
    z_dim = state["style.1.weight"].shape[1]
    w_dim = state[f"style.{n_mlp}.weight"].shape[0]
    n_up = len({m.group(1) for k in state if (m := re.match(r"to_rgbs\.(\d+)\.", k))})
    resolution = 4 * 2**n_up
    channels = [state["conv1.conv.weight"].shape[1]] + [state[f"convs.{2 * k + 1}.conv.weight"].shape[1] for k in range(n_up)]
    out_channels = state["to_rgb1.conv.weight"].shape[1]
    config = StyleGAN2Config(resolution=resolution, channels=tuple(channels), z_dim=z_dim, w_dim=w_dim, mapping_layers=n_mlp,
                             mapping_lr_mul=lr_mlp, out_channels=out_channels)
    for k in range(n_up):
        _check_blur(state, f"convs.{2 * k}.conv.blur.kernel", 4.0)
        _check_blur(state, f"to_rgbs.{k}.upsample.kernel", 4.0)
    conv_map, rgb_map = _key_maps(config)
    ours = {"synthesis.const": state["input.input"]}
    for i in range(1, n_mlp + 1):
        ours[f"mapping.layers.{i - 1}.weight"] = state[f"style.{i}.weight"]
        ours[f"mapping.layers.{i - 1}.bias"] = state[f"style.{i}.bias"]
    for src, dst in conv_map.items():
        ours[f"{dst}.conv.weight"] = state[f"{src}.conv.weight"][0]
        ours[f"{dst}.conv.affine.weight"] = state[f"{src}.conv.modulation.weight"]
        ours[f"{dst}.conv.affine.bias"] = state[f"{src}.conv.modulation.bias"]
        ours[f"{dst}.noise_strength"] = state[f"{src}.noise.weight"].reshape(())
        ours[f"{dst}.bias"] = state[f"{src}.activate.bias"]
    for src, dst in rgb_map.items():
        ours[f"{dst}.conv.weight"] = state[f"{src}.conv.weight"][0]
        ours[f"{dst}.conv.affine.weight"] = state[f"{src}.conv.modulation.weight"]
        ours[f"{dst}.conv.affine.bias"] = state[f"{src}.conv.modulation.bias"]
        ours[f"{dst}.bias"] = state[f"{src}.bias"].flatten()
    generator = StyleGAN2Generator(config)
    for i in range(len(generator.noise_shapes())):
        ours[f"noise_const_{i}"] = state.get(f"noises.noise_{i}", getattr(generator, f"noise_const_{i}"))
    notes = {"source": "rosinality/stylegan2-pytorch", "mapping_lr_mul": lr_mlp}
    if w_avg is None:
        ours["w_avg"] = torch.zeros(w_dim)
    else:
        ours["w_avg"] = w_avg.reshape(-1)[:w_dim]
        notes["w_avg"] = "latent_avg from the checkpoint"
    generator.load_state_dict({k: v.float() for k, v in ours.items()})
    if w_avg is None:  # rosinality computes the truncation centre on demand; we store it
        with torch.no_grad():
            z = torch.randn(W_AVG_SAMPLES, z_dim, generator=torch.Generator().manual_seed(0))
            generator.w_avg.copy_(generator.mapping(z).mean(0))
        notes["w_avg"] = f"mean of the mapping network over {W_AVG_SAMPLES} latents (seed 0)"
    return generator.eval(), notes


def _key_maps(config: StyleGAN2Config) -> tuple[dict[str, str], dict[str, str]]:
    """rosinality module prefix -> ours, for the styled convolutions and the toRGB layers."""
    names = config.block_names
    conv_map = {"conv1": f"synthesis.convs.{names[0]}_conv1"}
    rgb_map = {"to_rgb1": f"synthesis.to_rgbs.{names[0]}"}
    for k in range(len(names) - 1):
        conv_map[f"convs.{2 * k}"] = f"synthesis.convs.{names[k + 1]}_conv0"
        conv_map[f"convs.{2 * k + 1}"] = f"synthesis.convs.{names[k + 1]}_conv1"
        rgb_map[f"to_rgbs.{k}"] = f"synthesis.to_rgbs.{names[k + 1]}"
    return conv_map, rgb_map


def rosinality_state(generator: StyleGAN2Generator) -> dict[str, torch.Tensor]:
    """The generator as a rosinality `Generator` state_dict (the inverse of `rosinality_generator`):
    a student handed back to rosinality's code, or a config-f teacher of random weights for a
    benchmark without rosinality's code (eval/make_rosinality_config_f.py)."""
    if generator.config.conv != "full":  # rosinality's Generator has no separable convolution
        raise ConfigError(f"a StyleGAN2 with {generator.config.conv} convolutions has no rosinality form; "
                          "export it (gancompress export) or keep its gancompress file")
    ours = generator.state_dict()
    conv_map, rgb_map = _key_maps(generator.config)
    state = {"input.input": ours["synthesis.const"]}
    for i in range(generator.config.mapping_layers):
        state[f"style.{i + 1}.weight"] = ours[f"mapping.layers.{i}.weight"]
        state[f"style.{i + 1}.bias"] = ours[f"mapping.layers.{i}.bias"]
    blur = fir_kernel((1, 3, 3, 1), 4.0)
    for src, dst in conv_map.items():
        state[f"{src}.conv.weight"] = ours[f"{dst}.conv.weight"][None]
        state[f"{src}.conv.modulation.weight"] = ours[f"{dst}.conv.affine.weight"]
        state[f"{src}.conv.modulation.bias"] = ours[f"{dst}.conv.affine.bias"]
        state[f"{src}.noise.weight"] = ours[f"{dst}.noise_strength"].reshape(1)
        state[f"{src}.activate.bias"] = ours[f"{dst}.bias"]
        if dst.endswith("_conv0"):
            state[f"{src}.conv.blur.kernel"] = blur
    for src, dst in rgb_map.items():
        state[f"{src}.conv.weight"] = ours[f"{dst}.conv.weight"][None]
        state[f"{src}.conv.modulation.weight"] = ours[f"{dst}.conv.affine.weight"]
        state[f"{src}.conv.modulation.bias"] = ours[f"{dst}.conv.affine.bias"]
        state[f"{src}.bias"] = ours[f"{dst}.bias"].reshape(1, -1, 1, 1)
        if src != "to_rgb1":
            state[f"{src}.upsample.kernel"] = blur
    for i in range(len(generator.noise_shapes())):
        state[f"noises.noise_{i}"] = ours[f"noise_const_{i}"]
    return {k: v.detach().clone() for k, v in state.items()}


def rosinality_discriminator(state: dict) -> StyleGAN2Discriminator:
    blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"convs\.(\d+)\.conv1\.", k))})
    if "convs.0.0.weight" not in state or not blocks or "final_linear.1.weight" not in state:
        raise ForeignCheckpointError(f"not a rosinality StyleGAN2 discriminator state_dict (found {sorted(state)[:6]} ...)")
    from_rgb = state["convs.0.0.weight"]
    # blocks run from the image resolution down: block i maps channels[-i] to channels[-i - 1]
    widths = [from_rgb.shape[0]] + [state[f"convs.{i}.conv2.1.weight"].shape[0] for i in blocks]
    channels = tuple(reversed(widths))
    config = StyleGAN2DiscriminatorConfig(resolution=4 * 2 ** len(blocks), channels=channels, in_channels=from_rgb.shape[1],
                                          mbstd_features=state["final_conv.0.weight"].shape[1] - channels[0])
    for i in blocks:
        for part in ("conv2", "skip"):
            _check_blur(state, f"convs.{i}.{part}.0.kernel", 1.0)
    block_keys = ("conv1.0.weight", "conv1.1.bias", "conv2.1.weight", "conv2.2.bias", "skip.1.weight")
    return load_discriminator(
        config, state, ("convs.0.0.weight", "convs.0.1.bias"),
        [tuple(f"convs.{i}.{key}" for key in block_keys) for i in blocks],
        ("final_conv.0.weight", "final_conv.1.bias", "final_linear.0.weight", "final_linear.0.bias",
         "final_linear.1.weight", "final_linear.1.bias"))


def import_rosinality(obj: dict) -> dict:
    """{'generator': (G, notes), 'discriminator': D or None} from a loaded rosinality checkpoint
    (`g_ema` preferred, else `g`; or a bare generator state_dict)."""
    if not isinstance(obj, dict):
        raise ForeignCheckpointError(f"expected a dict checkpoint, got {type(obj).__name__}")
    state = rosinality_generator_state(obj)
    if state is None:
        raise ForeignCheckpointError(
            f"no rosinality StyleGAN2 generator found (top-level keys: {sorted(obj)[:8]}); expected 'g_ema' or 'g' "
            "holding style.*, input.input, conv1.*, convs.*, to_rgbs.*")
    args = obj.get("args")
    lr_mlp = getattr(args, "lr_mlp", 0.01) if args is not None else 0.01
    w_avg = obj.get("latent_avg")
    generator = rosinality_generator(state, w_avg if torch.is_tensor(w_avg) else None, lr_mlp)
    discriminator = rosinality_discriminator(obj["d"]) if isinstance(obj.get("d"), dict) else None
    return {"generator": generator, "discriminator": discriminator}
