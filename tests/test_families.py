"""The family protocol, checked the same way for every registered family with its tiny config (as
torchvision's test_models.py runs over its model registry): building, checkpoints, pruning, shared
inputs, cost split and export graphs."""

from __future__ import annotations

import pytest
import torch

from gancompress.families import FAMILIES, family_of
from gancompress.io import load_generator, save_generator, tensor_shapes
from gancompress.metrics.cost import count_macs, count_parameters
from gancompress.pruning import prune_generator

FAMILY_NAMES = sorted(FAMILIES)


@pytest.fixture(params=FAMILY_NAMES)
def family(request):
    return FAMILIES[request.param]


def _generator(family, seed=0):
    torch.manual_seed(seed)
    return family.build_generator(family.tiny_config()).eval()


def _run(family, generator, z, seed=5):
    kwargs = family.shared_inputs(generator, len(z), torch.Generator().manual_seed(seed), "cpu")
    with torch.no_grad():
        return generator(z, **kwargs)


def test_a_generator_knows_its_family_and_round_trips_through_a_checkpoint(family, tmp_path):
    generator = _generator(family)
    assert family_of(generator) is family and family_of(generator.config) is family
    assert family_of(generator.config.to_dict()) is family
    path = save_generator(tmp_path / "g.safetensors", generator)
    assert family_of(path) is family
    loaded = load_generator(path)
    assert tensor_shapes(path) == {k: tuple(v.shape) for k, v in generator.state_dict().items()}
    z = torch.randn(3, generator.z_dim, generator=torch.Generator().manual_seed(1))
    image = _run(family, generator, z)
    assert image.shape == (3, generator.out_channels, generator.resolution, generator.resolution)
    assert torch.equal(_run(family, loaded, z), image)


def test_the_discriminator_matches_the_generator(family):
    generator = _generator(family)
    for width in (1.0, 0.5):
        discriminator = family.build_discriminator(generator.config, width)
        images = torch.randn(4, generator.out_channels, generator.resolution, generator.resolution)
        assert discriminator(images).shape == (4,)


@pytest.mark.parametrize("criterion_index", [0, 1])
def test_pruning_keeps_the_most_important_channels_of_every_block(family, criterion_index):
    teacher = _generator(family)
    criterion = family.criteria[criterion_index]
    student, kept = prune_generator(teacher, width=0.5, criterion=criterion)
    assert family_of(student) is family
    assert student.config.channels == teacher.config.with_width(0.5).channels
    assert all(indices == sorted(set(indices)) for indices in kept.values())  # original order, no repeats
    assert count_parameters(student) < count_parameters(teacher) and count_macs(student) < count_macs(teacher)


def test_width_one_reproduces_the_teacher_exactly_with_every_criterion(family):
    teacher = _generator(family)
    z = torch.randn(3, teacher.z_dim, generator=torch.Generator().manual_seed(2))
    for criterion in family.criteria:
        full, kept = prune_generator(teacher, width=1.0, criterion=criterion)
        assert torch.equal(_run(family, full, z), _run(family, teacher, z)), criterion
        assert all(indices == list(range(len(indices))) for indices in kept.values()), criterion
        assert full.config == teacher.config


def test_an_unknown_criterion_names_the_familys_own(family):
    with pytest.raises(Exception, match=", ".join(family.criteria)):
        prune_generator(_generator(family), width=0.5, criterion="no-such-criterion")


def test_shared_inputs_make_teacher_and_student_comparable(family):
    """The same rng gives the same extra inputs; per-image inputs do not depend on the batch size."""
    generator = _generator(family)
    z = torch.randn(4, generator.z_dim, generator=torch.Generator().manual_seed(3))
    assert torch.equal(_run(family, generator, z), _run(family, generator, z))
    rngs = [torch.Generator().manual_seed(10 + i) for i in range(4)]
    whole = family.shared_inputs_per_image(generator, rngs, "cpu")
    first_two = family.shared_inputs_per_image(generator, [torch.Generator().manual_seed(10 + i) for i in range(2)],
                                               "cpu")
    with torch.no_grad():
        assert torch.allclose(generator(z, **whole)[:2], generator(z[:2], **first_two), atol=1e-5)
    assert bool(whole) == family.has_shared_inputs


def test_every_export_graph_computes_the_models_function(family):
    from gancompress.exporting import graph_for

    generator = _generator(family)
    for part in family.export_parts:
        module, example, input_name, output_name = graph_for(generator, part)
        with torch.no_grad():
            out = module(example)
            reference = family.reference_module(generator, module)(example)
        assert torch.allclose(out, reference, atol=1e-5) and torch.isfinite(out).all()
        assert input_name in ("z", "ws") and output_name in ("image", "w")
    assert set(family.cost_split(generator)) <= {"params_mapping", "params_synthesis"}
