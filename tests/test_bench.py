"""gancompress bench: every available runtime, batch size and thread count measured, ratios to the first generator."""

import json

import pytest
import torch

from gancompress.benchmark import bench_generator, profile_onnxruntime
from gancompress.exporting import export_onnx
from gancompress.cli import main
from gancompress.io import save_generator
from tests.conftest import tiny_generator


def test_every_cell_is_measured_on_every_cpu_runtime():
    result = bench_generator(tiny_generator(), batches=(1, 4), threads=(1, 2), min_run_time=0.05)
    cells = {(c["runtime"], c["batch_size"], c["threads"]) for c in result["results"]}
    runtimes = ("torch-cpu", "onnxruntime-cpu", "executorch-cpu")  # the dev extra installs ExecuTorch
    assert cells == {(r, b, t) for r in runtimes for b in (1, 4) for t in (1, 2)}
    assert all(c["median_ms_per_image"] > 0 and c["iqr_ms_per_image"] >= 0 and c["runs"] >= 1 for c in result["results"])
    assert result["onnx_verification"]["max_abs_diff"] < 1e-4
    assert result["environment"]["cores"] >= 1 and result["environment"]["onnxruntime"]


def test_bench_command_reports_speedups_against_the_first_generator(tmp_path, capsys):
    # far apart in cost, so that per-op overhead (which tiny networks share) cannot hide the difference
    big = save_generator(tmp_path / "big.safetensors", tiny_generator(channels=(256, 128, 64)))
    small = save_generator(tmp_path / "small.safetensors", tiny_generator(channels=(8, 8, 8)))
    out = tmp_path / "bench.json"
    assert main(["bench", "--generator", str(big), "--generator", str(small), "--batches", "8", "--threads", "1",
                 "--runtimes", "torch-cpu", "--min-run-time", "0.2", "--out", str(out)]) == 0
    entries = json.loads(out.read_text())["entries"]
    small_entry = entries[1]
    assert small_entry["macs_reduction"] > 50
    (cell,) = small_entry["results"]
    assert cell["speedup"] > 2  # 97x fewer MACs per image must run clearly faster at batch 8 (measured: 5.5x)
    assert "speedup over big.safetensors" in capsys.readouterr().out


def test_unavailable_runtimes_are_a_clear_error(tmp_path, capsys):
    path = save_generator(tmp_path / "g.safetensors", tiny_generator())
    assert main(["bench", "--generator", str(path), "--runtimes", "tensorrt"]) == 2
    assert "unknown runtimes ['tensorrt']; choose from torch-cpu" in capsys.readouterr().err


def test_the_profile_splits_a_call_into_its_graph_nodes(tmp_path):
    generator = tiny_generator(channels=(32, 16, 8))
    export_onnx(generator, tmp_path / "g.onnx")
    prof = profile_onnxruntime(tmp_path / "g.onnx", torch.randn(2, 8), batch=4, threads=1, runs=20)
    ops = [n["op"] for n in prof["nodes"]]
    assert ops.count("ConvTranspose") == 3 and any("Gemm" in op for op in ops)  # ONNX Runtime fuses Gemm + Relu
    assert all(n["median_us"] > 0 for n in prof["nodes"])
    assert 0 < sum(n["median_us"] for n in prof["nodes"]) < prof["call_median_us"] * 1.5


def test_bench_command_compares_the_fastest_cells(tmp_path, capsys):
    # far apart in cost, so that per-op overhead (which tiny networks share) cannot hide the difference
    big = save_generator(tmp_path / "big.safetensors", tiny_generator(channels=(256, 128, 64)))
    small = save_generator(tmp_path / "small.safetensors", tiny_generator(channels=(8, 8, 8)))
    out = tmp_path / "bench.json"
    assert main(["bench", "--generator", str(big), "--generator", str(small), "--batches", "1", "--threads", "1",
                 "--min-run-time", "0.1", "--profile", "--repeats", "3", "--out", str(out)]) == 0
    big_entry, small_entry = json.loads(out.read_text())["entries"]
    (best,) = small_entry["best_speedup"]
    fastest = min(c["median_ms_per_image"] for c in small_entry["results"])
    assert best["speedup"] == pytest.approx(min(c["median_ms_per_image"] for c in big_entry["results"]) / fastest)
    assert best["ratio_to_macs_reduction"] == pytest.approx(best["speedup"] / small_entry["macs_reduction"])
    assert len(big_entry["profiles"]) == 1 and "us outside the nodes" in capsys.readouterr().out
    for cell in small_entry["results"]:  # each cell is the median of its three rounds
        assert len(cell["rounds_ms_per_image"]) == 3
        assert cell["median_ms_per_image"] == sorted(cell["rounds_ms_per_image"])[1]


def test_the_library_times_generators_side_by_side():
    import gancompress as gc

    big, small = tiny_generator(channels=(64, 32, 16)), tiny_generator(channels=(8, 8, 8))
    entries = gc.bench([big, small], batches=(8,), threads=(1,), runtimes=["torch-cpu"], min_run_time=0.1, repeats=2)
    assert [e["generator"] for e in entries] == ["dcgan generator (in memory)"] * 2
    (cell,) = entries[1]["results"]
    assert entries[1]["macs_reduction"] > 5 and cell["speedup"] > 1 and len(cell["rounds_ms_per_image"]) == 2
    (best,) = entries[1]["best_speedup"]
    assert best["ratio_to_macs_reduction"] == pytest.approx(best["speedup"] / entries[1]["macs_reduction"])
    assert "macs_reduction" not in entries[0]
