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

import copy
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gancompress.errors import GancompressError
from gancompress.io import atomic_path, atomic_write_text
from gancompress.families import family_of

DEFAULT_OPSET = 17
MAX_ABS_DIFF = 1e-3
PARTS = ("full", "mapping", "synthesis")


class ExportError(GancompressError, RuntimeError):
    """An export failed, or its graph does not match PyTorch."""


def graph_for(generator: nn.Module, part: str = "full", psi: float = 1.0) -> tuple[nn.Module, torch.Tensor, str, str]:
    """The module to export for `part`, an example input, and the input and output names (the family's graph)."""
    if part not in PARTS:
        raise ExportError(f"unknown part {part!r}; choose from {', '.join(PARTS)}")
    return family_of(generator).graph(generator.eval(), part, psi)


def _reference(generator: nn.Module, graph: nn.Module) -> nn.Module:
    return family_of(generator).reference_module(generator, graph)


def _verify(run, module: nn.Module, example: torch.Tensor, batches=(1, 3), seed: int = 0) -> float:
    """Largest absolute difference between `run(x)` (a runtime, numpy out) and `module(x)` on the
    same random inputs at several batch sizes."""
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for batch in batches:
        x = torch.randn(batch, *example.shape[1:], generator=gen)
        if example.dim() == 3:  # ws: realistic inputs come from the mapping network's range
            x = example[:1].expand(batch, -1, -1) + 0.1 * x
        with torch.no_grad():
            expected = module(x).numpy()
        got = run(x)
        if got.shape != expected.shape:
            raise ExportError(f"the runtime returned shape {got.shape} for batch {batch}, PyTorch {expected.shape}")
        # max() would pass a NaN by (max(worst, nan) is worst), so non-finite values fail outright.
        for who, values in (("PyTorch", expected), ("the runtime", got)):
            bad = int((~np.isfinite(values)).sum())
            if bad:
                raise ExportError(f"{who} returned {bad} non-finite values (NaN or inf) of {values.size} at batch "
                                  f"{batch}; the generator's weights are broken (retrain it), nothing was kept")
        worst = max(worst, float(abs(got - expected).max()))
    return worst


