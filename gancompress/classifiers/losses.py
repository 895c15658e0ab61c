"""Classifier distillation losses, each a plain function of logits (or a small module), with its
source. docs/classifier-kd.md gives the formulas.

- `hinton_loss`: alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(y, s)
  (Hinton, Vinyals and Dean 2015). KL is averaged over the batch ("batchmean"), the KL divergence
  proper.
- `logit_mse`: mean squared difference of the logits (Ba and Caruana 2014).
- `LogitDiscriminator`, `discriminator_loss`, `student_adversarial_loss`: a discriminator on the logits (optionally with the
  pooled features) tells the teacher's outputs (real) from the student's (fake), non-saturating GAN
  loss (Xu, Hsu and Huang 2017, "Training shallow and thin networks ... with conditional adversarial
  networks"; KDGAN, Wang et al. 2018).
- `discrepancy`: DFAD's mean absolute difference of the logits, which the generator maximises and
  the student minimises (Fang et al. 2019, "Data-Free Adversarial Distillation").
- `dafl_generator_losses`: DAFL's one-hot, activation and information-entropy terms for the
  generator (Chen et al. 2019, "Data-Free Learning of Student Networks").
- `forward_with_bn_prior`: DeepInversion's feature-statistics prior (Yin et al. 2020, "Dreaming to
  Distill"), which CMI and later data-free methods also use: a generated batch's per-channel mean
  and variance at every BatchNorm layer of the frozen teacher, pulled to the layer's running
  statistics of the real training data.
- `pgd_attack`: L-infinity PGD with a random start (Madry et al. 2018); ARD (Goldblum et al. 2020)
  attacks the student with cross-entropy on the labels and distils the teacher's clean soft labels
  into the student's outputs on the attacked images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(t / T) || softmax(s / T)), averaged over the batch."""
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    p_teacher = F.softmax(teacher_logits / temperature, dim=1)
    return temperature ** 2 * F.kl_div(log_p_student, p_teacher, reduction="batchmean")


def hinton_loss(student_logits, teacher_logits, labels, temperature: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """Soft-label distillation with the hard-label term; labels may be None only when alpha is 1."""
    loss = alpha * soft_kl(student_logits, teacher_logits, temperature) if alpha else student_logits.new_zeros(())
    if alpha < 1:
        if labels is None:
            raise ValueError("alpha < 1 mixes in cross-entropy on labels, and this transfer set has none")
        loss = loss + (1 - alpha) * F.cross_entropy(student_logits, labels)
    return loss


def logit_mse(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(student_logits, teacher_logits)


class LogitDiscriminator(nn.Module):
    """An MLP on a classifier's logits, or on [logits, pooled features] when `feature_dim` is given
    (the student's features are projected to the teacher's width first, so both sides match)."""

    def __init__(self, num_classes: int, hidden: int = 128, feature_dim: int | None = None,
                 student_feature_dim: int | None = None):
        super().__init__()
        self.uses_features = feature_dim is not None
        self.project = (nn.Linear(student_feature_dim, feature_dim, bias=False)
                        if self.uses_features and student_feature_dim != feature_dim else nn.Identity())
        width = num_classes + (feature_dim or 0)
        self.net = nn.Sequential(nn.Linear(width, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, logits: torch.Tensor, features: torch.Tensor | None = None, student: bool = False):
        parts = [logits]
        if self.uses_features:
            parts.append(self.project(features) if student else features)
        return self.net(torch.cat(parts, dim=1)).squeeze(1)


def discriminator_loss(teacher_scores: torch.Tensor, student_scores: torch.Tensor) -> torch.Tensor:
    """Non-saturating GAN loss of the discriminator: the teacher's outputs are real, the student's fake."""
    return F.softplus(-teacher_scores).mean() + F.softplus(student_scores).mean()


def student_adversarial_loss(student_scores: torch.Tensor) -> torch.Tensor:
    """The student's non-saturating term: make the discriminator take its outputs for the teacher's."""
    return F.softplus(-student_scores).mean()


def discrepancy(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """DFAD's loss: mean absolute difference of the logits."""
    return F.l1_loss(student_logits, teacher_logits)


def dafl_generator_losses(teacher_logits: torch.Tensor, teacher_features: torch.Tensor) -> dict[str, torch.Tensor]:
    """DAFL's three generator terms, unweighted: one-hot (CE of the teacher's outputs against their own
    argmax), activation (minus the mean L1 norm of the teacher's features) and information entropy
    (minus the entropy of the batch's mean prediction, so every class is generated)."""
    mean_prediction = F.softmax(teacher_logits, dim=1).mean(0)
    return {
        "one_hot": F.cross_entropy(teacher_logits, teacher_logits.argmax(1)),
        "activation": -teacher_features.abs().mean(),
        "entropy": (mean_prediction * torch.log(mean_prediction + 1e-12)).sum(),
    }


def forward_with_bn_prior(model: nn.Module, images: torch.Tensor):
    """((logits, features), prior) of `model` (in eval mode) on `images`, where prior =
    sum over the BatchNorm2d layers l of ||mean_l(x) - running_mean_l||_2 + ||var_l(x) - running_var_l||_2,
    the statistics of the batch at the layer's input over (N, H, W). Differentiable in `images`."""
    terms = []

    def measure(layer, inputs, output):
        x = inputs[0]
        terms.append(torch.linalg.vector_norm(x.mean(dim=(0, 2, 3)) - layer.running_mean)
                     + torch.linalg.vector_norm(x.var(dim=(0, 2, 3), unbiased=False) - layer.running_var))

    layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not layers:
        raise ValueError("the BatchNorm prior needs a teacher with BatchNorm2d layers (running statistics)")
    handles = [layer.register_forward_hook(measure) for layer in layers]
    try:
        outputs = model(images, return_features=True)
    finally:
        for handle in handles:
            handle.remove()
    return outputs, torch.stack(terms).sum()


def pgd_attack(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, steps: int,
               step_size: float | None = None, generator: torch.Generator | None = None,
               low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    """L-infinity PGD that raises model's cross-entropy on `labels`: a uniform random start in the eps
    ball, `steps` signed-gradient steps of `step_size` (default eps / 4, as ARD), projected onto the
    ball and the image range [low, high]. eps is in the images' own units (for [-1, 1] images, twice
    the [0, 1] pixel value). The model's train/eval mode is left as it is."""
    step_size = eps / 4 if step_size is None else step_size
    noise = torch.rand(images.shape, generator=generator, device="cpu").to(images.device)
    adv = (images + (2 * noise - 1) * eps).clamp(low, high).detach()
    for _ in range(steps):
        adv.requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(adv), labels)
            (grad,) = torch.autograd.grad(loss, [adv])
        adv = adv.detach() + step_size * grad.sign()
        adv = torch.min(torch.max(adv, images - eps), images + eps).clamp(low, high).detach()
    return adv
