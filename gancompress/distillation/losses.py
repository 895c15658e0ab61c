"""Losses as modules that return a dict of named, weighted terms (the networks know nothing of
losses). A term with weight 0 is not computed."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gancompress.errors import GancompressError

ADVERSARIAL_LOSSES = ("nonsat", "hinge", "lsgan")


class LossConfigError(GancompressError, ValueError):
    pass


class OutputLoss(nn.Module):
    """Pixel L1, LPIPS and (optional) MSE between student and teacher images on the same latents."""

    def __init__(self, l1: float = 3.0, lpips: float = 3.0, mse: float = 0.0, lpips_model: nn.Module | None = None):
        super().__init__()
        self.weights = {"l1": l1, "lpips": lpips, "mse": mse}
        if lpips and lpips_model is None:
            raise LossConfigError("an LPIPS weight needs an LPIPS model")
        self.lpips_model = lpips_model

    def forward(self, student_images: torch.Tensor, teacher_images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        if self.weights["l1"]:
            out["out_l1"] = self.weights["l1"] * F.l1_loss(student_images, teacher_images)
        if self.weights["mse"]:
            out["out_mse"] = self.weights["mse"] * F.mse_loss(student_images, teacher_images)
        if self.weights["lpips"]:
            from gancompress.metrics.lpips import lpips_distance

            out["out_lpips"] = self.weights["lpips"] * lpips_distance(self.lpips_model, student_images, teacher_images).mean()
        return out


class FeatureLoss(nn.Module):
    """MSE per block between student and teacher features: on the teacher's kept channels when the
    student was pruned from the teacher (`kept`), else through learnable 1x1 adapters that map the
    student's channels to the teacher's (GAN Compression). Taps not listed in the channel dicts
    (StyleGAN2's toRGB images) are compared as they are."""

    def __init__(self, weight: float, student_channels: dict[str, int], teacher_channels: dict[str, int],
                 kept: dict[str, list[int]] | None = None):
        super().__init__()
        self.weight = weight
        self.kept = {k: torch.tensor(v) for k, v in (kept or {}).items()}
        self.adapters = nn.ModuleDict({
            name: nn.Conv2d(c, teacher_channels[name], 1)
            for name, c in student_channels.items() if name not in self.kept
        })

    def forward(self, student_feats: dict, teacher_feats: dict) -> dict[str, torch.Tensor]:
        if not self.weight:
            return {}
        terms = []
        for name, s in student_feats.items():
            t = teacher_feats[name]
            if name in self.kept:
                t = t[:, self.kept[name].to(t.device)]
            elif name in self.adapters:
                s = self.adapters[name](s)
            elif s.shape != t.shape:  # taps without channel counts (StyleGAN2 toRGB images) must match
                raise LossConfigError(f"feature {name!r}: student {tuple(s.shape)} vs teacher {tuple(t.shape)}")
            terms.append(F.mse_loss(s, t))
        return {"feat_mse": self.weight * torch.stack(terms).mean()}


class AdversarialLoss(nn.Module):
    """Generator and discriminator sides of non-saturating logistic (default), hinge or least-squares GAN."""

    def __init__(self, kind: str = "nonsat", weight: float = 1.0):
        super().__init__()
        if kind not in ADVERSARIAL_LOSSES:
            raise LossConfigError(f"unknown adversarial loss {kind!r}; choose one of {', '.join(ADVERSARIAL_LOSSES)}")
        self.kind, self.weight = kind, weight

    def generator_loss(self, fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.weight:
            return {}
        if self.kind == "nonsat":
            loss = F.softplus(-fake_logits).mean()
        elif self.kind == "hinge":
            loss = -fake_logits.mean()
        else:
            loss = 0.5 * (fake_logits - 1).pow(2).mean()
        return {"g_adv": self.weight * loss}

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.kind == "nonsat":
            real, fake = F.softplus(-real_logits).mean(), F.softplus(fake_logits).mean()
        elif self.kind == "hinge":
            real, fake = F.relu(1 - real_logits).mean(), F.relu(1 + fake_logits).mean()
        else:
            real, fake = 0.5 * (real_logits - 1).pow(2).mean(), 0.5 * fake_logits.pow(2).mean()
        return {"d_real": real, "d_fake": fake}


def soft_logit_loss(logits: torch.Tensor, target_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """T^2 * KL(Bernoulli(sigmoid(target / T)) || Bernoulli(sigmoid(logits / T))), averaged: Hinton's
    soft-label distillation for a one-logit discriminator. The target is detached; the loss is 0
    exactly when the logits match (it is the soft-label BCE less the target's entropy)."""
    target = torch.sigmoid(target_logits.detach().float() / temperature)
    scaled = logits.float() / temperature
    kl = F.binary_cross_entropy_with_logits(scaled, target) - F.binary_cross_entropy_with_logits(
        target_logits.detach().float() / temperature, target)
    return temperature ** 2 * kl


def r1_penalty(discriminator: nn.Module, real_images: torch.Tensor, gamma: float, interval: int) -> dict[str, torch.Tensor]:
    """Lazy R1 (Mescheder et al. 2018; StyleGAN2): gamma/2 * E||grad_x D(x)||^2 on real images,
    applied every `interval` steps and scaled by `interval` to keep its average strength."""
    real_images = real_images.detach().requires_grad_(True)
    logits = discriminator(real_images)
    (grad,) = torch.autograd.grad(logits.sum(), real_images, create_graph=True)
    penalty = grad.pow(2).flatten(1).sum(1).mean()
    return {"d_r1": (gamma / 2) * penalty * interval}


def path_length_penalty(generator: nn.Module, z: torch.Tensor, noise, probe: torch.Tensor, pl_mean: torch.Tensor,
                        weight: float, interval: int, decay: float = 0.01) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Lazy path-length regularisation (StyleGAN2): the Jacobian-vector norm |J_w^T y| for image-space
    probes y ~ N(0, I) / sqrt(HW) is pulled towards its running mean. Returns the weighted term
    (scaled by `interval`) and the updated running mean."""
    ws = generator.ws(z).detach().requires_grad_(True)
    images = generator(None, ws=ws, noise=noise)
    probe = probe / (images.shape[2] * images.shape[3]) ** 0.5
    (grad,) = torch.autograd.grad((images * probe).sum(), ws, create_graph=True)
    lengths = grad.square().sum(2).mean(1).sqrt()
    new_mean = pl_mean.lerp(lengths.mean().detach(), decay)
    return {"g_pl": weight * interval * (lengths - new_mean).square().mean()}, new_mean


def latent_direction_relation(student_feats: dict, teacher_feats: dict, names, batch: int, weight: float) -> dict[str, torch.Tensor]:
    """StyleKD's latent-direction relation loss. The first `batch` rows of each feature map come from
    w, the next `batch` from w moved along random directions. Within each network, the cosine
    similarities between original i and moved j form a (batch x batch) matrix; each student row, as a
    softmax distribution, is pulled to the teacher's with KL divergence. Channel counts may differ."""
    total = 0
    for name in names:
        rel = []
        for feats in (student_feats, teacher_feats):
            f = feats[name].flatten(1)
            rel.append(F.cosine_similarity(f[:batch, None], f[None, batch:], dim=2))
        total = total + F.kl_div(F.log_softmax(rel[0], 1), F.softmax(rel[1].detach(), 1), reduction="batchmean")
    return {"g_relation": weight * total}
