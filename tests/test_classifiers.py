"""Classifier distillation: losses against hand computation, the DFAD game, PGD, exact resume, and short
real runs on Fashion-MNIST through the trainer and the command line."""

import json
import math
import subprocess
from pathlib import Path
import sys

import pytest
import torch
import torch.nn.functional as F

from gancompress.classifiers import losses
from gancompress.classifiers.checkpoints import load_classifier, save_classifier
from gancompress.classifiers.evaluation import evaluate_classifier
from gancompress.classifiers.networks import ClassifierConfig, build_classifier
from gancompress.classifiers.training import ClassifierTrainer, KDConfig
from gancompress.config import ConfigError
from gancompress.io import save_generator
from tests.conftest import tiny_generator

TINY = ClassifierConfig(channels=(8, 16, 16))


def _softmax(values, temperature):
    exps = [math.exp(v / temperature) for v in values]
    return [e / sum(exps) for e in exps]


def test_hinton_loss_equals_the_hand_computed_value():
    s, t, label, temperature, alpha = [1.0, 2.0, 0.0], [0.0, 1.0, 3.0], 1, 2.0, 0.25
    p_t, p_s = _softmax(t, temperature), _softmax(s, temperature)
    kl = sum(pt * (math.log(pt) - math.log(ps)) for pt, ps in zip(p_t, p_s))
    ce = -math.log(_softmax(s, 1.0)[label])
    expected = alpha * temperature ** 2 * kl + (1 - alpha) * ce  # 0.25 * 4 * 0.47296 + 0.75 * 0.40761
    got = losses.hinton_loss(torch.tensor([s]), torch.tensor([t]), torch.tensor([label]), temperature, alpha)
    assert float(got) == pytest.approx(expected, rel=1e-5) and float(got) == pytest.approx(0.77867, abs=1e-4)
    assert float(losses.logit_mse(torch.tensor([s]), torch.tensor([t]))) == pytest.approx((1 + 1 + 9) / 3)
    with pytest.raises(ValueError, match="has none"):
        losses.hinton_loss(torch.tensor([s]), torch.tensor([t]), None, 2.0, 0.5)


def test_kd_with_temperature_1_and_alpha_0_is_cross_entropy_training(tmp_path):
    teacher = build_classifier(TINY)
    runs = {}
    for name, config in (("ce", KDConfig(method="ce", steps=5, batch_size=16, checkpoint_every=100)),
                         ("kd", KDConfig(method="hinton", temperature=1.0, alpha=0.0, steps=5, batch_size=16,
                                         checkpoint_every=100))):
        torch.manual_seed(0)
        trainer = ClassifierTrainer(config, build_classifier(TINY), teacher if name == "kd" else None, tmp_path / name,
                                    progress=False)
        runs[name] = trainer.train().state_dict()
    assert all(torch.allclose(runs["ce"][k].float(), runs["kd"][k].float(), atol=1e-6) for k in runs["ce"])


def test_a_dfad_step_raises_the_discrepancy_for_the_generator_and_lowers_it_for_the_student():
    torch.manual_seed(1)
    teacher = build_classifier(TINY).eval()
    config = KDConfig(method="mae", transfer="dfad", steps=1, batch_size=64, dfad_interval=1)
    trainer = ClassifierTrainer(config, build_classifier(ClassifierConfig(channels=(8, 8, 8))), teacher, None,
                                progress=False)
    z = torch.randn(64, config.dfad_z_dim, generator=trainer.rng(0, "dfad-g"))  # the generator step's latents

    def gap():  # in training mode, as both networks are while they play (BatchNorm on batch statistics)
        with torch.no_grad():
            images = trainer.generator(z)
            return float(losses.discrepancy(trainer.student(images), teacher(images)))

    before = gap()
    with torch.no_grad():  # DFAD's last BatchNorm (no affine): each channel of a batch at mean 0, variance 1
        images = trainer.generator(z)
    assert abs(float(images.mean())) < 1e-4 and float(images.var(unbiased=False)) == pytest.approx(1.0, abs=1e-3)
    stats = trainer.generator_step(0)
    after_generator = gap()
    assert stats["g_discrepancy"] == pytest.approx(before, rel=1e-5) and after_generator > before
    with torch.no_grad():
        images = trainer.generator(z)
        t_logits = teacher(images)
    for _ in range(3):  # the student's update on the same images
        loss = losses.discrepancy(trainer.student(images), t_logits)
        trainer.opt.zero_grad()
        loss.backward()
        trainer.opt.step()
    assert gap() < after_generator


