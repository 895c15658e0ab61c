"""FID and KID with torch-fidelity: its InceptionV3 feature extractor (`inception-v3-compat`,
loaded with the `fid-inception` asset) and its own FID/KID formulas. We only feed it batches of
uint8 RGB images and keep the 2048-d features, so features can be cached and reused."""

from __future__ import annotations

import torch
import torch_fidelity
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

from gancompress import assets
from gancompress.metrics.images import to_rgb

FEATURE_LAYER = "2048"
FEATURE_EXTRACTOR_ID = f"torch-fidelity {torch_fidelity.__version__} inception-v3-compat pool3 (2048-d)"
RESIZE_RULE = (
    "uint8 RGB -> float32, bilinear resize to 299x299 as TF1.x does (torch-fidelity "
    "interpolate_bilinear_2d_like_tensorflow1x, align_corners=False, no antialiasing), then (x - 128) / 128"
)
KID_SUBSETS = 100
KID_SUBSET_SIZE_MAX = 1000
INCEPTION_SCORE_UNAVAILABLE = (
    "Inception Score is unavailable: the carried FID Inception weights have no 1008-way classifier head, "
    "and IS needs its class probabilities"
)


class InceptionFeatures:
    """Callable: uint8 images (N, 1|3, H, W) -> float32 features (N, 2048) on the CPU."""

    def __init__(self, device: str | torch.device = "cpu"):
        weights = assets.resolve("fid-inception")
        self.device = torch.device(device)
        try:  # strict load: a file that is not this network's state_dict fails here
            model = FeatureExtractorInceptionV3(
                "inception-v3-compat", [FEATURE_LAYER], feature_extractor_weights_path=str(weights)
            )
        except Exception as err:  # torch.load and load_state_dict raise several types
            raise assets.unusable("fid-inception", weights, err) from None
        # channels_last runs 1.6x faster on a CPU (oneDNN) with features equal to 1e-5.
        self.model = model.to(self.device, memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, images_uint8: torch.Tensor) -> torch.Tensor:
        if images_uint8.dtype != torch.uint8:
            raise TypeError(f"Inception features need uint8 images, got {images_uint8.dtype}")
        (features,) = self.model(to_rgb(images_uint8).to(self.device))
        return features.float().cpu()


def fid_from_features(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    stats_a = fid_features_to_statistics(features_a.double())
    stats_b = fid_features_to_statistics(features_b.double())
    return fid_statistics_to_metric(stats_a, stats_b, verbose=False)[KEY_METRIC_FID]


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
