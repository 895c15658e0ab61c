"""One trainer for distillation (teacher -> student) and plain GAN training.

Each step runs the phases listed in `phases()`: a discriminator step, a lazy R1 step every
`r1_interval` steps, a generator step, and the phases the family adds (StyleGAN2's lazy path
length step, in families/stylegan2/training.py). Every random draw (latents, real-image indices,
augmentations) comes from a generator seeded by (seed, rank, step, stream), so a run resumed from a
checkpoint continues exactly as if it had never stopped: resume restores only weights, EMA,
optimizer state and the step.

Multi-process runs (`torchrun --nproc_per_node N`): each rank draws its own share of the batch
and gradients are averaged after every backward pass (distributed.py says why not DDP). Only rank
0 writes files, through run_files.RunFiles.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from gancompress.config import ConfigError, SerializableConfig
from gancompress.distillation.augment import POLICIES, diff_augment
from gancompress.distillation.distributed import Rank, broadcast, init_distributed, rank_device, sync_grads
from gancompress.distillation.losses import (ADVERSARIAL_LOSSES, AdversarialLoss, FeatureLoss, OutputLoss, r1_penalty,
                                             soft_logit_loss)
from gancompress.distillation.run_files import RunFiles
from gancompress.data import DATASETS
from gancompress.errors import GancompressError
from gancompress.families import build_discriminator_for, family_of

__all__ = ["TrainConfig", "Trainer", "TrainingDiverged", "Rank", "init_distributed", "rank_device"]


PRECISIONS = ("fp32", "bf16", "fp16")
D_INITS = ("student", "teacher-size", "teacher", "auto")
# How a step is computed, not what it computes: left out of records at their defaults, and a resumed
# run may change them (pipeline.resume_run)
EXECUTION_FIELDS = ("precision", "fp16_blocks", "channels_last", "compile", "grad_accum")
# What is measured while a run trains, not what it trains: left out of records at their defaults, and a
# resumed run may change them. Evaluation draws from its own seeded generators and runs the EMA in eval
# mode, so a run trains the same weights with or without it (tests/test_trainer.py).
MONITOR_FIELDS = ("metrics_every", "metrics_n")


@dataclass(frozen=True)
class TrainConfig(SerializableConfig):
    """Everything a run needs besides the networks; stored in the run directory."""

    mode: str = "distill"  # distill: teacher -> student losses; gan: adversarial loss only
    steps: int = 2000
    batch_size: int = 32  # global: split across ranks
    lr_g: float = 2e-3  # distillation (eval/tune_recipe.py); plain GAN training (`gancompress train`) uses 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    l1: float = 3.0
    lpips: float = 3.0
    mse: float = 0.0
    feat: float = 0.0  # intermediate-feature MSE: off by default, it hurt FID in the recipe search (docs/recipes.md)
    adv: float = 0.1
    adv_loss: str = "nonsat"
    r1_gamma: float = 0.1
    r1_interval: int = 16
    diffaug: tuple[str, ...] = ("color", "translation", "cutout")
    d_width: float = 1.0  # discriminator widths relative to the generator it mirrors (d_init student / teacher-size)
    # student: fresh, mirroring the student; teacher-size: fresh, mirroring the teacher; teacher: the
    # teacher's own; auto (default, the recipe search): the teacher's own when there is one (and d_width is 1), else student
    d_init: str = "auto"
    d_distill: float = 0.0  # weight: the discriminator's logits toward the teacher discriminator's on the same images
    adv_soft: float = 0.0  # weight: D's logits on student images toward its logits on the teacher's images, same latents
    d_temperature: float = 1.0  # temperature of the soft labels of d_distill and adv_soft
    ema_decay: float = 0.999
    student_bn: str = "batch"  # batch: BatchNorm on batch statistics; frozen: on the inherited running ones
    seed: int = 0
    real: str = "teacher"  # "teacher" (data-free) or a dataset/folder spec
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 500
    keep_every: int = 0  # also keep every checkpoint whose step is a multiple of this (0: only the last two)
    tensorboard: bool = False
    style_mixing: float = 0.0  # StyleGAN2: probability of mixing two latents per batch (0.9 when training from scratch)
    pl_weight: float = 0.0  # StyleGAN2 path-length regularisation (off by default; StyleGAN2 uses 2)
    pl_interval: int = 4
    relation: float = 0.0  # StyleGAN2 distillation: StyleKD's latent-direction relation loss (StyleKD uses 30)
    relation_strength: float = 5.0  # std of the random move along a unit direction in w space
    # Execution options: how a step is computed, not what it computes (docs/design-notes.md, "Execution options").
    precision: str = "fp32"  # bf16: autocast over every forward pass; fp16: NVlabs' scheme (StyleGAN2 only)
    fp16_blocks: int = 4  # fp16: blocks at the highest resolutions in fp16 (NVlabs' num_fp16_res), never the 4x4
    channels_last: bool = False  # NHWC memory format for the networks and images (faster convolutions on GPUs)
    compile: str = "off"  # a torch.compile backend (inductor) for the student's and discriminator's forward passes
    grad_accum: int = 1  # micro-batches per step: the same update from batch_size / grad_accum images at a time
    # Quality while training (MONITOR_FIELDS): FID/KID/LPIPS of the EMA every metrics_every steps (0: off).
    metrics_every: int = 0
    metrics_n: int = 500  # samples per in-training evaluation (small: its FID is biased upward, see the log)

    family = "train"
    omit_when_default = EXECUTION_FIELDS + MONITOR_FIELDS

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
        if self.d_init not in D_INITS:
            raise ConfigError(f"d_init must be one of {', '.join(D_INITS)}, got {self.d_init!r}")
        if self.d_init == "teacher" and self.d_width != 1:
            raise ConfigError(f"d_init 'teacher' keeps the teacher's discriminator as it is; d_width must be 1, got {self.d_width}")
        if (self.d_distill or self.adv_soft) and not self.adv:
            raise ConfigError("d_distill and adv_soft act through the discriminator: they need adv > 0")
        if self.adv_soft and self.mode != "distill":
            raise ConfigError("adv_soft compares student and teacher images: it needs mode 'distill'")
        if not (math.isfinite(self.d_temperature) and self.d_temperature > 0):
            raise ConfigError(f"d_temperature must be a finite number > 0, got {self.d_temperature}")
        if not 0 < self.d_width <= 4 or not 0 <= self.ema_decay < 1:
            raise ConfigError(f"need 0 < d_width <= 4 and 0 <= ema_decay < 1, got {self.d_width}, {self.ema_decay}")
        for name in ("lr_g", "lr_d"):  # `not x > 0` is also true for NaN
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a finite number > 0, got {value}")
        for name in ("l1", "lpips", "mse", "feat", "adv", "r1_gamma", "pl_weight", "relation", "relation_strength",
                     "d_distill", "adv_soft"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"the weight {name} must be a finite number >= 0, got {value}")
        if self.metrics_every < 0 or self.metrics_n < 2:
            raise ConfigError(f"need metrics_every >= 0 (0: off) and metrics_n >= 2, got {self.metrics_every}, "
                              f"{self.metrics_n}")
        if self.keep_every < 0:
            raise ConfigError(f"keep_every must be >= 0 (0: keep only the last two checkpoints), got {self.keep_every}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not self.compile:
            raise ConfigError("compile is 'off' or a torch.compile backend such as inductor, got ''")
        for name in ("r1_interval", "log_every", "sample_every", "checkpoint_every", "grad_accum", "fp16_blocks"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")


def _peak_memory_mb(device) -> float:
    """Peak memory so far: allocated CUDA memory on a GPU, the process's peak resident set on a CPU."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class TrainingDiverged(GancompressError, RuntimeError):
    """A loss or a weight became NaN or inf; nothing after the last good checkpoint was kept."""


