import os
from collections import OrderedDict

import pytest
import torch
from torch import nn

from gancompress.families.dcgan.config import DCGANConfig
from gancompress.families.dcgan.importers import dcgan_from_state_dict
from gancompress.foreign import ForeignCheckpointError
from gancompress.io import CheckpointError, atomic_path, load_generator, read_metadata, save_generator
from gancompress.teachers import resolve_generator
from tests.conftest import tiny_generator


def test_checkpoint_rebuilds_any_generator_from_the_file_alone(tmp_path):
    g = tiny_generator(channels=(24, 13, 7), out_channels=1, conv_bias=True)
    path = save_generator(tmp_path / "g.safetensors", g, {"note": {"width": 0.5}})
    loaded = load_generator(path)
    assert loaded.config == g.config
    z = torch.randn(5, 8)
    assert torch.equal(loaded(z), g(z))
    meta = read_metadata(path)
    assert meta["config"]["channels"] == [24, 13, 7]
    assert meta["note"] == {"width": 0.5}


@pytest.mark.parametrize("family", ["dcgan", "stylegan2"])
def test_discriminator_files_round_trip_and_bad_ones_are_clear_errors(tmp_path, family):
    from gancompress.families import FAMILIES, build_discriminator_for
    from gancompress.io import load_discriminator, save_discriminator, save_tensors

    config = FAMILIES[family].tiny_config()
    torch.manual_seed(0)
    discriminator = build_discriminator_for(config, 0.5)
    path = save_discriminator(tmp_path / "d.safetensors", discriminator, {"note": "kept"})
    loaded = load_discriminator(path)
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(images), discriminator.eval()(images)) and not loaded.training
    assert read_metadata(path)["note"] == "kept" and read_metadata(path)["kind"] == "discriminator"
    generator = save_generator(tmp_path / "g.safetensors", FAMILIES[family].build_generator(config))
    with pytest.raises(CheckpointError, match="not a gancompress discriminator checkpoint.*gancompress import"):
        load_discriminator(generator)
    with pytest.raises(CheckpointError, match="not a gancompress generator checkpoint"):
        load_generator(path)
    wider = build_discriminator_for(config, 1.0).state_dict()
    save_tensors(tmp_path / "bad.safetensors", wider, {"kind": "discriminator", "config": discriminator.config.to_dict()})
    with pytest.raises(CheckpointError, match="do not match the config in its metadata"):
        load_discriminator(tmp_path / "bad.safetensors")
    save_tensors(tmp_path / "odd.safetensors", wider, {"kind": "discriminator", "config": {"family": "vqgan-d"}})
    with pytest.raises(CheckpointError, match="invalid discriminator config.*unknown discriminator family 'vqgan-d'"):
        load_discriminator(tmp_path / "odd.safetensors")


def test_checkpoints_are_byte_deterministic(tmp_path):
    """Records cite checkpoint sha256s, so the same network must always give the same bytes."""
    from gancompress.io import sha256_file

    g = tiny_generator()
    first = save_generator(tmp_path / "a.safetensors", g, {"b": 1, "a": 2, "c": {"z": 1, "y": 2}})
    second = save_generator(tmp_path / "b.safetensors", g, {"c": {"y": 2, "z": 1}, "a": 2, "b": 1})
    assert sha256_file(first) == sha256_file(second)


def test_interrupted_write_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "g.safetensors"
    save_generator(path, tiny_generator(seed=1))
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"half a checkpoint")
            raise RuntimeError("killed mid-write")
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["g.safetensors"]  # no temporary left behind


def test_non_checkpoints_are_clear_errors(tmp_path):
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable .safetensors"):
        load_generator(bogus)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_generator(tmp_path / "missing.safetensors")


def _tutorial_generator(nz=16, ngf=8, nc=3, bias=False, resolution=32):
    """The PyTorch DCGAN tutorial's nn.Sequential generator (widths ngf * 2**k, widest first)."""
    n_blocks = resolution.bit_length() - 3  # 32 px: 3 blocks, 64 px: 4
    widths = [ngf * 2 ** (n_blocks - 1 - i) for i in range(n_blocks)]
    layers, cin = [], nz
    for i, width in enumerate(widths):
        stride, padding = (1, 0) if i == 0 else (2, 1)
        layers += [nn.ConvTranspose2d(cin, width, 4, stride, padding, bias=bias), nn.BatchNorm2d(width), nn.ReLU(True)]
        cin = width
    return nn.Sequential(*layers, nn.ConvTranspose2d(cin, nc, 4, 2, 1, bias=bias), nn.Tanh())