def verify_onnx(path: Path, module: nn.Module, example: torch.Tensor, batches=(1, 3), seed: int = 0) -> dict:
    """Run the ONNX graph in ONNX Runtime (CPU) and PyTorch on the same random inputs at several
    batch sizes; returns the largest absolute difference."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    worst = _verify(lambda x: session.run(None, {name: x.numpy()})[0], module, example, batches, seed)
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
        check = verify_onnx(tmp, _reference(generator, module), example)
        if check["max_abs_diff"] > MAX_ABS_DIFF:
            raise ExportError(f"{path.name}: ONNX Runtime differs from PyTorch by {check['max_abs_diff']:.2e} "
                              f"(> {MAX_ABS_DIFF}); the graph was not kept")
    return _write_record(path, generator, part, psi, example, input_name, output_name, source, t0,
                         {"format": "onnx", "opset": opset, "verification": check})


def _write_record(path: Path, generator, part, psi, example, input_name, output_name, source, t0, extra,
                  batch="batch") -> dict:
    record = {"file": path.name, "part": part, **extra,
              "input": {"name": input_name, "shape": [batch, *example.shape[1:]]}, "output": {"name": output_name},
              **family_of(generator).export_notes(part, psi),
              "export_s": round(time.perf_counter() - t0, 2), "torch": torch.__version__,
              "config": generator.config.to_dict(), "source": source}
    atomic_write_text(path.with_name(path.name + ".json"), json.dumps(record, indent=2) + "\n")
    return record


def _exported_program(module: nn.Module, example: torch.Tensor, max_batch: int):
    """torch.export with a dynamic batch (1..max_batch), then constant propagation: weight scaling
    and the like are folded into constants, which XNNPACK needs to take a convolution (without it
    every StyleGAN2 convolution stays on ExecuTorch's slow portable kernels, measured 60x slower)."""
    from executorch.exir.passes.constant_prop_pass import constant_prop_pass

    batch = torch.export.Dim("batch", min=1, max=max_batch)
    module = copy.deepcopy(module).requires_grad_(False)  # folded constants must not require grad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return constant_prop_pass(torch.export.export(module, (example,), dynamic_shapes=({0: batch},)))


def load_executorch(path: Path):
    """The `forward` method of a .pte file in ExecuTorch's runtime (Python bindings)."""
    from executorch.runtime import Runtime

    return Runtime.get().load_program(Path(path)).load_method("forward")


def export_executorch(generator: nn.Module, path: str | Path, part: str = "full", psi: float = 1.0,
                      source: dict | None = None, max_batch: int = 64) -> dict:
    """An ExecuTorch program (.pte) for mobile CPUs, lowered to the XNNPACK backend, with a dynamic
    batch up to `max_batch`; run in ExecuTorch's own runtime against PyTorch before it is kept."""
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
    except ImportError as err:
        raise ExportError(f"ExecuTorch export needs the mobile extra: pip install 'gancompress[mobile]' "
                          f"({err.name} missing)") from err
    from importlib.metadata import version

    path = Path(path)
    module, example, input_name, output_name = graph_for(generator, part, psi)
    t0 = time.perf_counter()
    edge = to_edge_transform_and_lower(_exported_program(module, example, max_batch), partitioner=[XnnpackPartitioner()])
    calls = [getattr(n.target, "__name__", str(n.target)) for n in edge.exported_program().graph.nodes
             if n.op == "call_function"]
    delegated = calls.count("executorch_call_delegate")
    portable = {}  # ops left to ExecuTorch's portable kernels: {name: count}
    for name in calls:
        if name not in ("executorch_call_delegate", "getitem"):
            portable[name] = portable.get(name, 0) + 1
    program = edge.to_executorch()
    with atomic_path(path) as tmp:
        tmp.write_bytes(program.buffer)
        method = load_executorch(tmp)
        worst = _verify(lambda x: method.execute([x])[0].numpy(), _reference(generator, module), example)
        if worst > MAX_ABS_DIFF:
            raise ExportError(f"{path.name}: ExecuTorch differs from PyTorch by {worst:.2e} (> {MAX_ABS_DIFF}); "
                              "the program was not kept")
    check = {"batches": [1, 3], "max_abs_diff": worst, "runtime": f"executorch {version('executorch')} "
             "(Python bindings, this machine's CPU)", "tolerance": MAX_ABS_DIFF}
    return _write_record(path, generator, part, psi, example, input_name, output_name, source, t0,
                         {"format": "executorch", "backend": "xnnpack", "max_batch": max_batch,
                          "xnnpack_delegates": delegated, "portable_ops": portable, "verification": check})


def export_coreml(generator: nn.Module, path: str | Path, part: str = "full", psi: float = 1.0,
                  source: dict | None = None, precision: str = "float32") -> dict:
    """A Core ML ML Program (.mlpackage, iOS 16 / macOS 13 and later), batch 1. Core ML runs only on
    Apple platforms, so off them the model is converted and its program validated by coremltools
    but never executed: the record says so ("verification": {"ran": false, ...})."""
    try:
        import coremltools as ct
    except ImportError as err:
        raise ExportError("Core ML conversion needs the mobile extra: pip install 'gancompress[mobile]' "
                          "(coremltools missing)") from err
    import platform
    import shutil
    import tempfile

    path = Path(path)
    module, example, input_name, output_name = graph_for(generator, part, psi)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(module, (example[:1],)).run_decompositions({})
        model = ct.convert(program, minimum_deployment_target=ct.target.iOS16, convert_to="mlprogram",
                           compute_precision=ct.precision.FLOAT32 if precision == "float32" else ct.precision.FLOAT16)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:  # a package is a directory: build it aside, then swap it in
        model.save(str(staging / path.name))
        if path.exists():
            shutil.rmtree(path)
        (staging / path.name).rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    check = {"ran": False, "reason": "Core ML executes only on Apple platforms; converted and validated by "
             f"coremltools {ct.__version__} on {platform.system()}, not run"}
    if platform.system() == "Darwin":
        got = model.predict({model.get_spec().description.input[0].name: example[:1].numpy()})
        with torch.no_grad():
            expected = _reference(generator, module)(example[:1]).numpy()
        check = {"ran": True, "max_abs_diff": float(abs(next(iter(got.values())) - expected).max()),
                 "batches": [1], "runtime": f"Core ML via coremltools {ct.__version__}"}
    return _write_record(path, generator, part, psi, example, input_name, output_name, source, t0,
                         {"format": "coreml", "precision": precision, "verification": check}, batch=1)


FORMATS = {".onnx": "onnx", ".pte": "executorch", ".mlpackage": "coreml"}
FORMAT_EXTRAS = {"onnx": ("export", None), "executorch": ("mobile", ("executorch",)), "coreml": ("mobile", ("coremltools",))}


def check_export_target(path: str | Path) -> str:
    """The format `path` names, once its extra is installed and its folder can be written: every
    reason an export would fail late is raised here, before any work."""
    from gancompress import extras
    from gancompress.io import check_writable

    fmt = FORMATS.get(Path(path).suffix)
    if fmt is None:
        raise ExportError(f"{path}: unknown format; name the file .onnx (ONNX), .pte (ExecuTorch) or .mlpackage (Core ML)")
    extra, modules = FORMAT_EXTRAS[fmt]
    extras.require(extra, f"{Path(path).suffix} export", modules)
    check_writable(path)
    return fmt


def export(generator: nn.Module, path: str | Path, part: str = "full", psi: float = 1.0, source: dict | None = None,
           opset: int = DEFAULT_OPSET, precision: str = "float32") -> dict:
    """Export to the format named by the file's suffix (.onnx, .pte, .mlpackage)."""
    fmt = check_export_target(path)
    if fmt == "onnx":
        return export_onnx(generator, path, part, opset, psi, source)
    if fmt == "executorch":
        return export_executorch(generator, path, part, psi, source)
    return export_coreml(generator, path, part, psi, source, precision)
