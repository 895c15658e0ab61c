"""Reading checkpoints that other code wrote, before a family's importer maps them: the error every
importer raises, the tensor dict inside common wrappers, and torch.load restricted to tensors."""

from __future__ import annotations

import argparse
from collections import OrderedDict

import torch

from gancompress.errors import GancompressError

WRAPPER_KEYS = ("netG_state_dict", "state_dict", "generator", "netG", "g_ema", "G", "model")

class ForeignCheckpointError(GancompressError, ValueError):
    """A foreign checkpoint could not be mapped; the message says what was found."""


def unwrap_state_dict(obj) -> "OrderedDict[str, torch.Tensor]":
    """Find the tensor dict inside common wrappers ({'netG_state_dict': sd}, {'state_dict': sd}, ...)."""
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict) and obj and all(torch.is_tensor(v) for v in obj.values()):
        return OrderedDict(obj)
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if key in obj:
                return unwrap_state_dict(obj[key])
        nested = [v for v in obj.values() if isinstance(v, dict)]
        if len(nested) == 1:
            return unwrap_state_dict(nested[0])
    found = sorted(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
    raise ForeignCheckpointError(f"no tensor state_dict found (top level holds {found}); pass the generator's state_dict")


def load_foreign_checkpoint(path, allow_pickle: bool = False):
    """torch.load with weights_only=True, allowing argparse.Namespace (rosinality stores its
    training arguments that way). Anything else pickled needs allow_pickle=True: full unpickling,
    which runs code from the file, so only for files you trust."""
    if allow_pickle:
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for unsafe or unreadable files
        text = str(err)
        if "Unsupported global" in text or "GLOBAL" in text:  # readable, but it pickles objects
            raise ForeignCheckpointError(
                f"{path}: holds pickled objects that torch.load(weights_only=True) refuses "
                f"({text[text.find('Unsupported global'):][:120] if 'Unsupported global' in text else 'GLOBAL'}); "
                f"if you trust the file, convert it once with `gancompress import {path} --allow-pickle` (rosinality "
                "StyleGAN2), or re-save its state_dict with torch.save"
            ) from None
        raise ForeignCheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}); the file is damaged or not written by "
            "torch.save"
        ) from None
