"""The resumable study harness behind `sweep` and the eval/ studies."""

import json

import pytest

from gancompress.study import Study, StudyError, select


def test_rows_are_computed_once_and_read_back(tmp_path):
    calls = []

    def compute(value):
        calls.append(value)
        return {"value": value}

    study = Study(tmp_path / "s", {"widths": [0.5, 0.25]}).open()
    assert study.row("a", lambda: compute(1)) == {"value": 1}
    lines = []
    # a second study object on the same directory (a resumed process) reuses the row
    again = Study(tmp_path / "s", {"widths": [0.5, 0.25]}).open()
    assert again.row("a", lambda: compute(2), log=lines.append) == {"value": 1}
    assert calls == [1] and lines == ["a: done before, skipped"]
    assert json.loads((tmp_path / "s" / "rows" / "a.json").read_text()) == {"value": 1}
    assert json.loads((tmp_path / "s" / "plan.json").read_text()) == {"widths": [0.5, 0.25]}


def test_a_failed_row_stores_nothing(tmp_path):
    study = Study(tmp_path, {}).open()

    def fail():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        study.row("a", fail)
    assert not study.done("a") and list((tmp_path / "rows").glob("*")) == []
    assert study.row("a", lambda: {"ok": True}) == {"ok": True}


def test_a_different_plan_is_refused_and_names_what_differs(tmp_path):
    Study(tmp_path, {"steps": 10, "n": 4}, what="sweep").open()
    with pytest.raises(StudyError, match=r"different sweep .*differs in steps"):
        Study(tmp_path, {"steps": 20, "n": 4}, what="sweep").open()


def test_rows_in_order_and_missing_rows_named(tmp_path):
    study = Study(tmp_path, {}).open()
    for name in ("b", "a"):
        study.row(name, lambda name=name: {"name": name})
    assert [r["name"] for r in study.rows(["a", "b"])] == ["a", "b"]
    with pytest.raises(StudyError, match="rows c are not done"):
        study.rows(["a", "c"])


def test_select():
    planned = ["ours-w0.5", "mse-w0.5", "ours-w0.25"]
    assert select(planned, "") == planned
    assert select(planned, "ours-w0.25,ours-w0.5") == ["ours-w0.5", "ours-w0.25"]  # plan order
    with pytest.raises(StudyError, match="--pairs names no planned row: x-w1; planned: ours-w0.5"):
        select(planned, "x-w1", option="--pairs")
