"""A StyleGAN2 generator rebuilt for inference: the graph `export` and `bench` run.

The trained network computes, per modulated layer, a style affine, a demodulation coefficient from
the weights and the style, the convolution, noise * strength, a bias, leaky ReLU and a gain, and an
FIR blur after every upsampling convolution: at a student's widths these small operations cost
as much as its convolutions. This module computes the same function with fewer, cheaper ops:

- the mapping network's gains are folded into its weights (leaky ReLU is positively homogeneous:
  lrelu(x) * g = lrelu(g * x));
- the styles of all layers are one batched matrix product; for the `full` graph truncation is
  folded into it (A(psi w + (1 - psi) w_avg) + b is affine in w);
- the demodulation coefficients of all layers are one batched matrix product of the squared styles
  with precomputed squared weight sums, and carry the layer's gain;
- the constant noise with its strength and gain is one constant per layer, the bias carries the gain
  (and joins that constant where the layer is small: FOLD_BIAS_ELEMENTS);
- every per-layer style and demodulation vector is a constant slice and a transpose of the
  batched result (no shape arithmetic in the graph);
- the blur after each upsampling (transposed) convolution is a depthwise convolution with a
  constant kernel, and the toRGB skip upsampling is one depthwise transposed convolution (both
  were reshapes, pads and single-channel convolutions, which keep ONNX Runtime out of its blocked
  layout: profiles in eval/results/stylegan2_256/).

Merging each transposed convolution with its blur into one 6x6 kernel was measured and not taken:
a 6x6 stride-2 transposed convolution does 4x the multiply-adds of the 3x3 one, which costs more
than the blur it saves (docs/deployment.md). A separable student (StyleGAN2Config.conv) runs each layer as a 1x1
convolution and a depthwise one; there the upsampling depthwise transposed convolution and its blur
are one 6x6 depthwise kernel (36 multiply-adds per output channel and input pixel instead of 9 + 16). Verified against the generator as trained by every
export (exporting._verify, <= 1e-3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gancompress.families.layers import LRELU_GAIN, fir_kernel


# Where a layer's bias is folded into its noise constant (C * H * W elements, 512 KB at most): the
# low-resolution layers, whose time is per-op overhead; above it the constant would grow the file.
FOLD_BIAS_ELEMENTS = 2**17


def _effective(modulated) -> tuple[torch.Tensor, ...]:
    if hasattr(modulated, "effective_weights"):
        return modulated.effective_weights()
    return (modulated.weight * modulated.scale,)


def _pad_stack(tensors: list[torch.Tensor], shape: tuple[int, ...]) -> torch.Tensor:
    out = torch.zeros(len(tensors), *shape)
    for i, t in enumerate(tensors):
        out[(i, *(slice(0, n) for n in t.shape))] = t
    return out


class StyleGAN2Inference(nn.Module):
    """part 'full' (z -> image, truncation `psi` folded in) or 'synthesis' (ws -> image) of
    `generator`, with the stored constant noise. (The mapping graph is eight linear layers and is
    exported as trained.)"""

    def __init__(self, generator, part: str = "full", psi: float = 1.0):
        super().__init__()
        generator = generator.eval()
        config, synthesis = generator.config, generator.synthesis
        if part not in ("full", "synthesis"):
            raise ValueError(f"StyleGAN2Inference builds the 'full' and 'synthesis' graphs, not {part!r}")
        self.part = part
        with torch.no_grad():
            # Mapping: each layer's own gain folded into its weights and bias.
            self.mapping_weights = nn.ParameterList(
                nn.Parameter(layer.weight * layer.scale * LRELU_GAIN, requires_grad=False) for layer in generator.mapping.layers)
            self.mapping_biases = nn.ParameterList(
                nn.Parameter(layer.bias * layer.lr_mul * LRELU_GAIN, requires_grad=False) for layer in generator.mapping.layers)
            # Modulated layers: demodulated convolutions first, then the toRGBs.
            styled = list(synthesis.convs.values())
            to_rgbs = [synthesis.to_rgbs[name] for name in synthesis.block_names]
            ws_index = []
            for i in range(len(synthesis.block_names)):
                ws_index += [2 * i - 1, 2 * i] if i else [0]
            ws_index += [2 * i + 1 for i in range(len(synthesis.block_names))]
            self.register_buffer("ws_index", torch.tensor(ws_index), persistent=False)
            modulated = [layer.conv for layer in styled] + [rgb.conv for rgb in to_rgbs]
            # effective (scaled) weights: full (out, in, k, k), or separable pointwise (out, in, 1, 1) + depthwise
            factors = [_effective(m) for m in modulated]
            self.in_channels = [f[0].shape[1] for f in factors]
            max_in, max_out = max(self.in_channels), max(f[0].shape[0] for f in factors)
            self.max_in, self.max_out = max_in, max_out
            self.out_channels_per_conv = [f[0].shape[0] for f in factors[:len(styled)]]
            affine_w = [m.affine.weight * m.affine.scale for m in modulated]  # (in, w_dim)
            affine_b = [m.affine.bias * m.affine.lr_mul for m in modulated]
            if part == "full":  # truncation folded into the style affines
                affine_w, affine_b = ([psi * w for w in affine_w],
                                      [b + (1 - psi) * (w @ generator.w_avg) for w, b in zip(affine_w, affine_b)])
            self.register_buffer("style_weight", _pad_stack([w.T for w in affine_w], (config.w_dim, max_in)))
            self.register_buffer("style_bias", _pad_stack([b[None] for b in affine_b], (1, max_in)))
            # demod: sum over kernel taps of the squared weights, (in, out) per layer; a separable
            # kernel pw[o, i] * dw[o] sums to pw[o, i]^2 * |dw[o]|^2
            self.register_buffer("weight_square_sums", _pad_stack(
                [(f[0].square().sum((2, 3)) * (f[1].square().sum((1, 2, 3))[:, None] if len(f) > 1 else 1)).T
                 for f in factors[:len(styled)]], (max_in, max_out)))
            self.n_demodulated = len(styled)
            self.weights, self.depthwise = nn.ParameterList(), nn.ParameterList()
            self.biases, self.bias_index, self.upsample, self.blur = nn.ParameterList(), [], [], nn.ParameterList()
            self.separable = config.conv == "separable"
            for k, layer in enumerate(styled):
                w, upsample = factors[k][0], layer.conv.upsample
                self.upsample.append(upsample)
                self.weights.append(nn.Parameter(w.transpose(0, 1) if upsample and not self.separable else w,
                                                 requires_grad=False))
                noise = getattr(generator, f"noise_const_{k}") * layer.noise_strength * LRELU_GAIN
                bias = layer.bias[None, :, None, None] * LRELU_GAIN
                if bias.numel() * noise.numel() <= FOLD_BIAS_ELEMENTS:  # small layers: one add, not two
                    noise = noise + bias
                    self.bias_index.append(None)
                else:
                    self.bias_index.append(len(self.biases))
                    self.biases.append(nn.Parameter(bias, requires_grad=False))
                self.register_buffer(f"noise_{k}", noise.clone())
                blur_kernel = None
                if upsample:
                    blur = layer.conv.blur
                    if blur.pad != (1, 1):
                        raise ValueError(f"blur padding {blur.pad} is not the symmetric (1, 1) of a 3x3 upsampling conv")
                    blur_kernel = torch.flip(blur.kernel, (0, 1))[None, None].repeat(w.shape[0], 1, 1, 1)
                if self.separable:
                    depthwise = factors[k][1]
                    if upsample:  # the depthwise transposed conv and its blur are one 6x6 depthwise kernel
                        channels = depthwise.shape[0]
                        depthwise = F.conv_transpose2d(depthwise.reshape(1, channels, 3, 3),
                                                       torch.flip(blur_kernel, (2, 3)), groups=channels)
                        depthwise = depthwise.reshape(channels, 1, 6, 6)
                    self.depthwise.append(nn.Parameter(depthwise, requires_grad=False))
                elif upsample:
                    self.blur.append(nn.Parameter(blur_kernel, requires_grad=False))
            self.rgb_weights = nn.ParameterList(nn.Parameter(rgb.conv.weight * rgb.conv.scale, requires_grad=False)
                                                for rgb in to_rgbs)
            self.rgb_biases = nn.ParameterList(nn.Parameter(rgb.bias[None, :, None, None].clone(), requires_grad=False)
                                               for rgb in to_rgbs)
            taps = tuple(config.blur_taps)
            if len(taps) != 4:  # the padding of the skip upsampling below
                raise ValueError(f"the skip upsampling is built for 4 FIR taps, got {taps}")
            self.register_buffer("skip_kernel", fir_kernel(taps, gain=4.0)[None, None].repeat(config.out_channels, 1, 1, 1))
            self.register_buffer("const", synthesis.const.clone())
        self.conv_clamp, self.out_channels = config.conv_clamp, config.out_channels

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        x = z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()
        for weight, bias in zip(self.mapping_weights, self.mapping_biases):
            x = F.leaky_relu(F.linear(x, weight, bias), 0.2)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.part == "full":
            ws = self.mapping(x)[:, None, None, :]  # (N, 1, 1, w_dim): one w for every layer
        else:
            ws = x[:, self.ws_index].unsqueeze(2)  # (N, layers, 1, w_dim)
        styles = torch.matmul(ws, self.style_weight) + self.style_bias  # (N, layers, 1, max_in)
        demod = (torch.matmul(styles[:, : self.n_demodulated].square(), self.weight_square_sums) + 1e-8).rsqrt()
        demod = demod * LRELU_GAIN  # (N, convs, 1, max_out)
        # Per-layer (N, C, 1, 1) factors by constant slices: indexing with python ints only, since
        # a traced tensor.shape or integer index adds Shape/Gather nodes (~8 per use, which at 32 px
        # is the graph's runtime); slices, not one split, which XNNPACK cannot resize for a dynamic batch.
        style_list = [self._per_channel(styles[:, i:i + 1], c, self.max_in) for i, c in enumerate(self.in_channels)]
        demod_list = [self._per_channel(demod[:, i:i + 1], c, self.max_out) for i, c in enumerate(self.out_channels_per_conv)]
        return self.synthesize(style_list, demod_list)

    @staticmethod
    def _per_channel(t: torch.Tensor, channels: int, width: int) -> torch.Tensor:
        """(N, 1, 1, width) -> (N, channels, 1, 1)."""
        # a transpose, not reshape(-1, ...): XNNPACK cannot resize a -1 reshape for a dynamic batch
        return (t[..., :channels] if channels < width else t).permute(0, 3, 1, 2)

    def _clamp(self, x):
        return x if self.conv_clamp is None else x.clamp(-self.conv_clamp, self.conv_clamp)

    def synthesize(self, styles: list[torch.Tensor], demod: list[torch.Tensor]) -> torch.Tensor:
        x, rgb, k, blur_k = self.const, None, 0, 0
        convs_per_block = [1] + [2] * (len(self.rgb_weights) - 1)
        for block, count in enumerate(convs_per_block):
            for _ in range(count):
                weight = self.weights[k]
                x = x * styles[k]
                if self.separable:
                    x, depthwise = F.conv2d(x, weight), self.depthwise[k]
                    if self.upsample[k]:
                        x = F.conv_transpose2d(x, depthwise, stride=2, padding=2, groups=depthwise.shape[0])
                    else:
                        x = F.conv2d(x, depthwise, padding=1, groups=depthwise.shape[0])
                elif self.upsample[k]:
                    x = F.conv_transpose2d(x, weight, stride=2)
                    x = F.conv2d(x, self.blur[blur_k], padding=1, groups=self.blur[blur_k].shape[0])
                    blur_k += 1
                else:
                    x = F.conv2d(x, weight, padding=1)
                x = x * demod[k] + getattr(self, f"noise_{k}")
                if self.bias_index[k] is not None:
                    x = x + self.biases[self.bias_index[k]]
                x = self._clamp(F.leaky_relu(x, 0.2))
                k += 1
            out = self._clamp(F.conv2d(x * styles[self.n_demodulated + block], self.rgb_weights[block]) + self.rgb_biases[block])
            if rgb is not None:
                out = out + F.conv_transpose2d(rgb, self.skip_kernel, stride=2, padding=1, groups=self.out_channels)
            rgb = out
        return rgb
