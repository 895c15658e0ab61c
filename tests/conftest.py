"""Shared fixtures. Assets come through the project's own asset code into the user cache
(GANCOMPRESS_CACHE or ~/.cache/gancompress), so a second run on the same machine reuses them and
a fresh machine fetches them. `../shared/data` (beside the repository) holds test images only."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gancompress import assets
from gancompress.families.dcgan.config import DCGANConfig
from gancompress.families.stylegan2.config import StyleGAN2Config
from gancompress.cli import main
from gancompress.io import save_generator
from gancompress.families import build_generator

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is missing (tests need ../shared beside the repository)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def natural_images(shared_data) -> torch.Tensor:
    """12 natural photographs (CIFAR-10 test JPEGs, two per class from six classes, and the
    LPIPS examples) as uint8 (N, 3, 299, 299)."""
    images = []
    with tarfile.open(shared_data / "cifar10-jpeg.tar") as tf:
        names = sorted(m.name for m in tf.getmembers() if m.name.endswith(".jpg") and "test/" in m.name)
        by_class = {}
        for name in names:
            by_class.setdefault(Path(name).parent.name, []).append(name)
        picked = [n for cls in sorted(by_class)[:6] for n in by_class[cls][:2]]
        raws = [tf.extractfile(n).read() for n in picked]
    raws += [(shared_data / "lpips-examples" / f"ex_{k}.png").read_bytes() for k in ("ref", "p0", "p1")]
    for raw in raws:
        image = Image.open(io.BytesIO(raw)).convert("RGB").resize((299, 299), Image.BICUBIC)
        images.append(torch.from_numpy(np.array(image)).permute(2, 0, 1))
    return torch.stack(images)


@pytest.fixture(scope="session")
def inception():
    from gancompress.metrics.fid import InceptionFeatures

    return InceptionFeatures("cpu")


@pytest.fixture(scope="session")
def ready_assets():
    """Every asset fetched (once per machine)."""
    return assets.fetch(progress=False)


def tiny_generator(seed: int = 0, channels=(16, 8, 8), out_channels: int = 3, **kwargs):
    torch.manual_seed(seed)
    generator = build_generator(DCGANConfig(z_dim=8, channels=channels, out_channels=out_channels,
                                            resolution=4 * 2 ** len(channels), **kwargs))
    # Random running statistics so eval-mode BatchNorm is not the identity.
    for module in generator.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return generator.eval()


TINY_STYLEGAN2 = dict(resolution=32, channels=(32, 32, 16, 8), z_dim=16, w_dim=16, mapping_layers=2)


def tiny_stylegan2(seed=0, **kwargs):
    torch.manual_seed(seed)
    generator = build_generator(StyleGAN2Config(**{**TINY_STYLEGAN2, **kwargs}))
    with torch.no_grad():  # non-zero noise strengths, biases and w average, so every path matters
        for name, p in generator.named_parameters():
            if name.endswith("noise_strength") or name.endswith(".bias") and "affine" not in name:
                p.normal_(0, 0.3)
        generator.w_avg.normal_(0, 0.5)
    return generator.eval()


@pytest.fixture
def work(tmp_path, monkeypatch, ready_assets):
    """A working folder (the cwd) with two tiny teachers; the user's assets, and a cache of its own."""
    for name, path in ready_assets.items():
        monkeypatch.setenv(assets.get_asset(name).env_var, str(path))
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    save_generator(tmp_path / "teacher.safetensors", tiny_generator(channels=(32, 16, 16)))
    save_generator(tmp_path / "other.safetensors", tiny_generator(seed=3, channels=(32, 16, 16)))
    return tmp_path


def snapshot(root: Path) -> dict:
    """Every file's size and mtime, but the asset cache's and a run's lock file (it names its last holder)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if "cache" not in p.relative_to(root).parts and p.name != ".lock"}


def one_line_error(capsys, argv, *, unchanged: Path | None = None) -> str:
    """Run `gancompress argv`; assert the bad-input contract (exit 2; one error line, the last one,
    after at most the command's ordinary progress notes; no traceback); return the message."""
    before = snapshot(unchanged) if unchanged else None
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line]
    assert code == 2, err
    errors = [line for line in lines if line.startswith("gancompress: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert "Traceback" not in err
    if unchanged:
        assert snapshot(unchanged) == before
    return errors[0]
