"""Sampling: slerp's path and norm, the truncation bound, class grids, BatchNorm recalibration."""
import math

import pytest
import torch
import torch.nn as nn

from cgan_course import sampling
from cgan_course.models import ModelConfig, build_generator
from cgan_course.sampling import lerp, recalibrate_batchnorm, sample_grid, sample_latents, slerp


def angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angles between the rows of ``a`` [T, d] and the vector ``b`` [d] (float64; the chord form
    is exact near 0 and pi, where arccos is not)."""
    a = a.double() / a.double().norm(dim=1, keepdim=True)
    b = b.double() / b.double().norm()
    return 2 * torch.atan2((a - b).norm(dim=1), (a + b).norm(dim=1))


@pytest.fixture
def ends():
    z = sample_latents(2, 128, seed=1)
    return z[0], 1.08 * z[1]  # norms about 11.2 and 12.1, as in notebook 05


def test_slerp_starts_and_ends_at_the_latents(ends):
    z0, z1 = ends
    path = slerp(z0, z1, torch.tensor([0.0, 1.0]))
    assert path.dtype == z0.dtype and path.shape == (2, 128)
    assert torch.allclose(path[0], z0, atol=1e-5) and torch.allclose(path[1], z1, atol=1e-5)


def test_slerp_moves_the_direction_on_the_sphere_and_the_norm_linearly(ends):
    """The direction turns at constant speed along the great circle; the norm goes straight from
    |z0| to |z1|, so it never dips like lerp's (which drops by about 1/sqrt(2) at the middle)."""
    z0, z1 = ends
    t = torch.linspace(0, 1, 21)
    path = slerp(z0, z1, t)
    expected_norm = (1 - t) * z0.norm() + t * z1.norm()
    assert torch.allclose(path.norm(dim=1), expected_norm, rtol=1e-5)
    omega = angle(z1[None], z0)[0]
    assert torch.allclose(angle(path, z0), t.double() * omega, atol=1e-4)  # constant angular speed
    assert torch.allclose(angle(path, z1), (1 - t.double()) * omega, atol=1e-4)  # on the z0-z1 great circle
    assert lerp(z0, z1, torch.tensor([0.5])).norm() < 0.8 * path[10].norm()  # the dip slerp avoids


def test_slerp_keeps_the_norm_between_equal_norm_latents(ends):
    z0, z1 = ends
    z1 = z1 * z0.norm() / z1.norm()
    assert torch.allclose(slerp(z0, z1, torch.linspace(0, 1, 11)).norm(dim=1), z0.norm().expand(11), rtol=1e-5)


@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_slerp_between_opposite_latents_takes_a_fixed_half_circle(ends, scale):
    """z and -z: every half great circle joins them; slerp takes one, always the same, instead of
    passing through the origin (the old midpoint had norm 0)."""
    z0 = ends[0]
    t = torch.linspace(0, 1, 9)
    path = slerp(z0, -scale * z0, t)
    assert torch.allclose(path.norm(dim=1), (1 - t + scale * t) * z0.norm(), rtol=1e-5)
    assert torch.allclose(angle(path, z0), math.pi * t.double(), atol=1e-4)
    assert abs(float(path[4] @ z0)) < 1e-3 * float(path[4].norm() * z0.norm())  # the midpoint is at 90 degrees
    assert torch.allclose(path[-1], -scale * z0, atol=1e-5)
    assert torch.equal(path, slerp(z0, -scale * z0, t))


def test_slerp_near_opposite_latents_keeps_the_norm(ends):
    """Within 1e-5 rad of opposite, arccos in float32 lost the angle (midpoint norm 0.2 of 11.2)."""
    z0 = ends[0]
    nudge = torch.randn(128, generator=torch.Generator().manual_seed(0)) * 1e-5
    mid = slerp(z0, -z0 + nudge, torch.tensor([0.5]))[0]
    assert math.isclose(mid.norm().item(), z0.norm().item(), rel_tol=1e-4)


@pytest.mark.parametrize("which", [0, 1])
def test_slerp_with_an_end_at_the_origin_is_the_straight_ray(ends, which):
    """The origin has no direction, so the great circle is undefined: the path is lerp's ray
    (it used to be NaN)."""
    pair = [ends[0], ends[1]]
    pair[which] = torch.zeros(128)
    t = torch.linspace(0, 1, 5)
    path = slerp(*pair, t)
    assert torch.isfinite(path).all() and torch.allclose(path, lerp(*pair, t), atol=1e-6)


def test_slerp_between_parallel_latents_is_lerp(ends):
    z0 = ends[0]
    t = torch.linspace(0, 1, 5)
    assert torch.allclose(slerp(z0, 3 * z0, t), lerp(z0, 3 * z0, t), atol=1e-5)
    assert torch.allclose(slerp(z0, z0, t), z0.expand(5, -1), atol=1e-6)


