"""Latency per image with `torch.utils.benchmark` (warm-up excluded, blocked autorange): median
and interquartile range, on the device used, with the thread count recorded. What is timed is the
graph that `gancompress export` ships (`export.graph_for`: DCGAN with BatchNorm folded, StyleGAN2
with its stored noise), in PyTorch eager, so the number describes the deployable function."""

from __future__ import annotations

import logging

import torch

# Importing torch.utils.benchmark pulls in cpp_extension, which warns "No CUDA runtime is found" on
# a CUDA build of torch without a GPU; nothing here compiles extensions, so that warning is noise.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
import torch.utils.benchmark as benchmark  # noqa: E402


@torch.inference_mode()
def measure_latency(
    generator: torch.nn.Module, batch_size: int, min_run_time: float = 1.0, warmup: int = 3
) -> dict:
    from gancompress.exporting import graph_for  # export imports the models; keep metrics importable alone

    device = next(generator.parameters()).device
    module, _, _, _ = graph_for(generator, "full")
    z = torch.randn(batch_size, generator.z_dim, device=device)
    return {**time_module(module, z, min_run_time, warmup), "graph": "export graph (gancompress export), PyTorch eager"}


@torch.inference_mode()
def time_module(module: torch.nn.Module, inputs: torch.Tensor, min_run_time: float = 1.0, warmup: int = 3) -> dict:
    """module(inputs) timed by torch.utils.benchmark: median and IQR per image (row of `inputs`)."""
    batch_size = len(inputs)
    for _ in range(warmup):
        module(inputs)
    timer = benchmark.Timer(stmt="module(inputs)", globals={"module": module, "inputs": inputs},
                            num_threads=torch.get_num_threads())
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return {
        "batch_size": batch_size,
        "median_ms_per_image": m.median * 1e3 / batch_size,
        "iqr_ms_per_image": m.iqr * 1e3 / batch_size,
        "runs": len(m.times),
        "threads": torch.get_num_threads(),
        "device": str(inputs.device),
    }
