"""Every registered teacher loads, matches its manifest's recorded cost, and makes valid images."""

import dataclasses

import pytest
import torch

from gancompress.io import sha256_file
from gancompress.metrics.cost import count_macs, count_parameters
from gancompress.families import build_discriminator_for
from gancompress.teachers import manifest, resolve_discriminator, resolve_generator, teacher_path

TEACHERS = sorted(manifest())


@pytest.mark.parametrize("name", TEACHERS)
def test_registered_teacher_matches_its_manifest(name, ready_assets):
    entry = manifest()[name]
    generator, identity = resolve_generator(name)
    assert identity["name"] == name
    if "sha256" in entry:
        assert sha256_file(teacher_path(name)) == entry["sha256"]
    assert count_parameters(generator) == entry["params"]
    assert count_macs(generator) == entry["macs_per_image"]
    assert generator.resolution == entry["resolution"]
    with torch.inference_mode():
        images = generator(torch.randn(4, generator.z_dim))
    assert images.shape[-1] == entry["resolution"]
    if entry["family"] == "dcgan":
        assert images.abs().max() <= 1  # tanh output
    else:  # StyleGAN2 has no output tanh (the evaluator clamps), but a trained one stays near [-1, 1]
        assert images.abs().max() < 2 and (images - images.clamp(-1, 1)).abs().mean() < 0.05
    assert images.std() > 0.05  # not a collapsed constant image
    discriminator, d_identity = resolve_discriminator(name)
    assert (discriminator is None) == ("discriminator" not in entry)
    if discriminator is not None:  # ours, trained against the frozen teacher (eval/teacher_discriminator.py)
        assert d_identity["sha256"] == entry["discriminator"]["sha256"]
        assert discriminator.config == build_discriminator_for(generator.config).config  # mirrors the teacher, full width
        held_out = entry["discriminator"]["held_out"]  # tells the data from the teacher's samples better than chance
        assert held_out["real_accuracy"] + held_out["fake_accuracy"] > 1.2
        with torch.inference_mode():
            logits = discriminator(images)
        assert logits.shape[0] == 4 and logits.numel() == 4 and torch.isfinite(logits).all()


def test_a_teachers_discriminator_is_found_beside_it_recorded_by_the_run_and_checked_on_resume(tmp_path):
    from gancompress.distillation.trainer import TrainConfig
    from gancompress.families import build_discriminator_for
    from gancompress.io import load_discriminator, save_discriminator, save_generator
    from gancompress.pipeline import RunError, StudentPlan, read_run, run_training, start_run
    from gancompress.teachers import discriminator_sibling, resolve_discriminator
    from tests.conftest import tiny_generator

    teacher = tiny_generator(channels=(16, 8, 8))
    g_path = save_generator(tmp_path / "netG-G.safetensors", teacher)
    assert resolve_discriminator(str(g_path)) == (None, None)  # none beside it yet
    config = TrainConfig(steps=2, batch_size=4, lpips=0.0, d_init="teacher", log_every=1, checkpoint_every=1)
    plan = StudentPlan("inherit", width=0.5)
    with pytest.raises(RunError, match="carries none and has no -D.safetensors beside it: pass --teacher-d"):
        start_run(tmp_path / "runs", "x", config, str(g_path), plan)
    assert not (tmp_path / "runs").exists()  # refused before anything was written

    torch.manual_seed(1)
    d_path = save_discriminator(discriminator_sibling(g_path), build_discriminator_for(teacher.config))
    assert d_path == tmp_path / "netG-D.safetensors"
    found, identity = resolve_discriminator(str(g_path))
    assert identity == {"file": str(d_path), "sha256": sha256_file(d_path)}
    run_dir = start_run(tmp_path / "runs", "x", config, str(g_path), plan)
    assert read_run(run_dir)["teacher_discriminator"]["sha256"] == identity["sha256"]
    _, trainer = run_training(run_dir, progress=False)
    trained_d = load_discriminator(run_dir / "student-D.safetensors")  # the run's own, for its student as a teacher
    assert trained_d.config == found.config and torch.equal(trained_d.head.weight, trainer.D.head.weight.cpu())
    assert not torch.equal(trained_d.head.weight, found.head.weight)  # trained on from the teacher's copy

    torch.manual_seed(2)
    save_discriminator(d_path, build_discriminator_for(teacher.config))  # the file changed under the run
    with pytest.raises(RunError, match="is not the one the run started with"):
        run_training(run_dir, resume=True, progress=False)


def test_auto_discriminator_takes_the_teachers_when_there_is_one_and_keeps_it_on_resume(tmp_path):
    from gancompress.distillation.trainer import TrainConfig
    from gancompress.families import build_discriminator_for
    from gancompress.io import save_discriminator, save_generator
    from gancompress.pipeline import RunError, StudentPlan, read_run, run_training, start_run
    from gancompress.teachers import discriminator_sibling
    from tests.conftest import tiny_generator

    teacher = tiny_generator(channels=(16, 8, 8))
    g_path = save_generator(tmp_path / "g.safetensors", teacher)
    config = TrainConfig(steps=2, batch_size=4, lpips=0.0, d_init="auto", log_every=1, checkpoint_every=1)
    plan = StudentPlan("inherit", width=0.5)
    alone = start_run(tmp_path / "runs", "alone", config, str(g_path), plan)  # none beside it: a fresh student-size D
    assert "teacher_discriminator" not in read_run(alone)
    _, trainer = run_training(alone, progress=False)
    assert trainer.D.config == build_discriminator_for(trainer.G.config).config

    torch.manual_seed(3)
    d_path = save_discriminator(discriminator_sibling(g_path), build_discriminator_for(teacher.config))
    _, trainer = run_training(alone, resume=True, progress=False)  # started without one: resumes without it
    assert trainer.D.config == build_discriminator_for(trainer.G.config).config
    with_d = start_run(tmp_path / "runs", "with-d", config, str(g_path), plan)
    assert read_run(with_d)["teacher_discriminator"]["sha256"] == sha256_file(d_path)
    _, trainer = run_training(with_d, progress=False)
    assert trainer.D.config == build_discriminator_for(teacher.config).config  # the teacher's, trained on
    narrow = start_run(tmp_path / "runs", "narrow", dataclasses.replace(config, d_width=0.5), str(g_path), plan)
    assert "teacher_discriminator" not in read_run(narrow)  # not taken, so not recorded
    _, trainer = run_training(narrow, progress=False)  # a width asked for: a fresh student-size one at that width
    assert trainer.D.config == build_discriminator_for(trainer.G.config, 0.5).config
    d_path.unlink()  # a run that started from the teacher's D does not resume with a fresh one
    with pytest.raises(RunError, match="it is gone; restore it"):
        run_training(with_d, resume=True, progress=False)
