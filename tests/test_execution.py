"""Execution options of the trainer (precision, channels_last, compile, gradient accumulation): they
change how a step is computed, never which draws it makes, and each is checked against fp32 here."""

import pytest
import torch

from gancompress.config import ConfigError
from gancompress.distillation.augment import diff_augment
from gancompress.distillation.trainer import TrainConfig, Trainer
from gancompress.families.stylegan2.networks import FP16_CLAMP, fp16_resolution
from gancompress.pruning import prune_generator
from tests.conftest import tiny_generator, tiny_stylegan2

# no LPIPS (its network is not needed to test the loop); style mixing draws per batch, and is sliced too
BASE = dict(steps=2, batch_size=8, lpips=0.0, style_mixing=1.0)


def _trainer(run_dir=None, teacher=None, **changes):
    teacher = teacher if teacher is not None else tiny_stylegan2()
    student, kept = prune_generator(teacher, width=0.5)
    torch.manual_seed(0)
    return Trainer(TrainConfig(**{**BASE, **changes}), student, teacher, None, run_dir, kept=kept, progress=False)


def _gradients(trainer, phase: str, step: int = 0) -> tuple[dict, dict]:
    """(loss terms, gradients) of one phase, with the optimizer step left out."""
    optimizer = trainer.opt_d if phase == "D" else trainer.opt_g
    optimizer.step = lambda: None
    terms = (trainer.discriminator_step if phase == "D" else trainer.generator_step)(step)
    params = trainer.d_params if phase == "D" else trainer.g_params
    return terms, [p.grad.clone() for p in params if p.grad is not None]


def _close(a, b, rtol):
    return all(torch.allclose(x, y, rtol=rtol, atol=rtol * float(y.abs().max())) for x, y in zip(a, b))


@pytest.mark.parametrize("parts", [2, 4])
def test_gradient_accumulation_makes_the_same_update_from_micro_batches(parts):
    """Distillation terms are per-image means, so k micro-batches with the whole batch's draws
    (latents, noise, style mixing) give the whole batch's gradient. (Terms that relate the images of
    a batch, StyleKD's relation loss and the discriminator's minibatch stddev, see micro-batches.)"""
    teacher = tiny_stylegan2()
    whole = _trainer(teacher=teacher, adv=0.0)
    split = _trainer(teacher=teacher, adv=0.0, grad_accum=parts)
    seen = []
    split.G.register_forward_hook(lambda module, args, out: seen.append(out[0].shape[0] if isinstance(out, tuple) else out.shape[0]))
    terms, grads = _gradients(whole, "G", step=3)
    split_terms, split_grads = _gradients(split, "G", step=3)
    assert seen == [8 // parts] * parts  # it did split the batch
    assert len(grads) == len(split_grads) > 10
    assert _close(split_grads, grads, 1e-4)
    assert split_terms == pytest.approx(terms, rel=1e-5)
    # a different step's draws give a different gradient: the comparison above can fail
    other_terms, _ = _gradients(_trainer(teacher=teacher, adv=0.0), "G", step=4)
    assert other_terms["out_l1"] != pytest.approx(terms["out_l1"], rel=1e-3)


def test_accumulated_micro_batches_get_their_rows_of_the_whole_batch_augmentation():
    images = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    policies = ("color", "translation", "cutout")
    whole = diff_augment(images, policies, torch.Generator().manual_seed(5))
    parts = [diff_augment(images[i:i + 2], policies, torch.Generator().manual_seed(5), rows=(i, 8)) for i in range(0, 8, 2)]
    assert torch.equal(torch.cat(parts), whole)
    unaligned = diff_augment(images[2:4], policies, torch.Generator().manual_seed(5))  # the first rows' draws instead
    assert not torch.equal(unaligned, whole[2:4])


def test_accumulation_loads_a_step_s_real_images_once_and_must_divide_the_batch():
    calls = []

    def real_images(rng, n, device):
        calls.append(n)
        return torch.rand(n, 3, 32, 32, generator=rng) * 2 - 1

    teacher = tiny_stylegan2()
    student, kept = prune_generator(teacher, width=0.5)
    config = TrainConfig(**{**BASE, "real": "folder", "grad_accum": 4, "r1_interval": 1})
    trainer = Trainer(config, student, teacher, real_images, None, kept=kept, progress=False)
    terms = trainer.discriminator_step(0)
    trainer.r1_step(0)
    assert calls == [8] and terms["d_real"] > 0  # D and R1 of step 0 share one draw of the whole batch
    trainer.discriminator_step(1)
    assert calls == [8, 8]
    with pytest.raises(ConfigError, match="grad_accum 3 must divide the batch of each rank"):
        _trainer(grad_accum=3)


def test_bf16_autocast_keeps_fp32_weights_and_close_losses():
    teacher = tiny_stylegan2()
    terms, grads = _gradients(_trainer(teacher=teacher), "G")
    bf16 = _trainer(teacher=teacher, precision="bf16")
    bf16_terms, bf16_grads = _gradients(bf16, "G")
    assert bf16_terms != terms  # autocast did run in bf16 ...
    assert bf16_terms == pytest.approx(terms, rel=3e-2)  # ... and stays close
    assert all(g.dtype == torch.float32 for g in bf16_grads) and all(p.dtype == torch.float32 for p in bf16.G.parameters())
    cosines = [torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), 0) for a, b in zip(bf16_grads, grads)
               if b.abs().max() > 0]
    assert min(cosines) > 0.9


