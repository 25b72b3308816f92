"""Reference solutions to notebook 03's exercises (conditional architectures).

``solve_k(fast)`` returns the keyword arguments of exercise k's check,
``cgan_course.exercises.EXERCISES["03.k"].check``. ``python solutions/ex03.py`` checks them all.
"""
from __future__ import annotations

import math
import sys

import torch
import torch.nn as nn

from cgan_course import exercises
from cgan_course.models import ModelConfig, build_generator, count_parameters


def solve_1(fast: bool = False) -> dict:
    g64, g32 = build_generator(ModelConfig(image_size=64)), build_generator(ModelConfig())
    return dict(n_blocks=len(g64.blocks.blocks), extra_params=count_parameters(g64) - count_parameters(g32))


class BiasHead(nn.Module):
    """logit = w^T phi + b_y: the class shifts the score, whatever the image."""

    def __init__(self, features: int, num_classes: int):
        super().__init__()
        self.linear = nn.Linear(features, 1)
        self.bias = nn.Embedding(num_classes, 1)

    def forward(self, phi: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.linear(phi).flatten() + self.bias(y).flatten()  # (B, 1) + (B, 1) -> (B,)


def solve_2(fast: bool = False) -> dict:
    return dict(head_cls=BiasHead, detects="a")  # a class-wide shift, no image-class match


def spectral_norm_estimate(W: torch.Tensor, iterations: int = 100) -> float:
    """sigma(W) by power iteration: alternate u = W v / ||W v||, v = W^T u / ||W^T u||."""
    v = torch.randn(W.shape[1], generator=torch.Generator().manual_seed(0))
    for _ in range(iterations):
        u = nn.functional.normalize(W @ v, dim=0)
        v = nn.functional.normalize(W.T @ u, dim=0)
    return (u @ W @ v).item()


def solve_3(fast: bool = False) -> dict:
    return dict(sigma_fn=spectral_norm_estimate)


def solve_4(fast: bool = False) -> dict:
    cond = build_generator(ModelConfig(num_classes=100))
    return dict(answer=count_parameters(cond) - count_parameters(build_generator(ModelConfig(num_classes=0))))


def solve_5(fast: bool = False) -> dict:
    return dict(steps=round(math.log(0.5) / math.log(0.999)))  # 0.999^k = 1/2


def solve_6(fast: bool = False) -> dict:
    # d_real = [2.0, 0.5, -1.0]: only 2.0 is past the margin (>= 1); d_fake = [-3.0, 0.0, 1.0]: only -3.0 (<= -1)
    return dict(real=[0], fake=[0])


# ----------------------------------------------------------------------------------------------
# Build exercises A and B: what the learner writes in section 2 (cgan_course.build, "03.A", "03.B")


def build_A():
    import torch.nn as nn

    class ConditionalBatchNorm2d(nn.Module):
        def __init__(self, channels, num_classes):
            super().__init__()
            self.bn = nn.BatchNorm2d(channels, affine=False)  # normalises; keeps the running statistics
            self.gamma = nn.Embedding(num_classes, channels)
            self.beta = nn.Embedding(num_classes, channels)
            nn.init.ones_(self.gamma.weight)
            nn.init.zeros_(self.beta.weight)

        def forward(self, x, y):  # x [B, C, H, W], y [B]
            return self.gamma(y)[:, :, None, None] * self.bn(x) + self.beta(y)[:, :, None, None]

    return (ConditionalBatchNorm2d,)


def build_B():
    def projection_logit(phi, y, linear, embed):  # phi [B, F], y [B] -> [B]
        return linear(phi).squeeze(1) + (embed(y) * phi).sum(dim=1)

    return (projection_logit,)


if __name__ == "__main__":
    exercises.check_solutions(sys.modules[__name__], "03")
