"""StyleGAN2 generator: fused == non-fused modulated convolution, noise sharing, truncation, style
mixing, FIR upsampling, config rules and checkpoint round trip, on tiny networks."""

import dataclasses
import json

import pytest
import torch

from gancompress.config import ConfigError
from gancompress.families.stylegan2.config import StyleGAN2Config
from gancompress.io import load_generator, save_generator
from gancompress.metrics.cost import count_macs
from gancompress.families import build_generator
from gancompress.families.layers import Upsample, upfirdn2d
from gancompress.families.stylegan2.networks import modulated_conv2d
from tests.conftest import TINY_STYLEGAN2 as TINY, tiny_stylegan2

def test_fused_and_non_fused_modulated_convolution_agree():
    generator = tiny_stylegan2()
    z = torch.randn(5, 16, generator=torch.Generator().manual_seed(1))
    noise = generator.make_noise(5, torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, fa = generator(z, return_features=True, noise=noise)
        b, fb = generator(z, return_features=True, noise=noise, fused=True)
    assert a.abs().mean() > 0.05  # not a degenerate all-zero image
    assert torch.allclose(a, b, atol=1e-5, rtol=0)
    for name in fa:
        assert torch.allclose(fa[name], fb[name], atol=1e-5, rtol=0), name


@pytest.mark.parametrize("upsample,demodulate", [(False, True), (True, True), (False, False)])
def test_modulated_conv_forms_agree_layer_by_layer(upsample, demodulate):
    from gancompress.families.layers import Blur

    g = torch.Generator().manual_seed(0)
    x, weight, styles = torch.randn(3, 6, 8, 8, generator=g), torch.randn(4, 6, 3, 3, generator=g), torch.randn(3, 6, generator=g)
    blur = Blur((1, 3, 3, 1), pad=(1, 1), gain=4) if upsample else None
    fused = modulated_conv2d(x, weight, styles, demodulate, upsample, blur, padding=1, fused=True)
    plain = modulated_conv2d(x, weight, styles, demodulate, upsample, blur, padding=1, fused=False)
    assert fused.shape == plain.shape == (3, 4, 16 if upsample else 8, 16 if upsample else 8)
    assert torch.allclose(fused, plain, atol=1e-5, rtol=1e-5)
    if demodulate and not upsample:  # demodulation: unit-variance weights per output, whatever the style scale
        assert torch.allclose(plain, modulated_conv2d(x, weight, styles * 7.0, demodulate, padding=1), atol=1e-4)


def test_shared_noise_makes_teacher_and_student_comparable():
    generator = tiny_stylegan2()
    z = torch.randn(2, 16)
    noise = generator.make_noise(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        same = torch.equal(generator(z, noise=noise), generator(z, noise=noise))
        other = generator(z, noise=generator.make_noise(2, torch.Generator().manual_seed(1)))
        const = torch.equal(generator(z, noise="const"), generator(z, noise="const"))
    student = build_generator(generator.config.__class__(**{**TINY, "channels": (16, 16, 8, 8)}))
    assert same and const and not torch.equal(other, generator(z, noise=noise))
    assert [tuple(n.shape) for n in student.make_noise(2)] == [tuple(n.shape) for n in noise]
    with pytest.raises(ValueError, match="noise must be"):
        generator(z, noise="zeros")


def test_truncation_and_style_mixing():
    generator = tiny_stylegan2()
    z1, z2 = torch.randn(3, 16), torch.randn(3, 16)
    with torch.no_grad():
        ws = generator.ws(z1, psi=0.0)
        assert torch.allclose(ws, generator.w_avg.expand_as(ws))  # psi 0: every image is the average
        half = generator.ws(z1, psi=0.5)
        assert torch.allclose(half, (generator.ws(z1) + generator.w_avg) / 2, atol=1e-6)
        assert torch.equal(generator.ws(z1, mix_z=z2, mix_cutoff=generator.num_ws), generator.ws(z1))
        assert torch.equal(generator.ws(z1, mix_z=z2, mix_cutoff=0), generator.ws(z2))
        mixed = generator.ws(z1, mix_z=z2, mix_cutoff=3)
        assert torch.equal(mixed[:, :3], generator.ws(z1)[:, :3]) and torch.equal(mixed[:, 3:], generator.ws(z2)[:, 3:])


def test_w_average_is_tracked_in_training_mode_only():
    generator = tiny_stylegan2()
    before = generator.w_avg.clone()
    generator.eval()(torch.randn(4, 16))
    assert torch.equal(generator.w_avg, before)
    generator.train()(torch.randn(4, 16))
    assert not torch.equal(generator.w_avg, before)


def test_fir_upsampling_keeps_a_constant_image_constant():
    up = Upsample((1, 3, 3, 1))
    out = up(torch.full((1, 2, 6, 6), 0.7))
    assert out.shape == (1, 2, 12, 12)
    assert torch.allclose(out[:, :, 2:-2, 2:-2], torch.full_like(out[:, :, 2:-2, 2:-2], 0.7), atol=1e-6)
    # plain filtering with a delta kernel is the identity; downsampling by 2 takes every other pixel
    x = torch.randn(1, 1, 5, 5)
    delta = torch.zeros(3, 3)
    delta[1, 1] = 1
    assert torch.allclose(upfirdn2d(x, delta, pad=(1, 1)), x)
    assert torch.allclose(upfirdn2d(x, delta, down=2, pad=(1, 1)), x[:, :, ::2, ::2])


def test_config_rules_and_channel_helpers():
    assert StyleGAN2Config.from_base(256).channels == (512, 512, 512, 512, 256, 128, 64)
    assert StyleGAN2Config.from_multiplier(256, 2).channels == (512, 512, 512, 512, 512, 256, 128)
    assert StyleGAN2Config(**TINY).with_width(0.5).channels == (16, 16, 8, 8)
    with pytest.raises(ConfigError, match="needs 4 block channel counts"):
        StyleGAN2Config(**{**TINY, "channels": (32, 16)})
    with pytest.raises(ConfigError, match="power of two"):
        StyleGAN2Config(**{**TINY, "resolution": 48})
    with pytest.raises(ConfigError, match="width must satisfy"):
        StyleGAN2Config(**TINY).with_width(1.5)


def test_feature_taps_and_cost():
    loaded = tiny_stylegan2()
    z = torch.randn(2, 16)
    _, features = loaded(z, return_features=True, noise="const")
    assert list(features) == ["b4", "rgb4", "b8", "rgb8", "b16", "rgb16", "b32", "rgb32"]
    # The 3x3 convolutions by hand (transposed ones counted at their input size, as torch counts
    # them); the total adds the FIR blurs, toRGBs and linear layers on top.
    conv_macs = sum(c_in * c_out * 9 * r * r for c_in, c_out, r in
                    [(32, 32, 4), (32, 32, 4), (32, 32, 8), (32, 16, 8), (16, 16, 16), (16, 8, 16), (8, 8, 32)])
    assert conv_macs < count_macs(loaded) < 1.5 * conv_macs


def test_stylegan2_compresses_end_to_end_through_the_cli(tmp_path, ready_assets):
    import os
    import subprocess
    import sys

    from gancompress import assets

    teacher_path = save_generator(tmp_path / "teacher.safetensors", tiny_stylegan2())
    env = dict(os.environ, **{assets.get_asset(n).env_var: str(p) for n, p in ready_assets.items()})
    env[assets.CACHE_ENV] = str(tmp_path / "cache")
    subprocess.run([sys.executable, "-m", "gancompress", "compress", "--teacher", str(teacher_path), "--width", "0.5",
                    "--steps", "3", "--batch-size", "4", "--n", "8", "--lpips", "0", "--run-root",
                    str(tmp_path / "runs"), "--quiet"], env=env, check=True, capture_output=True, text=True)
    run = next((tmp_path / "runs").iterdir())
    report = json.loads((run / "report.json").read_text())
    cost = report["student_eval"]["cost"]
    assert cost["params_mapping"] + cost["params_synthesis"] == cost["params"]
    assert cost["params_mapping"] == report["teacher_eval"]["cost"]["params_mapping"]  # inherited whole
    assert report["comparison"]["macs_per_image"]["student_over_teacher"] < 0.6
    assert load_generator(run / "student.safetensors").config.channels == (16, 16, 8, 8)


def test_discriminator_groups_minibatch_stddev_and_supports_r1():
    from gancompress.families.stylegan2.config import StyleGAN2DiscriminatorConfig
    from gancompress.families.stylegan2.networks import StyleGAN2Discriminator

    torch.manual_seed(0)
    d = StyleGAN2Discriminator(StyleGAN2DiscriminatorConfig.for_generator(StyleGAN2Config(**TINY), width=0.5))
    assert d.config.channels == (16, 16, 8, 8)
    x = torch.randn(8, 3, 32, 32)
    logits = d(x)
    assert logits.shape == (8,)
    # group size 4 over a batch of 8: sample 0 shares its statistics with samples 2, 4, 6 only
    changed_odd, changed_even = x.clone(), x.clone()
    changed_odd[1] += 1.0
    changed_even[2] += 1.0
    assert d(changed_odd)[0] == logits[0]
    assert d(changed_even)[0] != logits[0]
    assert d(x[:3]).shape == (3,)  # a batch the group size does not divide is one group
    real = x.requires_grad_(True)
    (grad,) = torch.autograd.grad(d(real).sum(), real, create_graph=True)
    grad.square().sum().backward()  # R1 needs the double backward
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in d.named_parameters() if n.endswith("weight"))


# Width 1 reproducing the teacher, and the checkpoint round trip, for every family: tests/test_families.py.


def test_pruned_stylegan2_equals_the_teacher_with_dropped_channels_silenced():
    """Zero the style rows that feed the dropped channels into every consumer: the teacher then
    computes exactly the student's function (demodulation included), which checks every slice."""
    from gancompress.families.stylegan2 import stylegan2_spaces
    from gancompress.pruning import prune_generator

    teacher = tiny_stylegan2()
    student, kept = prune_generator(teacher, channels=(24, 16, 8, 4), criterion="l1")
    assert student.config.channels == (24, 16, 8, 4)
    assert {k: len(v) for k, v in kept.items()} == {"b4_const": 24, "b4": 24, "b8_up": 16, "b8": 16, "b16_up": 8,
                                                     "b16": 8, "b32_up": 4, "b32": 4}
    silenced = tiny_stylegan2()
    with torch.no_grad():
        for space, (_, consumers) in stylegan2_spaces(silenced).items():
            dropped = sorted(set(range(len(silenced.synthesis.const[0]) if space == "b4_const" else
                                       {"b4": 32, "b8_up": 32, "b8": 32, "b16_up": 16, "b16": 16, "b32_up": 8, "b32": 8}[space]))
                             - set(kept[space]))
            for path in consumers:
                kind, key = path.split(".", 1)
                affine = getattr(silenced.synthesis, kind)[key].conv.affine
                affine.weight[dropped] = 0
                affine.bias[dropped] = 0
    z = torch.randn(4, 16)
    with torch.no_grad():
        expected, expected_features = silenced(z, return_features=True, noise="const")
        got, features = student(z, return_features=True, noise="const")
    assert torch.allclose(got, expected, atol=1e-4)  # float32 rounding of the rescaled weights, images up to ~10
    assert torch.allclose(features["b16"], expected_features["b16"][:, kept["b16"]], atol=1e-4)


def test_l1_importance_weights_magnitude_by_style():
    from gancompress.pruning import channel_importance

    teacher = tiny_stylegan2()
    with torch.no_grad():  # make one output channel of b16 irrelevant to both of its consumers
        teacher.synthesis.to_rgbs["b16"].conv.affine.weight[5] = 0
        teacher.synthesis.to_rgbs["b16"].conv.affine.bias[5] = 0
        teacher.synthesis.convs["b32_conv0"].conv.weight[:, 5] = 0
    scores = channel_importance(teacher, "l1")
    assert scores["b16"].argmin() == 5 and scores["b16"][5] == 0
    with pytest.raises(ConfigError, match="does not apply to StyleGAN2"):
        channel_importance(teacher, "bn")


def test_distill_a_stylegan2_student_with_shared_noise_and_mapping_only_init(tmp_path, ready_assets):
    """The DCGAN trainer drives StyleGAN2 unchanged: student-sized StyleGAN2 discriminator, feature
    losses on the kept channels and the toRGB taps, teacher and student on the same z and noise,
    and StyleKD's mapping-only initialisation (mapping copied and frozen)."""
    from gancompress.distillation.trainer import TrainConfig
    from gancompress.families.stylegan2.networks import StyleGAN2Discriminator
    from gancompress.pipeline import run_training, start_run

    teacher_path = save_generator(tmp_path / "teacher.safetensors", tiny_stylegan2())
    config = TrainConfig(steps=3, batch_size=4, lpips=0.0, feat=1.0, r1_interval=2, log_every=1, sample_every=3,
                         checkpoint_every=3)
    run = start_run(tmp_path / "runs", "sg2", config, str(teacher_path), {"init": "inherit", "width": 0.5})
    student, trainer = run_training(run, progress=False)
    assert isinstance(trainer.D, StyleGAN2Discriminator) and trainer.D.config.channels == (16, 16, 8, 8)
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert stats[0]["feat_mse"] > 0 and stats[0]["out_l1"] > 0 and "g_adv" in stats[0]
    # teacher and student see the same noise: a width-1.0 inherited student starts with zero loss
    # (the teacher's noise strengths are non-zero, so different noise would show)
    full = start_run(tmp_path / "runs", "sg2-full", dataclasses.replace(config, steps=1, adv=0.0), str(teacher_path),
                     {"init": "inherit", "width": 1.0})
    run_training(full, progress=False)
    first = json.loads((full / "stats.jsonl").read_text().splitlines()[0])
    assert first["out_l1"] == 0 and first["feat_mse"] == 0
    # with style mixing on every batch, teacher and student still get the same (mixed) latents
    mixed = start_run(tmp_path / "runs", "sg2-mix", dataclasses.replace(config, steps=1, adv=0.0, style_mixing=1.0),
                      str(teacher_path), {"init": "inherit", "width": 1.0})
    _, mixed_trainer = run_training(mixed, progress=False)
    assert json.loads((mixed / "stats.jsonl").read_text().splitlines()[0])["out_l1"] == 0
    z = mixed_trainer.latents(0, "g")
    with torch.no_grad():
        mixed_image = mixed_trainer._generate(mixed_trainer.teacher, z, 0, "g")
        mixed_trainer.config = dataclasses.replace(mixed_trainer.config, style_mixing=0.0)
        assert not torch.allclose(mixed_image, mixed_trainer._generate(mixed_trainer.teacher, z, 0, "g"), atol=1e-4)

    mapped = start_run(tmp_path / "runs", "sg2-map", config, str(teacher_path),
                       {"init": "mapping-only", "width": 0.5, "freeze_mapping": True})
    student, _ = run_training(mapped, progress=False)
    teacher = load_generator(teacher_path)
    for (name, a), b in zip(teacher.mapping.state_dict().items(), student.mapping.state_dict().values()):
        assert torch.equal(a, b), name  # copied and frozen through training


def test_evaluation_noise_is_per_image_and_shared_with_the_teacher(ready_assets):
    from gancompress.evaluation import latents, lpips_to_teacher, sample_images
    from gancompress.metrics.lpips import load_lpips

    generator = tiny_stylegan2()
    z = latents(7, 16, seed=3)
    by_3 = torch.cat([images for _, images in sample_images(generator, z, 3, "cpu", noise_seed=3)])
    by_5 = torch.cat([images for _, images in sample_images(generator, z, 5, "cpu", noise_seed=3)])
    assert torch.allclose(by_3, by_5, atol=1e-4)  # batch size does not change the noise an image gets
    other = torch.cat([images for _, images in sample_images(generator, z, 5, "cpu", noise_seed=4)])
    assert not torch.allclose(by_3, other, atol=1e-3)
    same = lpips_to_teacher(generator, generator, z, load_lpips("alex"), 4, "cpu", noise_seed=3)
    assert same["mean"] == pytest.approx(0, abs=1e-6)  # a generator against itself: same z, same noise


def test_diversity_criterion_keeps_channels_that_follow_the_latent():
    from gancompress.pruning import channel_importance, prune_generator

    teacher = tiny_stylegan2()
    top = int(channel_importance(teacher, "l1")["b16"].argmax())
    with torch.no_grad():  # the strongest b16 output by magnitude no longer depends on w at all
        teacher.synthesis.convs["b16_conv1"].conv.weight[top] = 0
    magnitude = channel_importance(teacher, "l1")
    diversity = channel_importance(teacher, "diversity")
    assert set(diversity) == set(magnitude)  # every channel space is scored
    assert torch.equal(diversity["b4_const"], magnitude["b4_const"])  # the constant falls back to magnitude
    assert all(v.shape == magnitude[k].shape and (v >= 0).all() for k, v in diversity.items())
    assert magnitude["b16"].argmax() == top and diversity["b16"][top] == 0 and (diversity["b16"] > 0).sum() == 15
    _, kept_l1 = prune_generator(teacher, width=0.5, criterion="l1")
    student, kept = prune_generator(teacher, width=0.5, criterion="diversity")
    assert top in kept_l1["b16"] and top not in kept["b16"]
    assert student.config.channels == (16, 16, 8, 8)


def test_cagan_criterion_scores_every_space_and_a_dead_last_channel_zero():
    from gancompress.pruning import channel_importance, prune_generator

    teacher = tiny_stylegan2().requires_grad_(False)
    with torch.no_grad():  # b32 channel 3 is always 0, and only the (non-demodulated) last to_rgb reads it
        layer = teacher.synthesis.convs["b32_conv1"]
        layer.conv.weight[3], layer.bias[3] = 0, 0
        layer.noise_strength.zero_()
    scores = channel_importance(teacher, "cagan", n_samples=20)
    magnitude = channel_importance(teacher, "l1")
    assert {k: v.shape for k, v in scores.items()} == {k: v.shape for k, v in magnitude.items()}
    assert scores["b32"][3] == 0 and (scores["b32"][torch.arange(8) != 3] > 0).all()
    assert all(torch.isfinite(v).all() and (v > 0).all() for k, v in scores.items() if k != "b32")
    assert not any(p.requires_grad or p.grad is not None for p in teacher.parameters())
    again = channel_importance(teacher, "cagan", n_samples=20)
    assert all(torch.equal(scores[k], again[k]) for k in scores)
    student, kept = prune_generator(teacher, channels=(16, 16, 8, 4), criterion="cagan")
    assert 3 not in kept["b32"] and student.config.channels == (16, 16, 8, 4)


def test_path_length_regularisation_is_logged_and_resumes_exactly(tmp_path):
    from gancompress.distillation.trainer import TrainConfig, Trainer
    from gancompress.pruning import prune_generator

    config = TrainConfig(steps=6, batch_size=4, lpips=0.0, r1_interval=2, pl_weight=2.0, pl_interval=2, style_mixing=0.5,
                         log_every=1, sample_every=3, checkpoint_every=3)

    def trainer(run_dir):
        teacher = tiny_stylegan2()
        student, kept = prune_generator(teacher, width=0.5)
        return Trainer(config, student, teacher, None, run_dir, kept=kept, progress=False)

    straight = trainer(tmp_path / "straight")
    straight.train()
    stats = [json.loads(line) for line in (tmp_path / "straight" / "stats.jsonl").read_text().splitlines()]
    assert ["g_pl" in s for s in stats] == [True, False, True, False, True, False]  # lazy: steps 0, 2, 4
    assert straight.extra_state["pl_mean"] > 0
    interrupted = trainer(tmp_path / "resumed")
    interrupted.train(until_step=4)  # stops after step 4 with a checkpoint; step 4 applies path length again
    resumed = trainer(tmp_path / "resumed")
    resumed.load_checkpoint(tmp_path / "resumed")
    assert resumed.step == 4 and torch.equal(resumed.extra_state["pl_mean"], interrupted.extra_state["pl_mean"])
    resumed.train()
    assert torch.equal(straight.extra_state["pl_mean"], resumed.extra_state["pl_mean"])
    for (name, a), b in zip(straight.G_ema.state_dict().items(), resumed.G_ema.state_dict().values()):
        assert torch.equal(a, b), name


def test_latent_direction_relation_loss():
    from gancompress.distillation.losses import latent_direction_relation
    from gancompress.distillation.trainer import TrainConfig, Trainer
    from gancompress.pruning import prune_generator

    g = torch.Generator().manual_seed(0)
    teacher_feats = {"b4": torch.randn(8, 6, 4, 4, generator=g)}
    same = latent_direction_relation(teacher_feats, teacher_feats, ["b4"], 4, 30.0)["g_relation"]
    assert same.abs() < 1e-6  # identical relations: zero KL, whatever the channels
    wider = {"b4": torch.cat([teacher_feats["b4"], teacher_feats["b4"]], 1)}  # same cosines with twice the channels
    assert latent_direction_relation(wider, teacher_feats, ["b4"], 4, 30.0)["g_relation"].abs() < 1e-5
    other = {"b4": torch.randn(8, 3, 4, 4, generator=g)}
    assert latent_direction_relation(other, teacher_feats, ["b4"], 4, 30.0)["g_relation"] > 1e-3

    teacher = tiny_stylegan2()
    student, kept = prune_generator(teacher, width=1.0)
    trainer = Trainer(TrainConfig(steps=1, batch_size=4, lpips=0.0, adv=0.0, relation=30.0), student, teacher, None, None,
                      kept=kept, progress=False)
    terms = trainer.generator_step(0)
    assert terms["g_relation"] == pytest.approx(0, abs=1e-5)  # a student equal to its teacher has the same relations
    with pytest.raises(ConfigError, match="need a StyleGAN2 generator"):
        from tests.conftest import tiny_generator

        dcgan = tiny_generator()
        Trainer(TrainConfig(relation=1.0, lpips=0.0), prune_generator(dcgan, width=0.5)[0], dcgan, None, None, progress=False)
