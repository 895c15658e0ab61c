"""The trainer on tiny networks: losses, frozen teacher, shared latents, exact resume."""

import json

import pytest
import torch

from gancompress.config import ConfigError
from gancompress.distillation.trainer import TrainConfig, Trainer
from gancompress.metrics.lpips import load_lpips
from gancompress.pruning import prune_generator
from tests.conftest import tiny_generator

SMALL = dict(steps=6, batch_size=4, r1_interval=2, log_every=1, sample_every=3, checkpoint_every=3, feat=1.0)


@pytest.fixture(scope="module")
def lpips_alex():
    return load_lpips("alex")


def _trainer(tmp_path, config, width=0.5, lpips_model=None):
    teacher = tiny_generator(channels=(16, 8, 8))
    student, kept = prune_generator(teacher, width=width)
    return Trainer(config, student, teacher, None, tmp_path, kept=kept, lpips_model=lpips_model, progress=False), teacher


def test_every_loss_term_is_logged_separately(tmp_path, lpips_alex):
    trainer, _ = _trainer(tmp_path, TrainConfig(**SMALL), lpips_model=lpips_alex)
    trainer.train()
    lines = [json.loads(l) for l in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [1, 2, 3, 4, 5, 6]
    assert {"out_l1", "out_lpips", "feat_mse", "g_adv", "d_real", "d_fake", "img_per_s", "time_s"} <= set(lines[0])
    assert "d_r1" in lines[0] and "d_r1" not in lines[1]  # lazy R1 every 2 steps, from step 0
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step-0000003.png", "step-0000006.png"]
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step-0000006"


def test_keep_every_keeps_milestone_checkpoints_and_stats_record_speed_and_memory(tmp_path):
    trainer, _ = _trainer(tmp_path, TrainConfig(**{**SMALL, "checkpoint_every": 1, "keep_every": 2, "lpips": 0.0}))
    trainer.train()
    # the last two (5, 6) as always, and the multiples of 2
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*")) == [
        "step-0000002", "step-0000004", "step-0000005", "step-0000006"]
    last = json.loads((tmp_path / "stats.jsonl").read_text().splitlines()[-1])
    assert last["img_per_s"] > 0 and 10 < last["peak_memory_mb"] < 64 * 1024
    with pytest.raises(ConfigError, match="keep_every must be >= 0"):
        TrainConfig(keep_every=-1)


def test_teacher_is_frozen_and_shares_latents_with_the_student(tmp_path, lpips_alex):
    """A width-1.0 student starts equal to the teacher: with the same z the output losses are 0."""
    config = TrainConfig(**{**SMALL, "steps": 1, "adv": 0.0, "feat": 1.0, "student_bn": "frozen"})
    trainer, teacher = _trainer(tmp_path, config, width=1.0, lpips_model=lpips_alex)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    terms = trainer.generator_step(0)
    assert terms["out_l1"] == 0 and terms["feat_mse"] == 0 and terms["out_lpips"] == pytest.approx(0, abs=1e-6)
    trainer.config = TrainConfig(**SMALL)
    trainer.train()
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training


def test_student_sized_discriminator(tmp_path):
    trainer, _ = _trainer(tmp_path, TrainConfig(**SMALL, lpips=0.0), width=0.5)
    assert trainer.D.config.channels == (8, 8, 8)  # the student's (8, 8, 8) mirrored, at least 8


