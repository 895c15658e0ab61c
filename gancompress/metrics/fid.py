"""FID and KID with torch-fidelity: its InceptionV3 feature extractor (`inception-v3-compat`,
loaded with the `fid-inception` asset) and its own FID/KID formulas. We only feed it batches of
uint8 RGB images and keep the 2048-d features, so features can be cached and reused."""

from __future__ import annotations

import os
from copy import deepcopy as copy_module
from pathlib import Path

import torch
import torch_fidelity
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

from gancompress import assets
from gancompress.io import atomic_path, atomic_write_text, sha256_file
from gancompress.metrics.images import to_rgb

FEATURE_LAYER = "2048"
FEATURE_EXTRACTOR_ID = f"torch-fidelity {torch_fidelity.__version__} inception-v3-compat pool3 (2048-d)"
RESIZE_RULE = (
    "uint8 RGB -> float32, bilinear resize to 299x299 as TF1.x does (torch-fidelity "
    "interpolate_bilinear_2d_like_tensorflow1x, align_corners=False, no antialiasing), then (x - 128) / 128"
)
CLEAN_RESIZE_RULE = (
    "uint8 RGB -> each channel as a float32 PIL image resized to 299x299 with PIL bicubic, clipped to [0, 255], "
    "not re-quantised (clean-fid's mode 'clean'), then (x - 128) / 128 into the same network"
)
RESIZES = {"torch-fidelity": RESIZE_RULE, "clean": CLEAN_RESIZE_RULE}
INPUT_SIZE = 299
KID_SUBSETS = 100
KID_SUBSET_SIZE_MAX = 1000
INCEPTION_SCORE_UNAVAILABLE = (
    "Inception Score is unavailable: the carried FID Inception weights have no 1008-way classifier head, "
    "and IS needs its class probabilities"
)


BACKENDS = ("auto", "torch", "onnxruntime")
ONNX_TOLERANCE = 1e-4  # max |feature difference| to the torch module on the probe batch, checked at every load


