"""The one rule that turns generator output into the uint8 RGB images every metric sees."""

import torch

TO_UINT8_RULE = "uint8 = clamp(round((x + 1) * 127.5), 0, 255) for generator output x in [-1, 1]"
GRAYSCALE_RULE = "1-channel images are replicated to 3 channels (RGB) before feature extraction"


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    return ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def to_rgb(images: torch.Tensor) -> torch.Tensor:
    if images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1)
    if images.shape[1] != 3:
        raise ValueError(f"expected 1 or 3 image channels, got {images.shape[1]}")
    return images
