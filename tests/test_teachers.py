"""Every registered teacher loads, matches its manifest's recorded cost, and makes valid images."""

import pytest
import torch

from gancompress.io import sha256_file
from gancompress.metrics.cost import count_macs, count_parameters
from gancompress.teachers import manifest, resolve_generator, teacher_path

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