def seeded_generator(seed: int, rank: int, step: int, stream: str) -> torch.Generator:
    """A CPU generator for the draws of `stream` at `step` on `rank`: the same after a resume."""
    digest = hashlib.sha256(f"{seed}/{rank}/{step}/{stream}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def inherits_teacher_discriminator(config: TrainConfig, teacher_d_found: bool) -> bool:
    """Whether the discriminator starts as a copy of the teacher's: d_init 'teacher', or 'auto' when
    the teacher's was found and the width asked for is the teacher's own (d_width 1)."""
    return config.d_init == "teacher" or (config.d_init == "auto" and teacher_d_found and config.d_width == 1)


class Trainer:
    """The loop and its phases. Networks and losses are built here from the config; what the run
    writes and reads back is `self.files` (run_files.RunFiles); gradient averaging over ranks is
    distributed.py; the family adds its own phases, generator terms and state (`family.training_*`)."""

    def __init__(
        self,
        config: TrainConfig,
        student: torch.nn.Module,
        teacher: torch.nn.Module | None,
        real_images: Callable[[torch.Generator, int, torch.device], torch.Tensor] | None,
        run_dir: Path | None,
        device: str = "cpu",
        kept: dict[str, list[int]] | None = None,
        lpips_model: torch.nn.Module | None = None,
        rank: Rank | None = None,
        progress: bool = True,
        log_line: Callable[[str], None] | None = None,
        teacher_discriminator: torch.nn.Module | None = None,
        monitor: Callable[[torch.nn.Module], dict] | None = None,
    ):
        if config.mode == "distill" and teacher is None:
            raise ConfigError("distillation needs a teacher")
        if config.real == "teacher" and teacher is None:
            raise ConfigError("real images come from the teacher (data-free) but there is no teacher; pass a dataset")
        rank = rank or Rank(device=device)
        # monitor(G_ema) -> {"fid", "kid", "lpips", ...}: called every metrics_every steps on the main rank
        self.monitor = monitor if config.metrics_every else None
        self.best = {"fid": math.inf, "step": 0}  # the best in-training FID so far, and its step (checkpointed)
        self.config, self.rank, self.device, self.progress = config, rank, torch.device(device), progress
        # Progress on a terminal is a bar; elsewhere (a log file, CI) a plain line every log_every steps.
        self.files = RunFiles(run_dir, rank.main, progress and not sys.stderr.isatty(), log_line)
        self.run_dir = self.files.run_dir
        self.teacher = teacher.to(self.device).eval().requires_grad_(False) if teacher is not None else None
        self.real_images = real_images
        # A class-conditional generator (DCGAN num_classes): its discriminator reads every image's class,
        # real images bring their labels, generated ones the class their latent makes.
        self.conditional = bool(getattr(student.config, "num_classes", 0))
        if self.conditional and config.adv and config.real != "teacher" and getattr(real_images, "labels", None) is None:
            raise ConfigError("a class-conditional generator trains against labelled real images: pass a dataset "
                              f"({', '.join(DATASETS)}) as --real, not an image folder")
        self.local_batch = max(1, config.batch_size // rank.world)
        if self.local_batch % config.grad_accum:
            raise ConfigError(f"grad_accum {config.grad_accum} must divide the batch of each rank "
                              f"({self.local_batch} images); choose a divisor of it")
        self.micro_batch = self.local_batch // config.grad_accum
        self._micro = 0  # the micro-batch being computed (apply() loops over them)
        self._real_batch = (None, None)  # (step, images): one dataset draw shared by a step's micro-batches
        torch.manual_seed(config.seed)  # discriminator and adapter initialisation, same on every rank
        self.family = family_of(student)
        self._build_networks(student, teacher, teacher_discriminator)
        self._build_losses(student, teacher, kept, lpips_model)
        self._build_optimizers()
        self._setup_execution()
        self.step = 0
        self.elapsed_before = 0.0  # training seconds before this process (resumed runs)
        self._t_start = time.perf_counter()
        self._t_end = None  # set when train() returns, so later work is not counted
        self.sample_z = torch.randn(16, student.z_dim, generator=seeded_generator(config.seed, 0, -1, "sample-bank"))

    def _build_networks(self, student, teacher, teacher_discriminator) -> None:
        config = self.config
        self.G = student.to(self.device).train()
        # "frozen" keeps BatchNorm on the statistics the student inherited (train = deploy function,
        # and a width-1.0 student starts equal to the teacher); "batch" (default) measured better
        # for pruned students: docs/design-notes.md.
        if config.student_bn == "frozen":
            for module in self.G.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        unsupported = [t for t in ("style_mixing", "pl_weight", "relation")
                       if getattr(config, t) and t not in self.family.training_terms]
        if unsupported:
            raise ConfigError(f"{', '.join(unsupported)} need a StyleGAN2 generator; set them to 0 for {self.family.title}")
        self.extra_state = self.family.initial_training_state(self.device)  # checkpointed with the run
        self.D, self.teacher_D = self._discriminators(student, teacher, teacher_discriminator)

    def _discriminators(self, student, teacher, teacher_d):
        """(the discriminator to train, the frozen teacher discriminator d_distill reads or None)."""
        config = self.config
        needs_teacher_d = config.d_init == "teacher" or config.d_distill
        if needs_teacher_d and teacher_d is None:
            raise ConfigError("d_init 'teacher' and d_distill need the teacher's discriminator, and none was given or "
                              "found beside the teacher; pass --teacher-d FILE, or use --d-init student / teacher-size")
        if needs_teacher_d:
            c = teacher_d.config
            if (c.resolution, c.in_channels) != (student.resolution, student.out_channels):
                raise ConfigError(f"the teacher's discriminator reads {c.resolution}px images with {c.in_channels} "
                                  f"channels, the student makes {student.resolution}px with {student.out_channels}")
        if inherits_teacher_discriminator(config, teacher_d is not None):
            discriminator = copy.deepcopy(teacher_d).float().train().requires_grad_(True)
        elif config.d_init == "teacher-size":
            if teacher is None:
                raise ConfigError("d_init 'teacher-size' mirrors the teacher: it needs one")
            discriminator = build_discriminator_for(teacher.config, config.d_width)
        else:
            discriminator = build_discriminator_for(student.config, config.d_width)
        frozen = copy.deepcopy(teacher_d).float().eval().requires_grad_(False).to(self.device) if config.d_distill else None
        return discriminator.to(self.device), frozen

    def _build_losses(self, student, teacher, kept, lpips_model) -> None:
        config = self.config
        distill = config.mode == "distill"
        self.output_loss = OutputLoss(config.l1, config.lpips, config.mse, lpips_model) if distill else None
        self.feature_loss = None
        if distill and config.feat:
            s_ch = dict(zip(student.config.block_names, student.config.channels))  # toRGB taps: compared directly
            t_ch = dict(zip(teacher.config.block_names, teacher.config.channels))
            self.feature_loss = FeatureLoss(config.feat, s_ch, t_ch, kept).to(self.device)
        self.adv = AdversarialLoss(config.adv_loss, config.adv)

    def _build_optimizers(self) -> None:
        config = self.config
        g_params = list(self.G.parameters())
        if self.feature_loss is not None:
            g_params += list(self.feature_loss.parameters())
        self.g_params, self.d_params = g_params, list(self.D.parameters())
        self.opt_g = torch.optim.Adam(g_params, lr=config.lr_g, betas=config.betas)
        self.opt_d = torch.optim.Adam(self.d_params, lr=config.lr_d, betas=config.betas)
        for module in (self.G, self.G_ema, self.D) + ((self.feature_loss,) if self.feature_loss is not None else ()):
            broadcast(module, self.rank)

    def _setup_execution(self) -> None:
        """precision, channels_last and compile: how the passes run, not what they compute."""
        config = self.config
        if config.precision == "fp16":  # the training networks only: the EMA and the teacher stay fp32
            self.family.use_fp16(self.G, self.D, config.fp16_blocks)
        self._memory_format(torch.channels_last)
        self._compiled = {}
        if config.compile != "off":
            # R1 and path length take second derivatives, which compiled graphs do not support: they
            # (and the EMA, the teacher and the samples) run the plain modules.
            try:
                self._compiled = {id(net): torch.compile(net, backend=config.compile) for net in (self.G, self.D)}
            except Exception as err:  # torch raises its own InvalidBackend, or a missing compiler's error
                raise ConfigError(f"torch.compile cannot use backend {config.compile!r} ({err}); "
                                  "pass --compile inductor or leave it off") from None

    def _memory_format(self, memory_format) -> None:
        """channels_last: NHWC while training; train() hands back its networks in the usual layout."""
        if self.config.channels_last:
            for net in (self.G, self.G_ema, self.D, self.teacher):
                if net is not None:
                    net.to(memory_format=memory_format)

    def _forward(self, net):
        """The compiled forward pass of `net` when compile is on, else `net`."""
        return self._compiled.get(id(net), net)

    def _autocast(self):
        if self.config.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _nhwc(self, images: torch.Tensor) -> torch.Tensor:
        """The discriminator's input in the networks' memory format."""
        return images.contiguous(memory_format=torch.channels_last) if self.config.channels_last else images

    def _discriminate(self, images: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        return self._judge(self._forward(self.D), images, classes)

    def _judge(self, discriminator, images: torch.Tensor, classes: torch.Tensor | None):
        """discriminator(images), with the images' classes when it is class-conditional."""
        if self.conditional:
            return discriminator(self._nhwc(images), classes)
        return discriminator(self._nhwc(images))

    def _classes_of(self, z: torch.Tensor) -> torch.Tensor | None:
        """The classes a class-conditional generator makes from z (a function of z, the same for the
        teacher and the student), or None."""
        return self.G.class_of(z) if self.conditional else None

    # ------------------------------------------------------------------ phases

    def phases(self, step: int) -> list[tuple[str, Callable[[int], dict]]]:
        phases = []
        if self.config.adv:
            phases.append(("D", self.discriminator_step))
            if self.config.r1_gamma and step % self.config.r1_interval == 0:
                phases.append(("D_r1", self.r1_step))
        phases.append(("G", self.generator_step))
        return phases + self.family.training_phases(self, step)

    def rng(self, step: int, stream: str) -> torch.Generator:
        """The generator of the draws of `stream` at `step` on this rank (the same after a resume)."""
        return seeded_generator(self.config.seed, self.rank.rank, step, stream)

    def rows(self, drawn):
        """This micro-batch's rows of `drawn` (a tensor or a list of them), drawn for the rank's whole
        batch: gradient accumulation splits a step's draws and changes none of them."""
        if isinstance(drawn, (list, tuple)):
            return [self.rows(t) for t in drawn]
        if self.config.grad_accum == 1 or not isinstance(drawn, torch.Tensor):
            return drawn
        return drawn[self._micro * self.micro_batch:(self._micro + 1) * self.micro_batch]

    def latents(self, step: int, stream: str) -> torch.Tensor:
        return self.rows(torch.randn(self.local_batch, self.G.z_dim, generator=self.rng(step, stream))).to(self.device)

    def _generate(self, net, z, step: int, stream: str, return_features: bool = False):
        """net(z), with per-layer noise (StyleGAN2) drawn from the (seed, rank, step, stream) generator:
        the same stream gives teacher and student the same noise, and a resumed run the same draws."""
        forward = self._forward(net)
        if not self.family.has_shared_inputs:
            return forward(z, return_features=return_features)
        training = step >= 0  # the sample bank (step -1) is one batch of its own, never mixed
        batch = self.local_batch if training else z.shape[0]
        kwargs = self.family.shared_inputs(net, batch, self.rng(step, stream + "-noise"), self.device)
        if self.config.style_mixing and training:
            mix = self.rng(step, stream + "-mix")
            if float(torch.rand((), generator=mix)) < self.config.style_mixing:
                kwargs.update(self.family.style_mixing_inputs(net, batch, mix, self.device))
        if training:
            kwargs = {key: self.rows(value) for key, value in kwargs.items()}
        return forward(z, return_features=return_features, **kwargs)

    def _real(self, step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This step's (micro-batch of) real images and, for class-conditional training, their classes."""
        if self.config.real == "teacher":
            z = self.latents(step, "real")
            with torch.no_grad():
                return self._generate(self.teacher, z, step, "real"), self._classes_of(z)
        if self.config.grad_accum == 1:
            return self._draw_real(step)
        if self._real_batch[0] != step:
            self._real_batch = (step, self._draw_real(step))
        return tuple(self.rows(list(self._real_batch[1])))

    def _draw_real(self, step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.conditional:
            return self.real_images(self.rng(step, "real"), self.local_batch, self.device), None
        return self.real_images.draw(self.rng(step, "real"), self.local_batch, self.device)

    def _augment(self, images: torch.Tensor, step: int, stream: str) -> torch.Tensor:
        if not self.config.diffaug:
            return images
        gen = self.rng(step, stream)
        if self.device.type != "cpu":  # augmentation draws on the images' device
            gen = torch.Generator(self.device).manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
        rows = None if self.config.grad_accum == 1 else (self._micro * self.micro_batch, self.local_batch)
        return diff_augment(images, self.config.diffaug, gen, rows)

    def apply(self, optimizer, params, losses_of: Callable[[], dict]) -> dict:
        """One optimizer step on the sum of the losses `losses_of()` returns, averaged over the
        micro-batches (each call computes one; gradients averaged over ranks); the losses as floats."""
        optimizer.zero_grad(set_to_none=True)
        parts, totals = self.config.grad_accum, {}
        for self._micro in range(parts):
            with self._autocast():
                losses = losses_of()
            (sum(losses.values()) / parts).backward()
            for key, value in losses.items():
                totals[key] = totals.get(key, 0.0) + float(value.detach()) / parts
        self._micro = 0
        if self.config.precision == "fp16":  # NVlabs: an overflowed fp16 gradient is clipped, not a NaN update
            for p in params:
                if p.grad is not None:
                    torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)
        sync_grads(params, self.rank)
        optimizer.step()
        return totals

    def discriminator_step(self, step: int) -> dict:
        self.D.requires_grad_(True)

        def losses():
            z = self.latents(step, "d-fake")
            with torch.no_grad():
                fake = self._generate(self.G, z, step, "d-fake")
            real, real_classes = self._real(step)
            real = self._augment(real, step, "aug-d-real")
            fake, fake_classes = self._augment(fake, step, "aug-d-fake"), self._classes_of(z)
            real_logits, fake_logits = self._discriminate(real, real_classes), self._discriminate(fake, fake_classes)
            terms = self.adv.discriminator_loss(real_logits, fake_logits)
            if self.teacher_D is not None:  # the teacher discriminator's verdicts on the same images, as soft labels
                with torch.no_grad():
                    t_real = self._judge(self.teacher_D, real, real_classes)
                    t_fake = self._judge(self.teacher_D, fake, fake_classes)
                temperature = self.config.d_temperature
                terms["d_distill"] = self.config.d_distill * 0.5 * (soft_logit_loss(real_logits, t_real, temperature) +
                                                                     soft_logit_loss(fake_logits, t_fake, temperature))
            return terms
        return self.apply(self.opt_d, self.d_params, losses)

    def r1_step(self, step: int) -> dict:
        self.D.requires_grad_(True)

        def losses():
            real, classes = self._real(step)
            real = self._nhwc(self._augment(real, step, "aug-r1"))
            discriminator = (lambda images: self.D(images, classes)) if self.conditional else self.D
            return r1_penalty(discriminator, real, self.config.r1_gamma, self.config.r1_interval)
        return self.apply(self.opt_d, self.d_params, losses)

    def generator_step(self, step: int) -> dict:
        self.D.requires_grad_(False)

        def losses():
            z = self.latents(step, "g")
            images, feats = self._generate(self.G, z, step, "g", return_features=True)
            terms = {}
            if self.config.mode == "distill":
                with torch.no_grad():
                    t_images, t_feats = self._generate(self.teacher, z, step, "g", return_features=True)
                terms.update(self.output_loss(images, t_images))
                if self.feature_loss is not None:
                    terms.update(self.feature_loss(feats, t_feats))
            terms.update(self.family.generator_terms(self, z, step))
            if self.config.adv:
                logits = self._discriminate(self._augment(images, step, "aug-g"), self._classes_of(z))
                terms.update(self.adv.generator_loss(logits))
                if self.config.adv_soft:  # the same augmentation draw on the teacher's images of the same latents
                    with torch.no_grad():
                        t_logits = self._discriminate(self._augment(t_images, step, "aug-g"), self._classes_of(z))
                    terms["g_adv_soft"] = self.config.adv_soft * soft_logit_loss(logits, t_logits, self.config.d_temperature)
            return terms
        return self.apply(self.opt_g, self.g_params, losses)

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
        self._memory_format(torch.channels_last)
        self._t_start, self._t_end = time.perf_counter() - self.elapsed_before, None
        self._window = ({}, time.perf_counter(), 0)  # (losses, start time, steps) since the last log line
        if self.config.tensorboard:
            self.files.open_tensorboard(self.step)
        bar = tqdm(total=end, initial=self.step, desc=self.config.mode, unit="step",
                   disable=not (self.progress and self.rank.main) or self.files.plain_progress, dynamic_ncols=True)
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
            self._record(terms, end, bar)
            if self.step % self.config.sample_every == 0 or self.step == end:
                self.write_samples()
            if self.monitor is not None and (self.step % self.config.metrics_every == 0 or self.step == end):
                self.measure_quality()  # before the checkpoint, which records the best so far
            if self.step % self.config.checkpoint_every == 0 or self.step == end:
                self.save_checkpoint()
            bar.update(1)
        bar.close()
        self.files.close()
        self._memory_format(torch.contiguous_format)
        self._t_end = time.perf_counter()
        return self.G_ema

    def _record(self, terms: dict, end: int, bar) -> None:
        """Add a step's losses to the window; every log_every steps log their means and the speed."""
        window, t_window, n_window = self._window
        for k, v in terms.items():
            window.setdefault(k, []).append(v)
        n_window += 1
        self._window = (window, t_window, n_window)
        if not (self.step % self.config.log_every == 0 or self.step == end):
            return
        elapsed = time.perf_counter() - t_window
        stats = {k: sum(v) / len(v) for k, v in window.items()}
        stats.update(step=self.step, img_per_s=n_window * self.config.batch_size / max(elapsed, 1e-9),
                     time_s=self.elapsed(), peak_memory_mb=_peak_memory_mb(self.device))
        self.files.log_stats(stats, self.step)
        shown = {k: f"{v:.3g}" for k, v in stats.items() if k not in ("step", "time_s")}
        bar.set_postfix(shown, refresh=False)
        self.files.progress_line(f"{self.config.mode} step {self.step}/{end}: " +
                                 ", ".join(f"{k} {v}" for k, v in shown.items()))
        self._window = ({}, time.perf_counter(), 0)

    def elapsed(self) -> float:
        """Training seconds, summed over resumed sessions."""
        return (self._t_end or time.perf_counter()) - self._t_start

    # ------------------------------------------------------------------ files

    @torch.no_grad()
    def write_samples(self) -> None:
        if not self.files.writes:
            return
        z = self.sample_z.to(self.device)
        rows = [self._generate(self.G_ema, z, -1, "sample-bank")]
        if self.teacher is not None and self.config.mode == "distill":
            rows.insert(0, self._generate(self.teacher, z, -1, "sample-bank"))
        self.files.write_samples(rows, self.step)

    def measure_quality(self) -> None:
        """The monitor's metrics of the EMA, logged with the step (stats.jsonl, TensorBoard `eval/*`);
        a new best FID writes the EMA to best.safetensors (atomically) beside the checkpoints."""
        if not self.files.writes:
            return
        start = time.perf_counter()
        metrics = self.monitor(self.G_ema)
        self.G_ema.eval()
        seconds = time.perf_counter() - start
        fid = metrics["fid"]
        improved = fid < self.best["fid"]
        if improved:
            self.best = {"fid": fid, "step": self.step}
            self.files.write_best(self.G_ema, {"step": self.step, **metrics})
        self.files.log_metrics({**metrics, "seconds": seconds, "best_fid": self.best["fid"],
                                "best_step": self.best["step"]}, self.step)
        self.files.progress_line(f"eval at step {self.step}: FID {fid:.2f} (n = {metrics.get('n')}), best "
                                 f"{self.best['fid']:.2f} at step {self.best['step']}" +
                                 (": best.safetensors written" if improved else "") + f" [{seconds:.0f} s]")

    def _diverged(self, what: str) -> TrainingDiverged:
        return TrainingDiverged(f"training diverged: {what}; {self.files.lost_work_note()}. Lower the learning rates "
                                "(--lr-g, --lr-d) or the loss weights and start a new run")

    def _check_finite_weights(self) -> None:
        for name, net in (("student", self.G), ("student EMA", self.G_ema), ("discriminator", self.D)):
            if not all(bool(torch.isfinite(t).all()) for t in net.state_dict().values() if t.is_floating_point()):
                raise self._diverged(f"the {name}'s weights hold NaN or inf after step {self.step}")

    def save_checkpoint(self) -> None:
        if not self.files.writes:
            return
        self._check_finite_weights()  # a broken network never replaces the last good checkpoint
        state = {
            "step": self.step,
            "elapsed_s": self.elapsed(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "feature_adapters": self.feature_loss.state_dict() if self.feature_loss is not None else {},
            **{key: value.detach().cpu() for key, value in self.extra_state.items()},
            "best": dict(self.best),
            "train_config": self.config.to_dict(),
        }
        self.files.write_checkpoint(self.step, self.G, self.G_ema, self.D, state, keep_every=self.config.keep_every)

    def load_checkpoint(self, run_dir: Path) -> None:
        nets, state = self.files.read_checkpoint(run_dir, self.device)
        self.G.load_state_dict(nets["G"])
        self.G_ema.load_state_dict(nets["G_ema"])
        self.D.load_state_dict(nets["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.feature_loss is not None:
            self.feature_loss.load_state_dict(state["feature_adapters"])
        self.step = state["step"]
        self.elapsed_before = state["elapsed_s"]
        # A best.safetensors written after this checkpoint is rewritten as the replayed steps reach it again.
        self.best = dict(state.get("best", {"fid": math.inf, "step": 0}))
        for key, initial in self.extra_state.items():  # a checkpoint from before a term existed keeps its start
            self.extra_state[key] = state.get(key, initial).to(self.device)
        self.files.truncate_stats(self.step)
