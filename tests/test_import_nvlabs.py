"""NVlabs stylegan2-ada-pytorch / stylegan3 `.pkl` snapshots: read without their source tree and
without running code from the file, and the imported networks reproduce the original code's outputs.
The fixture (tests/fixtures/nvlabs_tiny*.pkl/.pt, see tests/fixtures/README.md) was made by running
NVlabs' networks.py on a tiny random network; its pickled module source was replaced by a comment."""

import os
import pickle
import sys
import types
from pathlib import Path

import pytest
import torch

from gancompress.cli import main
from gancompress.foreign import ForeignCheckpointError
from gancompress.families.stylegan2.importers.nvlabs import import_nvlabs, is_plain_pickle, load_nvlabs_pickle, nvlabs_generator
from gancompress.io import load_generator
from gancompress.teachers import resolve_discriminator, resolve_generator

FIXTURES = Path(__file__).parent / "fixtures"
PKL = FIXTURES / "nvlabs_tiny.pkl"


@pytest.fixture(scope="module")
def imported():
    return import_nvlabs(PKL)


@pytest.fixture(scope="module")
def expected():
    return torch.load(FIXTURES / "nvlabs_tiny_expected.pt", weights_only=True)


def test_generator_reproduces_the_original(imported, expected):
    generator, notes = imported["generator"]
    c = generator.config
    assert (c.resolution, c.channels, c.z_dim, c.w_dim, c.mapping_layers) == (32, (16, 16, 16, 8), 16, 16, 2)
    assert c.conv_clamp == 2.0 and notes["w_avg"] == "mapping.w_avg from the checkpoint"
    z = expected["z"]
    with torch.no_grad():
        plain = generator(z, noise="const")
        fused = generator(z, noise="const", fused=True)
        truncated = generator(z, noise="const", psi=0.5)
    reference = expected["image_const_noise"]
    assert reference.abs().mean() > 0.5
    assert (reference.abs() > 1.99).float().mean() > 0.05  # the fixture's small conv_clamp is active
    assert torch.allclose(plain, reference, atol=1e-4)
    assert torch.allclose(fused, reference, atol=1e-4)
    assert torch.allclose(truncated, expected["image_psi_0.5"], atol=1e-4)
    assert not torch.allclose(truncated, reference, atol=1e-2)  # w_avg is not zero: psi matters


def test_without_the_clamp_the_outputs_differ(expected):
    net = load_nvlabs_pickle(PKL)["G_ema"]
    for layer in ("b4.conv1", "b8.conv0", "b32.torgb"):
        net.find(f"synthesis.{layer}").state["conv_clamp"] = None
    generator, _ = nvlabs_generator(net)
    assert generator.config.conv_clamp is None
    with torch.no_grad():
        image = generator(expected["z"], noise="const")
    assert (image - expected["image_const_noise"]).abs().max() > 0.1


def test_discriminator_reproduces_the_original(imported, expected):
    discriminator = imported["discriminator"]
    c = discriminator.config
    assert (c.channels, c.conv_clamp, c.mbstd_group) == ((16, 16, 16, 8), 0.5, 2)
    with torch.no_grad():
        logits = discriminator(expected["d_input"])
    assert expected["d_logits"].abs().max() > 0.1
    assert torch.allclose(logits, expected["d_logits"], atol=1e-4)


def test_the_discriminator_clamp_is_active_and_spares_the_residual_skips(imported, expected):
    """NVlabs clamps conv0/conv1 of a DiscriminatorBlock but not its skip. The fixture's small clamp
    (0.5) is exceeded by the skips' outputs, so clamping them as well (the old bug) changes the logits."""
    import copy

    discriminator = copy.deepcopy(imported["discriminator"])
    blocks = [m for m in discriminator.modules() if hasattr(m, "skip")]
    assert blocks and all(block.skip.conv_clamp is None for block in blocks)
    for block in blocks:
        block.skip.conv_clamp = discriminator.config.conv_clamp
    with torch.no_grad():
        wrong = discriminator(expected["d_input"])
    assert (wrong - expected["d_logits"]).abs().max() > 1e-2


def test_unknown_globals_are_refused_without_running_them(tmp_path, monkeypatch):
    class Payload:
        def __reduce__(self):
            return os.system, ("touch pwned",)

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": Payload()}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ForeignCheckpointError, match=r"refers to (posix|os)\.system.*refusing"):
        load_nvlabs_pickle(path)
    assert not (tmp_path / "pwned").exists()


def test_the_source_code_stored_in_a_snapshot_is_never_executed(tmp_path, monkeypatch):
    """A persistent object carries module source that NVlabs' loader would exec; ours ignores it."""
    fake = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # only needed to write the pickle
        raise AssertionError

    fake._reconstruct_persistent_obj = _reconstruct_persistent_obj
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"

    class Snapshot:
        def __reduce__(self):
            meta = {"type": "class", "version": 6, "class_name": "Generator",
                    "module_src": "open('pwned', 'w').close()\nclass Generator: pass\n", "state": {"z_dim": 4}}
            return _reconstruct_persistent_obj, (meta,)

    monkeypatch.setitem(sys.modules, "torch_utils", types.ModuleType("torch_utils"))
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", fake)
    path = tmp_path / "snapshot.pkl"
    path.write_bytes(pickle.dumps({"G_ema": Snapshot()}))
    monkeypatch.chdir(tmp_path)
    data = load_nvlabs_pickle(path)
    assert data["G_ema"].class_name == "Generator" and data["G_ema"].attr("z_dim") == 4
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(ForeignCheckpointError, match="not an NVlabs StyleGAN2 Generator"):
        nvlabs_generator(data["G_ema"])


def test_conditional_generators_are_refused_clearly():
    net = load_nvlabs_pickle(PKL)["G_ema"]
    net.state["c_dim"] = 10
    with pytest.raises(ForeignCheckpointError, match="class-conditional"):
        nvlabs_generator(net)


def test_torch_save_files_are_not_taken_for_nvlabs_pickles(tmp_path):
    zipped, legacy = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save({"x": torch.zeros(1)}, zipped)
    torch.save({"x": torch.zeros(1)}, legacy, _use_new_zipfile_serialization=False)
    assert is_plain_pickle(PKL) and not is_plain_pickle(zipped) and not is_plain_pickle(legacy)


def test_import_command_and_teacher_option_take_a_pkl(tmp_path, imported, expected, capsys):
    assert main(["import", str(PKL), "--out", str(tmp_path)]) == 0
    assert "mapping.w_avg from the checkpoint" in capsys.readouterr().out
    converted = load_generator(tmp_path / "nvlabs_tiny-G.safetensors")
    assert (tmp_path / "nvlabs_tiny-D.safetensors").is_file()
    from_sibling, identity_d = resolve_discriminator(str(tmp_path / "nvlabs_tiny-G.safetensors"))
    from_pickle, _ = resolve_discriminator(str(PKL))  # a foreign teacher's own, read from its file
    assert identity_d["file"] == str(tmp_path / "nvlabs_tiny-D.safetensors")
    images = torch.randn(4, from_sibling.config.in_channels, from_sibling.config.resolution, from_sibling.config.resolution)
    with torch.no_grad():
        assert torch.equal(from_sibling(images), from_pickle(images))
    teacher, identity = resolve_generator(str(PKL))
    with torch.no_grad():
        for generator in (converted, teacher):
            assert torch.allclose(generator(expected["z"], noise="const"), expected["image_const_noise"], atol=1e-4)
    assert identity["config"]["conv_clamp"] == 2.0
