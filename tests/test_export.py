"""ONNX export: graphs with a dynamic batch that ONNX Runtime runs to the same numbers as PyTorch."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from gancompress.cli import main
from gancompress.exporting import ExportError, export_onnx
from gancompress.io import save_generator
from tests.conftest import tiny_generator
from tests.conftest import tiny_stylegan2


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def test_dcgan_export_matches_pytorch_at_any_batch(tmp_path):
    generator = tiny_generator().eval()
    record = export_onnx(generator, tmp_path / "g.onnx")
    assert record["verification"]["max_abs_diff"] < 1e-5 and record["input"]["shape"] == ["batch", 8]
    z = torch.randn(5, 8)  # a batch size the export never saw
    with torch.no_grad():
        assert np.abs(_run(tmp_path / "g.onnx", z) - generator(z).numpy()).max() < 1e-5
    assert json.loads((tmp_path / "g.onnx.json").read_text())["verification"] == record["verification"]


@pytest.mark.parametrize("conv_bias", [False, True])
def test_dcgan_graph_folds_batchnorm_and_starts_with_one_gemm(tmp_path, conv_bias):
    import onnx

    from gancompress.families.dcgan.networks import DCGANInferenceGenerator

    generator = tiny_generator(conv_bias=conv_bias)
    with torch.no_grad():  # a non-trivial BatchNorm affine as well as running statistics
        for block in generator.blocks.values():
            block.bn.weight.uniform_(0.5, 1.5)
            block.bn.bias.uniform_(-0.2, 0.2)
    z = torch.randn(6, 8)
    with torch.no_grad():
        lean, plain = DCGANInferenceGenerator.from_generator(generator)(z), generator(z)
    assert (lean - plain).abs().max() < 1e-5 and plain.std() > 0.05
    export_onnx(generator, tmp_path / "g.onnx")
    ops = [node.op_type for node in onnx.load(str(tmp_path / "g.onnx")).graph.node]
    assert "BatchNormalization" not in ops and "Shape" not in ops
    assert ops.count("Gemm") == 1 and ops.count("ConvTranspose") == len(generator.config.channels)


def test_stylegan2_graphs_compose_to_the_generator(tmp_path):
    generator = tiny_stylegan2()
    for part in ("full", "mapping", "synthesis"):
        assert export_onnx(generator, tmp_path / f"{part}.onnx", part=part)["verification"]["max_abs_diff"] < 1e-4
    z = torch.randn(4, generator.z_dim)
    with torch.no_grad():
        expected = generator(z, noise="const").numpy()
    w = _run(tmp_path / "mapping.onnx", z)
    ws = np.repeat(w[:, None], generator.num_ws, axis=1)
    assert np.abs(_run(tmp_path / "synthesis.onnx", torch.from_numpy(ws)) - expected).max() < 1e-4
    assert np.abs(_run(tmp_path / "full.onnx", z) - expected).max() < 1e-4
    assert expected.std() > 0.1  # not a constant image


@pytest.mark.parametrize("conv_clamp", [None, 0.5])
def test_stylegan2_inference_graph_is_the_generator_in_fewer_ops(tmp_path, conv_clamp):
    import onnx

    from gancompress.exporting import graph_for

    generator = tiny_stylegan2(conv_clamp=conv_clamp)
    z = torch.randn(3, generator.z_dim)
    ws = generator.ws(z, update_w_avg=False).detach() + 0.3 * torch.randn(3, generator.num_ws, generator.z_dim)
    with torch.no_grad():  # against the generator as trained (truncation folded into the styles; mixed ws)
        for part, psi, x in (("full", 1.0, z), ("full", 0.6, z), ("synthesis", 1.0, ws)):
            graph, *_ = graph_for(generator, part, psi)
            expected = generator(z, noise="const", psi=psi) if part == "full" else generator(None, noise="const", ws=ws)
            assert (graph(x) - expected).abs().max() < 1e-4 and expected.std() > 0.1
    export_onnx(generator, tmp_path / "g.onnx")
    torch.onnx.export(graph_for(generator)[0].reference, (z,), str(tmp_path / "plain.onnx"), dynamo=False,
                      dynamic_axes={"z": {0: "b"}}, input_names=["z"])
    ops = [node.op_type for node in onnx.load(str(tmp_path / "g.onnx")).graph.node]
    plain = [node.op_type for node in onnx.load(str(tmp_path / "plain.onnx")).graph.node]
    blocks = len(generator.config.channels)
    # every style in one MatMul and every demodulation in another; each upsampling is one
    # ConvTranspose (+ its depthwise blur), each skip upsampling one ConvTranspose; no pads or reductions
    assert ops.count("MatMul") == 2 and ops.count("ConvTranspose") == 2 * (blocks - 1)
    assert "Pad" not in ops and "ReduceSum" not in ops and plain.count("Pad") > 0
    assert len(ops) < 0.6 * len(plain)


def test_truncation_is_baked_into_the_full_graph(tmp_path):
    generator = tiny_stylegan2()
    export_onnx(generator, tmp_path / "psi.onnx", psi=0.5)
    z = torch.randn(3, generator.z_dim)
    with torch.no_grad():
        truncated, plain = generator(z, noise="const", psi=0.5).numpy(), generator(z, noise="const").numpy()
    out = _run(tmp_path / "psi.onnx", z)
    assert np.abs(out - truncated).max() < 1e-4 and np.abs(out - plain).max() > 1e-2


def test_a_graph_that_disagrees_is_not_kept(tmp_path, monkeypatch):
    import gancompress.exporting as export

    monkeypatch.setattr(export, "MAX_ABS_DIFF", -1.0)  # any difference (even 0) now fails
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_onnx(tiny_generator(), tmp_path / "g.onnx")
    assert not (tmp_path / "g.onnx").exists() and not list(tmp_path.glob(".g.onnx*"))


def test_dcgan_has_no_mapping_graph(tmp_path):
    with pytest.raises(ExportError, match="only the 'full' graph"):
        export_onnx(tiny_generator(), tmp_path / "g.onnx", part="mapping")


def test_export_command_writes_every_stylegan2_graph(tmp_path, capsys):
    source = save_generator(tmp_path / "sg2.safetensors", tiny_stylegan2())
    assert main(["export", "--generator", str(source), "--part", "all", "--out", str(tmp_path / "sg2.onnx")]) == 0
    assert {p.name for p in tmp_path.glob("*.onnx")} == {"sg2.onnx", "sg2-mapping.onnx", "sg2-synthesis.onnx"}
    assert capsys.readouterr().out.count("max abs diff") == 3


def test_an_imported_nvlabs_generator_exports_with_its_clamp(tmp_path):
    from pathlib import Path

    from gancompress.families.stylegan2.importers.nvlabs import import_nvlabs

    generator, _ = import_nvlabs(Path(__file__).parent / "fixtures" / "nvlabs_tiny.pkl")["generator"]
    assert generator.config.conv_clamp == 2.0
    record = export_onnx(generator, tmp_path / "nv.onnx")
    assert record["verification"]["max_abs_diff"] < 1e-4
    expected = torch.load(Path(__file__).parent / "fixtures" / "nvlabs_tiny_expected.pt", weights_only=True)
    out = _run(tmp_path / "nv.onnx", expected["z"])
    assert np.abs(out - expected["image_const_noise"].numpy()).max() < 1e-4  # NVlabs' own output, clamp included


def test_executorch_programs_run_in_executorch_with_a_dynamic_batch(tmp_path):
    from gancompress.exporting import export_executorch, load_executorch

    generator = tiny_generator()
    record = export_executorch(generator, tmp_path / "g.pte")
    assert record["format"] == "executorch" and record["verification"]["max_abs_diff"] < 1e-5
    assert record["xnnpack_delegates"] == 1 and record["portable_ops"] == {}  # the whole DCGAN runs in XNNPACK
    z = torch.randn(5, 8)
    with torch.no_grad():
        assert (load_executorch(tmp_path / "g.pte").execute([z])[0] - generator(z)).abs().max() < 1e-5


def test_stylegan2_executorch_convolutions_are_delegated(tmp_path):
    from gancompress.exporting import export_executorch

    record = export_executorch(tiny_stylegan2(), tmp_path / "s.pte")
    assert record["verification"]["max_abs_diff"] < 1e-4
    # Constant propagation folds the weight scaling, so XNNPACK takes every convolution: what stays
    # on portable kernels is modulation arithmetic, never an aten.convolution.
    assert record["xnnpack_delegates"] >= 1 and record["portable_ops"]
    assert not [op for op in record["portable_ops"] if "convolution" in op]


def test_coreml_conversion_says_it_was_not_run_off_apple(tmp_path, capsys):
    import platform

    generator = save_generator(tmp_path / "g.safetensors", tiny_generator())
    assert main(["export", "--generator", str(generator), "--out", str(tmp_path / "g.mlpackage")]) == 0
    record = json.loads((tmp_path / "g.mlpackage.json").read_text())
    assert (tmp_path / "g.mlpackage" / "Manifest.json").is_file() and record["format"] == "coreml"
    if platform.system() != "Darwin":
        assert record["verification"]["ran"] is False and "NOT RUN" in capsys.readouterr().out


def test_an_unknown_export_suffix_is_a_clear_error(tmp_path, capsys):
    generator = save_generator(tmp_path / "g.safetensors", tiny_generator())
    assert main(["export", "--generator", str(generator), "--out", str(tmp_path / "g.tflite")]) == 2
    assert "unknown format; name the file .onnx" in capsys.readouterr().err
