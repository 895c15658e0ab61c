"""The typed student plan that run.json records."""

import json

import pytest

from gancompress.pipeline import RunError, StudentPlan, read_run, start_run
from gancompress.distillation.trainer import TrainConfig
from tests.conftest import tiny_generator


def test_plan_round_trip_leaves_unset_fields_out():
    plan = StudentPlan("inherit", width=0.5, criterion="l1", prune_seed=0)
    assert plan.to_dict() == {"init": "inherit", "width": 0.5, "criterion": "l1", "prune_seed": 0}
    assert StudentPlan.of(plan.to_dict()) == plan
    by_channels = StudentPlan("random", channels=[16, 8])
    assert by_channels.channels == (16, 8) and by_channels.to_dict() == {"init": "random", "channels": [16, 8]}
    # no criterion: the teacher family's default when a run starts; in a run.json, what it meant then (l1)
    assert StudentPlan("inherit", width=0.5).resolved(tiny_generator()).criterion == "bn"
    assert StudentPlan("random", width=0.5).resolved(tiny_generator()).criterion is None
    assert StudentPlan("inherit", width=0.5).recorded().criterion == "l1"
    assert StudentPlan("inherit", width=0.5, criterion="taylor").resolved(tiny_generator()).criterion == "taylor"


@pytest.mark.parametrize("plan, message", [
    ({"init": "distil", "width": 0.5}, "unknown student init 'distil'; choose inherit, mapping-only, random"),
    ({"init": "inherit", "widht": 0.5}, r"unknown student plan fields \['widht'\]"),
    ({"init": "random", "width": 0.5, "config": {"family": "dcgan"}}, "gives its architecture once"),
])
def test_bad_plans_are_refused(plan, message):
    with pytest.raises(RunError, match=message):
        StudentPlan.of(plan)


def test_run_json_holds_the_plan_and_rebuilds_it(tmp_path):
    from gancompress.io import save_generator

    teacher = save_generator(tmp_path / "teacher.safetensors", tiny_generator())
    run_dir = start_run(tmp_path / "runs", "t", TrainConfig(steps=1, batch_size=2, lpips=0.0), str(teacher),
                        StudentPlan("random", width=0.5))
    recorded = read_run(run_dir)["student"]
    assert recorded == {"init": "random", "width": 0.5}
    assert json.loads((run_dir / "run.json").read_text())["student"] == recorded
    assert StudentPlan.of(recorded) == StudentPlan("random", width=0.5)


def test_a_run_records_the_criterion_it_prunes_with(tmp_path):
    from gancompress.io import save_generator

    teacher = save_generator(tmp_path / "teacher.safetensors", tiny_generator())
    config = TrainConfig(steps=1, batch_size=2, lpips=0.0)
    run_dir = start_run(tmp_path / "runs", "t", config, str(teacher), StudentPlan("inherit", width=0.5))
    assert read_run(run_dir)["student"]["criterion"] == "bn"  # DCGAN's default, named in the record
    with pytest.raises(ValueError, match="criterion 'diversity' does not apply to DCGAN; choose one of bn, l1"):
        start_run(tmp_path / "runs", "u", config, str(teacher), StudentPlan("inherit", width=0.5, criterion="diversity"))
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [run_dir.name]  # refused before a directory
