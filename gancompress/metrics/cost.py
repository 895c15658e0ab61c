"""Model cost: parameters and MACs, under each counting rule papers use.

`count_macs` (the `macs_per_image` of every record) is `torch.utils.flop_counter.FlopCounterMode`'s
total FLOPs for one image / 2 (one multiply-accumulate = 2 FLOPs): convolutions, transposed
convolutions as torch counts them (in * out * k * k * H_in * W_in, i.e. at their input resolution),
matrix multiplies; BatchNorm, activations and additions are not counted.

Papers count MACs two other ways, so `count_macs_by_rule` gives those too (docs/cost.md):
- "input_resolution": transposed convolutions at their input resolution and the fixed FIR
  resampling filters (StyleGAN2's blur and skip upsampling) left out. CAGAN, StyleKD and DCP count
  this way (their counters do not see rosinality's custom upfirdn2d op): config-f at 256 px is
  45.1 G, at 1024 px 74.3 G.
- "output_resolution": every transposed convolution counted at its output resolution
  (in * out * k * k * H_out * W_out), FIR filters included: the rule of Anycost GAN (144 G) and
  MobileStyleGAN (143.15 G) for config-f at 1024 px."""

from __future__ import annotations

import math

import torch
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

MACS_RULE = "torch.utils.flop_counter.FlopCounterMode total FLOPs per image / 2 (conv, conv-transpose, matmul only)"
MACS_RULES = {
    "torch_counter": MACS_RULE + "; transposed convolutions at their input resolution, FIR filters included",
    "input_resolution": "torch_counter without the fixed FIR resampling filters (blur, skip upsampling): "
                        "the CAGAN / StyleKD / DCP rule",
    "output_resolution": "torch_counter with each transposed convolution counted at its output resolution: "
                         "the Anycost GAN / MobileStyleGAN rule",
}


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_macs(generator: torch.nn.Module) -> int:
    """MACs of one image under the torch counter's rule (works on the meta device)."""
    return count_macs_by_rule(generator)["torch_counter"]


def count_macs_by_rule(generator: torch.nn.Module) -> dict[str, int]:
    """MACs of one image under each rule of MACS_RULES. Modules whose class sets
    `fixed_filter = True` (families/layers.py: Blur, Upsample) are the FIR filters."""
    tally = {"fir": 0, "transposed_output_extra": 0}
    inside_filter = [0]

    def convolution(x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, *args, out_shape=None, **kwargs):
        flops = conv_flop_count(x_shape, w_shape, out_shape, transposed=transposed)
        if inside_filter[0]:
            tally["fir"] += flops
        if transposed:
            tally["transposed_output_extra"] += flops * (math.prod(out_shape[2:]) / math.prod(x_shape[2:]) - 1)
        return flops

    aten = torch.ops.aten
    counter = FlopCounterMode(display=False, custom_mapping={aten.convolution: convolution, aten._convolution: convolution})
    hooks = []
    for module in generator.modules():
        if getattr(type(module), "fixed_filter", False):
            hooks.append(module.register_forward_pre_hook(lambda *_: inside_filter.__setitem__(0, inside_filter[0] + 1)))
            hooks.append(module.register_forward_hook(lambda *_: inside_filter.__setitem__(0, inside_filter[0] - 1)))
    z = torch.zeros(1, generator.z_dim, device=next(generator.parameters()).device)
    was_training = generator.training
    generator.eval()
    try:
        with torch.inference_mode(), counter:
            generator(z)
    finally:
        generator.train(was_training)
        for hook in hooks:
            hook.remove()
    total = counter.get_total_flops()
    return {"torch_counter": total // 2, "input_resolution": (total - tally["fir"]) // 2,
            "output_resolution": round(total + tally["transposed_output_extra"]) // 2}