def test_fp16_runs_nvlabs_highest_resolution_blocks_in_half_precision_with_its_clamp():
    assert [fp16_resolution(256, n) for n in (0, 1, 4, 8)] == [None, 256, 32, 8]  # never the 4x4 block
    teacher = tiny_stylegan2()
    trainer = _trainer(teacher=teacher, precision="fp16", fp16_blocks=2)  # 16x16 and 32x32 in fp16
    assert trainer.G.synthesis.fp16_resolution == 16 and trainer.D.fp16_resolution == 16
    assert trainer.G_ema.synthesis.fp16_resolution is None and teacher.synthesis.fp16_resolution is None
    dtypes = {}  # of the convolutions' outputs (demodulation then multiplies in fp32)
    for name, module in trainer.G.synthesis.convs.items():
        module.conv.register_forward_hook(lambda m, a, out, name=name: dtypes.update({name: out.dtype}) and None)
    for layer in ("b8_conv1", "b16_conv1", "b32_conv1"):
        trainer.G.synthesis.convs[layer].conv.demodulate = False
    terms, _ = _gradients(trainer, "G")
    assert dtypes["b8_conv1"] == torch.float32 and dtypes["b16_conv1"] == dtypes["b32_conv1"] == torch.float16
    for layer in ("b8_conv1", "b16_conv1", "b32_conv1"):
        trainer.G.synthesis.convs[layer].conv.demodulate = True
    terms, _ = _gradients(trainer, "G")
    fp32_terms, _ = _gradients(_trainer(teacher=teacher), "G")
    assert terms != fp32_terms and terms == pytest.approx(fp32_terms, rel=1e-2)
    # the clamp acts on fp16 layers only, at NVlabs' 256
    layer = trainer.G.synthesis.convs["b16_conv1"]
    with torch.no_grad():
        layer.bias.fill_(1000.0)
    x, w, noise = torch.randn(2, layer.bias.numel(), 16, 16), torch.randn(2, 16), torch.zeros(2, 1, 16, 16)
    with torch.no_grad():
        assert float(layer(x, w, noise).max()) > 1000
        with torch.autocast("cpu", dtype=torch.float16):
            assert float(layer(x, w, noise).max()) == FP16_CLAMP
    with pytest.raises(ConfigError, match="use --precision bf16 for DCGAN"):
        _trainer(teacher=tiny_generator(), precision="fp16", style_mixing=0.0)


def test_channels_last_computes_the_same_step_and_saves_ordinary_checkpoints(tmp_path):
    teacher = tiny_stylegan2()
    terms, grads = _gradients(_trainer(teacher=teacher), "D")
    nhwc = _trainer(tmp_path, teacher=teacher, channels_last=True)
    assert nhwc.D.from_rgb.conv.weight.is_contiguous(memory_format=torch.channels_last)
    nhwc_terms, nhwc_grads = _gradients(nhwc, "D")
    assert nhwc_terms == pytest.approx(terms, rel=1e-5) and _close(nhwc_grads, grads, 1e-4)
    nhwc.save_checkpoint()
    again = _trainer(tmp_path, teacher=teacher)
    again.load_checkpoint(tmp_path)
    assert torch.equal(again.D.from_rgb.conv.weight, nhwc.D.from_rgb.conv.weight)
    student = nhwc.train()  # handed back in the usual layout, for export and evaluation
    assert student.synthesis.convs["b8_conv1"].conv.weight.is_contiguous()
    assert teacher.synthesis.convs["b8_conv1"].conv.weight.is_contiguous()


def test_compiled_forward_passes_compute_the_same_losses():
    teacher = tiny_stylegan2()
    compiled = _trainer(teacher=teacher, compile="eager")  # dynamo's tracing without inductor's C++ build
    terms = compiled.generator_step(0)
    assert compiled._forward(compiled.G) is not compiled.G
    assert terms == pytest.approx(_trainer(teacher=teacher).generator_step(0), rel=1e-5)
    with pytest.raises(ConfigError, match="torch.compile cannot use backend 'no-such-backend'"):
        _trainer(teacher=teacher, compile="no-such-backend")
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, fp16"):
        TrainConfig(precision="fp8")
