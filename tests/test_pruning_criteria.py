"""eval/pruning_criteria.py: every criterion's untrained student scored against the teacher, ranked."""

import importlib.util
import json
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("pruning_criteria",
                                               Path(__file__).parents[1] / "eval" / "pruning_criteria.py")
pruning_criteria = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(pruning_criteria)


def test_each_criterion_is_scored_and_ranked_and_rows_are_reused(work, capsys):
    out = work / "criteria"
    argv = ["--teacher", str(work / "teacher.safetensors"), "--width", "0.5", "--criteria", "bn,random",
            "--n", "16", "--out", str(out), "--device", "cpu"]
    assert pruning_criteria.main(argv) == 0
    record = json.loads((out / "criteria.json").read_text())
    rows = {r["criterion"]: r for r in record["rows"]}
    assert set(rows) == {"bn", "random"} and rows["bn"]["channels"] == [16, 8, 8]
    assert rows["bn"]["fid"] != rows["random"]["fid"] and 0 < rows["bn"]["lpips"] < 1  # different students
    assert rows["bn"]["protocol"]["n_generated"] == 16 and record["floor_fid"] < min(r["fid"] for r in rows.values())
    table = [line for line in (out / "criteria.md").read_text().splitlines() if line.startswith("| ") and "FID" not in line]
    ranked = sorted(rows.values(), key=lambda r: r["fid"])
    assert [line.split(" | ")[0].lstrip("| ") for line in table] == [
        r["criterion"] + (" (default)" if r["criterion"] == "bn" else "") for r in ranked]
    stamp = (out / "rows" / "bn.json").stat().st_mtime_ns
    assert pruning_criteria.main(argv) == 0  # a second run reuses its rows
    assert (out / "rows" / "bn.json").stat().st_mtime_ns == stamp


def test_a_criterion_of_another_family_is_refused(work):
    with pytest.raises(SystemExit):
        pruning_criteria.main(["--teacher", str(work / "teacher.safetensors"), "--criteria", "diversity",
                               "--out", str(work / "c")])
    assert not (work / "c").exists()
