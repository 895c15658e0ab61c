"""Model cost: parameters and MACs.

MACs rule: `torch.utils.flop_counter.FlopCounterMode` total FLOPs for one image, divided by 2
(one multiply-accumulate = 2 FLOPs). Only the operators torch counts are included (convolutions,
transposed convolutions as torch counts them, i.e. in_channels * out_channels * k * k * H_in *
W_in, matrix multiplies); BatchNorm, activations and additions are not counted."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

MACS_RULE = "torch.utils.flop_counter.FlopCounterMode total FLOPs per image / 2 (conv, conv-transpose, matmul only)"


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.inference_mode()
def count_macs(generator: torch.nn.Module) -> int:
    device = next(generator.parameters()).device
    z = torch.zeros(1, generator.z_dim, device=device)
    was_training = generator.training
    generator.eval()
    with FlopCounterMode(display=False) as counter:
        generator(z)
    generator.train(was_training)
    return counter.get_total_flops() // 2
