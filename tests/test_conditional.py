"""Class-conditional DCGAN (`gancompress train --conditional`): the class as a function of the latent,
the projection discriminator, pruning and export of a conditional generator, and a short training
run on Fashion-MNIST's labels through the command line."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from gancompress.cli import main
from gancompress.exporting import export_onnx
from gancompress.families import build_discriminator_for
from gancompress.pruning import prune_generator
from gancompress.families.dcgan.networks import ClassFromLatent
from gancompress.io import load_generator, save_generator
from tests.conftest import tiny_generator


def test_the_class_of_a_latent_is_uniform_and_its_one_hot_matches():
    classes = ClassFromLatent(10)
    z = torch.randn(20000, 8, generator=torch.Generator().manual_seed(0))
    made = classes.classes(z)
    share = torch.bincount(made, minlength=10).float() / len(z)
    assert made.min() == 0 and made.max() == 9 and (share - 0.1).abs().max() < 0.01, share
    assert torch.equal(classes.one_hot(z), F.one_hot(made, 10).float())
    assert torch.equal(classes.one_hot(z, made), classes.one_hot(z))


def test_a_conditional_generator_follows_the_class_it_is_given():
    generator = tiny_generator(num_classes=10)
    z = torch.randn(6, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        unasked = generator(z)
        assert torch.equal(unasked, generator(z, classes=generator.class_of(z)))  # the class of z by default
        other = generator(z, classes=(generator.class_of(z) + 1) % 10)
        asked = torch.arange(10).repeat_interleave(50)  # an asked class moves z[:, 0] into its bucket, and only there
        many = torch.randn(500, 8, generator=torch.Generator().manual_seed(2))
        moved = generator.class_input.move_into(many, asked)
        assert torch.equal(generator.class_of(moved), asked) and torch.equal(moved[:, 1:], many[:, 1:])
        kept = generator.class_of(many) == asked
        assert kept.any() and torch.equal(moved[kept], many[kept]) and not torch.equal(moved[~kept], many[~kept])
        assert torch.equal(other, generator(generator.class_input.move_into(z, (generator.class_of(z) + 1) % 10)))
    assert (unasked - other).abs().flatten(1).amax(1).min() > 1e-3  # the class changes every image
    assert generator.blocks["b4"].conv.weight.shape[0] == 8 + 10  # z and the one-hot class
    with pytest.raises(ValueError, match="unconditional"):
        tiny_generator()(z, classes=torch.zeros(6, dtype=torch.long))


def test_projection_discriminator_reads_the_class():
    generator = tiny_generator(num_classes=10)
    discriminator = build_discriminator_for(generator.config)
    assert discriminator.config.num_classes == 10
    torch.nn.init.normal_(discriminator.embed.weight)
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    zeros, ones = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    with torch.no_grad():
        assert (discriminator(images, zeros) - discriminator(images, ones)).abs().min() > 1e-4
    with pytest.raises(ValueError, match="needs the images' classes"):
        discriminator(images)


def test_pruned_and_exported_conditional_generators_keep_the_class(tmp_path):
    generator = tiny_generator(num_classes=10)
    student, _ = prune_generator(generator, width=0.5)
    assert student.config.num_classes == 10 and student.blocks["b4"].conv.weight.shape[0] == 18
    path = save_generator(tmp_path / "g.safetensors", student)
    assert load_generator(path).config == student.config
    record = export_onnx(generator.eval(), tmp_path / "g.onnx")
    assert record["verification"]["max_abs_diff"] < 1e-5
    z = torch.randn(7, 8, generator=torch.Generator().manual_seed(2))
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = generator(z).numpy()
    assert np.abs(session.run(None, {session.get_inputs()[0].name: z.numpy()})[0] - expected).max() < 1e-5
    # unconditional files are unchanged: no num_classes in their config
    assert "num_classes" not in tiny_generator().config.to_dict()


def test_train_conditional_on_fashion_mnist_labels(work, capsys):
    assert main(["train", "--conditional", "--real", "fashion-mnist", "--resolution", "32", "--channels", "16,8,8",
                 "--z-dim", "8", "--out-channels", "1", "--steps", "3", "--batch-size", "8", "--d-width", "0.5",
                 "--run-root", str(work / "runs"), "--quiet"]) == 0
    run = next((work / "runs").iterdir())
    generator = load_generator(run / "student.safetensors")
    assert generator.config.num_classes == 10
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["step"] == 3 and all(np.isfinite(v) for v in stats[-1].values() if isinstance(v, float))
    d_files = list(run.glob("*-D.safetensors"))
    from gancompress.io import load_discriminator

    assert d_files and load_discriminator(d_files[0]).config.num_classes == 10
    capsys.readouterr()
    for bad, why in ((["--real", str(work)], "labelled dataset"), (["--family", "stylegan2"], "for the dcgan family")):
        assert main(["train", "--conditional", "--resolution", "32", "--out-channels", "1", "--steps", "1",
                     "--run-root", str(work / "bad"), *bad]) == 2
        assert why in capsys.readouterr().err and not (work / "bad").exists()  # refused before any run directory
