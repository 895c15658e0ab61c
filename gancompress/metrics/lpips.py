"""LPIPS v0.1 from the `lpips` package (its linear heads) with the ImageNet trunk loaded from the
`lpips-alex` / `lpips-vgg` assets instead of a download."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch

from gancompress import assets

NETS = {"alex": "lpips-alex", "vgg": "lpips-vgg"}
# Above 256 px, LPIPS compares the pair downsampled to 256 x 256 (CAGAN's protocol): the networks
# were calibrated on 64 px patches, and at 1024 px the full-size comparison needs 16x the memory.
MAX_SIZE = 256
RESIZE_RULE = f"pairs larger than {MAX_SIZE} px area-downsampled to {MAX_SIZE} x {MAX_SIZE} first (CAGAN's rule)"


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def load_lpips(net: str = "alex", device: str | torch.device = "cpu") -> torch.nn.Module:
    """An `lpips.LPIPS(net, version='0.1')` module in eval mode, gradients off."""
    import lpips

    if net not in NETS:
        raise ValueError(f"LPIPS net must be one of {sorted(NETS)}, got {net!r}")
    path = assets.resolve(NETS[net])
    try:
        trunk = _load_state(path)
    except Exception as err:  # torch.load and safetensors raise several types for a wrong or damaged file
        raise assets.unusable(NETS[net], path, err) from None
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", UserWarning)  # torchvision's deprecation note for `pretrained=`
        model = lpips.LPIPS(net=net, version="0.1", pnet_rand=True, verbose=False)
    # lpips splits torchvision's `features` into slices that keep the original indices:
    # `net.slice2.3.weight` is `features.3.weight`.
    mapped = {}
    for key in model.state_dict():
        if key.startswith("net.slice"):
            _, _, index, leaf = key.split(".")
            source = f"features.{index}.{leaf}"
            if source not in trunk or tuple(trunk[source].shape) != tuple(model.state_dict()[key].shape):
                raise assets.unusable(NETS[net], path, KeyError(f"no {source} of the {net} trunk's shape"))
            mapped[key] = trunk[source]
    missing = model.load_state_dict(mapped, strict=False).missing_keys
    if any(k.startswith("net.") for k in missing):
        raise assets.AssetError(f"asset {NETS[net]!r}: trunk tensors missing for {missing}")
    return model.eval().requires_grad_(False).to(device)


def lpips_distance(model: torch.nn.Module, images_a: torch.Tensor, images_b: torch.Tensor) -> torch.Tensor:
    """Per-image LPIPS between two batches in [-1, 1] (1-channel images replicated to RGB; above
    MAX_SIZE both downsampled by RESIZE_RULE)."""
    from gancompress.metrics.images import to_rgb

    if max(images_a.shape[-2:]) > MAX_SIZE:
        images_a, images_b = (torch.nn.functional.interpolate(x, size=(MAX_SIZE, MAX_SIZE), mode="area")
                              for x in (images_a, images_b))
    return model(to_rgb(images_a), to_rgb(images_b)).flatten()