def test_an_adapted_pretrained_generator_starts_from_its_weights_and_a_step_raises_the_discrepancy(tmp_path):
    pretrained = tiny_generator(channels=(16, 8, 8), out_channels=1)
    save_generator(tmp_path / "g.safetensors", pretrained)
    torch.manual_seed(1)
    teacher = build_classifier(TINY).eval()
    config = KDConfig(method="hinton", transfer=f"generator:{tmp_path / 'g.safetensors'}", adapt_generator=True,
                      steps=1, batch_size=64, dfad_interval=1, lr_g=1e-2)
    trainer = ClassifierTrainer(config, build_classifier(ClassifierConfig(channels=(8, 8, 8))), teacher, None,
                                progress=False)
    generator = trainer.generator
    assert generator is trainer.transfer.generator and not generator.training  # its BatchNorm statistics kept
    assert all(torch.equal(v, generator.state_dict()[k]) for k, v in pretrained.state_dict().items())
    z = torch.randn(64, generator.z_dim, generator=trainer.rng(0, "dfad-g"))

    def gap():
        with torch.no_grad():
            images = generator(z)
            return float(losses.discrepancy(trainer.student(images), teacher(images)))

    before = gap()
    stats = trainer.generator_step(0)
    assert stats["g_discrepancy"] == pytest.approx(before, rel=1e-4) and gap() > before
    tuned, original = generator.state_dict(), pretrained.state_dict()
    assert not torch.equal(tuned["blocks.b4.conv.weight"], original["blocks.b4.conv.weight"])
    assert torch.equal(tuned["blocks.b4.bn.running_mean"], original["blocks.b4.bn.running_mean"])
    assert "fine-tuned against the student" in trainer.transfer.identity["images"]
    assert "generator" in trainer._networks()  # checkpointed with the student, so a resume continues it
    for bad in (dict(transfer="data"), dict(transfer="generator:dcgan-fmnist32", transfer_pool=100)):
        with pytest.raises(ConfigError, match="adapt_generator"):
            KDConfig(adapt_generator=True, **bad)


