"""Latency of a generator on every runtime available here: PyTorch eager (CPU, and CUDA when
present), ONNX Runtime (CPU) and ExecuTorch with XNNPACK (CPU; with the mobile extra), at several batch sizes and thread counts. Each cell is measured
with `torch.utils.benchmark` (warm-up excluded, blocked autorange): median and interquartile range
per image. Both runtimes run the same function: the graph `gancompress export` writes (StyleGAN2
with its stored noise buffers; DCGAN with BatchNorm folded), so the numbers compare runtimes, not
workloads. `profile_onnxruntime` splits one ONNX Runtime call into per-node kernel times and the
runtime's per-call overhead, to explain a speedup that falls short of the MACs reduction."""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
from pathlib import Path

import torch

from gancompress import extras
from gancompress.errors import GancompressError
from gancompress.exporting import export_executorch, export_onnx, graph_for
from gancompress.metrics.cost import count_macs
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
    if executorch_available():
        from importlib.metadata import version

        info["executorch"] = version("executorch")
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


def _batch_of(example: torch.Tensor, batch: int) -> torch.Tensor:
    """`batch` copies of the first example: one fixed input per batch size, on every runtime."""
    return example[:1].expand(batch, *example.shape[1:]).contiguous()


def _ort_session(path: Path, threads: int, profile_prefix: str | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3
    if profile_prefix:
        options.enable_profiling, options.profile_file_prefix = True, profile_prefix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def bench_torch(module, example: torch.Tensor, batch: int, threads: int, device: str, min_run_time: float) -> dict:
    module = module.to(device)
    x = _batch_of(example, batch).to(device)
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
    session = _ort_session(path, threads)
    feed = {session.get_inputs()[0].name: _batch_of(example, batch).numpy()}
    return _timed("fn()", {"fn": lambda: session.run(None, feed)}, threads, batch, min_run_time)


def executorch_available() -> bool:
    return extras.available("mobile", ("executorch",))


RUNTIMES = ("torch-cpu", "onnxruntime-cpu", "executorch-cpu", "torch-cuda")
RUNTIME_EXTRAS = {"onnxruntime-cpu": "export", "executorch-cpu": "mobile"}


def available_runtimes() -> list[str]:
    """The runtimes this install can time: PyTorch always; ONNX Runtime with the export extra,
    ExecuTorch with the mobile extra; CUDA when a GPU is visible."""
    found = ["torch-cpu"]
    if extras.available("export"):
        found.append("onnxruntime-cpu")
    if executorch_available():
        found.append("executorch-cpu")
    if torch.cuda.is_available():
        found.append("torch-cuda")
    return found


def check_runtimes(runtimes=None) -> list[str]:
    """`runtimes` (default: every available one), or one error naming what is missing and how to get it."""
    if not runtimes:
        return available_runtimes()
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise GancompressError(f"unknown runtimes {unknown}; choose from {', '.join(RUNTIMES)}")
    for runtime in runtimes:
        if runtime in RUNTIME_EXTRAS:
            extras.require(RUNTIME_EXTRAS[runtime], f"the {runtime} runtime",
                           ("executorch",) if runtime == "executorch-cpu" else None)
        elif runtime == "torch-cuda" and not torch.cuda.is_available():
            raise GancompressError("the torch-cuda runtime needs a CUDA GPU, and none is visible here")
    return list(runtimes)


def bench_executorch(path: Path, example: torch.Tensor, batch: int, threads: int, min_run_time: float) -> dict:
    """ExecuTorch's runtime (XNNPACK backend) through its Python bindings. The thread pool is
    process-wide and a loaded method's XNNPACK delegate keeps using the pool it was loaded with, so
    the pool is resized before the method is loaded and restored only after the method is gone
    (resizing under a live method crashed the process now and then)."""
    from executorch.extension.pybindings.portable_lib import _threadpool_get_thread_count, _unsafe_reset_threadpool

    from gancompress.exporting import load_executorch

    x = _batch_of(example, batch)
    previous = _threadpool_get_thread_count()
    _unsafe_reset_threadpool(threads)
    loaded = [load_executorch(path)]  # the only reference, so clearing it frees the method
    try:
        return _timed("fn()", {"fn": lambda: loaded[0].execute([x])}, threads, batch, min_run_time)
    finally:
        loaded.clear()
        _unsafe_reset_threadpool(previous)


def profile_onnxruntime(path: Path, example: torch.Tensor, batch: int, threads: int, runs: int = 300) -> dict:
    """Where the time of one ONNX Runtime call goes: the median kernel time of every graph node
    over `runs` calls (after WARMUP * 10 unprofiled ones), and the median whole call; what the
    nodes do not account for is the runtime's per-call overhead (input/output handling,
    scheduling). Profiling itself adds a little time to every node."""
    import json
    import statistics

    warmup = WARMUP * 10
    with tempfile.TemporaryDirectory() as tmp:
        session = _ort_session(path, threads, profile_prefix=str(Path(tmp) / "profile"))
        feed = {session.get_inputs()[0].name: _batch_of(example, batch).numpy()}
        for _ in range(warmup + runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    node_times, order, calls = {}, [], []
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            key = (event["name"][: -len("_kernel_time")], event["args"].get("op_name", ""))
            if key not in node_times:
                node_times[key] = []
                order.append(key)
            node_times[key].append(event["dur"])
        elif event.get("cat") == "Session" and event["name"] == "model_run":
            calls.append(event["dur"])
    nodes = [{"node": name, "op": op, "median_us": statistics.median(node_times[(name, op)][warmup:])}
             for name, op in order]
    call = statistics.median(calls[warmup:])
    return {"batch_size": batch, "threads": threads, "runs": runs, "call_median_us": call, "nodes": nodes,
            "outside_nodes_us": call - sum(n["median_us"] for n in nodes)}


def bench_generator(generator: torch.nn.Module, batches=(1, 16), threads=None, runtimes=None,
                    min_run_time: float = 1.0, log=lambda msg: None, profile: bool = False) -> dict:
    """{'environment': ..., 'results': [{runtime, device, batch_size, threads, median/iqr per image}]};
    with `profile`, also 'profiles': ONNX Runtime per-node times at every batch size and thread count."""
    threads = threads or sorted({1, os.cpu_count() or 1})
    runtimes = check_runtimes(runtimes)
    generator = generator.cpu().eval()
    module, example, _, _ = graph_for(generator, "full")
    results, export_record = [], None
    with tempfile.TemporaryDirectory() as tmp:
        if "onnxruntime-cpu" in runtimes:
            onnx_path = Path(tmp) / "generator.onnx"
            export_record = export_onnx(generator, onnx_path)
        if "executorch-cpu" in runtimes:
            pte_path = Path(tmp) / "generator.pte"
            export_executorch(generator, pte_path, max_batch=max(64, *batches))
        for runtime in runtimes:
            for n_threads in threads if runtime != "torch-cuda" else [torch.get_num_threads()]:
                for batch in batches:
                    if runtime == "onnxruntime-cpu":
                        cell = bench_onnxruntime(onnx_path, example, batch, n_threads, min_run_time)
                    elif runtime == "executorch-cpu":
                        cell = bench_executorch(pte_path, example, batch, n_threads, min_run_time)
                    else:
                        device = "cuda" if runtime == "torch-cuda" else "cpu"
                        cell = bench_torch(module, example, batch, n_threads, device, min_run_time)
                    cell = {"runtime": runtime, "batch_size": batch, "threads": n_threads, **cell}
                    log(f"{runtime:16s} batch {batch:3d} threads {n_threads}: {cell['median_ms_per_image']:.3f} ms/image "
                        f"(IQR {cell['iqr_ms_per_image']:.3f})")
                    results.append(cell)
        profiles = [profile_onnxruntime(onnx_path, example, batch, n_threads)
                    for n_threads in threads for batch in batches] if profile and "onnxruntime-cpu" in runtimes else None
        module.cpu()
    return {"environment": environment(), "results": results,
            "onnx_verification": export_record["verification"] if export_record else None,
            **({"profiles": profiles} if profiles else {}),
            "protocol": f"torch.utils.benchmark blocked_autorange (min_run_time {min_run_time} s) after {WARMUP} "
                        "warm-up calls; one fixed input per batch size; per-image = per-call / batch size"}


def bench_generators(generators, batches=(1, 16), threads=None, runtimes=None, min_run_time: float = 1.0,
                     repeats: int = 1, profile: bool = False, log=lambda msg: None) -> list[dict]:
    """Several generators timed side by side: `generators` is [(module, identity), ...] (identity as
    `teachers.resolve_generator` returns it). One entry per generator: its MACs and every cell of
    `bench_generator`. Rounds go over all generators in turn, so a drift in the machine's state
    (clock, caches, other load) falls on every generator alike; each cell reports the median over
    `repeats` rounds (`rounds_ms_per_image` keeps them). With several generators, each later entry
    gains its MACs reduction, a speedup per cell over the first generator, and `best_speedup`: each
    generator on its fastest runtime and thread count against the first on its fastest."""
    if repeats < 1:
        raise GancompressError(f"--repeats must be at least 1, got {repeats}")
    runtimes = check_runtimes(runtimes)
    entries = [{"generator": identity["name"], "sha256": identity.get("sha256"), "macs_per_image": count_macs(g)}
               for g, identity in generators]
    for round_index in range(repeats):
        for entry, (generator, identity) in zip(entries, generators):
            log(f"{identity['name']}" + (f" (round {round_index + 1} of {repeats})" if repeats > 1 else "") + ":")
            result = bench_generator(generator, batches, threads, runtimes, min_run_time,
                                     log=lambda msg: log("  " + msg), profile=profile and round_index == 0)
            for prof in result.get("profiles", []):
                log(f"  ONNX Runtime profile, batch {prof['batch_size']} threads {prof['threads']}: "
                    f"{prof['call_median_us']:.0f} us per call, {prof['outside_nodes_us']:.0f} us outside the nodes")
                for node in prof["nodes"]:
                    log(f"    {node['median_us']:8.0f} us  {node['op']:18s} {node['node']}")
            if round_index == 0:
                entry.update(result)
                for cell in entry["results"]:
                    cell["rounds_ms_per_image"] = [cell["median_ms_per_image"]]
            else:
                for cell, new in zip(entry["results"], result["results"]):
                    cell["rounds_ms_per_image"].append(new["median_ms_per_image"])
                    cell["median_ms_per_image"] = statistics.median(cell["rounds_ms_per_image"])
    if len(entries) > 1:
        _add_speedups(entries)
    return entries


def _add_speedups(entries: list[dict]) -> None:
    first = entries[0]
    base = {(c["runtime"], c["batch_size"], c["threads"]): c["median_ms_per_image"] for c in first["results"]}
    for entry in entries[1:]:
        entry["macs_reduction"] = first["macs_per_image"] / entry["macs_per_image"]
        for cell in entry["results"]:
            cell["speedup"] = base[(cell["runtime"], cell["batch_size"], cell["threads"])] / cell["median_ms_per_image"]
        entry["best_speedup"] = []
        for batch in sorted({c["batch_size"] for c in entry["results"]}):
            mine, theirs = (min((c for c in e["results"] if c["batch_size"] == batch),
                                key=lambda c: c["median_ms_per_image"]) for e in (entry, first))
            speedup = theirs["median_ms_per_image"] / mine["median_ms_per_image"]
            entry["best_speedup"].append({"batch_size": batch, "speedup": speedup,
                                          "ratio_to_macs_reduction": speedup / entry["macs_reduction"],
                                          "student": [mine["runtime"], mine["threads"]],
                                          "reference": [theirs["runtime"], theirs["threads"]]})


def summary_lines(entries: list[dict], repeats: int = 1) -> list[str]:
    """The human summary of `bench_generators`' entries: medians over rounds, speedups, best against best."""
    lines = []
    if repeats > 1:
        lines.append(f"median over {repeats} rounds (ms/image):")
        for entry in entries:
            for c in entry["results"]:
                lines.append(f"  {entry['generator']}: {c['runtime']:16s} batch {c['batch_size']:3d} threads "
                             f"{c['threads']}: {c['median_ms_per_image']:.3f} (rounds: "
                             f"{', '.join(f'{t:.3f}' for t in c['rounds_ms_per_image'])})")
    if len(entries) > 1:
        lines.append(f"speedup over {entries[0]['generator']} (median latency ratio; MACs reduction in brackets):")
        for entry in entries[1:]:
            reduction = entry["macs_reduction"]
            for cell in entry["results"]:
                lines.append(f"  {entry['generator']}: {cell['runtime']} batch {cell['batch_size']} threads "
                             f"{cell['threads']}: {cell['speedup']:.2f}x [{reduction:.1f}x MACs; ratio "
                             f"{cell['speedup'] / reduction:.2f}]")
        lines.append("best against best (each generator on its fastest runtime and thread count per batch size):")
        for entry in entries[1:]:
            for best in entry["best_speedup"]:
                (mine_rt, mine_th), (theirs_rt, theirs_th) = best["student"], best["reference"]
                lines.append(f"  {entry['generator']}: batch {best['batch_size']}: {best['speedup']:.2f}x ({mine_rt}, "
                             f"{mine_th} threads, vs {theirs_rt}, {theirs_th} threads) [{entry['macs_reduction']:.1f}x "
                             f"MACs; ratio {best['ratio_to_macs_reduction']:.2f}]")
    return lines
