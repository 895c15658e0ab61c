"""Export generators for deployment: ONNX graphs with a dynamic batch, verified in ONNX Runtime
against PyTorch on random inputs before they are kept.

Graphs ("parts"):
  full       z (N, z_dim) -> image (N, C, R, R)                           DCGAN and StyleGAN2
  mapping    z (N, z_dim) -> w (N, w_dim)                                 StyleGAN2
  synthesis  ws (N, num_ws, w_dim) -> image; one w per layer, so style    StyleGAN2
             mixing and truncation can be done outside the graph
DCGAN graphs are the lean inference form (BatchNorm folded into the convolutions, the first block
as one Gemm; `DCGANInferenceGenerator`), which computes the same function as the eval-mode model.
StyleGAN2 graphs use the non-fused modulated convolution (plain convolutions, the form counted for
MACs), the generator's stored per-layer noise buffers (deterministic output) and a truncation psi
fixed at export time (default 1: none). Images come out in [-1, 1] as the generator makes them
(StyleGAN2 is not clamped inside the graph).
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from gancompress.errors import GancompressError
from gancompress.io import atomic_path, atomic_write_text
from gancompress.models.dcgan import DCGANInferenceGenerator

DEFAULT_OPSET = 17
MAX_ABS_DIFF = 1e-3
PARTS = ("full", "mapping", "synthesis")


class ExportError(GancompressError, RuntimeError):
    """An export failed, or its graph does not match PyTorch."""


def _is_stylegan2(generator) -> bool:
    return hasattr(generator, "mapping") and hasattr(generator, "synthesis")


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


def graph_for(generator: nn.Module, part: str = "full", psi: float = 1.0) -> tuple[nn.Module, torch.Tensor, str, str]:
    """The module to export for `part`, an example input, and the input and output names."""
    if part not in PARTS:
        raise ExportError(f"unknown part {part!r}; choose from {', '.join(PARTS)}")
    generator = generator.eval()
    if not _is_stylegan2(generator):
        if part != "full" or psi != 1:
            raise ExportError(f"a {generator.config.family} generator has only the 'full' graph and no truncation")
        return DCGANInferenceGenerator.from_generator(generator), torch.randn(2, generator.z_dim), "z", "image"
    if part == "full":
        return _StyleGAN2Full(generator, psi).eval(), torch.randn(2, generator.z_dim), "z", "image"
    if part == "mapping":
        return _StyleGAN2Mapping(generator, psi).eval(), torch.randn(2, generator.z_dim), "z", "w"
    if psi != 1:
        raise ExportError("the synthesis graph takes ws: apply truncation to ws before it (psi applies to full/mapping)")
    ws = generator.ws(torch.randn(2, generator.z_dim), update_w_avg=False).detach()
    return _StyleGAN2Synthesis(generator).eval(), ws, "ws", "image"


def verify_onnx(path: Path, module: nn.Module, example: torch.Tensor, batches=(1, 3), seed: int = 0) -> dict:
    """Run the ONNX graph in ONNX Runtime (CPU) and PyTorch on the same random inputs at several
    batch sizes; returns the largest absolute difference."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for batch in batches:
        x = torch.randn(batch, *example.shape[1:], generator=gen)
        if example.dim() == 3:  # ws: realistic inputs come from the mapping network's range
            x = example[:1].expand(batch, -1, -1) + 0.1 * x
        with torch.no_grad():
            expected = module(x).numpy()
        got = session.run(None, {name: x.numpy()})[0]
        if got.shape != expected.shape:
            raise ExportError(f"{path}: ONNX Runtime returned shape {got.shape} for batch {batch}, PyTorch {expected.shape}")
        worst = max(worst, float(abs(got - expected).max()))
    return {"batches": list(batches), "max_abs_diff": worst, "onnxruntime": ort.__version__, "tolerance": MAX_ABS_DIFF}


def export_onnx(generator: nn.Module, path: str | Path, part: str = "full", opset: int = DEFAULT_OPSET,
                psi: float = 1.0, source: dict | None = None) -> dict:
    """Export one graph to `path` (written atomically, only once verified) and a `<path>.json`
    record beside it; returns the record. Raises ExportError when ONNX Runtime disagrees with
    PyTorch by more than MAX_ABS_DIFF."""
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise ExportError(f"ONNX export needs the export extra: pip install 'gancompress[export]' ({err.name} missing)") from err
    path = Path(path)
    module, example, input_name, output_name = graph_for(generator, part, psi)
    t0 = time.perf_counter()
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
        # The TorchScript-based exporter: seconds on a CPU, where the dynamo exporter takes minutes
        # for the same graph and gives the same numbers (measured, docs/design-notes.md).
        torch.onnx.export(module, (example,), str(tmp), dynamo=False, opset_version=opset,
                          input_names=[input_name], output_names=[output_name],
                          dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}})
        # Against the model as trained (for DCGAN that also checks the BatchNorm folding).
        check = verify_onnx(tmp, module if _is_stylegan2(generator) else generator, example)
        if check["max_abs_diff"] > MAX_ABS_DIFF:
            raise ExportError(f"{path.name}: ONNX Runtime differs from PyTorch by {check['max_abs_diff']:.2e} "
                              f"(> {MAX_ABS_DIFF}); the graph was not kept")
    record = {"file": path.name, "part": part, "opset": opset, "input": {"name": input_name,
              "shape": ["batch", *example.shape[1:]]}, "output": {"name": output_name},
              "psi": psi if _is_stylegan2(generator) and part != "synthesis" else None,
              "noise": "stored per-layer buffers (noise_const)" if _is_stylegan2(generator) and part != "mapping" else None,
              "verification": check, "export_s": round(time.perf_counter() - t0, 2),
              "torch": torch.__version__, "config": generator.config.to_dict(), "source": source}
    atomic_write_text(path.with_name(path.name + ".json"), json.dumps(record, indent=2) + "\n")
    return record
