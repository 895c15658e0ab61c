"""MACs under each paper's counting rule, for rosinality's config-f StyleGAN2 (Generator(size, 512, 8,
channel_multiplier=2)) and the published 11x students. Shape-only models on the meta device: no
weights are allocated, so 1024 px takes seconds."""

import dataclasses

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from gancompress.families.stylegan2.config import StyleGAN2Config
from gancompress.families.stylegan2.networks import StyleGAN2Generator
from gancompress.metrics.cost import count_macs, count_macs_by_rule, count_parameters

# CAGAN / StyleKD / DCP keep ceil(0.3 * c) channels of every layer (docs/cost.md).
CAGAN_STUDENT = {256: (154, 154, 154, 154, 154, 77, 39), 1024: (154, 154, 154, 154, 154, 77, 39, 20, 10)}


def meta_generator(resolution: int, channels=None) -> StyleGAN2Generator:
    config = StyleGAN2Config.from_multiplier(resolution, 2)
    if channels is not None:
        config = dataclasses.replace(config, channels=tuple(channels))
    with torch.device("meta"):
        return StyleGAN2Generator(config)


def giga(macs: int) -> float:
    return round(macs / 1e9, 1)


def test_config_f_at_256_px_matches_the_papers():
    teacher = meta_generator(256)
    assert round(count_parameters(teacher) / 1e6, 1) == 30.0
    rules = count_macs_by_rule(teacher)
    with FlopCounterMode(display=False) as plain, torch.inference_mode():  # torch's own formulas, no custom ones
        teacher(torch.zeros(1, teacher.z_dim, device="meta"))
    assert rules["torch_counter"] == count_macs(teacher) == plain.get_total_flops() // 2
    assert giga(rules["input_resolution"]) == 45.1  # CAGAN, StyleKD, DCP
    # The FIR filters are what torch counts on top: 0.25 G of depthwise 4x4 filtering.
    assert giga(rules["torch_counter"] - rules["input_resolution"]) == 0.3
    assert giga(rules["output_resolution"]) == 85.0


def test_config_f_at_1024_px_matches_the_papers():
    rules = count_macs_by_rule(meta_generator(1024))
    assert giga(rules["input_resolution"]) == 74.3  # CAGAN, StyleKD, DCP
    assert round(rules["output_resolution"] / 1e9) == 144  # Anycost GAN: 144 G; MobileStyleGAN: 143.15 G


@pytest.mark.parametrize("resolution, params_m, macs_g", [(256, 5.6, 4.1), (1024, 5.6, 7.0)])
def test_the_published_11x_student_is_a_channel_list(resolution, params_m, macs_g):
    student = meta_generator(resolution, CAGAN_STUDENT[resolution])
    assert giga(count_macs_by_rule(student)["input_resolution"]) == macs_g
    # 256 px: CAGAN's 5.6 M. 1024 px: CAGAN reports 9.2 M (and 49.1 M for a teacher that has 30.4 M
    # parameters by the same count); docs/cost.md.
    assert round(count_parameters(student) / 1e6, 1) == params_m
