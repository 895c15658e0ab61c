import io

import numpy as np
import pytest
import torch
from PIL import Image

from gancompress.data import load_dataset
from gancompress.metrics.cost import count_macs, count_macs_by_rule, count_parameters
from gancompress.metrics.fid import fid_from_features, kid_from_features
from gancompress.metrics.lpips import load_lpips
from gancompress.teachers import resolve_generator

N = 128  # per set: enough for FID to separate datasets, small enough for CI


def _png(path):
    array = np.array(Image.open(io.BytesIO(path.read_bytes())).convert("RGB"))
    return torch.from_numpy(array).permute(2, 0, 1)[None].float() / 127.5 - 1


@pytest.mark.parametrize("net,p0,p1", [("vgg", 0.569, 0.422), ("alex", 0.722, 0.138)])
def test_lpips_matches_published_values(shared_data, net, p0, p1):
    model = load_lpips(net)
    ex = {k: _png(shared_data / "lpips-examples" / f"ex_{k}.png") for k in ("ref", "p0", "p1")}
    with torch.inference_mode():
        assert model(ex["ref"], ex["p0"]).item() == pytest.approx(p0, abs=1e-3)
        assert model(ex["ref"], ex["p1"]).item() == pytest.approx(p1, abs=1e-3)


def test_lpips_above_256_px_compares_the_pair_downsampled_to_256(shared_data):
    from gancompress.metrics.lpips import lpips_distance

    model = load_lpips("alex")
    ex = {k: _png(shared_data / "lpips-examples" / f"ex_{k}.png") for k in ("ref", "p1")}  # 64 px
    big = {k: torch.nn.functional.interpolate(v, size=(512, 512), mode="nearest") for k, v in ex.items()}
    at_256 = {k: torch.nn.functional.interpolate(v, size=(256, 256), mode="nearest") for k, v in ex.items()}
    with torch.inference_mode():
        # nearest 8x then area 2x down is nearest 4x: exactly the 256 px pair
        assert lpips_distance(model, big["ref"], big["p1"]).item() == pytest.approx(
            model(at_256["ref"], at_256["p1"]).item(), abs=1e-5)
        assert lpips_distance(model, ex["ref"], ex["p1"]).item() == pytest.approx(0.138, abs=1e-3)  # small: as is
        assert model(big["ref"], big["p1"]).item() != pytest.approx(model(at_256["ref"], at_256["p1"]).item(), abs=1e-3)


@pytest.fixture(scope="module")
def feature_sets(inception):
    mnist = load_dataset("mnist", "test")
    fashion = load_dataset("fashion-mnist", "test")
    perm = torch.randperm(len(mnist), generator=torch.Generator().manual_seed(0))
    sets = {"mnist_a": mnist[perm[:N]], "mnist_b": mnist[perm[N:2 * N]], "fashion": fashion[:N]}
    feats = {k: torch.cat([inception(v[i:i + 50]) for i in range(0, N, 50)]) for k, v in sets.items()}
    return sets, feats


def test_fid_and_kid_separate_datasets(feature_sets):
    _, f = feature_sets
    fid_same = fid_from_features(f["mnist_a"], f["mnist_b"])
    fid_diff = fid_from_features(f["mnist_a"], f["fashion"])
    assert fid_diff > 3 * fid_same and fid_diff > 150, (fid_same, fid_diff)
    kid_same, _ = kid_from_features(f["mnist_a"], f["mnist_b"])
    kid_diff, _ = kid_from_features(f["mnist_a"], f["fashion"])
    assert kid_diff > 0.1 and abs(kid_same) < 0.1 * kid_diff, (kid_same, kid_diff)


def test_a_set_against_itself_scores_zero(feature_sets):
    _, f = feature_sets
    kid_self, _ = kid_from_features(f["mnist_a"], f["mnist_a"])
    kid_gap, _ = kid_from_features(f["mnist_a"], f["fashion"])
    # The unbiased MMD^2 of a set with itself is slightly negative (the cross term includes the
    # diagonal): measured -0.0034 at n = 128, against 0.153 for MNIST vs Fashion-MNIST.
    assert abs(kid_self) < 0.05 * kid_gap
    assert abs(fid_from_features(f["mnist_a"], f["mnist_a"])) < 1e-3


def test_fid_does_not_depend_on_the_evaluation_batch_size(feature_sets, inception):
    sets, f = feature_sets
    odd_batches = torch.cat([inception(sets["mnist_a"][i:i + 17]) for i in range(0, N, 17)])
    assert abs(fid_from_features(odd_batches, f["fashion"]) - fid_from_features(f["mnist_a"], f["fashion"])) < 1e-3


