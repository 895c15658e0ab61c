"""StyleGAN2 at 256 px on a CPU: real images read lazily from a tar, and one compress run end to
end (reduced widths keep it to seconds; the 30 M-parameter config-f path is eval/stylegan2_256_bench.sh)."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from gancompress.cli import main
from gancompress.io import load_generator, save_generator
from gancompress.pipeline import RealImages
from tests.conftest import tiny_stylegan2

SMALL_256 = dict(resolution=256, channels=(32, 32, 32, 16, 16, 8, 8), z_dim=16, w_dim=16, mapping_layers=2)


@pytest.fixture(scope="module")
def photo_tar(tmp_path_factory):
    """A tar of 12 JPEGs of 300 x 300 px (smooth random colour fields), in sorted-name order."""
    path = tmp_path_factory.mktemp("photos") / "photos.tar"
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w") as tf:
        for i in range(12):
            field = rng.uniform(0, 255, (5, 5, 3)).astype(np.uint8)
            image = Image.fromarray(field).resize((300, 300), Image.BICUBIC)
            raw = io.BytesIO()
            image.save(raw, format="JPEG", quality=90)
            info = tarfile.TarInfo(f"img/{i:03d}.jpg")
            info.size = raw.tell()
            raw.seek(0)
            tf.addfile(info, raw)
    return path


def test_folder_and_tar_images_are_read_lazily_in_draw_order(photo_tar):
    source = RealImages(str(photo_tar), 256, 3, workers=3)
    assert source.count == 12 and source._images is None  # nothing decoded up front
    batch = source(torch.Generator().manual_seed(5), 7)
    indices = torch.randint(0, 12, (7,), generator=torch.Generator().manual_seed(5)).tolist()
    eager = source._files.load(indices, 3, 256).float().div(127.5).sub(1)  # one thread, in order
    assert batch.shape == (7, 3, 256, 256) and torch.equal(batch, eager)
    assert -1 <= batch.min() < batch.max() <= 1 and batch.std() > 0.1
    assert torch.equal(RealImages(str(photo_tar), 256, 3, workers=1)(torch.Generator().manual_seed(5), 7), batch)


def test_a_256_px_stylegan2_compresses_end_to_end_on_a_cpu(tmp_path, photo_tar, ready_assets, monkeypatch):
    from gancompress import assets

    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "cache"))
    teacher = tiny_stylegan2(**SMALL_256)
    source = save_generator(tmp_path / "teacher256.safetensors", teacher)
    # l1: the default criterion (CAGAN's) runs the teacher on 400 samples of 256 px (260 s against 69 s, one contended run)
    argv = ["compress", "--teacher", str(source), "--width", "0.5", "--criterion", "l1", "--steps", "2", "--batch-size",
            "2", "--n", "8", "--real", str(photo_tar), "--run-root", str(tmp_path / "runs"), "--quiet"]
    assert main(argv) == 0
    run = next((tmp_path / "runs").iterdir())
    report = json.loads((run / "report.json").read_text())
    student = load_generator(run / "student.safetensors")
    assert student.resolution == 256 and student.config.channels == (16, 16, 16, 8, 8, 8, 8)
    lpips = report["student_eval"]["metrics"]["lpips"]
    assert lpips["n"] == 8 and 0 < lpips["mean"] < 1 and "256 px" in lpips["resize"]
    rules = report["student_eval"]["cost"]["macs_by_rule"]
    assert rules["input_resolution"] < rules["torch_counter"] < rules["output_resolution"]
    teacher_rules = report["teacher_eval"]["cost"]["macs_by_rule"]
    assert report["comparison"]["macs_input_resolution"]["student_over_teacher"] == pytest.approx(
        rules["input_resolution"] / teacher_rules["input_resolution"])
    assert rules["input_resolution"] < 0.85 * teacher_rules["input_resolution"]  # the 8-channel layers stay whole
    assert (run / "report.md").read_text().count("input-resolution rule") == 2  # the row and the note


def test_a_config_f_rosinality_checkpoint_imports_prunes_and_exports(tmp_path, capsys):
    """The 30 M-parameter flow of eval/stylegan2_256_bench.sh: import and prune take seconds here (by
    l1: the default, CAGAN's score, runs the teacher forward and backward on 400 samples of 256 px),
    and the student's ONNX graph is verified against PyTorch."""
    from gancompress.families.stylegan2.config import StyleGAN2Config
    from gancompress.families.stylegan2.importers.rosinality import rosinality_state
    from gancompress.families.stylegan2.networks import StyleGAN2Generator

    torch.manual_seed(0)
    teacher = StyleGAN2Generator(StyleGAN2Config.from_multiplier(256, 2)).eval()
    torch.save({"g_ema": rosinality_state(teacher)}, tmp_path / "teacher256.pt")
    assert main(["prune", "--teacher", str(tmp_path / "teacher256.pt"), "--width", "0.3", "--criterion", "l1", "--json",
                 "--out", str(tmp_path / "student.safetensors")]) == 0
    pruned = json.loads(capsys.readouterr().out)
    assert pruned["params"][0] == 30_034_338 and pruned["channels"] == [152, 152, 152, 152, 152, 80, 40]
    assert round(pruned["macs_by_rule"]["input_resolution"][0] / 1e9, 1) == 45.1
    assert main(["export", "--generator", str(tmp_path / "student.safetensors"), "--out", str(tmp_path / "s.onnx"),
                 "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["verification"]["max_abs_diff"] < 1e-3
