"""Which student BatchNorm mode and generator learning rate distil best? (the evidence behind the
defaults in docs/design-notes.md). Four 200-step distillation runs of dcgan-face64 at width 0.25,
batch 32, every other setting default; each saved EMA student is scored in eval mode by LPIPS
(AlexNet) and L1 to the teacher on 256 held-out latents (seed 12345).

  python eval/student_bn_lr.py   # writes eval/results/student_bn_lr.json, about 5 minutes on 2 CPU cores
"""

import json
import tempfile
from pathlib import Path

import torch

from gancompress.cli import main as gancompress
from gancompress.evaluation import latents, lpips_to_teacher
from gancompress.io import atomic_write_text, load_generator
from gancompress.metrics.lpips import load_lpips
from gancompress.teachers import resolve_generator

VARIANTS = {
    "frozen, lr_g 2e-4": ["--student-bn", "frozen", "--lr-g", "2e-4"],
    "batch, lr_g 2e-4": ["--student-bn", "batch", "--lr-g", "2e-4"],
    "frozen, lr_g 1e-3": ["--student-bn", "frozen", "--lr-g", "1e-3"],
    "batch, lr_g 1e-3": ["--student-bn", "batch", "--lr-g", "1e-3"],
}


def run() -> dict:
    teacher, _ = resolve_generator("dcgan-face64")
    lpips_model = load_lpips("alex")
    z = latents(256, teacher.z_dim, seed=12345)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in VARIANTS.items():
            root = Path(tmp) / str(len(results))
            gancompress(["distill", "--teacher", "dcgan-face64", "--width", "0.25", "--steps", "200",
                         "--batch-size", "32", "--log-every", "50", "--sample-every", "200", "--checkpoint-every", "200",
                         "--run-root", str(root), "--quiet", *args])
            student = load_generator(next(root.iterdir()) / "student.safetensors")
            score = lpips_to_teacher(student, teacher, z, lpips_model, 64, "cpu")
            with torch.inference_mode():
                l1 = (student(z) - teacher(z)).abs().mean().item()
            results[name] = {"lpips_mean": score["mean"], "lpips_std": score["std"], "l1": l1}
            print(f"{name}: LPIPS {score['mean']:.4f}, L1 {l1:.4f}")
    return results


if __name__ == "__main__":
    out = {"command": "python eval/student_bn_lr.py", "teacher": "dcgan-face64", "width": 0.25, "steps": 200,
           "batch_size": 32, "held_out_latents": "256, seed 12345", "device": "cpu", "threads": torch.get_num_threads(),
           "results": run()}
    atomic_write_text("eval/results/student_bn_lr.json", json.dumps(out, indent=2) + "\n")