class InceptionFeatures:
    """Callable: uint8 images (N, 1|3, H, W) -> float32 features (N, 2048) on the CPU.

    backend "auto": on a CPU, the same module exported to ONNX and run by ONNX Runtime when it is
    installed (measured 1.6-1.8x faster than eager channels_last on this 2-core CPU: eval/eval_speed.py),
    else torch; on a GPU, torch. The ONNX graph is exported once per weights file and torch version,
    kept beside the weights (or in the cache), checked by sha256, and its features are compared
    with torch's on a probe batch at every load: beyond ONNX_TOLERANCE it is not used.

    resize "torch-fidelity" (the default) feeds uint8 images to torch-fidelity's module, which resizes
    them bilinearly like TF1.x; "clean" resizes them first as clean-fid does (`clean_resize`) and feeds
    the float result to the same network after its resize step, for comparison with papers that used it.
    """

    def __init__(self, device: str | torch.device = "cpu", backend: str = "auto", resize: str = "torch-fidelity"):
        if backend not in BACKENDS:
            raise ValueError(f"feature backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if resize not in RESIZES:
            raise ValueError(f"resize must be one of {', '.join(RESIZES)}, got {resize!r}")
        self.resize, self.resize_rule = resize, RESIZES[resize]
        weights = assets.resolve("fid-inception")
        self.device = torch.device(device)
        try:  # strict load: a file that is not this network's state_dict fails here
            model = FeatureExtractorInceptionV3(
                "inception-v3-compat", [FEATURE_LAYER], feature_extractor_weights_path=str(weights)
            )
        except Exception as err:  # torch.load and load_state_dict raise several types
            raise assets.unusable("fid-inception", weights, err) from None
        # channels_last runs 1.6x faster on a CPU (oneDNN) with features equal to 1e-5.
        self.model = model.to(self.device, memory_format=torch.channels_last).eval()
        if resize == "clean":
            self.model = AfterResize(self.model)
        self.session = None
        if self.device.type == "cpu" and backend != "torch":
            self.session = _onnx_session(self.model, weights, required=backend == "onnxruntime")
        self.backend = "onnxruntime" if self.session is not None else "torch"

    @property
    def description(self) -> str:
        """What computes the features, for records."""
        if self.session is None:
            return f"torch {torch.__version__} eager, channels_last, on {self.device.type}"
        import onnxruntime

        return (f"onnxruntime {onnxruntime.__version__} CPUExecutionProvider, {torch.get_num_threads()} threads: the "
                f"same module exported to ONNX (features within {ONNX_TOLERANCE:g} of torch's, checked at load)")

    @torch.inference_mode()
    def __call__(self, images_uint8: torch.Tensor) -> torch.Tensor:
        if images_uint8.dtype != torch.uint8:
            raise TypeError(f"Inception features need uint8 images, got {images_uint8.dtype}")
        images = to_rgb(clean_resize(images_uint8) if self.resize == "clean" else images_uint8)
        if self.session is not None:
            return torch.from_numpy(self.session.run(None, {"images": images.contiguous().numpy()})[0])
        (features,) = self.model(images.to(self.device))
        return features.float().cpu()


def clean_resize(images_uint8: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) uint8 -> (N, C, 299, 299) float32 as clean-fid's mode "clean" resizes: each channel
    a float PIL image ("F"), PIL bicubic, clipped to [0, 255], no rounding back to uint8."""
    import numpy as np
    from PIL import Image

    pixels = images_uint8.numpy().astype(np.float32)
    out = np.empty((*pixels.shape[:2], INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for i, image in enumerate(pixels):
        for c, channel in enumerate(image):
            out[i, c] = np.asarray(Image.fromarray(channel, mode="F").resize((INPUT_SIZE, INPUT_SIZE), Image.BICUBIC))
    return torch.from_numpy(out.clip(0, 255))


class AfterResize(torch.nn.Module):
    """torch-fidelity's Inception from its step after the resize: float (N, 3, 299, 299) in [0, 255]
    -> the 2048-d pool3 features, the same layers in the same order as its forward."""

    LAYERS = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
              "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
              "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "AvgPool")

    def __init__(self, model: FeatureExtractorInceptionV3):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        if images.shape[-2:] != (INPUT_SIZE, INPUT_SIZE) or not images.is_floating_point():
            raise ValueError(f"expected float images resized to {INPUT_SIZE}x{INPUT_SIZE}, got {images.dtype} "
                             f"{tuple(images.shape)}")
        x = (images.float() - 128) / 128
        for name in self.LAYERS:
            x = getattr(self.model, name)(x)
        return (torch.flatten(x, 1).float(),)


class _Features(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        return self.model(images)[0]


def _onnx_session(model, weights: Path, required: bool):
    """An ONNX Runtime session of `model` (exported once, then reused), or None (with `required`: an
    error) when ONNX Runtime is missing or its features differ from torch's."""
    try:
        import onnxruntime
    except ImportError:
        if required:
            raise assets.AssetError("feature backend onnxruntime needs the onnxruntime package: pip install onnxruntime")
        return None
    clean = isinstance(model, AfterResize)
    path = _onnx_path(weights, "after-resize" if clean else "uint8")
    if not _onnx_verified(path):
        _export_onnx(model, path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    probe = torch.randint(0, 256, (4, 3, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    if clean:
        probe = clean_resize(probe)
    with torch.inference_mode():
        expected = model(probe)[0].float()
    difference = float((torch.from_numpy(session.run(None, {"images": probe.numpy()})[0]) - expected).abs().max())
    if not difference <= ONNX_TOLERANCE:  # also catches NaN
        if required:
            raise assets.AssetError(f"the ONNX Inception {path} differs from torch's by {difference:.2g}; delete it "
                                    "(it is exported again) or use the torch backend")
        return None
    return session


def _onnx_path(weights: Path, graph: str) -> Path:
    """Beside the weights when that folder is writable (so every feature cache shares it), else in the cache.
    graph: uint8 (the whole module) or after-resize (`AfterResize`, float 299x299 input)."""
    tag = "" if graph == "uint8" else f".{graph}"
    name = f"{weights.stem}.{sha256_file(weights)[:16]}.torch-{torch.__version__.split('+')[0]}{tag}.onnx"
    folder = weights.parent if os.access(weights.parent, os.W_OK) else assets.cache_dir() / "onnx"
    return folder / name


def _onnx_verified(path: Path) -> bool:
    sidecar = path.with_suffix(".sha256")
    return path.is_file() and sidecar.is_file() and sidecar.read_text().strip() == sha256_file(path)


def _export_onnx(model, path: Path) -> None:
    import warnings

    path.parent.mkdir(parents=True, exist_ok=True)
    example = (torch.zeros(2, 3, INPUT_SIZE, INPUT_SIZE) if isinstance(model, AfterResize) else
               torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        # A copy: exporting leaves the module it traces changed (its features differ afterwards).
        copy = _Features(copy_module(model)).to(memory_format=torch.contiguous_format)
        torch.onnx.export(copy, (example,), str(tmp),
                          input_names=["images"], output_names=["features"], opset_version=17, dynamo=False,
                          dynamic_axes={"images": {0: "n", 2: "h", 3: "w"}, "features": {0: "n"}})
    atomic_write_text(path.with_suffix(".sha256"), sha256_file(path) + "\n")


def statistics_of(features: torch.Tensor) -> dict:
    """{"mu", "sigma"}: float64 mean and covariance of (N, 2048) features (torch-fidelity's)."""
    return fid_features_to_statistics(features.double())


def fid_from_statistics(stats_a: dict, stats_b: dict) -> float:
    return fid_statistics_to_metric(stats_a, stats_b, verbose=False)[KEY_METRIC_FID]


def fid_from_features(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    return fid_from_statistics(statistics_of(features_a), statistics_of(features_b))


def kid_subset_size(n_a: int, n_b: int) -> int:
    return min(KID_SUBSET_SIZE_MAX, n_a, n_b)


def kid_from_features(features_a: torch.Tensor, features_b: torch.Tensor, seed: int = 0) -> tuple[float, float]:
    """KID (polynomial kernel, degree 3, unbiased MMD^2) as mean and std over subsets, torch-fidelity
    defaults except the subset size, which shrinks to the smaller set when it has < 1000 samples."""
    out = kid_features_to_metric(
        features_a.double(),
        features_b.double(),
        kid_subsets=KID_SUBSETS,
        kid_subset_size=kid_subset_size(len(features_a), len(features_b)),
        kid_kernel="poly",
        kid_kernel_poly_degree=3,
        kid_kernel_poly_gamma=None,
        kid_kernel_poly_coef0=1,
        rng_seed=seed,
        verbose=False,
    )
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]
