"""A discriminator for a teacher whose training discriminator was not kept: a fresh one (mirroring
the teacher at full width) trained against the frozen teacher's samples and its real training data,
with the same adversarial loss, R1 and optimiser settings the teacher was trained with. The generator
is not updated. The result is what `--d-init teacher`, `--d-distill` and the `cagan` and
`gan-compression` sweeps use for our registered teachers (pretrained/<name>-D.safetensors, listed
in the manifest with this command and the held-out accuracy it prints).

  python eval/teacher_discriminator.py --teacher stylegan2-fmnist32 --real fashion-mnist --steps 2000 \\
      --batch-size 32 --lr-d 0.002 --betas 0,0.99 --r1-gamma 0.01 --out gancompress/pretrained/stylegan2-fmnist32-D.safetensors

Held-out check: the mean logit and accuracy on the dataset's test split (real) and on teacher samples
from latents the training never drew (fake).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from gancompress.distillation.trainer import TrainConfig, Trainer
from gancompress.io import save_discriminator, sha256_file
from gancompress.pipeline import real_image_source
from gancompress.teachers import resolve_generator


@torch.no_grad()
def held_out(discriminator, teacher, dataset: str, n: int, seed: int) -> dict:
    """Mean logit and accuracy (real > 0, fake < 0) on n test images and n fresh teacher samples."""
    from gancompress.evaluation import latents, sample_images

    real = real_image_source(f"{dataset}:test", teacher.resolution, teacher.out_channels)(
        torch.Generator().manual_seed(seed), n)
    fake = torch.cat([images for _, images in sample_images(teacher, latents(n, teacher.z_dim, seed), 64, "cpu",
                                                            noise_seed=seed)])
    discriminator.eval()
    real_logits = torch.cat([discriminator(chunk) for chunk in real.split(64)]).flatten()
    fake_logits = torch.cat([discriminator(chunk) for chunk in fake.split(64)]).flatten()
    return {"n": n, "real_mean_logit": float(real_logits.mean()), "fake_mean_logit": float(fake_logits.mean()),
            "real_accuracy": float((real_logits > 0).float().mean()), "fake_accuracy": float((fake_logits < 0).float().mean())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True)
    p.add_argument("--real", required=True, help="the teacher's training dataset (its train split is used)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr-d", type=float, default=2e-4)
    p.add_argument("--betas", default="0.5,0.999")
    p.add_argument("--r1-gamma", type=float, default=0.1)
    p.add_argument("--r1-interval", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-check", type=int, default=1000)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    teacher, identity = resolve_generator(args.teacher)
    config = TrainConfig(mode="gan", steps=args.steps, batch_size=args.batch_size, lr_d=args.lr_d,
                         betas=tuple(float(b) for b in args.betas.split(",")), adv=1.0, r1_gamma=args.r1_gamma,
                         r1_interval=args.r1_interval, diffaug=(), seed=args.seed, real=args.real)
    real = real_image_source(args.real, teacher.resolution, teacher.out_channels)
    # The "student" is the teacher itself, in eval mode and never stepped: the discriminator learns to
    # tell its samples from the data, as its training discriminator did at the end of training.
    trainer = Trainer(config, teacher, None, real, None, progress=False)
    trainer.G.eval().requires_grad_(False)
    before = held_out(trainer.D, teacher, args.real, args.n_check, seed=10_000_019)
    start = time.perf_counter()
    for step in range(args.steps):
        trainer.D.train()
        terms = trainer.discriminator_step(step)
        if config.r1_gamma and step % config.r1_interval == 0:
            terms.update(trainer.r1_step(step))
        if (step + 1) % 250 == 0:
            print(f"step {step + 1}/{args.steps}: " + ", ".join(f"{k} {v:.4g}" for k, v in terms.items()), file=sys.stderr)
    seconds = time.perf_counter() - start
    after = held_out(trainer.D, teacher, args.real, args.n_check, seed=10_000_019)
    command = "python eval/teacher_discriminator.py " + " ".join(argv if argv is not None else sys.argv[1:])
    record = {"teacher": identity["name"], "teacher_sha256": identity["sha256"], "command": command,
              "steps": args.steps, "batch_size": args.batch_size, "train_time_s": round(seconds, 1),
              "threads": torch.get_num_threads(), "held_out_before": before, "held_out_after": after}
    save_discriminator(args.out, trainer.D.eval(), {"trained_with": record})
    print(json.dumps({**record, "file": args.out, "sha256": sha256_file(args.out)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
