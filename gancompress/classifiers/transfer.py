"""Transfer sets: where the images a student classifier learns from come from.

- `data[:SPLIT]`: a labelled dataset split (default fashion-mnist:train).
- `generator:SPEC`: images of a generator (a registered teacher such as dcgan-fmnist32, or a file),
  no real training image used; a class-conditional generator makes every class equally often (its
  class is a function of the latent). The teacher's soft outputs are the labels. With pool 0, fresh latents every step; with pool N, a
  fixed set of N generated images (latents and noise from seed 0, rounded to uint8 as `generate`
  writes them), made once, cached with its sha256 and drawn from like a dataset.
- `dfad`: no images at all; the trainer trains a generator against the student (DFAD), see training.py.

Every image of a data set, a pool or fresh generator images is moved by a random shift of up to
`shift` px (2 by default, the background filling the border); flips and mixup are the trainer's.

Every draw comes from the generator the trainer passes (seeded by seed and step), so a resumed run
draws the same batches."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from gancompress.data import DATASETS, load_dataset, load_labels
from gancompress.errors import GancompressError


class TransferError(GancompressError, ValueError):
    pass


def to_model_input(images_uint8: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float in [-1, 1] at `resolution` (bilinear, as the generators' training
    images were resized: pipeline.RealImages)."""
    images = images_uint8.float().div(127.5).sub(1)
    if images.shape[-1] != resolution:
        images = F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False,
                               antialias=images.shape[-1] > resolution)
    return images


