"""Reference solutions to notebook 01's exercises (GAN theory).

``solve_k(fast)`` returns the keyword arguments of exercise k's check,
``cgan_course.exercises.EXERCISES["01.k"].check``; ``fast=True`` shrinks every run so the test
suite stays quick. ``python solutions/ex01.py`` checks them all at the notebook's sizes.
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from cgan_course import exercises, losses, toy

STEPS = 2000  # notebook 01's toy training length in classroom mode


def solve_1(fast: bool = False) -> dict:
    result = toy.train_toy(toy.ToyConfig(conditional=False, steps=60 if fast else 3 * STEPS))
    coverage = [toy.mode_coverage(points, result.centers, 0.05)["modes_covered"] for _, points in result.frames]
    return dict(result=result, coverage=coverage, ever_all_modes=max(coverage) == len(result.centers))


def solve_2(fast: bool = False) -> dict:
    result = toy.train_toy(toy.ToyConfig(generator_loss="minimax", steps=60 if fast else STEPS))
    with torch.no_grad():
        d_fake = torch.sigmoid(result.D(result.frames[-1][1])).mean().item()  # logits -> probabilities
    return dict(result=result, d_fake_mean=d_fake)


def solve_3(fast: bool = False) -> dict:
    x = np.linspace(-12, 12, 24001)  # wide enough for both densities
    p_data = toy.gaussian_pdf(x, 0.0, 1.0)
    p_g = 0.5 * toy.gaussian_pdf(x, -2.0, 1.0) + 0.5 * toy.gaussian_pdf(x, 2.0, 1.0)
    d_star = toy.optimal_discriminator(p_data, p_g)  # plot it: 1/2 where the densities cross
    return dict(v_star=toy.value_function(d_star, p_data, p_g, x), jsd=toy.js_divergence(p_data, p_g, x))


def train_coarse(steps: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """toy.training_loop with the label y // 2: 4 classes of 2 modes. Returns (samples [N, 2], labels [N])."""
    cfg = toy.ToyConfig(conditional=True, steps=steps, seed=seed)
    groups = cfg.n_modes // 2
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G, D = toy.MLPGenerator(cfg.z_dim, groups, cfg.hidden), toy.MLPDiscriminator(groups, cfg.hidden)
        opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        centers = toy.ring_centers(cfg.n_modes, cfg.radius)
        data_rng = torch.Generator().manual_seed(seed + 1)
        for _ in range(steps):
            x_real, y = toy.sample_mixture(cfg.batch_size, centers, cfg.sigma, data_rng)
            y = y // 2  # the coarse label: both players see only which pair of modes
            x_fake = G(torch.randn(cfg.batch_size, cfg.z_dim), y)
            d_loss = losses.d_loss_bce(D(x_real, y), D(x_fake.detach(), y))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            g_loss = losses.g_loss_nonsaturating(D(x_fake, y))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
        labels = toy.balanced_labels(cfg.n_eval, groups)
        with torch.no_grad():
            samples = G(torch.randn(cfg.n_eval, cfg.z_dim), labels)
    return samples, labels


def solve_4(fast: bool = False) -> dict:
    samples, labels = train_coarse(300 if fast else STEPS)
    return dict(samples=samples, labels=labels, expected="a")  # one mode per class: collapse inside a class


def solve_5(fast: bool = False) -> dict:
    return dict(answer="a")


# ----------------------------------------------------------------------------------------------
# Build exercise A: what the learner writes in section 1 (cgan_course.build, "01.A")


def build_A():
    import torch.nn.functional as F

    def d_loss(d_real, d_fake):  # -E[log sigma(l_real)] - E[log(1 - sigma(l_fake))]
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()

    def g_loss_minimax(d_fake):  # E[log(1 - sigma(l_fake))] = -E[softplus(l_fake)]
        return -F.softplus(d_fake).mean()

    def g_loss_nonsaturating(d_fake):  # -E[log sigma(l_fake)]
        return F.softplus(-d_fake).mean()

    return d_loss, g_loss_minimax, g_loss_nonsaturating


if __name__ == "__main__":
    exercises.check_solutions(sys.modules[__name__], "01")
