"""eval/tune_recipe.py's search table: means over seeds and the same-seed difference from the default."""

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("tune_recipe", Path(__file__).parents[1] / "eval" / "tune_recipe.py")
tune_recipe = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(tune_recipe)


def _row(setting, seed, fid, lpips=0.1):
    return {"setting": setting, "seed": seed, "fid": fid, "lpips": lpips}


def test_paired_difference_from_default_uses_matching_seeds():
    rows = [_row("default", 0, 100.0), _row("default", 1, 110.0),
            _row("feat=0", 0, 95.0), _row("feat=0", 1, 112.0),  # -5 and +2: mean -1.5, better on one seed
            _row("adv=0", 1, 104.0), _row("adv=0", 2, 90.0)]  # seed 2 has no default row: not paired
    summary = {s["setting"]: s for s in tune_recipe.summarise(rows, floor_fid=50.0)}
    assert summary["feat=0"]["fid_mean"] == pytest.approx(103.5)
    assert summary["feat=0"]["fid_minus_default"] == pytest.approx(-1.5)
    assert (summary["feat=0"]["seeds_better_than_default"], summary["feat=0"]["seeds_paired"]) == (1, 2)
    assert summary["adv=0"]["fid_minus_default"] == pytest.approx(-6.0)
    assert (summary["adv=0"]["seeds_better_than_default"], summary["adv=0"]["seeds_paired"]) == (1, 1)
    assert summary["default"]["fid_minus_default"] is None
    assert summary["default"]["fid_over_floor"] == pytest.approx(2.1)
    assert tune_recipe._paired_cell(summary["feat=0"]) == "-1.50 (1/2 better)"
    assert tune_recipe._paired_cell(summary["default"]) == ""
    # ranked by mean FID
    assert [s["setting"] for s in tune_recipe.summarise(rows, 50.0)] == ["adv=0", "feat=0", "default"]


def test_no_default_rows_leaves_the_paired_column_empty():
    summary = tune_recipe.summarise([_row("feat=0", 0, 95.0)], floor_fid=50.0)
    assert summary[0]["fid_minus_default"] is None and summary[0]["seeds_paired"] == 0


def test_a_setting_may_change_the_pruning_criterion_and_bad_ones_fail_before_training():
    assert tune_recipe.parse_setting("criterion=cagan+lr_g=0.002") == {"criterion": "cagan", "lr_g": 0.002}
    assert tune_recipe.parse_setting("d_init=teacher+diffaug=none") == {"d_init": "teacher", "diffaug": ()}
    with pytest.raises(tune_recipe.StudyError, match="criterion must be one of"):
        tune_recipe.parse_setting("criterion=magic")
    with pytest.raises(Exception, match="unexpected keyword argument 'lr_gg'"):
        tune_recipe.parse_setting("lr_gg=0.1")
