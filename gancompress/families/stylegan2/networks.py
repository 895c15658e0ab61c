"""StyleGAN2 generator in pure PyTorch (config E of Karras et al. 2020, skip toRGB architecture):
mapping network z -> w, constant 4x4 input, modulated 3x3 convolutions with weight demodulation,
per-layer noise, bias + leaky ReLU with gain, toRGB skips upsampled through a FIR filter, style
mixing and truncation. Every channel count comes from the config, so a pruned student is rebuilt
exactly from its checkpoint.

Latent layout (the one rosinality/stylegan2-pytorch uses, so its checkpoints map one to one): the
4x4 block uses w[0] (conv) and w[1] (toRGB); block k >= 1 uses w[2k - 1] (upsampling conv), w[2k]
(conv) and w[2k + 1] (toRGB); `num_ws = 2 * log2(resolution) - 2`.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from gancompress.families.stylegan2.config import StyleGAN2Config, StyleGAN2DiscriminatorConfig
from gancompress.families.layers import LRELU_GAIN, Blur, EqualConv2d, EqualLinear, Upsample


def modulated_conv2d(x, weight, styles, demodulate=True, upsample=False, blur=None, padding=0, fused=False):
    """Modulated convolution. `weight` (out, in, k, k) already carries its equalised-lr scale;
    `styles` (N, in). fused=True builds per-sample weights and runs one grouped convolution (fast on
    GPUs); fused=False scales the activations before and the outputs after a shared convolution
    (exports to ONNX, counted by FlopCounterMode). Both compute the same function."""
    n, c_in = styles.shape
    c_out = weight.shape[0]
    if demodulate and _in_fp16(x):
        # NVlabs' guard against fp16 overflow: demodulation undoes any per-sample scale of the styles
        styles = styles / styles.abs().amax(1, keepdim=True)
    if fused:
        w = weight[None] * styles[:, None, :, None, None]  # (N, out, in, k, k)
        if demodulate:
            w = w * (w.square().sum((2, 3, 4)) + 1e-8).rsqrt()[:, :, None, None, None]
        x = x.reshape(1, n * c_in, *x.shape[2:])
        if upsample:
            w = w.transpose(1, 2).reshape(n * c_in, c_out, *weight.shape[2:])
            out = F.conv_transpose2d(x, w, stride=2, groups=n)
        else:
            out = F.conv2d(x, w.reshape(n * c_out, c_in, *weight.shape[2:]), padding=padding, groups=n)
        out = out.reshape(n, c_out, *out.shape[2:])
    else:
        x = x * styles[:, :, None, None]
        out = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2) if upsample else F.conv2d(x, weight, padding=padding)
        if demodulate:
            dcoefs = (weight.square().sum((2, 3))[None] * styles.square()[:, None, :]).sum(2)  # (N, out)
            out = out * (dcoefs + 1e-8).rsqrt()[:, :, None, None]
    return blur(out) if upsample else out


class ModulatedConv(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, w_dim, demodulate=True, upsample=False,
                 blur_taps=(1, 3, 3, 1)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)  # style = A(w), starts at 1
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.demodulate, self.upsample, self.padding = demodulate, upsample, kernel_size // 2
        self.blur = _upsampling_blur(kernel_size, blur_taps) if upsample else None

    def forward(self, x, w, fused=False):
        return modulated_conv2d(x, self.weight * self.scale, self.affine(w), self.demodulate, self.upsample,
                                self.blur, self.padding, fused)


class SeparableModulatedConv(nn.Module):
    """The mobile student's modulated convolution (`StyleGAN2Config.conv = "separable"`): the style
    scales the input, a pointwise (1x1) convolution mixes channels, a depthwise k x k convolution
    filters each output channel (transposed with stride 2, then the FIR blur, when upsampling), and
    demodulation scales the output activations. The effective weight pw[o, i] * dw[o] is a rank-1
    kernel per output channel, so its demodulation coefficient is exact and cheap:
    rsqrt(|dw[o]|^2 * sum_i (s_i pw[o, i])^2). The pointwise step runs before the upsampling, at a
    quarter of the pixels. Multiply-adds per pixel: in * out + k^2 * out instead of k^2 * in * out."""

    def __init__(self, in_channels, out_channels, kernel_size, w_dim, demodulate=True, upsample=False,
                 blur_taps=(1, 3, 3, 1)):
        super().__init__()
        self.pointwise = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.depthwise = nn.Parameter(torch.randn(out_channels, 1, kernel_size, kernel_size))
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        # equalised learning rate per factor; their product is the full convolution's 1/sqrt(in * k^2)
        self.pointwise_scale, self.depthwise_scale = 1 / math.sqrt(in_channels), 1 / kernel_size
        self.demodulate, self.upsample, self.padding = demodulate, upsample, kernel_size // 2
        self.blur = _upsampling_blur(kernel_size, blur_taps) if upsample else None

    def effective_weights(self):
        """(pointwise (out, in, 1, 1), depthwise (out, 1, k, k)) with their equalised-lr scales."""
        return self.pointwise * self.pointwise_scale, self.depthwise * self.depthwise_scale

    def forward(self, x, w, fused=False):  # fused: the full convolution's GPU path; one path here
        styles = self.affine(w)
        pointwise, depthwise = self.effective_weights()
        out = F.conv2d(x * styles[:, :, None, None], pointwise)
        if self.upsample:
            out = self.blur(F.conv_transpose2d(out, depthwise, stride=2, groups=out.shape[1]))
        else:
            out = F.conv2d(out, depthwise, padding=self.padding, groups=out.shape[1])
        if self.demodulate:
            dcoefs = (styles.square() @ pointwise[:, :, 0, 0].square().T) * depthwise.square().sum((1, 2, 3))
            out = out * (dcoefs + 1e-8).rsqrt()[:, :, None, None]
        return out


def _upsampling_blur(kernel_size, blur_taps):
    factor = 2
    p = (len(blur_taps) - factor) - (kernel_size - 1)
    return Blur(blur_taps, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), gain=factor**2)


FP16_CLAMP = 256.0  # NVlabs' conv_clamp for the layers it runs in fp16


def _in_fp16(x) -> bool:
    device = x.device.type
    try:
        return torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == torch.float16
    except RuntimeError:  # a device autocast does not know (the meta device of the cost counts)
        return False


def _clamp(x, limit, in_fp16=False):
    """Clamp to +-limit; a layer run in fp16 without a limit of its own clamps at FP16_CLAMP."""
    if limit is None and in_fp16:
        limit = FP16_CLAMP
    return x if limit is None else x.clamp(-limit, limit)


def _fp16_block(x, resolution: int, fp16_resolution: int | None):
    """Autocast to fp16 for a block at or above `fp16_resolution` (set by the trainer's precision fp16)."""
    if fp16_resolution is None or resolution < fp16_resolution:
        return contextlib.nullcontext()
    return torch.autocast(x.device.type, dtype=torch.float16)


def fp16_resolution(resolution: int, blocks: int) -> int | None:
    """NVlabs' rule: the `blocks` highest resolutions in fp16, never below 8x8 (None: no block)."""
    return max(2 ** (int(math.log2(resolution)) + 1 - blocks), 8) if blocks else None


class StyledConv(nn.Module):
    """Modulated conv -> + noise * strength -> + bias -> leaky ReLU(0.2) * sqrt(2) [-> clamp]."""

    def __init__(self, in_channels, out_channels, w_dim, upsample=False, blur_taps=(1, 3, 3, 1), conv_clamp=None,
                 separable=False):
        super().__init__()
        conv_class = SeparableModulatedConv if separable else ModulatedConv
        self.conv = conv_class(in_channels, out_channels, 3, w_dim, upsample=upsample, blur_taps=blur_taps)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.conv_clamp = conv_clamp

    def forward(self, x, w, noise, fused=False):
        out = self.conv(x, w, fused) + self.noise_strength * noise
        return _clamp(F.leaky_relu(out + self.bias[None, :, None, None], 0.2) * LRELU_GAIN, self.conv_clamp, _in_fp16(x))


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation, + bias [-> clamp], + the upsampled skip image."""

    def __init__(self, in_channels, out_channels, w_dim, upsample_skip, blur_taps=(1, 3, 3, 1), conv_clamp=None):
        super().__init__()
        self.conv = ModulatedConv(in_channels, out_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.upsample = Upsample(blur_taps) if upsample_skip else None
        self.conv_clamp = conv_clamp

    def forward(self, x, w, skip=None, fused=False):
        out = _clamp(self.conv(x, w, fused) + self.bias[None, :, None, None], self.conv_clamp, _in_fp16(x))
        return out + self.upsample(skip) if skip is not None else out


class MappingNetwork(nn.Module):
    def __init__(self, z_dim, w_dim, layers, lr_mul):
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        self.layers = nn.ModuleList(EqualLinear(a, b, lr_mul=lr_mul, activation=True) for a, b in zip(dims, dims[1:]))

    def forward(self, z):
        x = z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()  # pixel norm
        for layer in self.layers:
            x = layer(x)
        return x


class Synthesis(nn.Module):
    def __init__(self, config: StyleGAN2Config):
        super().__init__()
        ch, w_dim, taps, clamp = config.channels, config.w_dim, tuple(config.blur_taps), config.conv_clamp
        self.const = nn.Parameter(torch.randn(1, ch[0], 4, 4))
        self.convs = nn.ModuleDict()  # "<block>_conv0" (upsampling; absent at 4x4) and "<block>_conv1"
        self.to_rgbs = nn.ModuleDict()
        names, separable = config.block_names, config.conv == "separable"
        for i, name in enumerate(names):
            if i:
                self.convs[f"{name}_conv0"] = StyledConv(ch[i - 1], ch[i], w_dim, True, taps, clamp, separable)
            self.convs[f"{name}_conv1"] = StyledConv(ch[i], ch[i], w_dim, False, taps, clamp, separable)
            self.to_rgbs[name] = ToRGB(ch[i], config.out_channels, w_dim, i > 0, taps, clamp)
        self.block_names = names
        self.fp16_resolution = None  # blocks at or above it run in fp16 (a training setting, not saved)

    def forward(self, ws, noise, fused=False):
        """ws: (N, num_ws, w_dim); noise: one tensor per StyledConv, in `convs` order."""
        x = self.const.repeat(ws.shape[0], 1, 1, 1)  # not expand: a no-grad view of a parameter still "requires grad"
        features, rgb, k = {}, None, 0
        for i, name in enumerate(self.block_names):
            with _fp16_block(x, 4 * 2**i, self.fp16_resolution):
                if i:
                    x = self.convs[f"{name}_conv0"](x, ws[:, 2 * i - 1], noise[k], fused)
                    k += 1
                x = self.convs[f"{name}_conv1"](x, ws[:, 2 * i], noise[k], fused)
                k += 1
                rgb = self.to_rgbs[name](x, ws[:, 2 * i + 1], rgb, fused)
            x, rgb = x.float(), rgb.float()  # features and outputs leave every block in fp32
            features[name], features[f"rgb{name[1:]}"] = x, rgb
        return rgb, features


class StyleGAN2Generator(nn.Module):
    """forward(z) -> image in about [-1, 1] (StyleGAN2 has no output tanh; evaluation clamps).

    noise: None (fresh N(0, 1) noise), "const" (the fixed per-layer buffers), or a list of tensors
    from `make_noise` so a teacher and its students see the same noise. psi < 1 truncates towards
    the tracked w average; mix_z with mix_cutoff feeds the second latent's w to layers >= cutoff."""

    def __init__(self, config: StyleGAN2Config):
        super().__init__()
        self.config = config
        self.z_dim, self.resolution, self.out_channels = config.z_dim, config.resolution, config.out_channels
        self.mapping = MappingNetwork(config.z_dim, config.w_dim, config.mapping_layers, config.mapping_lr_mul)
        self.synthesis = Synthesis(config)
        self.register_buffer("w_avg", torch.zeros(config.w_dim))
        for k, shape in enumerate(self.noise_shapes()):
            self.register_buffer(f"noise_const_{k}", torch.randn(1, 1, *shape))

    @property
    def num_ws(self) -> int:
        return 2 * len(self.config.channels)

    def noise_shapes(self) -> list[tuple[int, int]]:
        shapes = []
        for i in range(len(self.config.channels)):
            res = 4 * 2**i
            shapes += [(res, res)] * (2 if i else 1)
        return shapes

    def make_noise(self, batch: int, generator: torch.Generator | None = None, device=None) -> list[torch.Tensor]:
        """Per-layer noise for `batch` images; shapes depend only on the resolution, so one list
        serves a teacher and every student derived from it."""
        return [torch.randn(batch, 1, *s, generator=generator).to(device or self.w_avg.device) for s in self.noise_shapes()]

    def ws(self, z, psi=1.0, mix_z=None, mix_cutoff=None, update_w_avg=None):
        w = self.mapping(z)
        if update_w_avg if update_w_avg is not None else self.training:
            with torch.no_grad():
                self.w_avg.lerp_(w.detach().mean(0).to(self.w_avg.dtype), 1 - self.config.w_avg_beta)  # autocast: w may be bf16
        ws = w[:, None].repeat(1, self.num_ws, 1)
        if mix_z is not None and mix_cutoff is not None:
            ws[:, mix_cutoff:] = self.mapping(mix_z)[:, None]
        if psi != 1:
            ws = self.w_avg.lerp(ws, psi)
        return ws

    def forward(self, z, return_features=False, noise=None, psi=1.0, mix_z=None, mix_cutoff=None, ws=None, fused=False):
        ws = self.ws(z, psi, mix_z, mix_cutoff) if ws is None else ws
        if noise is None:
            noise = self.make_noise(ws.shape[0], device=ws.device)
        elif isinstance(noise, str):
            if noise != "const":
                raise ValueError(f"noise must be None, 'const' or a list of tensors, got {noise!r}")
            noise = [getattr(self, f"noise_const_{k}") for k in range(len(self.noise_shapes()))]
        image, features = self.synthesis(ws, noise, fused)
        return (image, features) if return_features else image


class ConvLayer(nn.Module):
    """[blur ->] equalised conv (stride 2 when downsampling) [-> bias + leaky ReLU * sqrt(2)] [-> clamp]."""

    def __init__(self, in_channels, out_channels, kernel_size, downsample=False, activate=True, bias=True,
                 blur_taps=(1, 3, 3, 1), conv_clamp=None):
        super().__init__()
        if downsample:
            p = (len(blur_taps) - 2) + (kernel_size - 1)
            self.blur = Blur(blur_taps, pad=((p + 1) // 2, p // 2))
            stride, padding = 2, 0
        else:
            self.blur, stride, padding = None, 1, kernel_size // 2
        self.conv = EqualConv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias and not activate)
        self.act_bias = nn.Parameter(torch.zeros(out_channels)) if activate and bias else None
        self.activate, self.conv_clamp = activate, conv_clamp

    def forward(self, x):
        in_fp16 = _in_fp16(x)
        x = self.conv(self.blur(x) if self.blur is not None else x)
        if self.act_bias is not None:
            x = x + self.act_bias[None, :, None, None]
        return _clamp(F.leaky_relu(x, 0.2) * LRELU_GAIN if self.activate else x, self.conv_clamp, in_fp16)


class DiscriminatorBlock(nn.Module):
    """Residual block: two 3x3 convs (the second downsamples) plus a 1x1 downsampled skip, / sqrt(2)."""

    def __init__(self, in_channels, out_channels, blur_taps, conv_clamp=None):
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3, blur_taps=blur_taps, conv_clamp=conv_clamp)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True, blur_taps=blur_taps, conv_clamp=conv_clamp)
        # No clamp on the skip: NVlabs' DiscriminatorBlock clamps conv0/conv1 only (its skip Conv2dLayer has none).
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=True, activate=False, bias=False,
                              blur_taps=blur_taps)

    def forward(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class StyleGAN2Discriminator(nn.Module):
    def __init__(self, config: StyleGAN2DiscriminatorConfig):
        super().__init__()
        self.config = config
        ch, taps, clamp = config.channels, config.blur_taps, config.conv_clamp
        self.from_rgb = ConvLayer(config.in_channels, ch[-1], 1, blur_taps=taps, conv_clamp=clamp)
        self.blocks = nn.ModuleList(DiscriminatorBlock(ch[i], ch[i - 1], taps, clamp) for i in range(len(ch) - 1, 0, -1))
        self.final_conv = ConvLayer(ch[0] + config.mbstd_features, ch[0], 3, blur_taps=taps, conv_clamp=clamp)
        self.final_linear = EqualLinear(ch[0] * 16, ch[0], activation=True)
        self.head = EqualLinear(ch[0], 1)
        self.fp16_resolution = None  # as Synthesis.fp16_resolution, over the input resolution of each block

    def minibatch_stddev(self, x):
        """Append the standard deviation over groups of samples (the whole batch when it does not divide)."""
        n, c, h, w = x.shape
        group = min(self.config.mbstd_group, n) if n % min(self.config.mbstd_group, n) == 0 else n
        f = self.config.mbstd_features
        y = x.reshape(group, -1, f, c // f, h, w)
        y = (y.var(0, unbiased=False) + 1e-8).sqrt().mean((2, 3, 4))  # (n / group, f)
        y = y.reshape(-1, f, 1, 1).repeat(group, 1, h, w)
        return torch.cat([x, y], 1)

    def forward(self, images):
        """Images (N, C, R, R) in [-1, 1] -> logits (N,)."""
        resolution = images.shape[-1]
        with _fp16_block(images, resolution, self.fp16_resolution):
            x = self.from_rgb(images).float()
        for block in self.blocks:
            with _fp16_block(x, resolution, self.fp16_resolution):
                x = block(x).float()
            resolution //= 2
        x = self.final_conv(self.minibatch_stddev(x))
        return self.head(self.final_linear(x.flatten(1))).flatten()
