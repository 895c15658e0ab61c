"""Classifier files and names: one `.safetensors` per classifier with its config in the metadata
(io's format, kind "classifier"), and the named classifiers shipped in `gancompress.pretrained`
(`classifiers.json`, beside the generator teachers' manifest)."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import torch

from gancompress.classifiers.networks import ClassifierConfig, build_classifier
from gancompress.errors import GancompressError
from gancompress.io import FORMAT_VERSION, load_network, config_of, save_tensors, sha256_file

MANIFEST = "classifiers.json"


class ClassifierError(GancompressError, ValueError):
    pass


def save_classifier(path: str | os.PathLike, classifier: torch.nn.Module, extra_metadata: dict | None = None) -> Path:
    """Write a classifier (weights and config) atomically to a `.safetensors` file."""
    metadata = {"format": FORMAT_VERSION, "kind": "classifier", "config": classifier.config.to_dict()}
    save_tensors(path, classifier.state_dict(), {**(extra_metadata or {}), **metadata})
    return Path(path)


def load_classifier(path: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild a classifier from its `.safetensors` (save_classifier's), in eval mode."""
    def read(data, file):
        return config_of(data, file, "classifier", ClassifierConfig.from_dict)

    return load_network(path, "classifier", read, build_classifier, device,
                         "train one with `gancompress kd --method ce` or save it with save_classifier")


def classifier_manifest() -> dict:
    return json.loads(resources.files("gancompress.pretrained").joinpath(MANIFEST).read_text())


def resolve_classifier(spec: str, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """A classifier from a registered name or a file, with its identity (name, file, sha256)."""
    from gancompress.teachers import shipped_file

    path = Path(spec).expanduser()
    registered = classifier_manifest()
    checked = None  # the sha256 shipped_file has verified, so the file is hashed once
    if path.is_file():
        name = path.name
    elif spec in registered:
        name, path, checked = spec, shipped_file(spec, registered[spec]), registered[spec]["sha256"]
    else:
        raise ClassifierError(f"{spec!r} is neither a registered classifier ({', '.join(registered)}) "
                              "nor an existing file")
    model = load_classifier(path, device)
    sha256 = checked or sha256_file(path)
    return model, {"name": name, "file": str(path), "sha256": sha256, "config": model.config.to_dict()}
