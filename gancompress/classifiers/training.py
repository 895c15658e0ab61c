"""Classifier distillation: one step loop for every method and transfer set, with the generator
trainer's conventions (run directory, run.json, log.txt, stats.jsonl, atomic checkpoints, exact resume).

A step is one update of the student on one batch of the transfer set:
- method `ce`: cross-entropy on the labels, no teacher (the student alone; also how a teacher is trained);
- `hinton`: alpha * T^2 * KL(teacher || student at temperature T) + (1 - alpha) * CE;
- `logit-mse`: MSE between the logits; `mae`: DFAD's mean absolute difference of the logits;
- `adversarial`: hinton + adv * a non-saturating term from a discriminator on the logits (and with
  adv_features the pooled features), trained in the same step to tell the teacher's outputs from the
  student's;
- `ard`: the student's inputs attacked by PGD (cross-entropy on the labels, eps pgd_eps in [0, 1]
  pixels), its outputs on them distilled toward the teacher's soft labels on the clean inputs,
  plus (1 - alpha) * CE on the clean inputs.
Transfer sets (transfer.py): `data[:DATASET[:SPLIT]]`, `generator:SPEC` (no real image) and `dfad`:
a generator trained, every dfad_interval steps, to maximise the teacher-student discrepancy (DFAD),
optionally with DAFL's terms and DeepInversion's BatchNorm prior, with no data and no pretrained generator;
with `replay` N, half of each student batch comes from a ring of its last N images (generative replay).
`adapt_generator` plays the same game with the pretrained generator of a generator:SPEC set.

Every draw (batch, latents, PGD starts) comes from a generator seeded by (seed, step, stream), and
the learning rate is a function of the step, so a resumed run ends with the same weights."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from gancompress.classifiers import losses
from gancompress.classifiers.checkpoints import save_classifier
from gancompress.classifiers.transfer import DFAD_OUTPUTS, transfer_set
from gancompress.config import ConfigError, SerializableConfig
from gancompress.distillation.run_files import RunFiles
from gancompress.distillation.trainer import seeded_generator
from gancompress.io import atomic_path, atomic_write_text

METHODS = ("ce", "hinton", "logit-mse", "mae", "adversarial", "ard")
NEEDS_LABELS = ("ce",)


@dataclass(frozen=True)
class KDConfig(SerializableConfig):
    """Everything a classifier distillation run needs besides the networks; stored in run.json."""

    method: str = "hinton"
    transfer: str = "data"  # data[:DATASET[:SPLIT]] (default fashion-mnist:train), generator:SPEC, or dfad
    transfer_pool: int = 0  # generator:SPEC: 0 fresh images every step, N a fixed cached pool of N images
    shift: int = 2  # data and generator transfer sets: random shifts of up to N px (0: none)
    flip: bool = False  # random horizontal flips of the student's (and teacher's) images
    mixup: float = 0.0  # > 0: every image mixed with another of its batch, weight ~ Beta(m, m); label-free losses only
    steps: int = 3000
    batch_size: int = 128
    lr: float = 0.05  # SGD with Nesterov momentum, cosine-annealed to 0 over the steps
    momentum: float = 0.9
    weight_decay: float = 5e-4
    temperature: float = 4.0
    alpha: float | None = None  # weight of the soft term; None: 0.9 with labelled transfer sets, else 1
    adv: float = 0.1  # method adversarial: weight of the discriminator's term
    adv_features: bool = False  # method adversarial: the discriminator also reads the pooled features
    lr_d: float = 2e-4
    pgd_eps: float = 0.1  # method ard: L-infinity radius in [0, 1] pixel units
    pgd_steps: int = 10
    lr_g: float = 1e-3  # a trained generator's (dfad, adapt_generator) Adam learning rate
    dfad_interval: int = 5  # a trained generator: one update every N student updates (DFAD: 5)
    dfad_z_dim: int = 100
    dfad_output: str = "bn"  # transfer dfad: the generator ends in tanh + BatchNorm without affine (DFAD's) or "tanh"
    replay: int = 0  # transfer dfad: keep the last N generated images; half of each student batch replays them (0: off)
    adapt_generator: bool = False  # transfer generator:SPEC: fine-tune it against the student as DFAD's generator
    dafl: float = 0.0  # a trained generator: weight of DAFL's terms (one-hot 1, activation 0.1, entropy 5)
    bn_prior: float = 0.0  # a trained generator: weight of DeepInversion's BatchNorm-statistics prior
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500

    family = "kd"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        labelled = self.labelled
        if self.alpha is None:
            object.__setattr__(self, "alpha", 0.9 if labelled else 1.0)
        if not 0 <= self.alpha <= 1:
            raise ConfigError(f"alpha must lie in [0, 1], got {self.alpha}")
        if not labelled and (self.method in NEEDS_LABELS or self.alpha < 1):
            raise ConfigError(f"transfer {self.transfer!r} has no labels: method {self.method!r} with alpha "
                              f"{self.alpha} needs them; use --alpha 1 with hinton, logit-mse, mae or adversarial")
        if self.mixup and (self.method in ("ce", "ard") or self.alpha < 1):
            raise ConfigError(f"mixup makes images without labels (the teacher labels them): method {self.method!r} "
                              f"with alpha {self.alpha} reads the labels; use hinton, logit-mse, mae or adversarial "
                              "with --alpha 1")
        if self.method == "ard" and not labelled:
            raise ConfigError("ard attacks with the true labels: it needs a labelled transfer set (data)")
        if self.steps < 1 or self.batch_size < 2:
            raise ConfigError(f"need steps >= 1 and batch_size >= 2, got {self.steps}, {self.batch_size}")
        for name in ("lr", "lr_d", "lr_g", "temperature"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a finite number > 0, got {value}")
        for name in ("weight_decay", "adv", "pgd_eps", "dafl", "bn_prior", "momentum", "mixup"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value}")
        if self.transfer_pool < 0 or (self.transfer_pool and not self.transfer.startswith("generator:")):
            raise ConfigError(f"transfer_pool (N >= 0) applies to generator transfer sets only, got "
                              f"{self.transfer_pool} with {self.transfer!r}")
        if self.adapt_generator and not (self.transfer.startswith("generator:") and not self.transfer_pool):
            raise ConfigError(f"adapt_generator fine-tunes the generator of a generator:SPEC transfer set with fresh "
                              f"images (transfer_pool 0), not {self.transfer!r} with pool {self.transfer_pool}")
        given = [name for name in ("dafl", "bn_prior") if getattr(self, name)]
        if given and not self.trains_generator:
            raise ConfigError(f"{', '.join(given)} weigh terms of a trained generator: use them with --transfer dfad or "
                              f"--adapt-generator, not {self.transfer!r} alone")
        for name in ("pgd_steps", "dfad_interval", "dfad_z_dim", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.dfad_output not in DFAD_OUTPUTS:
            raise ConfigError(f"dfad_output must be one of {', '.join(DFAD_OUTPUTS)} (bn: DFAD's), got {self.dfad_output!r}")
        if self.dfad_output != "bn" and self.transfer != "dfad":
            raise ConfigError(f"dfad_output shapes DFAD's own generator: use it with --transfer dfad, not {self.transfer!r}")
        if self.shift < 0:
            raise ConfigError(f"shift must be >= 0 px, got {self.shift}")
        if self.replay < 0 or (self.replay and self.transfer != "dfad"):
            raise ConfigError(f"replay (N >= 0 images) keeps DFAD's generated images: use it with --transfer dfad, "
                              f"got {self.replay} with {self.transfer!r}")

    @property
    def labelled(self) -> bool:
        return not (self.transfer == "dfad" or self.transfer.startswith("generator:"))

    @property
    def trains_generator(self) -> bool:
        """DFAD's generator, or a pretrained one adapted against the student."""
        return self.transfer == "dfad" or self.adapt_generator

    @property
    def needs_teacher(self) -> bool:
        return self.method != "ce"