def load_labelled(spec: str, default_split: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(uint8 images, int64 labels, "name:split") of a registered dataset split."""
    name, _, split = spec.partition(":")
    split = split or default_split
    if name not in DATASETS:
        raise TransferError(f"{spec!r}: not a labelled dataset ({', '.join(DATASETS)})")
    return load_dataset(name, split), load_labels(name, split), f"{name}:{split}"


class DataTransfer:
    labelled = True

    def __init__(self, spec: str, resolution: int, shift: int = 2):
        self.images, self.labels, self.label = load_labelled(spec, "train")
        self.resolution, self.shift = resolution, shift
        self.identity = {"kind": "data", "dataset": self.label, "size": len(self.images),
                         "augmentation": f"random shifts of up to {shift} px (zero padding)" if shift else "none"}

    def batch(self, rng: torch.Generator, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(0, len(self.images), (n,), generator=rng)
        images = to_model_input(self.images[index], self.resolution)
        return random_shift(images, self.shift, rng).to(device), self.labels[index].to(device)


def random_shift(images: torch.Tensor, shift: int, rng: torch.Generator) -> torch.Tensor:
    """Each image moved by up to `shift` px in x and y, the border filled with the background (-1);
    shift 0: the images as they are."""
    if not shift:
        return images
    n, _, h, w = images.shape
    padded = F.pad(images, (shift,) * 4, value=-1.0)
    dx, dy = (torch.randint(0, 2 * shift + 1, (n,), generator=rng) for _ in range(2))
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


class GeneratorTransfer:
    """Images of a frozen generator; the labels are the teacher's (soft) outputs. `pool` > 0: a fixed cached set of that
    many generated images instead of fresh ones (see the module docstring)."""

    labelled = False

    def __init__(self, spec: str, resolution: int, channels: int, device, pool: int = 0, shift: int = 2):
        from gancompress.evaluation import generate
        from gancompress.teachers import resolve_generator

        self.generator, identity = resolve_generator(spec, device)
        self.generator.eval().requires_grad_(False)
        self._generate = generate
        g = self.generator
        if (g.out_channels, g.resolution) != (channels, resolution):
            raise TransferError(f"generator {spec} makes {g.resolution}px images with {g.out_channels} channels; the "
                                f"classifier reads {resolution}px with {channels}")
        self.num_classes = getattr(g.config, "num_classes", 0)
        self.resolution, self.shift, self.pool = resolution, shift, None
        shifted = f", random shifts of up to {shift} px" if shift else ""
        self.identity = {"kind": "generator", "generator": {k: identity[k] for k in ("name", "sha256")},
                         "conditional": bool(self.num_classes), "real_training_images": 0,
                         "images": "fresh latents every step" + shifted}
        if pool:
            self.pool, path, sha = generated_pool(self.generator, identity["sha256"], pool, device)
            self.identity["images"] = f"a fixed pool of {pool} images (latents and noise from seed 0, uint8)" + shifted
            self.identity["pool"] = {"n": pool, "file": str(path), "sha256": sha}

    @torch.no_grad()
    def batch(self, rng: torch.Generator, n: int, device) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.pool is not None:
            index = torch.randint(0, len(self.pool), (n,), generator=rng)
            images = to_model_input(self.pool[index], self.resolution)
            return random_shift(images, self.shift, rng).to(device), None
        return random_shift(self.draw(rng, n, device), self.shift, rng), None

    def draw(self, rng: torch.Generator, n: int, device) -> torch.Tensor:
        """`n` images of the generator, latents and noise seed from `rng` (differentiable in its weights
        outside no_grad: an adapted generator's step draws through here too)."""
        z = torch.randn(n, self.generator.z_dim, generator=rng)
        return self._generate(self.generator, z, device, noise_seed=int(torch.randint(0, 2**31 - 1, (), generator=rng))).float()


DFAD_OUTPUTS = ("bn", "tanh")


class DFADGenerator(torch.nn.Module):
    """DFAD's (and DAFL's) generator: z -> linear to 128 x (R/4)^2 -> BatchNorm -> two (2x nearest
    upsampling, 3x3 conv, BatchNorm, LeakyReLU 0.2) blocks of 128 and 64 channels -> 3x3 conv to the
    image channels -> tanh -> (`output` "bn", DFAD's) BatchNorm without affine. That last normalisation
    keeps every channel of a batch at zero mean and unit variance, so the generator cannot win the game
    by drifting to saturated images the student never learns from; it also fixes each batch's mean and
    variance, which real [-1, 1] images do not share (Fashion-MNIST: mean -0.43, std 0.71). `output`
    "tanh" ends at the tanh, so the images span the data's range and the BatchNorm prior can set their
    statistics."""

    def __init__(self, z_dim: int, channels: int, resolution: int, width: int = 128, output: str = "bn"):
        super().__init__()
        if resolution % 4:
            raise TransferError(f"the DFAD generator makes images of a multiple of 4 px, not {resolution}")
        if output not in DFAD_OUTPUTS:
            raise TransferError(f"the DFAD generator's output must be one of {', '.join(DFAD_OUTPUTS)}, not {output!r}")
        self.z_dim, self.start = z_dim, resolution // 4
        nn = torch.nn
        self.project = nn.Linear(z_dim, width * self.start ** 2)
        self.blocks = nn.Sequential(
            nn.BatchNorm2d(width),
            nn.Upsample(scale_factor=2), nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2), nn.Conv2d(width, width // 2, 3, padding=1), nn.BatchNorm2d(width // 2),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width // 2, channels, 3, padding=1), nn.Tanh(),
            *([nn.BatchNorm2d(channels, affine=False)] if output == "bn" else []))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.project(z.flatten(1)).reshape(len(z), -1, self.start, self.start))


POOL_CACHE_VERSION = 1


def generated_pool(generator, generator_sha256: str, n: int, device) -> tuple[torch.Tensor, Path, str]:
    """(uint8 images (n, C, H, W), cache file, their sha256): `n` images of `generator` from latents and
    noise of seed 0, as `gancompress generate --seed 0` makes them. Cached under the generator's sha256
    and n; a cached pool is used only when its sha256 matches the one recorded when it was written."""
    import hashlib
    import json

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from gancompress import assets
    from gancompress.evaluation import latents, sample_images
    from gancompress.io import read_metadata, save_tensors
    from gancompress.metrics.images import to_uint8

    descriptor = {"version": POOL_CACHE_VERSION, "generator_sha256": generator_sha256, "n": n, "seed": 0}
    key = hashlib.sha256(json.dumps(descriptor, sort_keys=True).encode()).hexdigest()[:24]
    path = assets.cache_dir() / "transfer" / f"{key}.safetensors"

    def digest(images: torch.Tensor) -> str:
        return hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()

    if path.is_file():
        try:
            recorded = read_metadata(path).get("images_sha256")
            images = load_file(str(path))["images"]
        except (GancompressError, KeyError, OSError, SafetensorError) as err:
            raise TransferError(f"cached transfer pool {path} is unreadable ({type(err).__name__}); delete it "
                                "(it is regenerated on the next run)") from None
        if recorded is None or images.dtype != torch.uint8 or len(images) != n or digest(images) != recorded:
            raise TransferError(f"cached transfer pool {path} is damaged (its shape or sha256 differs from the one "
                                "recorded when it was written); delete it (it is regenerated on the next run)")
        return images, path, recorded
    z = latents(n, generator.z_dim, 0)
    images = torch.cat([to_uint8(batch) for _, batch in sample_images(generator, z, 250, device, noise_seed=0)])
    sha = digest(images)
    save_tensors(path, {"images": images}, {"descriptor": descriptor, "images_sha256": sha})
    return images, path, sha


def transfer_set(spec: str, resolution: int, channels: int, device, pool: int = 0, shift: int = 2):
    """The transfer set `spec` names (data[:SPLIT] / a dataset name, generator:SPEC); dfad is the trainer's.
    `pool`: for generator:SPEC, a fixed cached set of that many images instead of fresh ones (0).
    `shift`: random shifts of up to that many px of every image (0: none)."""
    if spec.startswith("generator:"):
        return GeneratorTransfer(spec[len("generator:"):], resolution, channels, device, pool, shift)
    name = spec[len("data:"):] if spec.startswith("data:") else "fashion-mnist" if spec == "data" else spec
    return DataTransfer(name, resolution, shift)
