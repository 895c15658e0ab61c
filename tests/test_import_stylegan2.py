"""rosinality/stylegan2-pytorch checkpoints: the imported networks reproduce the original code's
outputs. The fixture (tests/fixtures/rosinality_tiny*.pt, see tests/fixtures/README.md) was made by
running the original model.py on a tiny random network; only its weights and outputs are stored."""

from pathlib import Path

import pytest
import torch

from gancompress.foreign import ForeignCheckpointError
from gancompress.families.stylegan2.importers.rosinality import import_rosinality
from gancompress.foreign import load_foreign_checkpoint

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def imported():
    return import_rosinality(load_foreign_checkpoint(FIXTURES / "rosinality_tiny.pt"))


@pytest.fixture(scope="module")
def expected():
    return torch.load(FIXTURES / "rosinality_tiny_expected.pt", weights_only=True)


def test_generator_reproduces_the_original_for_the_same_z_and_noise(imported, expected):
    generator, notes = imported["generator"]
    assert generator.config.channels == (16, 16, 8, 8) and generator.config.resolution == 32
    assert (generator.config.z_dim, generator.config.w_dim, generator.config.mapping_layers) == (16, 16, 2)
    with torch.no_grad():
        image = generator(expected["z"], noise=expected["noise"])
        fused = generator(expected["z"], noise=expected["noise"], fused=True)
        const = generator(expected["z"], noise="const")
    assert expected["image"].abs().mean() > 0.5
    assert torch.allclose(image, expected["image"], atol=1e-4)
    assert torch.allclose(fused, expected["image"], atol=1e-4)
    assert torch.allclose(const, expected["image_const_noise"], atol=1e-4)  # the stored per-layer noise buffers
    assert "mapping network over" in notes["w_avg"]


def test_writing_rosinality_names_gives_back_the_original_state_dict(imported):
    from gancompress.families.stylegan2.importers.rosinality import rosinality_state

    original = load_foreign_checkpoint(FIXTURES / "rosinality_tiny.pt")["g_ema"]
    written = rosinality_state(imported["generator"][0])
    assert set(written) == set(original)
    for key, tensor in original.items():
        assert written[key].shape == tensor.shape and torch.equal(written[key], tensor.float()), key


def test_discriminator_reproduces_the_original(imported, expected):
    discriminator = imported["discriminator"]
    assert discriminator.config.channels == (16, 16, 8, 8)
    with torch.no_grad():
        logits = discriminator(expected["d_input"])
    assert torch.allclose(logits, expected["d_logits"], atol=1e-4)


def test_pickled_objects_need_an_explicit_opt_in(tmp_path):
    import datetime

    path = tmp_path / "pickled.pt"
    torch.save({"g_ema": {}, "saved_on": datetime.date(2020, 1, 1)}, path)  # not on the allow-list
    with pytest.raises(ForeignCheckpointError, match="--allow-pickle"):
        load_foreign_checkpoint(path)


def test_unrecognised_checkpoints_say_what_they_hold():
    with pytest.raises(ForeignCheckpointError, match="top-level keys"):
        import_rosinality({"netG": {"main.0.weight": torch.zeros(1)}})


def test_import_command_writes_checkpoints_every_command_takes(tmp_path, expected):
    import shutil
    import subprocess
    import sys

    from gancompress.io import load_generator
    from gancompress.teachers import resolve_generator

    source = shutil.copy(FIXTURES / "rosinality_tiny.pt", tmp_path / "tiny.pt")
    result = subprocess.run([sys.executable, "-m", "gancompress", "import", str(source)], capture_output=True, text=True,
                            check=True)
    assert "StyleGAN2 32px, channels (16, 16, 8, 8)" in result.stdout
    generator = load_generator(tmp_path / "tiny-G.safetensors")
    direct, _ = resolve_generator(str(source))  # a rosinality file also works as --teacher directly
    with torch.no_grad():
        assert torch.allclose(generator(expected["z"], noise=expected["noise"]), expected["image"], atol=1e-4)
        assert torch.equal(direct(expected["z"], noise="const"), generator(expected["z"], noise="const"))
    assert (tmp_path / "tiny-D.safetensors").is_file()
    bad = subprocess.run([sys.executable, "-m", "gancompress", "import", str(tmp_path / "missing.pt")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "gancompress: error:" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