def augment(images: torch.Tensor, rng: torch.Generator, flip: bool, mixup: float) -> torch.Tensor:
    """Function matching's augmentations (Beyer et al. 2022, "Knowledge distillation: A good teacher is
    patient and consistent"): the teacher and the student see the same augmented image, so the
    teacher's output on it is the label and no augmentation can make the label wrong. `flip`: each
    image mirrored left-right with probability 1/2. `mixup` m > 0: each image blended with a random
    other image of the batch, lambda * x_i + (1 - lambda) * x_j, lambda ~ Beta(m, m) per image."""
    n = len(images)
    if flip:
        mirrored = (torch.rand(n, generator=rng) < 0.5).to(images.device).view(n, 1, 1, 1)
        images = torch.where(mirrored, images.flip(-1), images)
    if mixup:
        draws = np.random.default_rng(int(torch.randint(0, 2**62, (), generator=rng)))
        lam = torch.from_numpy(draws.beta(mixup, mixup, n)).to(images).view(n, 1, 1, 1)
        images = lam * images + (1 - lam) * images[torch.randperm(n, generator=rng).to(images.device)]
    return images


class ClassifierTrainer:
    def __init__(self, config: KDConfig, student, teacher, run_dir: Path | None, device: str = "cpu",
                 progress: bool = True, log_line=None):
        if config.needs_teacher and teacher is None:
            raise ConfigError(f"method {config.method!r} distils a teacher: pass --teacher")
        self.config, self.device, self.progress = config, torch.device(device), progress
        self.files = RunFiles(run_dir, True, progress and not sys.stderr.isatty(), log_line)
        self.run_dir = self.files.run_dir
        torch.manual_seed(config.seed)
        self.student = student.to(self.device).train()
        self.teacher = teacher.to(self.device).eval().requires_grad_(False) if teacher is not None else None
        c = student.config
        self.transfer = None if config.transfer == "dfad" else \
            transfer_set(config.transfer, c.resolution, c.in_channels, self.device, config.transfer_pool, config.shift)
        self.opt = torch.optim.SGD(self.student.parameters(), lr=config.lr, momentum=config.momentum,
                                   nesterov=config.momentum > 0, weight_decay=config.weight_decay)
        self.discriminator = self.generator = None
        if config.method == "adversarial":
            t_dim = teacher.feature_dim if config.adv_features else None
            self.discriminator = losses.LogitDiscriminator(c.num_classes, feature_dim=t_dim,
                                                           student_feature_dim=student.feature_dim).to(self.device)
            self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_d, betas=(0.5, 0.999))
        if config.trains_generator:
            if config.transfer == "dfad":
                from gancompress.classifiers.transfer import DFADGenerator

                self.generator = DFADGenerator(config.dfad_z_dim, c.in_channels, c.resolution,
                                               output=config.dfad_output).to(self.device).train()
            else:  # the pretrained generator itself, its weights tuned, its normalisation statistics kept (eval)
                self.generator = self.transfer.generator.requires_grad_(True)
                self.transfer.identity["images"] += (
                    f"; the generator fine-tuned against the student every {config.dfad_interval} steps (DFAD's "
                    f"game, lr_g {config.lr_g:g}, bn_prior {config.bn_prior:g}, dafl {config.dafl:g})")
            self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr_g, betas=(0.5, 0.999))
        # A ring of the last `replay` generated images (float16: half the memory and checkpoint), so that the
        # student keeps fitting the teacher where the generator has moved on from (generative replay).
        self.replay_images = torch.zeros(config.replay, c.in_channels, c.resolution, c.resolution,
                                         dtype=torch.float16, device=self.device) if config.replay else None
        self.replay_written = 0  # images written so far; the ring is full once this reaches `replay`
        self.step, self.elapsed_before = 0, 0.0
        self._t_start = time.perf_counter()

    # ------------------------------------------------------------------ draws

    def rng(self, step: int, stream: str) -> torch.Generator:
        return seeded_generator(self.config.seed, 0, step, stream)

    def learning_rate(self, step: int, base: float | None = None) -> float:
        """`base` (default: the student's lr) cosine-annealed to 0 over the run."""
        return 0.5 * (self.config.lr if base is None else base) * (1 + math.cos(math.pi * step / self.config.steps))

    def _batch(self, step: int):
        """(images, labels or None) of this step's batch, flipped and mixed as configured."""
        if self.transfer is not None:  # (an adapted generator draws through its transfer set)
            images, labels = self.transfer.batch(self.rng(step, "batch"), self.config.batch_size, self.device)
        else:
            z = torch.randn(self.config.batch_size, self.config.dfad_z_dim, generator=self.rng(step, "dfad-z"))
            with torch.no_grad():
                images, labels = self.generator(z.to(self.device)), None
            if self.replay_images is not None:
                images = self._replay(images, step)
        if self.config.flip or self.config.mixup:
            images = augment(images, self.rng(step, "augment"), self.config.flip, self.config.mixup)
        return images, labels

    def _replay(self, fresh: torch.Tensor, step: int) -> torch.Tensor:
        """The batch with its second half drawn from the images of earlier steps (once there are any);
        then the fresh images join the ring. The teacher labels every image as it is used."""
        held = min(self.replay_written, self.config.replay)
        batch = fresh
        if held:
            k = len(fresh) // 2
            picks = torch.randint(held, (k,), generator=self.rng(step, "replay")).to(self.device)
            batch = torch.cat([fresh[:len(fresh) - k], self.replay_images[picks].float()])
        kept = fresh[-self.config.replay:]  # (a batch larger than the ring keeps its last images)
        slots = torch.arange(self.replay_written, self.replay_written + len(kept), device=self.device) % self.config.replay
        self.replay_images[slots] = kept.to(torch.float16)
        self.replay_written += len(kept)
        return batch

    # ------------------------------------------------------------------ steps

    def _distill_terms(self, s_logits, t_logits, labels, s_feats=None, t_feats=None) -> dict:
        c = self.config
        if c.method == "ce":
            return {"ce": F.cross_entropy(s_logits, labels)}
        if c.method == "logit-mse":
            return {"logit_mse": losses.logit_mse(s_logits, t_logits)}
        if c.method == "mae":
            return {"mae": losses.discrepancy(s_logits, t_logits)}
        terms = {"kd": losses.hinton_loss(s_logits, t_logits, labels, c.temperature, c.alpha)}
        if c.method == "adversarial":
            scores = self.discriminator(s_logits, s_feats, student=True)
            terms["adv"] = c.adv * losses.student_adversarial_loss(scores)
        return terms

    def student_step(self, step: int) -> dict:
        c = self.config
        images, labels = self._batch(step)
        t_logits = t_feats = None
        if self.teacher is not None:
            with torch.no_grad():
                t_logits, t_feats = self.teacher(images, return_features=True)
        stats = {}
        if c.method == "adversarial":  # the discriminator first, on the student's current outputs
            with torch.no_grad():
                s_logits, s_feats = self.student(images, return_features=True)
            self.discriminator.requires_grad_(True)
            d_loss = losses.discriminator_loss(self.discriminator(t_logits, t_feats),
                                               self.discriminator(s_logits, s_feats, student=True))
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            self.discriminator.requires_grad_(False)
            stats["d_loss"] = float(d_loss.detach())
        for group in self.opt.param_groups:
            group["lr"] = self.learning_rate(step)
        if c.method == "ard":
            eps = 2 * c.pgd_eps  # [0, 1] pixels -> the [-1, 1] images
            attacked = losses.pgd_attack(self.student, images, labels, eps, c.pgd_steps,
                                         generator=self.rng(step, "pgd"))
            terms = {"kd_adv": c.alpha * losses.soft_kl(self.student(attacked), t_logits, c.temperature)}
            if c.alpha < 1:
                terms["ce"] = (1 - c.alpha) * F.cross_entropy(self.student(images), labels)
        else:
            s_logits, s_feats = self.student(images, return_features=True)
            terms = self._distill_terms(s_logits, t_logits, labels, s_feats, t_feats)
        loss = sum(terms.values())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        stats.update({k: float(v.detach()) for k, v in terms.items()})
        if self.generator is not None and step % c.dfad_interval == 0:
            stats.update(self.generator_step(step))
        return stats

    def generator_step(self, step: int) -> dict:
        """DFAD: the generator maximises the teacher-student discrepancy on its images (+ DAFL's terms,
        + the BatchNorm prior)."""
        c = self.config
        rng = self.rng(step, "dfad-g")
        if self.transfer is None:
            images = self.generator(torch.randn(c.batch_size, c.dfad_z_dim, generator=rng).to(self.device))
        else:
            images = self.transfer.draw(rng, c.batch_size, self.device)
        if c.bn_prior:
            (t_logits, t_feats), prior = losses.forward_with_bn_prior(self.teacher, images)
        else:
            t_logits, t_feats = self.teacher(images, return_features=True)
        self.student.requires_grad_(False)
        gap = losses.discrepancy(self.student(images), t_logits)
        self.student.requires_grad_(True)
        loss, stats = -gap, {"g_discrepancy": float(gap.detach())}
        if c.dafl:
            dafl = losses.dafl_generator_losses(t_logits, t_feats)
            loss = loss + c.dafl * (dafl["one_hot"] + 0.1 * dafl["activation"] + 5 * dafl["entropy"])
            stats.update({f"g_dafl_{k}": float(v.detach()) for k, v in dafl.items()})
        if c.bn_prior:
            loss = loss + c.bn_prior * prior
            stats["g_bn_prior"] = float(prior.detach())
        for group in self.opt_g.param_groups:  # annealed with the student's, as DFAD decays both together:
            group["lr"] = self.learning_rate(step, c.lr_g)  # a generator at full rate against a frozen student wins
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        return stats

    # ------------------------------------------------------------------ loop

    def train(self) -> torch.nn.Module:
        c = self.config
        self._t_start = time.perf_counter() - self.elapsed_before
        window, t_window = {}, time.perf_counter()
        bar = tqdm(total=c.steps, initial=self.step, desc=f"kd {c.method}", unit="step",
                   disable=not self.progress or self.files.plain_progress, dynamic_ncols=True)
        while self.step < c.steps:
            stats = self.student_step(self.step)
            bad = sorted(k for k, v in stats.items() if not math.isfinite(v))
            if bad:
                raise ConfigError(f"training diverged: non-finite {', '.join(bad)} at step {self.step}; "
                                  f"{self.files.lost_work_note()}. Lower --lr and start a new run")
            self.step += 1
            for k, v in stats.items():
                window.setdefault(k, []).append(v)
            if self.step % c.log_every == 0 or self.step == c.steps:
                line = {k: sum(v) / len(v) for k, v in window.items()}
                elapsed = time.perf_counter() - t_window
                line.update(step=self.step, lr=self.learning_rate(self.step - 1), time_s=self.elapsed(),
                            img_per_s=len(next(iter(window.values()))) * c.batch_size / max(elapsed, 1e-9))
                self.files.log_stats(line, self.step)
                shown = ", ".join(f"{k} {v:.3g}" for k, v in line.items() if k not in ("step", "time_s"))
                bar.set_postfix_str(shown, refresh=False)
                self.files.progress_line(f"kd step {self.step}/{c.steps}: {shown}")
                window, t_window = {}, time.perf_counter()
            if self.step % c.checkpoint_every == 0 or self.step == c.steps:
                self.save_checkpoint()
            bar.update(1)
        bar.close()
        self._t_end = time.perf_counter()
        self.student.eval()
        return self.student

    def elapsed(self) -> float:
        return (getattr(self, "_t_end", None) or time.perf_counter()) - self._t_start

    # ------------------------------------------------------------------ checkpoints

    def _networks(self) -> dict:
        nets = {"student": self.student}
        if self.discriminator is not None:
            nets["discriminator"] = self.discriminator
        if self.generator is not None:
            nets["generator"] = self.generator
        return nets

    def _optimizers(self) -> dict:
        return {name: opt for name, opt in (("opt", self.opt), ("opt_d", getattr(self, "opt_d", None)),
                                             ("opt_g", getattr(self, "opt_g", None))) if opt is not None}

    def save_checkpoint(self) -> None:
        """checkpoints/step-N/state.pt (networks, optimizers, step), then `latest`; the previous one kept."""
        if not self.files.writes:
            return
        root = self.run_dir / "checkpoints"
        target = root / f"step-{self.step:07d}"
        target.mkdir(parents=True, exist_ok=True)
        replay = {"replay_images": self.replay_images, "replay_written": self.replay_written} \
            if self.replay_images is not None else {}
        state = {"step": self.step, "elapsed_s": self.elapsed(), "config": self.config.to_dict(), **replay,
                 **{f"net_{k}": v.state_dict() for k, v in self._networks().items()},
                 **{k: v.state_dict() for k, v in self._optimizers().items()}}
        with atomic_path(target / "state.pt") as tmp, open(tmp, "wb") as f:
            torch.save(state, f)
        atomic_write_text(root / "latest", target.name + "\n")
        for old in sorted(p for p in root.glob("step-*") if p != target)[:-1]:
            for file in old.iterdir():
                file.unlink()
            old.rmdir()

    def load_checkpoint(self, run_dir: Path) -> None:
        latest = Path(run_dir) / "checkpoints" / "latest"
        if not latest.is_file():
            raise ConfigError(f"{run_dir}: no checkpoint to resume from (missing {latest})")
        state = torch.load(latest.parent / latest.read_text().strip() / "state.pt", map_location=self.device,
                           weights_only=True)
        for name, net in self._networks().items():
            net.load_state_dict(state[f"net_{name}"])
        for name, opt in self._optimizers().items():
            opt.load_state_dict(state[name])
        if self.replay_images is not None:
            self.replay_images.copy_(state["replay_images"])
            self.replay_written = state["replay_written"]
        self.step, self.elapsed_before = state["step"], state["elapsed_s"]
        self.files.truncate_stats(self.step)

    def save_student(self, path: Path, extra: dict | None = None) -> Path:
        return save_classifier(path, self.student, {"trained_with": {"kd": self.config.to_dict(), "step": self.step},
                                                    **(extra or {})})