def test_the_batchnorm_prior_equals_its_formula_and_a_generator_step_lowers_it():
    torch.manual_seed(2)
    teacher = build_classifier(TINY).eval()
    layers = [m for m in teacher.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for layer in layers:  # running statistics as a trained teacher would hold
        layer.running_mean.uniform_(-0.5, 0.5)
        layer.running_var.uniform_(0.5, 2.0)
    images = torch.randn(16, 1, 32, 32)
    inputs = []
    handles = [layer.register_forward_hook(lambda m, i, o: inputs.append(i[0].detach())) for layer in layers]
    logits = teacher(images)
    for handle in handles:
        handle.remove()
    expected = sum(float((x.mean((0, 2, 3)) - m.running_mean).pow(2).sum().sqrt()
                         + (x.var((0, 2, 3), unbiased=False) - m.running_var).pow(2).sum().sqrt())
                   for x, m in zip(inputs, layers))
    (got_logits, _), prior = losses.forward_with_bn_prior(teacher, images)
    assert float(prior.detach()) == pytest.approx(expected, rel=1e-5) and len(inputs) == 6
    assert torch.equal(got_logits, logits) and all(not layer._forward_hooks for layer in layers)  # hooks removed

    # generator steps on the prior alone (student and teacher one network: no discrepancy to chase) lower it
    # toward running statistics a real training set left: images brighter on their left half
    for layer in layers:
        layer.momentum = None  # a cumulative average over the batch below
        layer.reset_running_stats()
    real = torch.randn(256, 1, 32, 32)
    real[..., :16] += 1.5
    with torch.no_grad():
        teacher.train()(real / real.std())
    teacher.eval()
    config = KDConfig(method="mae", transfer="dfad", steps=1, batch_size=64, dfad_interval=1, bn_prior=1.0, lr_g=1e-2)
    trainer = ClassifierTrainer(config, teacher, teacher, None, progress=False)
    z = torch.randn(64, config.dfad_z_dim, generator=trainer.rng(0, "dfad-g"))
    before = float(losses.forward_with_bn_prior(teacher, trainer.generator(z))[1])
    stats = [trainer.generator_step(0)["g_bn_prior"] for _ in range(25)]
    after = float(losses.forward_with_bn_prior(teacher, trainer.generator(z))[1])
    assert stats[0] == pytest.approx(before, rel=1e-5) and after < 0.7 * before
    with pytest.raises(ConfigError, match="bn_prior weigh terms of a trained generator"):
        KDConfig(transfer="data", bn_prior=1.0)


def test_a_tanh_ended_dfad_generator_lets_the_prior_set_the_image_mean_that_dfads_batchnorm_fixes():
    """DFAD's last BatchNorm holds every batch at mean 0; real [-1, 1] images are darker (Fashion-MNIST:
    -0.43). Ended at its tanh, the generator can follow the teacher's running statistics to them."""
    torch.manual_seed(3)
    teacher = build_classifier(TINY)
    for layer in teacher.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.momentum = None
            layer.reset_running_stats()
    with torch.no_grad():  # running statistics of dark "real" images, mean about -0.5
        teacher.train()((torch.rand(256, 1, 32, 32) * 1.2 - 1.1).clamp(-1, 1))
    teacher.eval()
    means = {}
    for output in ("bn", "tanh"):
        torch.manual_seed(0)
        config = KDConfig(method="mae", transfer="dfad", steps=1, batch_size=64, dfad_interval=1, bn_prior=1.0,
                          lr_g=1e-2, dfad_output=output)
        trainer = ClassifierTrainer(config, teacher, teacher, None, progress=False)
        z = torch.randn(64, config.dfad_z_dim, generator=trainer.rng(0, "dfad-g"))
        with torch.no_grad():
            start = trainer.generator(z)
        for _ in range(30):
            trainer.generator_step(0)
        with torch.no_grad():
            images = trainer.generator(z)
        means[output] = (float(start.mean()), float(images.mean()))
        if output == "tanh":
            assert images.min() >= -1 and images.max() <= 1
    assert all(abs(m) < 1e-4 for m in means["bn"])  # pinned at 0 whatever the prior asks
    assert means["tanh"][1] < means["tanh"][0] - 0.15 and means["tanh"][1] < -0.3  # moved toward the data's mean
    with pytest.raises(ConfigError, match="dfad_output shapes DFAD's own generator"):
        KDConfig(transfer="data", dfad_output="tanh")
    with pytest.raises(ConfigError, match="dfad_output must be one of bn, tanh"):
        KDConfig(transfer="dfad", method="mae", dfad_output="relu")


def test_pgd_raises_the_loss_of_a_fixed_model_within_its_budget():
    torch.manual_seed(0)
    # a linear model: an untrained CNN in eval mode gives near-constant logits, which PGD cannot move
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 10)).eval()
    images = torch.rand(32, 1, 32, 32) * 2 - 1
    labels = model(images).argmax(1)
    attacked = losses.pgd_attack(model, images, labels, eps=0.2, steps=10, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert F.cross_entropy(model(attacked), labels) > F.cross_entropy(model(images), labels) + 1.0
    assert (attacked - images).abs().max() <= 0.2 + 1e-6 and attacked.min() >= -1 and attacked.max() <= 1
    assert all(p.grad is None for p in model.parameters())  # the attack leaves the model's gradients alone


def _interrupt_at_step_5(trainer: ClassifierTrainer) -> None:
    """Train until step 5 starts, then stop as a killed run would (its checkpoints stay)."""
    real_step = trainer.student_step

    def killed_at_step_5(step):
        if step == 4:
            raise KeyboardInterrupt
        return real_step(step)

    trainer.student_step = killed_at_step_5
    with pytest.raises(KeyboardInterrupt):
        trainer.train()


def test_a_resumed_run_ends_with_the_same_weights(tmp_path):
    config = KDConfig(method="adversarial", steps=6, batch_size=16, checkpoint_every=3, log_every=1, flip=True)
    teacher = build_classifier(TINY)

    def trainer(run_dir):
        torch.manual_seed(0)
        return ClassifierTrainer(config, build_classifier(ClassifierConfig(channels=(8, 8, 8))), teacher, run_dir,
                                 progress=False)

    straight = trainer(tmp_path / "straight")
    straight.train()
    _interrupt_at_step_5(trainer(tmp_path / "resumed"))
    resumed = trainer(tmp_path / "resumed")
    resumed.load_checkpoint(tmp_path / "resumed")
    assert resumed.step == 3
    resumed.train()
    for key, value in straight.student.state_dict().items():
        assert torch.equal(value, resumed.student.state_dict()[key]), key
    for key, value in straight.discriminator.state_dict().items():
        assert torch.equal(value, resumed.discriminator.state_dict()[key]), key
    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_dfad_replay_gives_half_of_each_batch_from_earlier_images_and_a_resume_keeps_the_ring(tmp_path):
    config = KDConfig(method="mae", transfer="dfad", dfad_output="tanh", steps=6, batch_size=16, replay=40,
                      dfad_interval=2, checkpoint_every=3, log_every=1)
    teacher = build_classifier(TINY)

    def trainer(run_dir):
        torch.manual_seed(0)
        return ClassifierTrainer(config, build_classifier(ClassifierConfig(channels=(8, 8, 8))), teacher, run_dir,
                                 progress=False)

    probe = trainer(None)
    first, _ = probe._batch(0)  # nothing held yet: all fresh, and all kept
    assert probe.replay_written == 16 and torch.equal(probe.replay_images[:16], first.half())
    for step in range(1, 5):
        held = probe.replay_images[:min(probe.replay_written, 40)].float().clone()
        slots = torch.arange(probe.replay_written, probe.replay_written + 16) % 40
        batch, _ = probe._batch(step)
        assert torch.equal(batch[:8].half(), probe.replay_images[slots[:8]])  # this step's fresh images
        replayed = (batch[8:, None] == held[None]).flatten(2).all(2)  # [8 replayed, held]: equal image
        assert replayed.any(1).all()  # every replayed image is one generated at an earlier step
        assert not (batch[8:, None].half() == probe.replay_images[slots][None]).flatten(2).all(2).any()
    assert probe.replay_written == 80  # the ring of 40 now holds steps 3 and 4's images only
    straight = trainer(tmp_path / "straight")
    straight.train()
    _interrupt_at_step_5(trainer(tmp_path / "resumed"))
    resumed = trainer(tmp_path / "resumed")
    resumed.load_checkpoint(tmp_path / "resumed")
    assert resumed.step == 3 and resumed.replay_written == 48
    resumed.train()
    for name in ("student", "generator"):
        for key, value in getattr(straight, name).state_dict().items():
            assert torch.equal(value, getattr(resumed, name).state_dict()[key]), (name, key)
    with pytest.raises(ConfigError, match="replay .* use it with --transfer dfad"):
        KDConfig(transfer="data", replay=100)


def test_function_matching_flips_and_mixes_within_the_batch_and_refuses_label_reading_losses():
    from gancompress.classifiers.training import augment

    images = torch.arange(4 * 1 * 2 * 3, dtype=torch.float32).reshape(4, 1, 2, 3)
    flipped = augment(images, torch.Generator().manual_seed(0), flip=True, mixup=0.0)
    mirrored = [bool(torch.equal(flipped[i], images[i].flip(-1))) for i in range(4)]
    assert all(m or torch.equal(flipped[i], images[i]) for i, m in enumerate(mirrored))
    batch = torch.randn(400, 1, 2, 2)
    many = augment(batch, torch.Generator().manual_seed(1), flip=True, mixup=0.0)
    n_mirrored = sum(bool(torch.equal(many[i], batch[i].flip(-1))) for i in range(400))
    assert 160 < n_mirrored < 240 and n_mirrored + sum(bool(torch.equal(many[i], batch[i])) for i in range(400)) == 400
    # constant images: a mix of image i with j is lambda * c_i + (1 - lambda) * c_j, one lambda per image
    values = torch.linspace(0, 1, 256)
    mixed = augment(values.view(-1, 1, 1, 1).expand(-1, 1, 4, 4).clone(), torch.Generator().manual_seed(2), False, 1.0)
    assert torch.allclose(mixed, mixed[:, :, :1, :1].expand_as(mixed))  # one weight per image, all its pixels
    assert float(mixed.mean()) == pytest.approx(float(values.mean()), abs=0.03)  # a blend of the batch's own images
    assert not torch.allclose(mixed.flatten(1)[:, 0], values) and float(mixed.min()) >= 0 and float(mixed.max()) <= 1
    again = augment(values.view(-1, 1, 1, 1).clone(), torch.Generator().manual_seed(2), False, 1.0)
    assert torch.equal(again, mixed[:, :, :1, :1])  # seeded: a resumed run draws the same mixes
    with pytest.raises(ConfigError, match="mixup makes images without labels"):
        KDConfig(method="hinton", mixup=1.0)  # data transfer: alpha 0.9 mixes in cross-entropy
    with pytest.raises(ConfigError, match="mixup"):
        KDConfig(method="ard", mixup=1.0, alpha=1.0)
    from gancompress.classifiers.runs import _augmentations

    fm = KDConfig(method="hinton", transfer="generator:dcgan-fmnist32", mixup=1.0, flip=True)
    assert fm.alpha == 1.0 and "flips, mixup within the batch, weight ~ Beta(1, 1)" in _augmentations(fm)
    assert _augmentations(KDConfig()) == ""  # the report names augmentations only when there are some
    with pytest.raises(ConfigError, match="shift"):
        KDConfig(shift=-1)


def test_checkpoint_round_trip_and_configs_that_cannot_work(tmp_path):
    model = build_classifier(TINY)
    path = save_classifier(tmp_path / "c.safetensors", model)
    loaded = load_classifier(path)
    assert loaded.config == TINY and all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    with pytest.raises(ConfigError, match="has no labels"):
        KDConfig(method="ce", transfer="generator:dcgan-fmnist32")
    with pytest.raises(ConfigError, match="has no labels"):
        KDConfig(method="hinton", transfer="dfad", alpha=0.5)
    assert KDConfig(transfer="dfad").alpha == 1.0 and KDConfig().alpha == 0.9
    with pytest.raises(ConfigError, match="resolution"):
        ClassifierConfig(resolution=30)


@pytest.fixture(scope="module")
def fmnist_teacher(ready_assets, tmp_path_factory):
    """A small teacher trained for 40 s on Fashion-MNIST with the trainer (method ce)."""
    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("teacher")
    trainer = ClassifierTrainer(KDConfig(method="ce", steps=300, batch_size=64, lr=0.05, checkpoint_every=1000),
                                build_classifier(ClassifierConfig(channels=(16, 32, 32))), None, run, progress=False)
    trainer.train()
    return save_classifier(run / "teacher.safetensors", trainer.student)


def test_a_short_soft_label_run_beats_chance_by_far_and_pgd_lowers_accuracy(fmnist_teacher, tmp_path):
    teacher = load_classifier(fmnist_teacher)
    teacher_record = evaluate_classifier(teacher, "fashion-mnist:test", pgd=(0.1, 5), n=1000, latency=False)
    assert teacher_record["accuracy"] > 0.7  # chance is 0.1
    assert teacher_record["robust"]["accuracy"] < teacher_record["accuracy"] - 0.2
    torch.manual_seed(0)
    trainer = ClassifierTrainer(KDConfig(method="hinton", steps=200, batch_size=64, checkpoint_every=1000),
                                build_classifier(ClassifierConfig(channels=(8, 8, 16))), teacher, tmp_path,
                                progress=False)
    student = trainer.train()
    record = evaluate_classifier(student, "fashion-mnist:test", n=1000, latency=False)
    assert record["accuracy"] > 0.6, record["accuracy"]
    assert record["params"] < teacher_record["params"] / 4 and record["macs_per_image"] < teacher_record["macs_per_image"]
    assert "the first 1000 of 10000 images" in record["protocol"]["data"]


def test_kd_and_eval_classifier_commands(fmnist_teacher, tmp_path, ready_assets):
    from gancompress import assets

    env = {**__import__("os").environ, assets.CACHE_ENV: str(tmp_path / "cache"),
           **{assets.get_asset(name).env_var: str(path) for name, path in ready_assets.items()}}

    def gc(*args):
        return subprocess.run([sys.executable, "-m", "gancompress", *args], capture_output=True, text=True, env=env)

    result = gc("kd", "--teacher", str(fmnist_teacher), "--method", "hinton", "--channels", "8,8,16", "--steps", "20",
                "--batch-size", "32", "--run-root", str(tmp_path / "runs"), "--quiet")
    assert result.returncode == 0, result.stderr
    run = next((tmp_path / "runs").iterdir())
    report = json.loads((run / "report.json").read_text())
    assert report["kd"]["method"] == "hinton" and report["training"]["steps"] == 20
    assert report["teacher_eval"]["accuracy"] > 0.7 and 0 < report["accuracy_of_teacher"]
    assert "| accuracy |" in result.stdout and (run / "student.safetensors").is_file()
    out = tmp_path / "record.json"
    result = gc("eval-classifier", "--classifier", str(run / "student.safetensors"), "--n", "200", "--pgd", "0.1,3",
                "--no-latency", "--out", str(out))
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert record["n"] == 200 and record["robust"]["accuracy"] <= record["accuracy"]
    assert "robust accuracy" in result.stdout
    bad = gc("kd", "--method", "hinton", "--run-root", str(tmp_path / "runs2"))
    assert bad.returncode == 2 and "distils a teacher: pass --teacher" in bad.stderr
    bad = gc("kd", "--resume", str(run), "--steps", "5")
    assert bad.returncode == 2 and "cannot be used with --resume" in bad.stderr


def test_a_kd_run_starts_from_the_same_weights_whatever_ran_before_it(ready_assets, tmp_path):
    from gancompress.classifiers.runs import STUDENT_FILE, kd

    students = []
    for ambient in (0, 1):  # a study runs many rows in one process: what ran before must not matter
        torch.manual_seed(ambient)
        torch.rand(1000)
        run = kd(None, "ce", channels=(8, 8, 8), overrides={"steps": 2, "batch_size": 8, "seed": 3},
                 run_root=tmp_path / f"runs{ambient}", progress=False, log=lambda _: None)
        students.append(load_classifier(run / STUDENT_FILE).state_dict())
    assert all(torch.equal(value, students[1][key]) for key, value in students[0].items())


def test_a_generator_pool_is_made_once_cached_verified_and_drawn_like_data(tmp_path, monkeypatch):
    from gancompress import assets
    from gancompress.classifiers.transfer import GeneratorTransfer, TransferError
    from gancompress.families import build_generator
    from gancompress.families.dcgan.config import DCGANConfig
    from gancompress.io import read_metadata, save_generator, save_tensors

    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "cache"))
    torch.manual_seed(0)
    path = save_generator(tmp_path / "g.safetensors",
                          build_generator(DCGANConfig(z_dim=8, channels=(16, 8, 8), out_channels=1, resolution=32)))
    first = GeneratorTransfer(str(path), 32, 1, "cpu", pool=40)
    assert first.pool.dtype == torch.uint8 and tuple(first.pool.shape) == (40, 1, 32, 32)
    from gancompress.evaluation import latents
    from gancompress.metrics.images import to_uint8

    with torch.no_grad():  # exactly `generate --seed 0`'s images
        assert torch.equal(first.pool, to_uint8(first.generator(latents(40, 8, 0))))
    cached = GeneratorTransfer(str(path), 32, 1, "cpu", pool=40)  # read back from the cache, equal
    assert torch.equal(first.pool, cached.pool) and cached.identity["pool"] == first.identity["pool"]
    images, labels = cached.batch(torch.Generator().manual_seed(0), 16, "cpu")
    assert labels is None and images.shape == (16, 1, 32, 32) and -1 <= images.min() and images.max() <= 1
    again, _ = cached.batch(torch.Generator().manual_seed(0), 16, "cpu")
    assert torch.equal(images, again)  # the step's generator decides the draw (exact resume)
    pool_file = Path(first.identity["pool"]["file"])
    save_tensors(pool_file, {"images": first.pool.flip(0)}, read_metadata(pool_file))  # same shape, other bytes
    with pytest.raises(TransferError, match="damaged"):
        GeneratorTransfer(str(path), 32, 1, "cpu", pool=40)
    with pytest.raises(ConfigError, match="generator transfer sets only"):
        KDConfig(transfer="data", transfer_pool=10)


def test_the_shipped_teacher_has_its_recorded_test_accuracy(ready_assets):
    from gancompress.classifiers.checkpoints import classifier_manifest, resolve_classifier

    entry = classifier_manifest()["fmnist-cnn"]
    model, identity = resolve_classifier("fmnist-cnn")
    assert identity["sha256"] == entry["sha256"] and model.config.channels == (32, 64, 128)
    record = evaluate_classifier(model, "fashion-mnist:test", latency=False)
    assert record["n"] == 10000 and record["params"] == entry["params"]
    assert record["accuracy"] == pytest.approx(entry["test_accuracy"]["value"], abs=0.002)  # CPU rounding may flip an image