class _NamedBlocks(nn.Module):
    """Someone else's naming: net.up1.deconv / net.up1.norm ... net.out.deconv."""

    def __init__(self, seq):
        super().__init__()
        convs = [m for m in seq if isinstance(m, nn.ConvTranspose2d)]
        bns = [m for m in seq if isinstance(m, nn.BatchNorm2d)]
        self.net = nn.Module()
        for i, (c, b) in enumerate(zip(convs, bns)):
            block = nn.Module()
            block.deconv, block.norm = c, b
            setattr(self.net, f"up{i + 1}", block)
        out = nn.Module()
        out.deconv = convs[-1]
        self.net.out = out


def _randomise(module):
    torch.manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
    return module.eval()


@pytest.mark.parametrize(
    "scheme",
    ["tutorial", "tutorial-wrapped", "tutorial-sorted-keys", "named-blocks", "with-bias-grayscale", "module-prefix"],
)
def test_foreign_dcgan_state_dicts_are_recognised_by_shape(scheme):
    bias, nc = (True, 1) if scheme == "with-bias-grayscale" else (False, 3)
    original = _randomise(_tutorial_generator(nc=nc, bias=bias))
    state = original.state_dict()
    if scheme == "tutorial-wrapped":
        state = {"netG_state_dict": state, "epoch": 3}
    elif scheme == "tutorial-sorted-keys":
        state = OrderedDict(sorted(state.items()))  # main.10 before main.3
    elif scheme == "named-blocks":
        state = _NamedBlocks(original).state_dict()
    elif scheme == "module-prefix":  # saved from DataParallel
        state = {"state_dict": {f"module.main.{k}": v for k, v in state.items()}}
    imported = dcgan_from_state_dict(state)
    assert imported.config == DCGANConfig(z_dim=16, channels=(32, 16, 8), out_channels=nc, resolution=32, conv_bias=bias)
    z = torch.randn(4, 16)
    assert torch.allclose(imported(z), original(z.view(4, 16, 1, 1)), atol=1e-6)


def test_unmappable_state_dicts_say_what_was_found():
    mlp = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).state_dict()
    with pytest.raises(ForeignCheckpointError, match=r"module '0' is neither a conv nor a BatchNorm: \{'weight': \(16, 8\)"):
        dcgan_from_state_dict(mlp)
    broken = _tutorial_generator().state_dict()
    broken["4.running_mean"] = torch.zeros(5)
    with pytest.raises(ForeignCheckpointError, match="BatchNorm 1 has 5 channels but conv 1 outputs 16"):
        dcgan_from_state_dict(broken)
    with pytest.raises(ForeignCheckpointError, match="no tensor state_dict found"):
        dcgan_from_state_dict({"epoch": 3, "lr": 0.1})


def test_foreign_file_loads_as_a_generator_spec(tmp_path):
    original = _randomise(_tutorial_generator())
    path = tmp_path / "netG.pth"
    torch.save({"netG_state_dict": original.state_dict()}, path)
    generator, identity = resolve_generator(str(path))
    assert tuple(identity["config"]["channels"]) == (32, 16, 8)
    z = torch.randn(2, 16)
    assert torch.allclose(generator(z), original(z.view(2, 16, 1, 1)), atol=1e-6)


def test_dcgan_face64_reproduces_the_original_sequential(ready_assets, tmp_path):
    from gancompress import assets

    raw = assets.carrier_files("dcgan-face64", tmp_path)["gan_face_generate/weights.tar"]
    state = torch.load(raw, map_location="cpu", weights_only=True)["netG_state_dict"]
    original = _tutorial_generator(nz=100, ngf=64, resolution=64)
    original.load_state_dict({k.removeprefix("main."): v for k, v in state.items()})
    original.eval()
    teacher, identity = resolve_generator("dcgan-face64")
    assert teacher.config.channels == (512, 256, 128, 64)
    z = torch.randn(16, 100, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(teacher(z), original(z.view(16, 100, 1, 1)))
