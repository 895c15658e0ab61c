"""A classifier + a labelled test split -> a record with its protocol: accuracy (and, when asked,
accuracy under an L-infinity PGD attack), parameters, MACs per image and latency."""

from __future__ import annotations

import platform

import torch
from torch.utils.flop_counter import FlopCounterMode

import gancompress
from gancompress.classifiers.losses import pgd_attack
from gancompress.classifiers.transfer import load_labelled, to_model_input
from gancompress.errors import GancompressError
from gancompress.metrics.cost import count_parameters
from gancompress.metrics.latency import time_module

LATENCY_BATCHES = (1, 64)


class ClassifierEvalError(GancompressError, ValueError):
    pass


def count_classifier_macs(model: torch.nn.Module) -> int:
    """MACs of one image: FlopCounterMode's FLOPs / 2 (conv and matmul), as for generators."""
    c = model.config
    x = torch.zeros(1, c.in_channels, c.resolution, c.resolution, device=next(model.parameters()).device)
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.inference_mode(), counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def evaluate_classifier(model: torch.nn.Module, data: str = "fashion-mnist:test", pgd: tuple[float, int] | None = None,
                        batch_size: int = 500, latency: bool = True, n: int | None = None, seed: int = 0) -> dict:
    """Accuracy of `model` on the labelled split `data` (all of it, or the first `n` images); with
    `pgd` = (eps in [0, 1] pixels, steps) also the accuracy on PGD-attacked images (random start from
    `seed`, step eps / 4, the attack raising the model's cross-entropy on the true labels)."""
    images, labels, label = load_labelled(data, "test")
    available = len(images)
    if n is not None:
        if not 1 <= n <= len(images):
            raise ClassifierEvalError(f"--n must lie in 1..{len(images)} for {label}, got {n}")
        images, labels = images[:n], labels[:n]
    device = next(model.parameters()).device
    c = model.config
    if images.shape[1] != c.in_channels:
        raise ClassifierEvalError(f"{label} has {images.shape[1]}-channel images; the classifier reads {c.in_channels}")
    model.eval()
    correct = robust = 0
    rng = torch.Generator().manual_seed(seed)
    for start in range(0, len(images), batch_size):
        x = to_model_input(images[start:start + batch_size], c.resolution).to(device)
        y = labels[start:start + batch_size].to(device)
        with torch.inference_mode():
            logits = model(x)
        if not torch.isfinite(logits).all():
            raise ClassifierEvalError("the classifier's outputs hold NaN or inf; its weights are broken: retrain it")
        correct += int((logits.argmax(1) == y).sum())
        if pgd is not None:
            attacked = pgd_attack(model, x, y, 2 * pgd[0], pgd[1], generator=rng)
            with torch.inference_mode():
                robust += int((model(attacked).argmax(1) == y).sum())
    total = len(images)
    record = {
        "accuracy": correct / total,
        "n": total,
        "params": count_parameters(model),
        "macs_per_image": count_classifier_macs(model),
        "protocol": {
            "data": f"{label}, {'all' if n is None else f'the first {n}'} of {available} images, in order",
            "preprocessing": f"uint8 -> [-1, 1], bilinear to {c.resolution}x{c.resolution} (as the training images)",
            "accuracy": "top-1, argmax of the logits, eval mode (BatchNorm running statistics)",
            "macs": "torch.utils.flop_counter.FlopCounterMode FLOPs per image / 2 (conv and matmul only)",
            "device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "gancompress": gancompress.__version__, "cpu": platform.processor() or platform.machine(),
        },
    }
    if pgd is not None:
        record["robust"] = {"accuracy": robust / total, "eps": pgd[0], "steps": pgd[1],
                            "attack": f"L-infinity PGD, eps {pgd[0]:g} in [0, 1] pixels ({2 * pgd[0]:g} on the [-1, 1] "
                                      f"input), {pgd[1]} steps of eps / 4, uniform random start (seed {seed}), "
                                      "maximising cross-entropy on the true labels, white-box on this model"}
    if latency:
        record["latency"] = [time_module(model, torch.zeros(b, c.in_channels, c.resolution, c.resolution, device=device))
                             for b in LATENCY_BATCHES]
    return record


def format_classifier_table(record: dict, name: str) -> str:
    rows = [("classifier", name), ("accuracy", f"{100 * record['accuracy']:.2f}% (n = {record['n']})")]
    if "robust" in record:
        r = record["robust"]
        rows.append(("robust accuracy", f"{100 * r['accuracy']:.2f}% (PGD eps {r['eps']:g}, {r['steps']} steps)"))
    rows += [("params", f"{record['params']:,}"), ("MACs / image", f"{record['macs_per_image'] / 1e6:.2f} M")]
    for lat in record.get("latency", []):
        rows.append((f"latency b{lat['batch_size']}", f"{lat['median_ms_per_image']:.4f} ms/img median, IQR "
                     f"{lat['iqr_ms_per_image']:.4f} ({lat['device']}, {lat['threads']} threads)"))
    p = record["protocol"]
    rows += [("data", p["data"]), ("device", f"{p['device']}, {p['threads']} threads, torch {p['torch']}")]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