def test_resumed_run_ends_with_the_same_weights(tmp_path, lpips_alex):
    config = TrainConfig(**SMALL)
    straight, _ = _trainer(tmp_path / "straight", config, lpips_model=lpips_alex)
    straight.train()
    interrupted, _ = _trainer(tmp_path / "resumed", config, lpips_model=lpips_alex)
    real_update = interrupted.update_ema

    def killed_during_step_5():
        if interrupted.step == 4:
            raise KeyboardInterrupt  # after step 4 was logged; the last checkpoint is step 3
        real_update()

    interrupted.update_ema = killed_during_step_5
    with pytest.raises(KeyboardInterrupt):
        interrupted.train()
    resumed, _ = _trainer(tmp_path / "resumed", config, lpips_model=lpips_alex)
    resumed.load_checkpoint(tmp_path / "resumed")
    assert resumed.step == 3
    resumed.train()
    for a, b in [(straight.G_ema, resumed.G_ema), (straight.G, resumed.G), (straight.D, resumed.D)]:
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), name
    steps = [json.loads(l)["step"] for l in (tmp_path / "resumed" / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # the lost step's log line was dropped and written again


def test_tensorboard_logs_each_step_once_across_a_resume(tmp_path, lpips_alex):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = TrainConfig(**SMALL, tensorboard=True)
    interrupted, _ = _trainer(tmp_path, config, lpips_model=lpips_alex)
    real_update = interrupted.update_ema

    def killed_during_step_5():
        if interrupted.step == 4:
            raise KeyboardInterrupt  # step 4 was logged to TensorBoard; the checkpoint is step 3
        real_update()

    interrupted.update_ema = killed_during_step_5
    with pytest.raises(KeyboardInterrupt):
        interrupted.train()
    interrupted.files.close()  # a killed process leaves its flushed events behind
    resumed, _ = _trainer(tmp_path, config, lpips_model=lpips_alex)
    resumed.load_checkpoint(tmp_path)
    resumed.train()
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    stats = [json.loads(l) for l in (tmp_path / "stats.jsonl").read_text().splitlines()]
    out_l1 = events.Scalars("train/out_l1")
    assert [e.step for e in out_l1] == [1, 2, 3, 4, 5, 6]
    assert [e.value for e in out_l1] == pytest.approx([s["out_l1"] for s in stats], rel=1e-6)
    assert [e.step for e in events.Images("samples")] == [3, 6]


def test_metrics_every_logs_quality_keeps_the_best_and_trains_the_same_weights(tmp_path, lpips_alex):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gancompress.io import load_generator, read_metadata

    def monitored(trainer, fids):
        """A stand-in for evaluation.QualityMonitor: scripted FIDs by step; the EMA's weights kept per call."""
        seen = {}

        def measure(generator):
            seen[trainer.step] = {k: v.clone() for k, v in generator.state_dict().items()}
            return {"fid": fids[trainer.step], "kid": 0.01, "n": 16}
        trainer.monitor = measure
        return seen

    config = TrainConfig(**SMALL, metrics_every=2, tensorboard=True)
    plain, _ = _trainer(tmp_path / "plain", TrainConfig(**SMALL), lpips_model=lpips_alex)
    plain.train()
    fids = {2: 5.0, 4: 3.0, 6: 4.0}
    interrupted, _ = _trainer(tmp_path / "run", config, lpips_model=lpips_alex)
    monitored(interrupted, fids)
    real_update = interrupted.update_ema

    def killed_during_step_6():
        if interrupted.step == 5:
            raise KeyboardInterrupt  # step 4's evaluation and best were written; the checkpoint is step 3
        real_update()

    interrupted.update_ema = killed_during_step_6
    with pytest.raises(KeyboardInterrupt):
        interrupted.train()
    interrupted.files.close()
    resumed, _ = _trainer(tmp_path / "run", config, lpips_model=lpips_alex)
    seen = monitored(resumed, fids)
    resumed.load_checkpoint(tmp_path / "run")
    assert resumed.best == {"fid": 5.0, "step": 2}  # from the step-3 checkpoint
    resumed.train()
    # Measuring changes nothing the run trains.
    for (name, x), y in zip(plain.G_ema.state_dict().items(), resumed.G_ema.state_dict().values()):
        assert torch.equal(x, y), name
    lines = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    evals = [line for line in lines if "eval" in line]
    assert [line["step"] for line in evals] == [2, 4, 6]  # step 4 once, though it was evaluated twice
    assert [line["eval"]["best_step"] for line in evals] == [2, 4, 4]
    assert [line["step"] for line in lines if "eval" not in line] == [1, 2, 3, 4, 5, 6]
    best = tmp_path / "run" / "best.safetensors"
    assert read_metadata(best)["best"]["step"] == 4 and read_metadata(best)["best"]["fid"] == 3.0
    for key, value in load_generator(best).state_dict().items():
        assert torch.equal(value, seen[4][key]), key
    assert resumed.best == {"fid": 3.0, "step": 4}
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    assert [(e.step, e.value) for e in events.Scalars("eval/fid")] == [(2, 5.0), (4, 3.0), (6, 4.0)]
    with pytest.raises(ConfigError, match="metrics_every >= 0"):
        TrainConfig(metrics_every=-1)
    with pytest.raises(ConfigError, match="metrics_n >= 2"):
        TrainConfig(metrics_n=1)


def test_soft_logit_loss_is_zero_only_for_matching_logits_and_pulls_toward_the_target():
    from gancompress.distillation.losses import soft_logit_loss

    target = torch.tensor([[-3.0], [0.5], [4.0]])
    assert soft_logit_loss(target.clone(), target, 2.0) == pytest.approx(0, abs=1e-6)
    logits = torch.zeros(3, 1, requires_grad=True)
    loss = soft_logit_loss(logits, target, 1.0)
    loss.backward()
    assert loss > 0 and (logits.grad.sign() == -target.sign()).all()  # descending moves each logit toward its target
    p, q = torch.sigmoid(target), torch.tensor(0.5)  # KL(Bern(p) || Bern(1/2)) by hand, averaged
    assert float(loss.detach()) == pytest.approx(float((p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()).mean()), rel=1e-5)


def test_discriminator_from_the_teacher_starts_as_its_copy_and_distils_toward_it(tmp_path):
    from gancompress.families import build_discriminator_for

    teacher = tiny_generator(channels=(16, 8, 8))
    student, kept = prune_generator(teacher, width=0.5)
    torch.manual_seed(5)
    teacher_d = build_discriminator_for(teacher.config)
    before = {k: v.clone() for k, v in teacher_d.state_dict().items()}
    config = TrainConfig(**SMALL, lpips=0.0, d_init="teacher", d_distill=1.0, adv_soft=1.0, d_temperature=2.0)
    trainer = Trainer(config, student, teacher, None, tmp_path, kept=kept, progress=False, teacher_discriminator=teacher_d)
    assert trainer.D is not teacher_d and trainer.D.config.channels == teacher_d.config.channels == (8, 8, 16)
    assert all(torch.equal(v, before[k]) for k, v in trainer.D.state_dict().items())
    terms = trainer.discriminator_step(0)
    assert terms["d_distill"] == pytest.approx(0, abs=1e-7)  # an unchanged copy agrees with its teacher exactly
    trainer.train()
    lines = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert all(line["d_distill"] > 0 and line["g_adv_soft"] >= 0 for line in lines[1:])
    assert all(torch.equal(v, before[k]) for k, v in teacher_d.state_dict().items())  # the teacher's stays as it was
    assert not all(torch.equal(v, before[k]) for k, v in trainer.D.state_dict().items())


def test_discriminator_sizes_and_a_missing_teacher_discriminator(tmp_path):
    teacher = tiny_generator(channels=(16, 8, 8))
    student, kept = prune_generator(teacher, width=0.5)
    wide = Trainer(TrainConfig(**SMALL, lpips=0.0, d_init="teacher-size"), student, teacher, None, tmp_path / "a",
                   kept=kept, progress=False)
    assert wide.D.config.channels == (8, 8, 16)  # the teacher's (16, 8, 8) mirrored
    for changes in ({"d_init": "teacher"}, {"d_distill": 0.5}):
        with pytest.raises(ConfigError, match="need the teacher's discriminator.*--teacher-d"):
            Trainer(TrainConfig(**SMALL, lpips=0.0, **changes), student, teacher, None, tmp_path / "b", kept=kept,
                    progress=False)


@pytest.mark.parametrize(
    "kwargs,match",
    [({"d_init": "borrowed"}, "d_init must be one of"), ({"d_init": "teacher", "d_width": 0.5}, "d_width must be 1"),
     ({"adv": 0.0, "d_distill": 1.0}, "need adv > 0"), ({"d_temperature": 0.0}, "d_temperature must be"),
     ({"adv_soft": -1.0}, "adv_soft must be a finite number >= 0"),
     ({"mode": "teach"}, "mode must be"), ({"adv_loss": "wgan"}, "adv_loss must be one of"),
     ({"diffaug": ("color", "flip")}, "unknown DiffAugment policies"), ({"mode": "gan", "adv": 0}, "adv must be > 0")],
)
def test_invalid_training_configs(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kwargs)


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    trainer, _ = _trainer(tmp_path, TrainConfig(**SMALL, lpips=0.0))
    with pytest.raises(ConfigError, match="no checkpoint to resume from"):
        trainer.load_checkpoint(tmp_path)
