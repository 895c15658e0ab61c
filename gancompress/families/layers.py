"""Pure-PyTorch building blocks shared by the StyleGAN2 generator and discriminator: FIR filtering
with up/down-sampling (upfirdn2d), and equalised-learning-rate linear and convolution layers.
No custom CUDA ops: everything runs on CPU, exports to ONNX and is visible to FlopCounterMode."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_GAIN = math.sqrt(2.0)  # keeps activation variance through leaky ReLU(0.2), as StyleGAN2 does


def fir_kernel(taps: tuple[int, ...], gain: float = 1.0) -> torch.Tensor:
    """Separable 2-D FIR kernel from 1-D taps, normalised to sum to `gain`."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[:, None] * k[None, :]
    return k / k.sum() * gain


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Upsample by zero insertion, pad, filter with `kernel` (per channel), downsample by striding:
    the reference semantics of StyleGAN2's upfirdn2d with symmetric-in-x-and-y padding (pad0, pad1)."""
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n * c, h, 1, w, 1)  # rank 5, not 6: Core ML takes tensors of rank <= 5
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(n, c, h * up, w * up)
    pad0, pad1 = pad
    x = F.pad(x, (max(pad0, 0), max(pad1, 0), max(pad0, 0), max(pad1, 0)))
    if pad0 < 0 or pad1 < 0:
        x = x[:, :, max(-pad0, 0): x.shape[2] - max(-pad1, 0), max(-pad0, 0): x.shape[3] - max(-pad1, 0)]
    weight = torch.flip(kernel, (0, 1)).to(x)[None, None]
    if torch.onnx.is_in_onnx_export():
        # One single-channel filter over N * C planes: a kernel of static shape, which the exporter
        # needs (a depthwise kernel expanded to C channels gets a dynamic shape when traced). In eager
        # mode the depthwise form is 8-30x faster forward + backward on a CPU, so it is kept there.
        x = F.conv2d(x.reshape(-1, 1, x.shape[2], x.shape[3]), weight)
        x = x.reshape(n, c, x.shape[2], x.shape[3])
    else:
        x = F.conv2d(x, weight.expand(c, 1, *kernel.shape), groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


class Blur(nn.Module):
    fixed_filter = True  # a fixed FIR filter: metrics/cost.py counts it apart (papers leave it out)

    def __init__(self, taps: tuple[int, ...], pad: tuple[int, int], gain: float = 1.0):
        super().__init__()
        self.register_buffer("kernel", fir_kernel(taps, gain), persistent=False)
        self.pad = pad

    def forward(self, x):
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """2x upsampling through the FIR filter (used on the toRGB skip images)."""

    fixed_filter = True

    def __init__(self, taps: tuple[int, ...], factor: int = 2):
        super().__init__()
        self.register_buffer("kernel", fir_kernel(taps, gain=factor**2), persistent=False)
        p = len(taps) - factor
        self.factor, self.pad = factor, ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x):
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class EqualLinear(nn.Module):
    """Linear layer with weights stored at N(0, 1/lr_mul^2) and scaled at run time (equalised
    learning rate); optional fused bias + leaky ReLU with gain."""

    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul))
        self.scale, self.lr_mul, self.activation = lr_mul / math.sqrt(in_features), lr_mul, activation

    def forward(self, x):
        out = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(out, 0.2) * LRELU_GAIN if self.activation else out


class EqualConv2d(nn.Module):
    """Convolution with equalised learning rate (used by the discriminator)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale, self.stride, self.padding = 1 / math.sqrt(in_channels * kernel_size**2), stride, padding

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)
