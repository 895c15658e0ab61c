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


def test_train_or_resume_finds_its_runs_by_their_directory_names(tmp_path, monkeypatch):
    """A search setting's label (`feat=0+adv=1-s0`) names its directory `NNNNN-feat_0_adv_1-s0`: a
    second process must resume that run from its checkpoint, skipping newer runs killed before their
    first checkpoint, and start a new run only when none has a checkpoint."""
    from gancompress import pipeline
    from gancompress.io import save_generator

    trained = []
    monkeypatch.setattr(pipeline, "run_training", lambda run_dir, device, resume, progress: trained.append(
        (run_dir.name, resume)) or (None, "trainer"))
    teacher = str(save_generator(tmp_path / "teacher.safetensors", tiny_generator()))
    config, plan, runs = TrainConfig(steps=4, batch_size=2, lpips=0.0), StudentPlan("inherit", width=0.5), tmp_path / "runs"

    def again():
        return pipeline.train_or_resume(runs, "feat=0+adv=1-s0", config, teacher, plan, progress=False)

    first, _ = again()
    assert first.name == "00000-feat_0_adv_1-s0" and trained[-1] == (first.name, False)
    (first / "checkpoints").mkdir()
    (first / "checkpoints" / "latest").write_text("step-0000002")
    killed_early = start_run(runs, "feat=0+adv=1-s0", config, teacher, plan)  # newer, no checkpoint
    assert again()[0] == first and trained[-1] == (first.name, True)
    assert not (killed_early / "run.json").exists()  # no longer a run
    start_run(runs, "feat=0+adv=0-s0", config, teacher, plan)  # another setting is not this run
    (first / "checkpoints" / "latest").unlink()
    fresh, _ = again()
    assert fresh.name == "00003-feat_0_adv_1-s0" and trained[-1] == (fresh.name, False)
    assert not (first / "run.json").exists()
