"""The evaluator end to end through the CLI, on tiny generators (a few dozen samples)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from gancompress import assets
from gancompress.cli import main
from gancompress.io import save_generator
from tests.conftest import tiny_generator

N = "24"


@pytest.fixture
def cache(tmp_path, monkeypatch, ready_assets):
    """A private cache for reference features; assets point at the machine's cached files."""
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "cache"))
    for name, path in ready_assets.items():
        monkeypatch.setenv(assets.get_asset(name).env_var, str(path))
    return tmp_path / "cache"


@pytest.fixture
def generators(tmp_path):
    teacher = save_generator(tmp_path / "teacher.safetensors", tiny_generator(seed=0))
    student = save_generator(tmp_path / "student.safetensors", tiny_generator(seed=1))
    return teacher, student


def _eval(capsys, *args):
    code = main(["eval", "--quiet", "--n", N, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_record_carries_metrics_and_protocol(cache, generators, tmp_path, capsys):
    teacher, student = generators
    out = tmp_path / "record.json"
    code, table, _ = _eval(capsys, "--generator", str(student), "--reference", f"teacher:{teacher}", "--out", str(out))
    assert code == 0
    record = json.loads(out.read_text())
    m, p, c = record["metrics"], record["protocol"], record["cost"]
    assert m["fid"] > 0 and m["kid"]["mean"] > 0
    assert 0 < m["lpips"]["mean"] < 1 and m["lpips"]["std"] > 0 and m["lpips"]["n"] == 24
    assert p["n_generated"] == p["n_reference"] == 24 and "seed 1000003" in p["reference"]
    assert p["feature_weights"]["sha256"] == assets.provenance("fid-inception")["sha256"]
    assert "299" in p["resize"] and p["threads"] == torch.get_num_threads() and p["device"] == "cpu"
    assert p["torch"] == torch.__version__ and "subsets of 24" in p["kid"]
    assert c["params"] == sum(t.numel() for t in tiny_generator().parameters())
    assert [lat["batch_size"] for lat in c["latency"]] == [1, 16]
    assert all(lat["median_ms_per_image"] > 0 and lat["iqr_ms_per_image"] >= 0 for lat in c["latency"])
    assert "FID" in table and "LPIPS to teacher" in table and "latency b16" in table
    assert "inception_score" not in m


def test_generated_folders_give_torch_fidelity_our_fid(cache, generators, tmp_path, capsys):
    import torch_fidelity

    from gancompress.evaluation import DEFAULT_REF_SEED

    teacher, student = generators
    code, _, _ = _eval(capsys, "--generator", str(student), "--reference", f"teacher:{teacher}", "--no-latency",
                       "--out", str(tmp_path / "record.json"))
    ours = json.loads((tmp_path / "record.json").read_text())["metrics"]["fid"]
    for generator, seed, out in ((student, 0, "student"), (teacher, DEFAULT_REF_SEED, "teacher"),
                                 (student, 0, "student.npz")):
        assert main(["generate", "--quiet", "--generator", str(generator), "--n", N, "--seed", str(seed),
                     "--batch-size", "7", "--out", str(tmp_path / out)]) == 0
    pngs = sorted((tmp_path / "student").glob("*.png"))
    assert len(pngs) == 24 and pngs[0].name == "000000.png"
    record = json.loads((tmp_path / "student" / "generate.json").read_text())
    assert record["n"] == 24 and record["seed"] == 0 and record["generator"]["sha256"]
    packed = np.load(tmp_path / "student.npz")
    assert packed["images"].shape == (24, 32, 32, 3) and packed["images"].dtype == np.uint8
    assert np.array_equal(packed["images"][5], np.asarray(Image.open(pngs[5])))  # the same pixels either way
    assert json.loads(str(packed["record"]))["format"].startswith("uint8 images")
    theirs = torch_fidelity.calculate_metrics(
        input1=str(tmp_path / "student"), input2=str(tmp_path / "teacher"), fid=True, cuda=False, verbose=False, save_cpu_ram=True,
        feature_extractor_weights_path=str(assets.resolve("fid-inception")))["frechet_inception_distance"]
    assert theirs == pytest.approx(ours, abs=1e-3)
    assert main(["generate", "--quiet", "--generator", str(student), "--n", "3", "--out", str(tmp_path / "student")]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err


def test_saved_statistics_reproduce_the_fid_in_pytorch_fids_layout(cache, generators, tmp_path, capsys):
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    from gancompress.evaluation import DEFAULT_REF_SEED

    teacher, student = generators
    _eval(capsys, "--generator", str(student), "--reference", f"teacher:{teacher}", "--no-latency",
          "--out", str(tmp_path / "r.json"), "--save-stats", str(tmp_path / "student.npz"))
    # the teacher's side of that FID: its samples from the reference seed, saved by evaluating it as a generator
    _eval(capsys, "--generator", str(teacher), "--seed", str(DEFAULT_REF_SEED), "--ref-seed", "5",
          "--reference", f"teacher:{teacher}", "--no-latency", "--save-stats", str(tmp_path / "teacher.npz"))
    stats = [dict(np.load(tmp_path / name)) for name in ("student.npz", "teacher.npz")]
    assert stats[0]["mu"].shape == (2048,) and stats[0]["sigma"].shape == (2048, 2048)
    assert stats[0]["mu"].dtype == np.float64 and np.allclose(stats[0]["sigma"], stats[0]["sigma"].T)
    about = json.loads(str(stats[0]["record"]))
    assert about["n"] == 24 and about["seed"] == 0 and "onnxruntime" in about["protocol"]["feature_backend"]
    fid = fid_statistics_to_metric(*[{"mu": s["mu"], "sigma": s["sigma"]} for s in stats], verbose=False)
    assert fid["frechet_inception_distance"] == pytest.approx(json.loads((tmp_path / "r.json").read_text())["metrics"]["fid"],
                                                               abs=1e-6)
    assert main(["eval", "--quiet", "--generator", str(student), "--reference", f"teacher:{teacher}",
                 "--save-stats", str(tmp_path)]) == 2  # a folder, refused before any work
    assert "is a folder" in capsys.readouterr().err


def test_precomputed_statistics_reference_gives_the_same_fid_and_marks_what_it_cannot_know(cache, generators, tmp_path,
                                                                                          capsys):
    from gancompress.evaluation import DEFAULT_REF_SEED

    teacher, student = generators
    _eval(capsys, "--generator", str(student), "--reference", f"teacher:{teacher}", "--no-latency",
          "--out", str(tmp_path / "r.json"))
    expected = json.loads((tmp_path / "r.json").read_text())["metrics"]["fid"]
    _eval(capsys, "--generator", str(teacher), "--seed", str(DEFAULT_REF_SEED), "--ref-seed", "5",
          "--reference", f"teacher:{teacher}", "--no-latency", "--save-stats", str(tmp_path / "teacher.npz"))
    code, table, _ = _eval(capsys, "--generator", str(student), "--reference", str(tmp_path / "teacher.npz"),
                           "--no-latency", "--out", str(tmp_path / "s.json"))
    record = json.loads((tmp_path / "s.json").read_text())
    m, p = record["metrics"], record["protocol"]
    assert code == 0 and record["reference"]["kind"] == "statistics"
    assert m["fid"] == pytest.approx(expected, abs=1e-6)  # FID is symmetric: the same two sample sets
    assert m["kid"]["available"] is False and m["lpips"]["available"] is False
    assert p["reference_same_feature_protocol"] is True and p["reference_protocol"]["n"] == 24 and p["n_reference"] == 24
    assert "KID" in table and "unavailable" in table and "with our features" in table
    # A foreign file (mu and sigma only, as pytorch-fid writes them): the same FID, its protocol unknown.
    ours = np.load(tmp_path / "teacher.npz")
    np.savez(tmp_path / "foreign.npz", mu=ours["mu"].astype(np.float32), sigma=ours["sigma"])
    code, out, _ = _eval(capsys, "--generator", str(student), "--reference", str(tmp_path / "foreign.npz"),
                         "--no-latency", "--json")
    foreign = json.loads(out)
    assert code == 0 and foreign["metrics"]["fid"] == pytest.approx(expected, abs=1e-3)
    fp = foreign["protocol"]
    assert fp["reference_same_feature_protocol"] == "unknown" and fp["n_reference"].startswith("unknown")
    assert fp["reference_protocol"]["resize"].startswith("unknown") and "unknown" in fp["reference"]
    # Files that are not statistics, and options that do not apply, are one clear line each.
    bad = {"nosigma.npz": {"mu": ours["mu"]}, "shape.npz": {"mu": ours["mu"][:64], "sigma": ours["sigma"][:64, :64]},
           "nan.npz": {"mu": np.full(2048, np.nan), "sigma": ours["sigma"]},
           "asym.npz": {"mu": ours["mu"], "sigma": ours["sigma"] + np.triu(np.ones((2048, 2048)), 1)}}
    messages = {"nosigma.npz": "has no sigma array", "shape.npz": "are not Inception pool3 statistics",
                "nan.npz": "non-finite values", "asym.npz": "not symmetric"}
    for name, arrays in bad.items():
        np.savez(tmp_path / name, **arrays)
        code, _, err = _eval(capsys, "--generator", str(student), "--reference", str(tmp_path / name))
        assert code == 2 and messages[name] in err, err
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    code, _, err = _eval(capsys, "--generator", str(student), "--reference", str(tmp_path / "junk.npz"))
    assert code == 2 and "is not a readable .npz" in err
    code, _, err = _eval(capsys, "--generator", str(student), "--reference", str(tmp_path / "teacher.npz"), "--n-ref", "10")
    assert code == 2 and "--n-ref does not apply to a statistics reference" in err


def test_clean_fid_resize_is_recorded_and_never_mixed_with_the_default(cache, generators, tmp_path, capsys):
    teacher, student = generators
    runs = {}
    for resize in ("torch-fidelity", "clean"):
        code, out, _ = _eval(capsys, "--generator", str(student), "--reference", f"teacher:{teacher}", "--no-latency",
                             "--resize", resize, "--json")
        assert code == 0
        runs[resize] = json.loads(out)
    default, clean = runs["torch-fidelity"], runs["clean"]
    assert default["protocol"]["resize_mode"] == "torch-fidelity" and clean["protocol"]["resize_mode"] == "clean"
    assert "PIL bicubic" in clean["protocol"]["resize"] and "TF1.x" in default["protocol"]["resize"]
    assert clean["reference"]["features"]["cache"] == "computed"  # not the default's cached features
    assert clean["metrics"]["fid"] > 0 and clean["metrics"]["fid"] != pytest.approx(default["metrics"]["fid"], rel=1e-3)
    assert clean["metrics"]["lpips"]["mean"] == pytest.approx(default["metrics"]["lpips"]["mean"])  # LPIPS has no 299 step


def test_teacher_against_itself_has_zero_lpips_and_reuses_reference_features(cache, generators, capsys):
    teacher, _ = generators
    args = ["--generator", str(teacher), "--reference", f"teacher:{teacher}", "--no-latency", "--json"]
    code, first, err1 = _eval(capsys, *args)
    assert code == 0 and "computed and cached" in err1
    code, second, err2 = _eval(capsys, *args)
    assert code == 0 and "reused from cache" in err2
    r1, r2 = json.loads(first), json.loads(second)
    assert r2["reference"]["features"]["cache"] == "reused"
    assert r1["metrics"]["fid"] == pytest.approx(r2["metrics"]["fid"], abs=1e-6)
    assert r1["metrics"]["lpips"]["mean"] == 0  # same network, same latents
    # Fresh samples: the reference does not reuse the generator's latents, so the FID is not 0
    # (with the same latents the features, and so the FID, would be identical: exactly 0).
    assert r1["metrics"]["fid"] > 1e-2
    # A different n is a different reference: not reused.
    code, _, err3 = _eval(capsys, *args, "--n-ref", "30")
    assert "computed and cached" in err3


def test_inception_score_is_reported_unavailable_never_as_a_number(cache, generators, capsys):
    teacher, student = generators
    code, out, _ = _eval(capsys, "--generator", str(student), "--reference", f"teacher:{teacher}",
                         "--no-latency", "--isc", "--json")
    isc = json.loads(out)["metrics"]["inception_score"]
    assert code == 0 and isc["available"] is False and "no 1008-way classifier" in isc["reason"]
    assert set(isc) == {"available", "reason"}


def test_grayscale_generator_against_mnist(cache, tmp_path, capsys):
    gray = save_generator(tmp_path / "gray.safetensors", tiny_generator(out_channels=1))
    code, out, _ = _eval(capsys, "--generator", str(gray), "--reference", "mnist", "--no-latency", "--json")
    record = json.loads(out)
    assert code == 0 and record["reference"]["label"] == "mnist:test"
    assert "replicated to 3 channels" in record["protocol"]["grayscale"]
    assert record["metrics"]["fid"] > 50  # an untrained generator is far from MNIST
    assert record["metrics"]["lpips"]["available"] is False


def test_image_folder_reference(cache, tmp_path, generators, capsys):
    folder = tmp_path / "images" / "class_a"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(30):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    _, student = generators
    code, out, _ = _eval(capsys, "--generator", str(student), "--reference", str(tmp_path / "images"),
                         "--no-latency", "--json")
    record = json.loads(out)
    assert code == 0 and record["reference"]["identity"]["images"] == 30
    assert "resized to it with PIL bicubic" in record["reference"]["identity"]["resize"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--generator", "no-such-teacher", "--reference", "mnist"], "neither a registered teacher"),
        (["--generator", "dcgan-face64", "--reference", "imagenet"], "not teacher:NAME, a dataset"),
        (["--generator", "dcgan-face64", "--reference", "mnist:val"], "has splits train, valid, test"),
        (["--generator", "dcgan-face64", "--reference", "mnist", "--n", "1"], "--n must be at least 2"),
        (["--generator", "dcgan-face64", "--reference", "mnist", "--n-ref", "20000"], "has only 10000"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(cache, args, message):
    result = subprocess.run([sys.executable, "-m", "gancompress", "eval", "--quiet", "--no-latency", *args],
                            capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gancompress: error:") and message in lines[0], result.stderr


def test_every_command_has_help_with_defaults_and_an_example():
    for command in (["--help"], ["eval", "--help"], ["assets", "--help"]):
        out = subprocess.run([sys.executable, "-m", "gancompress", *command], capture_output=True, text=True).stdout
        assert "example" in out, command
    out = subprocess.run([sys.executable, "-m", "gancompress", "eval", "--help"], capture_output=True, text=True).stdout
    assert "(default: 2000)" in out and "(default: 0)" in out
