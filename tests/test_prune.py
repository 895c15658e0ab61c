import pytest
import torch

from gancompress.config import ConfigError
from gancompress.pruning import CRITERIA, channel_importance, prune_generator, student_channels
from tests.conftest import tiny_generator


# Width 1 reproducing the teacher, for every criterion of every family: tests/test_families.py.


@pytest.mark.parametrize("conv_bias", [False, True])
@pytest.mark.parametrize("criterion", CRITERIA)
def test_pruned_student_equals_the_teacher_with_dropped_channels_zeroed(criterion, conv_bias):
    """Slicing is right iff the student computes what the teacher computes when every dropped
    channel's activation is zeroed (BatchNorm in eval mode, so channels are independent)."""
    teacher = tiny_generator(channels=(16, 12, 8), conv_bias=conv_bias)
    student, kept = prune_generator(teacher, channels=(9, 5, 3), criterion=criterion, seed=3)
    assert student.config.channels == (9, 5, 3) and [len(v) for v in kept.values()] == [9, 5, 3]
    masks = {}
    for name, block in teacher.blocks.items():
        mask = torch.zeros(block.bn.num_features)
        mask[kept[name]] = 1
        masks[name] = block.register_forward_hook(lambda m, i, o, mask=mask: o * mask.view(1, -1, 1, 1))
    z = torch.randn(5, 8)
    expected = teacher(z)
    for hook in masks.values():
        hook.remove()
    assert torch.allclose(student(z), expected, atol=1e-6)


def test_kept_channels_are_the_most_important():
    teacher = tiny_generator(channels=(16, 12, 8))
    with torch.no_grad():
        teacher.blocks["b4"].conv.weight[:, 7] *= 100  # channel 7 has by far the largest filters
        teacher.blocks["b4"].conv.weight[:, 2] *= 0  # channel 2 the smallest
        teacher.blocks["b4"].bn.weight.uniform_(0.1, 2.0)  # distinct scales, no ties
    _, kept = prune_generator(teacher, channels=(4, 12, 8), criterion="l1")
    assert 7 in kept["b4"] and 2 not in kept["b4"]
    _, kept_bn = prune_generator(teacher, channels=(4, 12, 8), criterion="bn")
    gamma = teacher.blocks["b4"].bn.weight.abs()
    assert set(kept_bn["b4"]) == set(torch.topk(gamma, 4).indices.tolist())


def test_taylor_scores_dead_channels_zero_and_live_ones_positive():
    teacher = tiny_generator(channels=(16, 12, 8))
    with torch.no_grad():  # channel 3 of b8 can never fire: ReLU of a large negative constant
        teacher.blocks["b8"].conv.weight[:, 3] = 0
        teacher.blocks["b8"].bn.bias[3] = -10
    scores = channel_importance(teacher, "taylor", n_samples=32)
    assert scores["b8"][3] == 0
    assert (scores["b8"][torch.arange(12) != 3] > 0).all()
    again = channel_importance(teacher, "taylor", n_samples=32)
    assert all(torch.equal(scores[k], again[k]) for k in scores)  # seeded: reproducible


def test_cagan_scores_dead_channels_zero_and_leaves_the_teacher_as_it_was():
    teacher = tiny_generator(channels=(16, 12, 8)).requires_grad_(False)  # frozen, as a teacher is
    with torch.no_grad():  # channel 3 of b8 can never fire, so the weights reading it get no gradient
        teacher.blocks["b8"].conv.weight[:, 3] = 0
        teacher.blocks["b8"].bn.bias[3] = -10
    teacher.train()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    scores = channel_importance(teacher, "cagan", n_samples=30)
    assert {k: v.shape[0] for k, v in scores.items()} == {"b4": 16, "b8": 12, "b16": 8}
    assert scores["b8"][3] == 0 and (scores["b8"][torch.arange(12) != 3] > 0).all()
    assert all(torch.isfinite(v).all() and (v > 0).all() for k, v in scores.items() if k != "b8")
    assert teacher.training and not any(p.requires_grad or p.grad is not None for p in teacher.parameters())
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())  # eval mode: no BN update
    again = channel_importance(teacher, "cagan", n_samples=30)
    assert all(torch.equal(scores[k], again[k]) for k in scores)  # seeded: reproducible
    other = channel_importance(teacher, "cagan", n_samples=30, seed=1)
    assert not torch.equal(scores["b4"], other["b4"])


def test_salt_and_pepper_sets_the_expected_share_of_pixels_to_plus_or_minus_one():
    from gancompress.families import salt_and_pepper

    images = torch.rand(8, 3, 64, 64) * 1.6 - 0.8  # never exactly +-1
    noisy = salt_and_pepper(images, torch.Generator().manual_seed(0), probability=0.05)
    changed = (noisy != images).any(1)  # (n, h, w)
    assert changed.float().mean() == pytest.approx(0.05, abs=0.005)
    hit = noisy.permute(1, 0, 2, 3)[:, changed]  # (3, hits): a hit pixel is +-1 in every channel alike
    assert set(hit.unique().tolist()) == {-1.0, 1.0} and (hit == hit[:1]).all()
    assert (hit[0] == 1).float().mean() == pytest.approx(0.5, abs=0.05)
    assert torch.equal(noisy.permute(1, 0, 2, 3)[:, ~changed], images.permute(1, 0, 2, 3)[:, ~changed])
    assert not noisy.requires_grad


def test_random_criterion_depends_on_the_seed():
    teacher = tiny_generator(channels=(16, 12, 8))
    a = prune_generator(teacher, width=0.5, criterion="random", seed=0)[1]
    b = prune_generator(teacher, width=0.5, criterion="random", seed=1)[1]
    assert a != b and a == prune_generator(teacher, width=0.5, criterion="random", seed=0)[1]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"width": 0.0}, "0 < width <= 1"),
        ({"width": 1.5}, "0 < width <= 1"),
        ({"channels": (16, 12)}, "the teacher has 3 blocks"),
        ({"channels": (16, 0, 8)}, "between 1 and the teacher's"),
        ({"channels": (17, 12, 8)}, "between 1 and the teacher's"),
        ({}, "exactly one of width or channels"),
        ({"width": 0.5, "criterion": "magic"}, "unknown pruning criterion 'magic'"),
    ],
)
def test_invalid_requests_are_clear_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        prune_generator(tiny_generator(channels=(16, 12, 8)), **kwargs)


def test_student_channels_from_width_round_to_multiples_of_8():
    teacher = tiny_generator(channels=(64, 32, 16))
    assert student_channels(teacher, width=0.25) == (16, 8, 8)
