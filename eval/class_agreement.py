"""Does a class-conditional generator make the class it is asked for? A classifier (by default the
shipped fmnist-cnn) labels N images of each class; the record gives, per asked class, the share the
classifier puts in that class, and the spread of its labels over the images the unconditional
interface makes (the class from the latent, as evaluation, distillation and `generate` sample).

  python eval/class_agreement.py --generator cdcgan-fmnist32 --classifier fmnist-cnn --n 1000 \\
      --out eval/results/cdcgan-fmnist32_class_agreement.json

Images are rounded to uint8 first, as `gancompress generate` writes them. The classifier's own test
accuracy bounds what agreement can mean: it is wrong on that share of real images too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from gancompress.classifiers.checkpoints import resolve_classifier
from gancompress.io import atomic_write_text
from gancompress.teachers import resolve_generator


@torch.inference_mode()
def labels_of(classifier, generator, z: torch.Tensor, classes: torch.Tensor | None, batch: int = 250) -> torch.Tensor:
    out = []
    for start in range(0, len(z), batch):
        asked = None if classes is None else classes[start:start + batch]
        images = generator(z[start:start + batch], classes=asked).clamp(-1, 1)
        images = torch.round((images + 1) * 127.5) / 127.5 - 1  # uint8 levels, as written to disk
        out.append(classifier(images).argmax(1))
    return torch.cat(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generator", required=True)
    p.add_argument("--classifier", default="fmnist-cnn")
    p.add_argument("--n", type=int, default=1000, help="images per class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    generator, g_identity = resolve_generator(args.generator)
    classifier, c_identity = resolve_classifier(args.classifier)
    generator.eval()
    classifier.eval()
    k = getattr(generator.config, "num_classes", 0)  # classes
    if not k:
        sys.exit(f"error: {args.generator} is not class-conditional (num_classes 0); pass a generator trained with "
                 "`gancompress train --conditional`")
    if k != classifier.config.num_classes:
        sys.exit(f"error: the generator has {k} classes and the classifier {classifier.config.num_classes}")
    torch.manual_seed(args.seed)
    z = torch.randn(k * args.n, generator.z_dim)
    asked = torch.arange(k).repeat_interleave(args.n)
    got = labels_of(classifier, generator, z, asked)
    per_class = [float((got[asked == c] == c).float().mean()) for c in range(k)]
    free = labels_of(classifier, generator, z, None)  # the class from the latent
    from_latent = generator.class_of(z)
    record = {
        "generator": {key: g_identity[key] for key in ("name", "sha256")},
        "classifier": {key: c_identity[key] for key in ("name", "sha256")},
        "protocol": f"{args.n} images per asked class (z ~ N(0, I), seed {args.seed}), rounded to uint8; "
                    "agreement = share the classifier labels as the asked class (argmax, eval mode)",
        "agreement": float((got == asked).float().mean()),
        "agreement_per_class": per_class,
        "latent_class": {"agreement": float((free == from_latent).float().mean()),
                         "label_histogram": torch.bincount(free, minlength=k).tolist()},
        "command": "python eval/class_agreement.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")
    print(f"agreement {100 * record['agreement']:.2f}% over {k} x {args.n} images; per class "
          + ", ".join(f"{100 * a:.0f}" for a in per_class))
    return 0


if __name__ == "__main__":
    sys.exit(main())