def test_onnx_runtime_features_give_torchs_fid_and_a_damaged_graph_is_exported_again(feature_sets, inception, tmp_path,
                                                                                     monkeypatch):
    from gancompress import assets
    from gancompress.metrics import fid

    assert inception.backend == "onnxruntime" and "onnxruntime" in inception.description  # the default on a CPU
    eager = fid.InceptionFeatures("cpu", backend="torch")
    sets, f = feature_sets
    torch_feats = torch.cat([eager(sets["mnist_a"][i:i + 50]) for i in range(0, N, 50)])
    assert (torch_feats - f["mnist_a"]).abs().max() < fid.ONNX_TOLERANCE
    assert fid_from_features(torch_feats, f["fashion"]) == pytest.approx(fid_from_features(f["mnist_a"], f["fashion"]),
                                                                          abs=1e-3)
    # A graph whose bytes no longer match its recorded sha256 is not trusted: it is exported again.
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path))
    weights = tmp_path / "weights" / "fid-inception.pth"
    weights.parent.mkdir()
    weights.write_bytes(assets.resolve("fid-inception").read_bytes())
    monkeypatch.setenv(assets.get_asset("fid-inception").env_var, str(weights))
    first = fid.InceptionFeatures("cpu")
    graph = fid._onnx_path(weights, "uint8")
    assert first.backend == "onnxruntime" and graph.parent == weights.parent and fid._onnx_verified(graph)
    with open(graph, "r+b") as handle:  # flip bytes in the middle
        handle.seek(graph.stat().st_size // 2)
        handle.write(b"\x00" * 64)
    assert not fid._onnx_verified(graph)
    again = fid.InceptionFeatures("cpu")
    assert again.backend == "onnxruntime" and fid._onnx_verified(graph)
    assert torch.equal(again(sets["mnist_a"][:8]), first(sets["mnist_a"][:8]))
    with pytest.raises(ValueError, match="feature backend must be one of"):
        fid.InceptionFeatures("cpu", backend="tensorrt")


def test_clean_resize_is_clean_fids_and_feeds_the_same_network(feature_sets, inception):
    from cleanfid.resize import build_resizer  # clean-fid's own resize (no weights are fetched)

    from gancompress.metrics import fid

    rng = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=rng)
    ours = fid.clean_resize(images)
    theirs = np.stack([build_resizer("clean")(image.permute(1, 2, 0).numpy()) for image in images])
    assert ours.dtype == torch.float32 and ours.shape == (3, 3, 299, 299)
    assert np.array_equal(ours.permute(0, 2, 3, 1).numpy(), theirs)  # bit for bit, not re-quantised
    assert not torch.equal(ours, ours.round())
    # AfterResize is torch-fidelity's network from the step after its own resize, which is the identity at 299.
    at_299 = torch.randint(0, 256, (2, 3, 299, 299), dtype=torch.uint8, generator=rng)
    eager = fid.InceptionFeatures("cpu", backend="torch")
    (expected,) = eager.model(at_299)
    (after,) = fid.AfterResize(eager.model)(at_299.float())
    assert (after - expected).abs().max() < 1e-5
    # clean mode: ONNX Runtime as torch, different features from the TF1.x resize, the same verdict on data.
    clean, clean_eager = fid.InceptionFeatures("cpu", resize="clean"), fid.InceptionFeatures("cpu", "torch", "clean")
    assert clean.backend == "onnxruntime" and clean.resize_rule == fid.CLEAN_RESIZE_RULE
    sets, f = feature_sets
    batch = sets["mnist_a"][:16]
    assert (clean(batch) - clean_eager(batch)).abs().max() < fid.ONNX_TOLERANCE
    assert (clean(batch) - f["mnist_a"][:16]).abs().max() > 0.05  # the resize changes the features
    feats = {k: torch.cat([clean(sets[k][i:i + 64]) for i in range(0, N, 64)]) for k in ("mnist_a", "mnist_b", "fashion")}
    same, diff = fid_from_features(feats["mnist_a"], feats["mnist_b"]), fid_from_features(feats["mnist_a"], feats["fashion"])
    assert diff > 3 * same and diff > 150, (same, diff)
    with pytest.raises(ValueError, match="resize must be one of"):
        fid.InceptionFeatures("cpu", resize="bicubic")


def test_dcgan_face64_cost_matches_the_hand_count(ready_assets):
    teacher, _ = resolve_generator("dcgan-face64")
    assert count_parameters(teacher) == 3_576_704
    # Transposed convs as torch counts them: C_in * C_out * k * k * H_in * W_in.
    chain = [(100, 512, 1), (512, 256, 4), (256, 128, 8), (128, 64, 16), (64, 3, 32)]
    hand = sum(cin * cout * 16 * hw * hw for cin, cout, hw in chain)
    assert hand == 104_628_224
    assert count_macs(teacher) == hand
    # No FIR filters; at the output resolution each layer's H_in * W_in becomes H_out * W_out (4 at the first layer).
    by_rule = count_macs_by_rule(teacher)
    assert by_rule["torch_counter"] == by_rule["input_resolution"] == hand
    assert by_rule["output_resolution"] == sum(cin * cout * 16 * (4 if hw == 1 else 2 * hw) ** 2 for cin, cout, hw in chain)
