"""GAN losses on discriminator logits. ``d_real = D(x, y)``, ``d_fake = D(G(z, y'), y')``, both [B].

All are written with softplus / relu on logits, never log(sigmoid(.)), which underflows to -inf
for confident discriminators. softplus(t) = log(1 + e^t), so -log sigmoid(t) = softplus(-t) and
-log(1 - sigmoid(t)) = softplus(t).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


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
