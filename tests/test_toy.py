"""GAN theory checked with numbers, and the 2-D toy: conditioning on the mode fixes coverage."""
import math

import numpy as np
import pytest
import torch

from cgan_course.toy import (MLPDiscriminator, MLPGenerator, ToyConfig, gaussian_pdf, generator_loss_gradients,
                             js_divergence, mode_coverage, optimal_discriminator, ring_centers, sample_mixture,
                             train_toy, value_function)

X = np.linspace(-15, 15, 60001)  # wide and fine enough for the trapezoid rule to be exact to ~1e-9


@pytest.mark.parametrize("mean_g, std_g", [(2.0, 0.8), (0.5, 1.5), (6.0, 1.0), (0.0, 1.0)])
def test_optimal_discriminator_gives_minus_log4_plus_2jsd(mean_g, std_g):
    p_data, p_g = gaussian_pdf(X, 0.0, 1.0), gaussian_pdf(X, mean_g, std_g)
    d_star = optimal_discriminator(p_data, p_g)
    jsd = js_divergence(p_data, p_g, X)
    assert 0.0 <= jsd <= math.log(2) + 1e-9
    assert value_function(d_star, p_data, p_g, X) == pytest.approx(-math.log(4) + 2 * jsd, abs=1e-6)


def test_jsd_is_zero_for_equal_and_log2_for_disjoint_densities():
    p = gaussian_pdf(X, 0.0, 1.0)
    assert js_divergence(p, p, X) == pytest.approx(0.0, abs=1e-9)
    assert js_divergence(p, gaussian_pdf(X, 12.0, 0.5), X) == pytest.approx(math.log(2), abs=1e-6)
    # p_g = p_data: D* = 1/2 everywhere and V(D*, G) = -log 4, the value of the game at its optimum
    assert np.allclose(optimal_discriminator(p, p), 0.5)
    assert value_function(optimal_discriminator(p, p), p, p, X) == pytest.approx(-math.log(4), abs=1e-6)


def test_optimal_discriminator_beats_every_other_discriminator():
    p_data, p_g = gaussian_pdf(X, 0.0, 1.0), gaussian_pdf(X, 1.5, 1.2)
    d_star = optimal_discriminator(p_data, p_g)
    v_star = value_function(d_star, p_data, p_g, X)
    rng = np.random.default_rng(0)
    for _ in range(5):  # smooth perturbations of D*, kept inside (0, 1)
        bump = 0.2 * np.sin(rng.uniform(0.2, 2.0) * X + rng.uniform(0, 6))
        d = np.clip(d_star + bump * d_star * (1 - d_star), 1e-9, 1 - 1e-9)
        assert value_function(d, p_data, p_g, X) < v_star
    # the common mistake: a "D*" without p_g in the denominator is not a probability ratio
    wrong = np.clip(p_data / p_data.max(), 1e-9, 1 - 1e-9)
    assert value_function(wrong, p_data, p_g, X) < v_star


def test_generator_gradients_match_the_closed_forms():
    logits = torch.linspace(-8, 8, 33)
    d = torch.sigmoid(logits)
    grads = generator_loss_gradients(logits)
    assert torch.allclose(grads["minimax"], -d, atol=1e-6)  # d/dl log(1 - D) = -D
    assert torch.allclose(grads["nonsaturating"], -(1 - d), atol=1e-6)  # d/dl -log D = -(1 - D)
    # D rejects the fake (logit -8, D ~ 3e-4): the minimax gradient has all but vanished
    assert grads["minimax"][0].abs() < 1e-3 < 0.99 < grads["nonsaturating"][0].abs()


def test_mixture_sampler_and_coverage_metric():
    centers = ring_centers(8, 2.0)
    assert centers.shape == (8, 2) and torch.allclose(centers.norm(dim=1), torch.full((8,), 2.0))
    x, y = sample_mixture(4000, centers, 0.05, torch.Generator().manual_seed(0))
    assert x.shape == (4000, 2) and y.shape == (4000,) and y.dtype == torch.int64
    full = mode_coverage(x, centers, 0.05)
    assert full["modes_covered"] == 8 and full["high_quality"] > 0.98
    collapsed = mode_coverage(x[y == 3], centers, 0.05)  # every sample on one mode
    assert collapsed["modes_covered"] == 1 and collapsed["per_mode"][3] == pytest.approx(collapsed["high_quality"])
    far = mode_coverage(torch.zeros(100, 2), centers, 0.05)  # the ring's centre: near no mode
    assert far["modes_covered"] == 0 and far["high_quality"] == 0.0


def test_mlp_shapes_and_label_check():
    G, D = MLPGenerator(z_dim=4, num_classes=8, hidden=16), MLPDiscriminator(num_classes=8, hidden=16)
    z, y = torch.randn(5, 4), torch.arange(5)
    assert G(z, y).shape == (5, 2) and D(G(z, y), y).shape == (5,)
    with pytest.raises(ValueError, match=r"y must be \[B\]=\[5\]"):
        G(z, None)
    with pytest.raises(ValueError, match=r"z must be \[B, 4\]"):
        G(torch.randn(5, 3), y)


def test_conditioning_fixes_mode_coverage():
    # same short budget (~2 s each on one CPU thread): the conditional GAN places samples on all
    # 8 modes, the unconditional one is still collapsed onto at most a few
    short = dict(steps=600, batch_size=128, n_frames=1, n_eval=800, seed=0)
    cond = train_toy(ToyConfig(conditional=True, **short))
    uncond = train_toy(ToyConfig(conditional=False, **short))
    m_cond = mode_coverage(cond.frames[-1][1], cond.centers, 0.05)
    m_uncond = mode_coverage(uncond.frames[-1][1], uncond.centers, 0.05)
    assert m_cond["modes_covered"] == 8 and m_cond["high_quality"] > 0.8
    assert m_uncond["modes_covered"] <= 4
    assert [s for s, _ in cond.frames] == [0, 600]


def test_toy_training_is_deterministic_and_keeps_global_rng():
    cfg = ToyConfig(conditional=True, steps=20, batch_size=32, n_frames=2, n_eval=16, seed=3)
    torch.manual_seed(123)
    before = torch.randn(3)
    torch.manual_seed(123)
    a, b = train_toy(cfg), train_toy(cfg)
    assert torch.equal(torch.randn(3), before)  # training did not consume the global RNG
    assert all(torch.equal(fa, fb) for (_, fa), (_, fb) in zip(a.frames, b.frames))
    assert [s for s, _ in a.frames] == [0, 10, 20]
