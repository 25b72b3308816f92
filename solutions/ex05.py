"""Reference solutions to notebook 05's exercises (the latent space: the norm shell, truncation).

``solve_k(fast)`` returns the keyword arguments of exercise k's check,
``cgan_course.exercises.EXERCISES["05.k"].check``. ``python solutions/ex05.py`` checks them all.
"""
from __future__ import annotations

import sys

import torch

from cgan_course import exercises
from cgan_course.sampling import sample_latents


def solve_1(fast: bool = False) -> dict:
    n = 500 if fast else 5000
    measurements = {}
    for d in (8, 128, 512):
        z0, z1 = sample_latents(n, d, seed=0), sample_latents(n, d, seed=1)
        norms, mid = z0.norm(dim=1), (0.5 * (z0 + z1)).norm(dim=1)
        measurements[d] = (norms.mean().item(), norms.std().item(), mid.mean().item())
    return dict(measurements=measurements, n=n)


def solve_2(fast: bool = False) -> dict:
    n = 500 if fast else 5000
    return dict(norms={tau: sample_latents(n, 128, seed=0, truncation=tau).norm(dim=1).mean().item()
                       for tau in (2.0, 1.5, 1.0, 0.5)})


# ----------------------------------------------------------------------------------------------
# Build exercise A (cgan_course.build, "05.A")


def build_A():
    def slerp(z0, z1, t):  # [d], [d], [T] -> [T, d]
        n0, n1 = z0.norm(), z1.norm()
        u0, u1 = z0 / n0, z1 / n1
        omega = torch.arccos((u0 @ u1).clamp(-1, 1))  # the angle between the two directions
        t = t[:, None]
        if omega < 1e-6:  # the same direction: only the norm moves
            direction = u0.expand(len(t), -1)
        else:
            direction = (torch.sin((1 - t) * omega) * u0 + torch.sin(t * omega) * u1) / torch.sin(omega)
        return direction * ((1 - t) * n0 + t * n1)  # the norm moves linearly

    return (slerp,)


if __name__ == "__main__":
    exercises.check_solutions(sys.modules[__name__], "05")
