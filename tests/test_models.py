import pytest
import torch

from gancompress.config import ConfigError, make_divisible
from gancompress.families.dcgan.config import DCGANConfig
from gancompress.families import build_generator
from tests.conftest import tiny_generator


@pytest.mark.parametrize("resolution,channels", [(32, (40, 17, 9)), (64, (64, 32, 16, 8)), (128, (24, 24, 12, 6, 3))])
@pytest.mark.parametrize("out_channels", [1, 3])
def test_any_resolution_and_channel_count(resolution, channels, out_channels):
    g = build_generator(DCGANConfig(z_dim=12, channels=channels, out_channels=out_channels, resolution=resolution)).eval()
    image, feats = g(torch.randn(3, 12), return_features=True)
    assert image.shape == (3, out_channels, resolution, resolution)
    assert image.abs().max() <= 1
    assert list(feats) == [f"b{4 * 2**i}" for i in range(len(channels))]
    for i, (name, f) in enumerate(feats.items()):
        assert f.shape == (3, channels[i], 4 * 2**i, 4 * 2**i), name
        assert (f >= 0).all()  # post-ReLU
    z = torch.randn(2, 12)
    assert torch.equal(g(z), g(z.reshape(2, 12, 1, 1)))  # both latent layouts accepted


def test_same_block_names_for_teacher_and_narrower_student():
    teacher = DCGANConfig()
    student = teacher.with_width(0.25)
    assert student.block_names == teacher.block_names
    assert student.channels == (128, 64, 32, 16)
    assert teacher.with_width(1.0) == teacher


def test_width_helper_rounds_to_multiples_of_8_and_never_exceeds_original():
    assert make_divisible(50) == 48 and make_divisible(52) == 56 and make_divisible(3) == 8
    assert DCGANConfig(channels=(20, 10, 5, 3)).with_width(0.5).channels == (16, 8, 5, 3)
    assert all(c >= 1 for c in DCGANConfig().with_width(0.001).channels)


@pytest.mark.parametrize("width", [0, -0.5, 1.01])
def test_width_out_of_range_is_a_clear_error(width):
    with pytest.raises(ConfigError, match="0 < width <= 1"):
        DCGANConfig().with_width(width)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"resolution": 48}, "power of two"),
        ({"resolution": 64, "channels": (8, 8, 8)}, "needs 4 block channel counts"),
        ({"channels": (8, 0, 8, 8)}, "at least one channel"),
        ({"out_channels": 2}, "out_channels 1 or 3"),
    ],
)
def test_invalid_configs_name_the_problem(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        DCGANConfig(**kwargs)


def test_config_json_round_trip():
    config = DCGANConfig(z_dim=7, channels=(9, 5, 3), resolution=32, out_channels=1, conv_bias=True)
    assert DCGANConfig.from_dict(__import__("json").loads(config.to_json())) == config
    with pytest.raises(ConfigError, match="unknown DCGANConfig fields"):
        DCGANConfig.from_dict({"family": "dcgan", "ngf": 64})


def test_features_do_not_change_the_image():
    g = tiny_generator()
    z = torch.randn(4, 8)
    image, _ = g(z, return_features=True)
    assert torch.equal(image, g(z))