@pytest.mark.parametrize("truncation", [2.0, 1.0, 0.5, 0.05, 1e-5])
def test_truncation_bounds_every_coordinate_in_bounded_time(monkeypatch, truncation):
    """Every |z_i| <= t, with a bounded number of draws: at t = 1e-5 the old resampling loop ran
    for ~10^5 rounds (this counter stops it after 300 draws instead of hanging)."""
    calls = {"randn": 0}
    randn = torch.randn

    def counted(*args, **kwargs):
        calls["randn"] += 1
        if calls["randn"] > 300:
            raise RuntimeError("more than 300 draws: resampling is not bounded")
        return randn(*args, **kwargs)

    monkeypatch.setattr(torch, "randn", counted)
    z = sample_latents(64, 128, seed=0, truncation=truncation)
    assert z.shape == (64, 128) and z.dtype == torch.float32
    assert (z.abs() <= truncation).all()
    assert calls["randn"] <= sampling.RESAMPLE_ROUNDS + 1


@pytest.mark.parametrize("fallback_only", [False, True])
@pytest.mark.parametrize("truncation", [1.0, 0.05])
def test_truncated_latents_follow_the_truncated_normal(monkeypatch, fallback_only, truncation):
    """Resampling and its bounded-time fallback (alone: every coordinate by inverse CDF) draw the
    same distribution: N(0, 1) restricted to [-t, t], of variance 1 - 2 t phi(t) / (2 Phi(t) - 1)."""
    if fallback_only:
        monkeypatch.setattr(sampling, "RESAMPLE_ROUNDS", 0)
    z = sample_latents(2000, 32, seed=0, truncation=truncation).double()
    phi = math.exp(-truncation ** 2 / 2) / math.sqrt(2 * math.pi)
    variance = 1 - 2 * truncation * phi / math.erf(truncation / math.sqrt(2))
    assert (z.abs() <= truncation).all()
    assert abs(z.mean().item()) < 0.01 * truncation
    assert math.isclose(z.var().item(), variance, rel_tol=0.02)


@pytest.mark.parametrize("truncation", [1.0, 0.5])
def test_usual_truncations_keep_their_draws(truncation):
    """Below RESAMPLE_ROUNDS rounds the draws are the plain resampling loop's, so the notebooks'
    truncated pictures are unchanged by the bound."""
    g = torch.Generator().manual_seed(3)
    z = torch.randn(16, 128, generator=g)
    while (mask := z.abs() > truncation).any():
        z[mask] = torch.randn(int(mask.sum()), generator=g)
    assert torch.equal(sample_latents(16, 128, seed=3, truncation=truncation), z)


class Recorder(nn.Module):
    """A stand-in G that remembers its inputs and draws blank images."""
    z_dim, num_classes = 4, 10

    def forward(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        self.z, self.y = z.clone(), None if y is None else y.clone()
        return torch.zeros(z.shape[0], 3, 2, 2)


def test_each_grid_column_shares_one_latent():
    G = Recorder()
    images = sample_grid(G, per_class=3, seed=0, classes=[2, 5, 7])
    assert images.shape == (9, 3, 2, 2)
    assert G.y.tolist() == [2, 2, 2, 5, 5, 5, 7, 7, 7]
    z = G.z.view(3, 3, 4)  # (rows, columns, z_dim)
    assert torch.equal(z[0], z[1]) and torch.equal(z[0], z[2])  # every row: the same three latents
    assert not torch.equal(z[0, 0], z[0, 1])  # columns differ
    assert torch.equal(z[0], sample_latents(3, 4, seed=0))


def test_unconditional_grid_draws_a_fresh_latent_per_cell():
    G = Recorder()
    G.num_classes = 0
    sample_grid(G, per_class=3, seed=0)
    assert G.y is None and G.z.shape == (30, 4)
    assert torch.equal(G.z, sample_latents(30, 4, seed=0))


def test_recalibrate_batchnorm_restores_momentum_and_mode():
    torch.manual_seed(0)
    G = build_generator(ModelConfig(g_width=8, z_dim=16)).eval()
    bns = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for i, bn in enumerate(bns):
        bn.momentum = None if i == 0 else 0.3  # anything but the default 0.1
    recalibrate_batchnorm(G, batches=2, batch_size=8)
    assert [bn.momentum for bn in bns] == [None] + [0.3] * (len(bns) - 1)
    assert not G.training
    assert all(int(bn.num_batches_tracked) == 2 for bn in bns)  # both batches counted from a reset
    assert not torch.equal(bns[-1].running_mean, torch.zeros_like(bns[-1].running_mean))


def test_recalibrate_batchnorm_restores_momentum_when_G_fails():
    class Failing(nn.Module):
        z_dim, num_classes = 4, 0

        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm1d(4, momentum=0.3)

        def forward(self, z, y):
            self.bn(z)
            raise RuntimeError("out of memory")

    G = Failing().eval()
    with pytest.raises(RuntimeError, match="out of memory"):
        recalibrate_batchnorm(G, batches=2, batch_size=8)
    assert G.bn.momentum == 0.3 and not G.training
