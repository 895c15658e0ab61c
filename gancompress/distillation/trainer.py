"""One trainer for distillation (teacher -> student) and plain GAN training.

Each step runs the phases listed in `phases()`: a discriminator step, a lazy R1 step every
`r1_interval` steps, and a generator step. Every random draw (latents, real-image indices,
augmentations) comes from a generator seeded by (seed, rank, step, stream), so a run resumed from a
checkpoint continues exactly as if it had never stopped: resume restores only weights, EMA,
optimizer state and the step.

Multi-process runs (`torchrun --nproc_per_node N`): each rank draws its own share of the batch
and gradients are averaged with `all_reduce` after every backward pass (gloo on CPU, NCCL on GPU).
We do this instead of wrapping the networks in DistributedDataParallel because R1 needs a double
backward through the discriminator, which DDP does not support (StyleGAN3 syncs gradients the
same way). Only rank 0 writes files.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from tqdm import tqdm

from gancompress.config import ConfigError, SerializableConfig
from gancompress.distillation.augment import POLICIES, diff_augment
from gancompress.distillation.losses import (ADVERSARIAL_LOSSES, AdversarialLoss, FeatureLoss, OutputLoss,
                                        latent_direction_relation, path_length_penalty, r1_penalty)
from gancompress.errors import GancompressError
from gancompress.families import family_of
from gancompress.io import WriteError, atomic_path, atomic_write_text, load_generator, save_generator, save_tensors
from gancompress.families import build_discriminator_for


@dataclass(frozen=True)
class TrainConfig(SerializableConfig):
    """Everything a run needs besides the networks; stored in the run directory."""

    mode: str = "distill"  # distill: teacher -> student losses; gan: adversarial loss only
    steps: int = 2000
    batch_size: int = 32  # global: split across ranks
    lr_g: float = 1e-3  # distillation; plain GAN training (`gancompress train`) uses 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    l1: float = 3.0
    lpips: float = 3.0
    mse: float = 0.0
    feat: float = 1.0
    adv: float = 0.1
    adv_loss: str = "nonsat"
    r1_gamma: float = 0.1
    r1_interval: int = 16
    diffaug: tuple[str, ...] = ("color", "translation", "cutout")
    d_width: float = 1.0  # discriminator widths relative to the mirrored student generator
    ema_decay: float = 0.999
    student_bn: str = "batch"  # batch: BatchNorm on batch statistics; frozen: on the inherited running ones
    seed: int = 0
    real: str = "teacher"  # "teacher" (data-free) or a dataset/folder spec
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 500
    tensorboard: bool = False
    style_mixing: float = 0.0  # StyleGAN2: probability of mixing two latents per batch (0.9 when training from scratch)
    pl_weight: float = 0.0  # StyleGAN2 path-length regularisation (off by default; StyleGAN2 uses 2)
    pl_interval: int = 4
    relation: float = 0.0  # StyleGAN2 distillation: StyleKD's latent-direction relation loss (StyleKD uses 30)
    relation_strength: float = 5.0  # std of the random move along a unit direction in w space

    family = "train"

    def __post_init__(self):
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))  # Adam rejects (0, 0.99)
        object.__setattr__(self, "diffaug", tuple(self.diffaug))
        if self.mode not in ("distill", "gan"):
            raise ConfigError(f"mode must be 'distill' or 'gan', got {self.mode!r}")
        if self.steps < 1 or self.batch_size < 2:
            raise ConfigError(f"need steps >= 1 and batch_size >= 2, got {self.steps}, {self.batch_size}")
        if self.adv_loss not in ADVERSARIAL_LOSSES:
            raise ConfigError(f"adv_loss must be one of {', '.join(ADVERSARIAL_LOSSES)}, got {self.adv_loss!r}")
        unknown = set(self.diffaug) - set(POLICIES)
        if unknown:
            raise ConfigError(f"unknown DiffAugment policies {sorted(unknown)}; choose from {', '.join(POLICIES)}")
        if self.mode == "gan" and not self.adv:
            raise ConfigError("mode 'gan' trains with the adversarial loss only: adv must be > 0")
        if self.student_bn not in ("frozen", "batch"):
            raise ConfigError(f"student_bn must be frozen or batch, got {self.student_bn!r}")
        if self.pl_weight < 0 or self.pl_interval < 1:
            raise ConfigError(f"need pl_weight >= 0 and pl_interval >= 1, got {self.pl_weight}, {self.pl_interval}")
        if not 0 <= self.style_mixing <= 1:
            raise ConfigError(f"style_mixing is a probability in [0, 1], got {self.style_mixing}")
        if not 0 < self.d_width <= 4 or not 0 <= self.ema_decay < 1:
            raise ConfigError(f"need 0 < d_width <= 4 and 0 <= ema_decay < 1, got {self.d_width}, {self.ema_decay}")
        for name in ("lr_g", "lr_d"):  # `not x > 0` is also true for NaN
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a finite number > 0, got {value}")
        for name in ("l1", "lpips", "mse", "feat", "adv", "r1_gamma", "pl_weight", "relation", "relation_strength"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"the weight {name} must be a finite number >= 0, got {value}")
        for name in ("r1_interval", "log_every", "sample_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")


class TrainingDiverged(GancompressError, RuntimeError):
    """A loss or a weight became NaN or inf; nothing after the last good checkpoint was kept."""


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1
    device: str = "cpu"  # this process's device: under torchrun, cuda:LOCAL_RANK

    @property
    def main(self) -> bool:
        return self.rank == 0


def rank_device(device: str, local_rank: int) -> str:
    """The device of the torchrun process with LOCAL_RANK `local_rank`: plain "cuda" becomes
    cuda:LOCAL_RANK (so every rank has a GPU of its own); cpu and an explicit cuda:N stay."""
    return f"cuda:{local_rank}" if device == "cuda" else device


def init_distributed(device: str) -> Rank:
    """Join the process group when started by torchrun (each rank pinned to its own GPU); a single
    process otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Rank(device=device)
    device = rank_device(device, int(os.environ.get("LOCAL_RANK", "0")))
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))  # NCCL and torch.device("cuda") use the current device
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Rank(dist.get_rank(), dist.get_world_size(), device)


