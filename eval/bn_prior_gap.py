"""How unlike its training data a classifier finds each generator's images: DeepInversion's
BatchNorm-statistics prior (`losses.forward_with_bn_prior`, the sum over the teacher's BatchNorm
layers of the distances between a batch's per-channel mean and variance and the running ones) on
one batch of real training images and one batch of each generator's fresh images.

  python eval/bn_prior_gap.py --out eval/results/classifier_kd_fmnist/bn_prior_gap.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from gancompress.classifiers import losses
from gancompress.classifiers.checkpoints import resolve_classifier
from gancompress.classifiers.transfer import transfer_set
from gancompress.io import atomic_write_text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classifier", default="fmnist-cnn")
    p.add_argument("--sets", default="data,generator:dcgan-fmnist32,generator:cdcgan-fmnist32,generator:stylegan2-fmnist32")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    teacher, identity = resolve_classifier(args.classifier)
    c = teacher.config
    record = {"classifier": {k: identity[k] for k in ("name", "sha256")},
              "protocol": f"one batch of {args.batch_size} images per set (seed {args.seed}, random 2 px shifts), "
                          "teacher in eval mode; prior = sum over BatchNorm2d layers of ||batch mean - running mean||_2 "
                          "+ ||batch variance - running variance||_2", "prior": {}}
    for spec in args.sets.split(","):
        images, _ = transfer_set(spec, c.resolution, c.in_channels, "cpu").batch(
            torch.Generator().manual_seed(args.seed), args.batch_size, "cpu")
        with torch.no_grad():
            record["prior"][spec] = float(losses.forward_with_bn_prior(teacher, images)[1])
        print(f"{spec}: {record['prior'][spec]:.3f}")
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
