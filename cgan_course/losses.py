"""GAN losses on discriminator logits. ``d_real = D(x, y)``, ``d_fake = D(G(z, y'), y')``, both [B].

All are written with softplus / relu on logits, never log(sigmoid(.)), which underflows to -inf
for confident discriminators. softplus(t) = log(1 + e^t), so -log sigmoid(t) = softplus(-t) and
-log(1 - sigmoid(t)) = softplus(t).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import CourseError


def d_loss_bce(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator side of the minimax game: -E[log D(x)] - E[log(1 - D(G(z)))]."""
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def g_loss_nonsaturating(d_fake: torch.Tensor) -> torch.Tensor:
    """-E[log D(G(z))]: same fixed point as minimising log(1 - D(G(z))), but strong gradients
    when D confidently rejects the fakes, which is exactly the situation early in training."""
    return F.softplus(-d_fake).mean()


def g_loss_minimax(d_fake: torch.Tensor) -> torch.Tensor:
    """E[log(1 - D(G(z)))], the generator's term of the original minimax objective (to minimise).
    Shown in notebook 01 for its vanishing gradient; not used for training."""
    return -F.softplus(d_fake).mean()


def d_loss_hinge(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Hinge loss: D stops pushing once a sample is confidently classified (margin 1),
    which keeps its logits bounded and its gradients informative."""
    return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()


def g_loss_hinge(d_fake: torch.Tensor) -> torch.Tensor:
    """-E[D(G(z))]: the generator raises the critic's score of its samples."""
    return -d_fake.mean()


LOSSES = {  # name -> (discriminator loss, generator loss)
    "bce": (d_loss_bce, g_loss_nonsaturating),
    "hinge": (d_loss_hinge, g_loss_hinge),
}


# ----------------------------------------------------------------------------------------------
# Gradient penalties: GANLoss(penalty=...) adds one to D's loss (notebook 03, section 6)


def has_batchnorm(D) -> bool:
    """Whether D has a BatchNorm anywhere: then its scores of a batch depend on each other."""
    return isinstance(D, torch.nn.Module) and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                                                  for m in D.modules())


def _per_sample(D) -> None:
    """A gradient penalty needs each sample's score to depend on that sample alone: BatchNorm in D
    couples the batch (and its extra forward pass would move the running statistics)."""
    if has_batchnorm(D):
        raise CourseError("a gradient penalty needs a D without BatchNorm (it couples the samples of a batch; "
                          "Gulrajani et al. 2017 advise against it): use the projection D (spectral norm, no BN)")


def r1_penalty(D, x_real: torch.Tensor, y_real: torch.Tensor | None, x_fake=None, y_fake=None,
               gamma: float = 10.0) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): ``gamma / 2 * E ||grad_x D(x, y)||^2`` on real images only. Not a
    Lipschitz constraint: it stops D from building a slope on the data, which damps the oscillation
    around p_g = p_data and makes that equilibrium locally convergent. gamma depends on the data
    (10 in Mescheder et al.'s high-resolution sets; StyleGAN2-ADA used 0.01 on CIFAR-10). The images
    are the un-augmented ones the loss object passes; StyleGAN2-ADA penalises augmented reals.
    fp32 or bf16: under fp16 the gradient of an unscaled output can underflow."""
    _per_sample(D)
    x = x_real.detach().requires_grad_(True)  # (B, C, H, W)
    (grad,) = torch.autograd.grad(D(x, y_real).sum(), x, create_graph=True)  # graph kept: D learns from it
    return gamma / 2 * grad.flatten(1).square().sum(1).mean()


def gradient_penalty(D, x_real: torch.Tensor, y_real: torch.Tensor | None, x_fake: torch.Tensor,
                     y_fake=None, weight: float = 10.0) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): ``weight * E (||grad_x D(x_hat, y)|| - 1)^2`` at random points
    ``x_hat`` between real and fake images, a soft version of "D is 1-Lipschitz" where it matters.
    The interpolates carry the real labels: with ``fake_labels="real"`` they are the fakes' too, so each
    line stays inside a class (use it with this penalty). fp32 or bf16, as for ``r1_penalty``."""
    _per_sample(D)
    eps = torch.rand(x_real.shape[0], 1, 1, 1, device=x_real.device, dtype=x_real.dtype)  # (B, 1, 1, 1)
    x_hat = (eps * x_real.detach() + (1 - eps) * x_fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat, y_real).sum(), x_hat, create_graph=True)
    return weight * (grad.flatten(1).norm(dim=1) - 1).square().mean()