def _seeded(seed: int, rank: int, step: int, stream: str) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}/{rank}/{step}/{stream}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def _sync_grads(params, rank: Rank) -> None:
    if rank.world == 1:
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(rank.world)


def _broadcast(module: torch.nn.Module, rank: Rank) -> None:
    if rank.world > 1:
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, 0)


class Trainer:
    def __init__(
        self,
        config: TrainConfig,
        student: torch.nn.Module,
        teacher: torch.nn.Module | None,
        real_images: Callable[[torch.Generator, int], torch.Tensor] | None,
        run_dir: Path | None,
        device: str = "cpu",
        kept: dict[str, list[int]] | None = None,
        lpips_model: torch.nn.Module | None = None,
        rank: Rank = Rank(),
        progress: bool = True,
        log_line: Callable[[str], None] | None = None,
    ):
        if config.mode == "distill" and teacher is None:
            raise ConfigError("distillation needs a teacher")
        if config.real == "teacher" and teacher is None:
            raise ConfigError("real images come from the teacher (data-free) but there is no teacher; pass a dataset")
        self.config, self.rank, self.device, self.progress = config, rank, torch.device(device), progress
        # Progress on a terminal is a bar; elsewhere (a log file, CI) a plain line every log_every steps.
        self.plain_progress = progress and not sys.stderr.isatty()
        self.log_line = log_line  # also gets every progress line (the run's log.txt)
        self._tb_writer = None
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if self.run_dir is not None and rank.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.teacher = teacher.to(self.device).eval().requires_grad_(False) if teacher is not None else None
        self.real_images = real_images
        self.local_batch = max(1, config.batch_size // rank.world)
        torch.manual_seed(config.seed)  # discriminator and adapter initialisation, same on every rank
        self.G = student.to(self.device).train()
        # "frozen" keeps BatchNorm on the statistics the student inherited (train = deploy function,
        # and a width-1.0 student starts equal to the teacher); "batch" (default) measured better
        # for pruned students: docs/design-notes.md.
        if config.student_bn == "frozen":
            for module in self.G.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.family = family_of(student)
        unsupported = [t for t in ("style_mixing", "pl_weight", "relation")
                       if getattr(config, t) and t not in self.family.training_terms]
        if unsupported:
            raise ConfigError(f"{', '.join(unsupported)} need a StyleGAN2 generator; set them to 0 for {self.family.title}")
        self.pl_mean = torch.zeros((), device=self.device)  # running mean of path lengths (checkpointed)
        self.D = build_discriminator_for(student.config, config.d_width).to(self.device)
        distill = config.mode == "distill"
        self.output_loss = OutputLoss(config.l1, config.lpips, config.mse, lpips_model) if distill else None
        self.feature_loss = None
        if distill and config.feat:
            s_ch = dict(zip(student.config.block_names, student.config.channels))  # toRGB taps: compared directly
            t_ch = dict(zip(teacher.config.block_names, teacher.config.channels))
            self.feature_loss = FeatureLoss(config.feat, s_ch, t_ch, kept).to(self.device)
        self.adv = AdversarialLoss(config.adv_loss, config.adv)
        g_params = list(self.G.parameters())
        if self.feature_loss is not None:
            g_params += list(self.feature_loss.parameters())
        self.g_params, self.d_params = g_params, list(self.D.parameters())
        self.opt_g = torch.optim.Adam(g_params, lr=config.lr_g, betas=config.betas)
        self.opt_d = torch.optim.Adam(self.d_params, lr=config.lr_d, betas=config.betas)
        for module in (self.G, self.G_ema, self.D) + ((self.feature_loss,) if self.feature_loss is not None else ()):
            _broadcast(module, rank)
        self.step = 0
        self.elapsed_before = 0.0  # training seconds before this process (resumed runs)
        self._t_start = time.perf_counter()
        self._t_end = None  # set when train() returns, so later work is not counted
        self.sample_z = torch.randn(16, student.z_dim, generator=_seeded(config.seed, 0, -1, "sample-bank"))

    # ------------------------------------------------------------------ phases

    def phases(self, step: int) -> list[tuple[str, Callable[[int], dict]]]:
        phases = []
        if self.config.adv:
            phases.append(("D", self.discriminator_step))
            if self.config.r1_gamma and step % self.config.r1_interval == 0:
                phases.append(("D_r1", self.r1_step))
        phases.append(("G", self.generator_step))
        if self.config.pl_weight and step % self.config.pl_interval == 0:
            phases.append(("G_pl", self.path_length_step))
        return phases

    def _z(self, step: int, stream: str) -> torch.Tensor:
        gen = _seeded(self.config.seed, self.rank.rank, step, stream)
        return torch.randn(self.local_batch, self.G.z_dim, generator=gen).to(self.device)

    def _generate(self, net, z, step: int, stream: str, return_features: bool = False):
        """net(z), with per-layer noise (StyleGAN2) drawn from the (seed, rank, step, stream) generator:
        the same stream gives teacher and student the same noise, and a resumed run the same draws."""
        if not self.family.has_shared_inputs:
            return net(z, return_features=return_features)
        gen = _seeded(self.config.seed, self.rank.rank, step, stream + "-noise")
        kwargs = self.family.shared_inputs(net, z.shape[0], gen, self.device)
        if self.config.style_mixing and step >= 0:  # the sample bank (step -1) is never mixed
            mix = _seeded(self.config.seed, self.rank.rank, step, stream + "-mix")
            if float(torch.rand((), generator=mix)) < self.config.style_mixing:
                kwargs.update(self.family.style_mixing_inputs(net, z, mix, self.device))
        return net(z, return_features=return_features, **kwargs)

    def _real(self, step: int) -> torch.Tensor:
        if self.config.real == "teacher":
            with torch.no_grad():
                return self._generate(self.teacher, self._z(step, "real"), step, "real")
        return self.real_images(_seeded(self.config.seed, self.rank.rank, step, "real"), self.local_batch).to(self.device)

    def _augment(self, images: torch.Tensor, step: int, stream: str) -> torch.Tensor:
        if not self.config.diffaug:
            return images
        gen = _seeded(self.config.seed, self.rank.rank, step, stream)
        if self.device.type != "cpu":  # augmentation draws on the images' device
            gen = torch.Generator(self.device).manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
        return diff_augment(images, self.config.diffaug, gen)

    def _apply(self, optimizer, params, losses: dict) -> dict:
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        _sync_grads(params, self.rank)
        optimizer.step()
        return {k: float(v.detach()) for k, v in losses.items()}

    def discriminator_step(self, step: int) -> dict:
        self.D.requires_grad_(True)
        with torch.no_grad():
            fake = self._generate(self.G, self._z(step, "d-fake"), step, "d-fake")
        real = self._real(step)
        losses = self.adv.discriminator_loss(
            self.D(self._augment(real, step, "aug-d-real")), self.D(self._augment(fake, step, "aug-d-fake"))
        )
        return self._apply(self.opt_d, self.d_params, losses)

    def r1_step(self, step: int) -> dict:
        self.D.requires_grad_(True)
        real = self._augment(self._real(step), step, "aug-r1")
        return self._apply(self.opt_d, self.d_params, r1_penalty(self.D, real, self.config.r1_gamma, self.config.r1_interval))

    def generator_step(self, step: int) -> dict:
        self.D.requires_grad_(False)
        z = self._z(step, "g")
        images, feats = self._generate(self.G, z, step, "g", return_features=True)
        losses = {}
        if self.config.mode == "distill":
            with torch.no_grad():
                t_images, t_feats = self._generate(self.teacher, z, step, "g", return_features=True)
            losses.update(self.output_loss(images, t_images))
            if self.feature_loss is not None:
                losses.update(self.feature_loss(feats, t_feats))
        if self.config.mode == "distill" and self.config.relation:
            losses.update(self._relation_loss(z, step))
        if self.config.adv:
            losses.update(self.adv.generator_loss(self.D(self._augment(images, step, "aug-g"))))
        return self._apply(self.opt_g, self.g_params, losses)

    def _relation_loss(self, z, step: int) -> dict:
        """Teacher and student on [w, w + offset] with shared offsets and noise; relations on the two
        lowest-resolution blocks, where StyleKD applies them."""
        gen = _seeded(self.config.seed, self.rank.rank, step, "relation")
        direction = torch.randn(z.shape[0], self.G.config.w_dim, generator=gen)
        offset = direction / direction.norm(dim=1, keepdim=True) * torch.randn(z.shape[0], 1, generator=gen)
        offset = (offset * self.config.relation_strength).to(self.device)[:, None]
        noise = [torch.cat([n, n]) for n in self.G.make_noise(z.shape[0], gen, self.device)]
        feats = []
        for net in (self.G, self.teacher):
            with torch.set_grad_enabled(net is self.G):
                ws = net.ws(z)
                feats.append(net(None, return_features=True, ws=torch.cat([ws, ws + offset]), noise=noise)[1])
        names = self.G.config.block_names[:2]
        return latent_direction_relation(feats[0], feats[1], names, z.shape[0], self.config.relation)

    def path_length_step(self, step: int) -> dict:
        z = self._z(step, "pl")
        gen = _seeded(self.config.seed, self.rank.rank, step, "pl-noise")
        noise = self.G.make_noise(z.shape[0], gen, self.device)
        probe = torch.randn(z.shape[0], self.G.out_channels, self.G.resolution, self.G.resolution, generator=gen)
        losses, pl_mean = path_length_penalty(self.G, z, noise, probe.to(self.device), self.pl_mean,
                                              self.config.pl_weight, self.config.pl_interval)
        if self.rank.world > 1:  # one running mean for all ranks
            dist.all_reduce(pl_mean)
            pl_mean /= self.rank.world
        self.pl_mean = pl_mean
        return self._apply(self.opt_g, self.g_params, losses)

    @torch.no_grad()
    def update_ema(self) -> None:
        # Warm-up: early on the average would be dominated by the untrained initial weights, so the
        # decay grows from 0.1 towards ema_decay as (1 + t) / (10 + t).
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.lerp_(p, 1 - decay)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    # ------------------------------------------------------------------ loop

    def train(self, until_step: int | None = None) -> torch.nn.Module:
        """Run to `config.steps` (or `until_step`), writing logs, samples and checkpoints."""
        end = min(self.config.steps, until_step or self.config.steps)
        self._t_start, self._t_end = time.perf_counter() - self.elapsed_before, None
        window, t_window, n_window = {}, time.perf_counter(), 0
        self._open_tensorboard()
        bar = tqdm(total=end, initial=self.step, desc=self.config.mode, unit="step",
                   disable=not (self.progress and self.rank.main) or self.plain_progress, dynamic_ncols=True)
        while self.step < end:
            step = self.step
            terms = {}
            for _, phase in self.phases(step):
                terms.update(phase(step))
            bad = sorted(k for k, v in terms.items() if not math.isfinite(v))
            if bad:
                raise self._diverged(f"non-finite loss ({', '.join(bad)}) at step {step}")
            self.update_ema()
            self.step += 1
            n_window += 1
            for k, v in terms.items():
                window.setdefault(k, []).append(v)
            if self.step % self.config.log_every == 0 or self.step == end:
                elapsed = time.perf_counter() - t_window
                stats = {k: sum(v) / len(v) for k, v in window.items()}
                stats.update(step=self.step, img_per_s=n_window * self.config.batch_size / max(elapsed, 1e-9),
                             time_s=self.elapsed())
                self._log(stats)
                shown = {k: f"{v:.3g}" for k, v in stats.items() if k not in ("step", "time_s")}
                bar.set_postfix(shown, refresh=False)
                self._progress_line(f"{self.config.mode} step {self.step}/{end}: " +
                                    ", ".join(f"{k} {v}" for k, v in shown.items()))
                window, t_window, n_window = {}, time.perf_counter(), 0
            if self.step % self.config.sample_every == 0 or self.step == end:
                self.write_samples()
            if self.step % self.config.checkpoint_every == 0 or self.step == end:
                self.save_checkpoint()
            bar.update(1)
        bar.close()
        if self._tb_writer is not None:
            self._tb_writer.close()
            self._tb_writer = None
        self._t_end = time.perf_counter()
        return self.G_ema

    def _progress_line(self, line: str) -> None:
        if not self.rank.main:
            return
        if self.plain_progress:
            print(line, file=sys.stderr, flush=True)
        if self.log_line is not None:
            self.log_line(line)

    def elapsed(self) -> float:
        """Training seconds, summed over resumed sessions."""
        return (self._t_end or time.perf_counter()) - self._t_start

    # ------------------------------------------------------------------ files

    def _log(self, stats: dict) -> None:
        if not (self.rank.main and self.run_dir):
            return
        with open(self.run_dir / "stats.jsonl", "a") as f:
            f.write(json.dumps(stats, sort_keys=True) + "\n")
        if self._tb_writer is not None:
            for key, value in stats.items():
                if key != "step":
                    self._tb_writer.add_scalar(f"train/{key}", value, self.step)
            self._tb_writer.flush()

    def _open_tensorboard(self) -> None:
        """Called as `train` starts. On resume, events after the checkpoint's step (logged before the
        process died) are purged, so the steps that are replayed are not logged twice."""
        if not (self.config.tensorboard and self.rank.main and self.run_dir):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise ConfigError("tensorboard logging needs the tensorboard package: "
                              "pip install 'gancompress[tensorboard]', or run without --tensorboard") from err
        self._tb_writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.step + 1 if self.step else None)

    @torch.no_grad()
    def write_samples(self) -> None:
        if not (self.rank.main and self.run_dir):
            return
        from gancompress.report import grid_image, save_grid

        z = self.sample_z.to(self.device)
        rows = [self._generate(self.G_ema, z, -1, "sample-bank")]
        if self.teacher is not None and self.config.mode == "distill":
            rows.insert(0, self._generate(self.teacher, z, -1, "sample-bank"))
        save_grid(self.run_dir / "samples" / f"step-{self.step:07d}.png", rows)
        if self._tb_writer is not None:
            self._tb_writer.add_image("samples", grid_image(rows), self.step)
            self._tb_writer.flush()

    def last_checkpoint(self) -> str | None:
        latest = self.run_dir / "checkpoints" / "latest" if self.run_dir else None
        return latest.read_text().strip() if latest is not None and latest.is_file() else None

    def _diverged(self, what: str) -> TrainingDiverged:
        last = self.last_checkpoint()
        kept = (f"the last good checkpoint, {self.run_dir / 'checkpoints' / last}, is kept" if last
                else "no checkpoint had been written")
        return TrainingDiverged(f"training diverged: {what}; {kept}. Lower the learning rates (--lr-g, --lr-d) or the "
                                "loss weights and start a new run")

    def _check_finite_weights(self) -> None:
        for name, net in (("student", self.G), ("student EMA", self.G_ema), ("discriminator", self.D)):
            if not all(bool(torch.isfinite(t).all()) for t in net.state_dict().values() if t.is_floating_point()):
                raise self._diverged(f"the {name}'s weights hold NaN or inf after step {self.step}")

    def save_checkpoint(self) -> None:
        if not (self.rank.main and self.run_dir):
            return
        self._check_finite_weights()  # a broken network never replaces the last good checkpoint
        try:
            self._write_checkpoint()
        except WriteError as err:
            last = self.last_checkpoint()
            raise WriteError(f"{err}; the checkpoint of step {self.step} was not written, " +
                             (f"the previous one ({last}) is intact: free space and resume with --resume {self.run_dir}"
                              if last else "and there is no earlier one")) from err

    def _write_checkpoint(self) -> None:
        root = self.run_dir / "checkpoints"
        target = root / f"step-{self.step:07d}"
        target.mkdir(parents=True, exist_ok=True)
        save_generator(target / "G.safetensors", self.G)
        save_generator(target / "G_ema.safetensors", self.G_ema)
        save_tensors(target / "D.safetensors", self.D.state_dict(), {"config": self.D.config.to_dict()})
        state = {
            "step": self.step,
            "elapsed_s": self.elapsed(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "feature_adapters": self.feature_loss.state_dict() if self.feature_loss is not None else {},
            "pl_mean": self.pl_mean.detach().cpu(),
            "train_config": self.config.to_dict(),
        }
        with atomic_path(target / "state.pt") as tmp, open(tmp, "wb") as f:
            torch.save(state, f)
        atomic_write_text(root / "latest", target.name + "\n")  # the checkpoint exists only once this is written
        for old in sorted(p for p in root.glob("step-*") if p != target)[:-1]:  # keep the previous one too
            for file in old.iterdir():
                file.unlink()
            old.rmdir()

    def load_checkpoint(self, run_dir: Path) -> None:
        root = Path(run_dir) / "checkpoints"
        latest = root / "latest"
        if not latest.is_file():
            raise ConfigError(f"{run_dir}: no checkpoint to resume from (missing {latest})")
        ckpt = root / latest.read_text().strip()
        self.G.load_state_dict(load_generator(ckpt / "G.safetensors").state_dict())
        self.G_ema.load_state_dict(load_generator(ckpt / "G_ema.safetensors").state_dict())
        from safetensors.torch import load_file

        self.D.load_state_dict(load_file(str(ckpt / "D.safetensors")))
        state = torch.load(ckpt / "state.pt", map_location=self.device, weights_only=True)
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.feature_loss is not None:
            self.feature_loss.load_state_dict(state["feature_adapters"])
        self.step = state["step"]
        self.elapsed_before = state["elapsed_s"]
        self.pl_mean = state.get("pl_mean", torch.zeros(())).to(self.device)
        if self.rank.main:
            self._truncate_stats()
            for stale in root.rglob(".*.tmp"):  # temporary files of writes cut off by a crash
                stale.unlink(missing_ok=True)

    def _truncate_stats(self) -> None:
        """Drop log lines written after the checkpoint we resume from (they will be written again),
        and any line a crash or a full disk cut off (it does not parse)."""
        path = self.run_dir / "stats.jsonl" if self.run_dir else None
        if not (self.rank.main and path and path.is_file()):
            return
        kept = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                step = json.loads(line)["step"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
            if step <= self.step:
                kept.append(line)
        atomic_write_text(path, "".join(line + "\n" for line in kept))
