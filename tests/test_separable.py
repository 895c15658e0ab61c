"""The mobile StyleGAN2 student (StyleGAN2Config.conv = "separable"): the layer is a modulated
convolution with a rank-1 kernel per output channel and exact demodulation, the student built from
a pruned teacher keeps what a rank-1 factorisation can, its inference graph is verified, it costs
what its formula says, and every command that cannot take it says so."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import pytest
import torch

from gancompress.cli import main
from gancompress.config import ConfigError
from gancompress.exporting import export_onnx
from gancompress.families.layers import Blur
from gancompress.families.stylegan2 import separable_student
from gancompress.families.stylegan2.importers.rosinality import rosinality_state
from gancompress.families.stylegan2.networks import SeparableModulatedConv, modulated_conv2d
from gancompress.io import load_generator, read_metadata, save_generator
from gancompress.metrics.cost import count_macs
from gancompress.pruning import prune_generator
from tests.conftest import one_line_error, tiny_stylegan2

TINY = ["--batch-size", "4", "--lpips", "0", "--quiet"]


@pytest.mark.parametrize("upsample", [False, True])
def test_separable_layer_is_the_modulated_conv_of_its_rank1_kernel(upsample):
    torch.manual_seed(0)
    layer = SeparableModulatedConv(6, 5, 3, w_dim=4, upsample=upsample)
    x, w = torch.randn(3, 6, 8, 8), torch.randn(3, 4)
    pointwise, depthwise = layer.effective_weights()
    kernel = pointwise * depthwise  # (out, in, 1, 1) * (out, 1, 3, 3): the rank-1 full kernel
    blur = Blur((1, 3, 3, 1), pad=(1, 1), gain=4) if upsample else None
    with torch.no_grad():
        expected = modulated_conv2d(x, kernel, layer.affine(w), True, upsample, blur, padding=1)
        got = layer(x, w)
    assert got.shape == expected.shape == (3, 5, 16 if upsample else 8, 16 if upsample else 8)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4)
    with torch.no_grad():  # demodulated: the output does not depend on the style's scale
        layer.affine.bias.mul_(9.0), layer.affine.weight.mul_(9.0)
        assert torch.allclose(layer(x, w), got, atol=1e-4, rtol=1e-4)


def _rank1(generator):
    """`generator` with every synthesis kernel replaced by its best rank-1 form per output channel."""
    with torch.no_grad():
        for layer in generator.synthesis.convs.values():
            weight = layer.conv.weight
            out_channels, in_channels, k, _ = weight.shape
            u, s, vh = torch.linalg.svd(weight.reshape(out_channels, in_channels, k * k), full_matrices=False)
            weight.copy_((s[:, :1, None] * u[:, :, :1] * vh[:, :1, :]).reshape(weight.shape))
    return generator


def test_a_separable_student_of_rank1_kernels_is_exact_and_of_any_kernels_an_approximation():
    teacher = _rank1(tiny_stylegan2())
    student = separable_student(teacher)
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = teacher(z, noise="const"), student(z, noise="const")
    assert expected.std() > 0.1 and (got - expected).abs().max() < 1e-4
    # a full-rank teacher loses what a rank-1 kernel cannot hold: same architecture, other outputs
    full_rank = tiny_stylegan2()
    with torch.no_grad():
        gap = (separable_student(full_rank)(z, noise="const") - full_rank(z, noise="const")).abs().mean()
    assert gap > 0.05
    with pytest.raises(ValueError, match="full-conv"):
        separable_student(student)


def test_separable_graphs_verify_and_are_pointwise_and_depthwise_convolutions(tmp_path):
    student = separable_student(prune_generator(tiny_stylegan2(), width=0.5)[0])
    for part in ("full", "synthesis", "mapping"):
        assert export_onnx(student, tmp_path / f"{part}.onnx", part=part)["verification"]["max_abs_diff"] < 1e-4
    graph = onnx.load(str(tmp_path / "full.onnx")).graph
    groups = [next((a.i for a in node.attribute if a.name == "group"), 1) for node in graph.node
              if node.op_type in ("Conv", "ConvTranspose")]
    blocks = len(student.config.channels)
    # per modulated conv one 1x1 and one depthwise conv (the upsampling one a 6x6 transposed conv
    # that carries the blur); the toRGB skips are depthwise transposed convs too
    assert sum(g > 1 for g in groups) == (2 * blocks - 1) + (blocks - 1)
    pointwise = [node for node in graph.node if node.op_type == "Conv" and
                 next(a.ints for a in node.attribute if a.name == "kernel_shape") == [1, 1]]
    assert len(pointwise) >= 2 * blocks - 1  # and the toRGBs' 1x1s
    ops = [node.op_type for node in graph.node]
    assert "Pad" not in ops and ops.count("MatMul") == 2
    z = torch.randn(2, 16)
    import onnxruntime as ort
    session = ort.InferenceSession(str(tmp_path / "full.onnx"), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: z.numpy()})[0]
    with torch.no_grad():
        assert np.abs(out - student(z, noise="const").numpy()).max() < 1e-4


def test_separable_costs_what_its_formula_says():
    teacher = tiny_stylegan2(channels=(64, 64, 32, 16))
    student = separable_student(teacher)
    params = lambda g: sum(p.numel() for p in g.parameters())
    conv_macs = lambda g: sum(  # multiply-adds per image of the synthesis convolutions (3x3 or 1x1 + 3x3)
        (layer.conv.weight.numel() if hasattr(layer.conv, "weight") else
         layer.conv.pointwise.numel() + layer.conv.depthwise.numel()) * (pixels // (4 if layer.conv.upsample else 1))
        for layer, pixels in zip(g.synthesis.convs.values(), [16, 64, 64, 256, 256, 1024, 1024]))
    saved = conv_macs(teacher) - conv_macs(student)
    assert saved > 0.8 * conv_macs(teacher)
    # everything else (mapping, styles, toRGBs, blurs) is the same network, so the counted difference is
    # exactly this, less the separable demodulation's (N, in) @ (in, out) product (the full conv's is an
    # elementwise product and a sum, which torch's counter does not count)
    demodulation = sum(layer.conv.pointwise.shape[0] * layer.conv.pointwise.shape[1]
                       for layer in student.synthesis.convs.values())
    assert count_macs(teacher) - count_macs(student) == saved - demodulation
    assert params(student) < 0.35 * params(teacher)


def test_separable_config_round_trips_and_full_configs_keep_their_record(tmp_path):
    teacher = tiny_stylegan2()
    assert "conv" not in teacher.config.to_dict()  # files written before the option read the same
    student = separable_student(teacher)
    assert student.config.to_dict()["conv"] == "separable"
    loaded = load_generator(save_generator(tmp_path / "s.safetensors", student))
    z = torch.randn(2, 16)
    with torch.no_grad():
        assert torch.equal(loaded(z, noise="const"), student(z, noise="const"))
    with pytest.raises(ConfigError, match="conv must be one of full, separable"):
        dataclasses.replace(teacher.config, conv="depthwise")
    with pytest.raises(ConfigError, match="no rosinality form"):
        rosinality_state(student)


def test_prune_writes_a_separable_student_and_refuses_what_cannot_take_one(work, capsys):
    teacher = save_generator(work / "sg2.safetensors", tiny_stylegan2())
    out = work / "sep.safetensors"
    assert main(["prune", "--teacher", str(teacher), "--width", "0.5", "--conv", "separable", "--out", str(out)]) == 0
    assert "separable convolutions" in capsys.readouterr().out
    assert read_metadata(out)["config"]["conv"] == "separable"
    assert load_generator(out).config.channels == (16, 16, 8, 8)
    error = one_line_error(capsys, ["prune", "--teacher", out, "--width", "0.5", "--out", work / "x.safetensors"])
    assert "cannot be pruned" in error
    error = one_line_error(capsys, ["prune", "--teacher", work / "teacher.safetensors", "--width", "0.5", "--conv",
                                    "separable", "--out", work / "x.safetensors"])
    assert "DCGAN students have full convolutions only" in error
    error = one_line_error(capsys, ["distill", "--teacher", work / "teacher.safetensors", "--width", "0.5", "--conv",
                                    "separable", "--steps", "2", *TINY], unchanged=work)
    assert "separable" in error


def test_distill_trains_a_separable_student_and_its_resume_keeps_the_conv(work, capsys):
    teacher = save_generator(work / "sg2.safetensors", tiny_stylegan2())
    assert main(["distill", "--teacher", str(teacher), "--width", "0.5", "--conv", "separable", "--steps", "3",
                 "--checkpoint-every", "1", *TINY]) == 0
    run = next((work / "runs").glob("*-separable"))
    assert json.loads((run / "run.json").read_text())["student"]["conv"] == "separable"
    trained = load_generator(run / "student.safetensors")
    start = separable_student(prune_generator(load_generator(teacher), width=0.5)[0])
    assert trained.config.conv == "separable"
    moved = [float((a - b).norm()) for a, b in zip(trained.state_dict().values(), start.state_dict().values())
             if a.is_floating_point()]
    assert max(moved) > 1e-3  # trained, from the rank-1 start
    error = one_line_error(capsys, ["distill", "--resume", run, "--conv", "full", "--steps", "5"], unchanged=run)
    assert "--conv full (the run has separable)" in error
    assert main(["distill", "--resume", str(run), "--conv", "separable", "--steps", "4", "--quiet"]) == 0
    assert json.loads((run / "run.json").read_text())["train"]["steps"] == 4
