"""Latency of a generator on every runtime available here: PyTorch eager (CPU, and CUDA when
present) and ONNX Runtime (CPU), at several batch sizes and thread counts. Each cell is measured
with `torch.utils.benchmark` (warm-up excluded, blocked autorange): median and interquartile range
per image. Both runtimes run the same function: the graph `gancompress export` writes (StyleGAN2
with its stored noise buffers), so the numbers compare runtimes, not workloads."""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path

import torch

from gancompress.export import export_onnx, graph_for
from gancompress.metrics.latency import benchmark

WARMUP = 3


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    info = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def _timed(stmt: str, env: dict, threads: int, batch: int, min_run_time: float, sync=None) -> dict:
    fn = env["fn"]
    for _ in range(WARMUP):
        fn()
    if sync:
        sync()
    timer = benchmark.Timer(stmt=stmt, globals=env, num_threads=threads)
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return {"median_ms_per_image": m.median * 1e3 / batch, "iqr_ms_per_image": m.iqr * 1e3 / batch, "runs": len(m.times)}


def bench_torch(module, example: torch.Tensor, batch: int, threads: int, device: str, min_run_time: float) -> dict:
    module = module.to(device)
    x = example[:1].expand(batch, *example.shape[1:]).contiguous().to(device)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            if device.startswith("cuda"):
                env = {"fn": lambda: module(x), "sync": torch.cuda.synchronize}
                return _timed("fn(); sync()", env, threads, batch, min_run_time, torch.cuda.synchronize)
            return _timed("fn()", {"fn": lambda: module(x)}, threads, batch, min_run_time)
    finally:
        torch.set_num_threads(previous)


def bench_onnxruntime(path: Path, example: torch.Tensor, batch: int, threads: int, min_run_time: float) -> dict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: example[:1].expand(batch, *example.shape[1:]).contiguous().numpy()}
    return _timed("fn()", {"fn": lambda: session.run(None, feed)}, threads, batch, min_run_time)


def bench_generator(generator: torch.nn.Module, batches=(1, 16), threads=None, runtimes=None,
                    min_run_time: float = 1.0, log=lambda msg: None) -> dict:
    """{'environment': ..., 'results': [{runtime, device, batch_size, threads, median/iqr per image}]}."""
    threads = threads or sorted({1, os.cpu_count() or 1})
    available = ["torch-cpu", "onnxruntime-cpu"] + (["torch-cuda"] if torch.cuda.is_available() else [])
    runtimes = runtimes or available
    unknown = set(runtimes) - set(available)
    if unknown:
        raise ValueError(f"runtimes not available here: {sorted(unknown)}; available: {', '.join(available)}")
    generator = generator.cpu().eval()
    module, example, _, _ = graph_for(generator, "full")
    results, export_record = [], None
    with tempfile.TemporaryDirectory() as tmp:
        if "onnxruntime-cpu" in runtimes:
            onnx_path = Path(tmp) / "generator.onnx"
            export_record = export_onnx(generator, onnx_path)
        for runtime in runtimes:
            for n_threads in threads if runtime != "torch-cuda" else [torch.get_num_threads()]:
                for batch in batches:
                    if runtime == "onnxruntime-cpu":
                        cell = bench_onnxruntime(onnx_path, example, batch, n_threads, min_run_time)
                    else:
                        device = "cuda" if runtime == "torch-cuda" else "cpu"
                        cell = bench_torch(module, example, batch, n_threads, device, min_run_time)
                    cell = {"runtime": runtime, "batch_size": batch, "threads": n_threads, **cell}
                    log(f"{runtime:16s} batch {batch:3d} threads {n_threads}: {cell['median_ms_per_image']:.3f} ms/image "
                        f"(IQR {cell['iqr_ms_per_image']:.3f})")
                    results.append(cell)
        module.cpu()
    return {"environment": environment(), "results": results,
            "onnx_verification": export_record["verification"] if export_record else None,
            "protocol": f"torch.utils.benchmark blocked_autorange (min_run_time {min_run_time} s) after {WARMUP} "
                        "warm-up calls; one fixed input per batch size; per-image = per-call / batch size"}
