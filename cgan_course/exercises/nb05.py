"""Notebook 05 (the latent space): the checks of its exercises.
"""
from __future__ import annotations

import math

from .core import Feedback, _close, _exercise, _number

# ----------------------------------------------------------------------------------------------
# 05 · The latent space


def chi_mean_std(d: int) -> tuple[float, float]:
    """Mean and standard deviation of ||z|| for z ~ N(0, I_d) (a chi distribution with d degrees)."""
    mean = math.sqrt(2) * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))
    return mean, math.sqrt(max(d - mean ** 2, 0.0))


def truncated_variance(tau: float) -> float:
    """Variance of N(0, 1) truncated to [-tau, tau]: 1 - 2 tau phi(tau) / (2 Phi(tau) - 1)."""
    phi = math.exp(-tau ** 2 / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(tau / math.sqrt(2))  # 2 Phi(tau) - 1
    return 1 - 2 * tau * phi / mass


@_exercise("05.1", "the norm shell in 8 and 512 dimensions")
def check_latent_shell(measurements: dict, n: int) -> None:
    """``measurements``: {z_dim: (mean ||z||, std ||z||, mean ||lerp midpoint||)} over ``n`` pairs of
    independent latents, for z_dim 8 and 512 at least."""
    fb = Feedback("05.1")
    if not fb.expect({8, 512} <= set(measurements), "z_dim 8 and 512 measured",
                     f"measure z_dim 8 and 512 at least, got {sorted(measurements)}"):
        fb.done()
    for d, values in sorted(measurements.items()):
        try:
            mean, std, mid = (float(v) for v in values)
        except (TypeError, ValueError):
            fb.wrong(f"z_dim {d}: give three numbers (mean norm, std of the norms, mean midpoint norm)")
            continue
        m, s = chi_mean_std(d)
        se = s / math.sqrt(n)  # standard error of a mean of n norms
        fb.expect(abs(mean - m) < 5 * se + 1e-3 and abs(std - s) < 5 * s / math.sqrt(2 * n) + 1e-3,
                  f"z_dim {d}: ||z|| = {m:.2f} ± {s:.2f}",
                  f"z_dim {d}: ||z|| should be about {m:.2f} ± {s:.2f}, got {mean:.2f} ± {std:.2f}: "
                  "sample_latents(n, d).norm(dim=1)")
        fb.expect(abs(mid - m / math.sqrt(2)) < 5 * se / math.sqrt(2) + 1e-3,
                  f"z_dim {d}: lerp midpoints {m / math.sqrt(2):.2f} (x 1/sqrt 2)",
                  f"z_dim {d}: the midpoints (z0 + z1) / 2 should have norm about {m / math.sqrt(2):.2f}, "
                  f"got {mid:.2f}")
        fb.note(f"z_dim {d}: the shell is {s / m:.0%} of its radius thick; the lerp midpoint sits "
                f"{(m - m / math.sqrt(2)) / s:.1f} shell-widths inside it")
    fb.note("the midpoint ratio is 1/sqrt 2 in every dimension, but only in high dimension is that far "
            "outside the region the latents come from")
    fb.done()


@_exercise("05.2", "truncation moves the latents onto a smaller shell")
def check_truncated_norms(norms: dict, z_dim: int = 128) -> None:
    """``norms``: {tau: mean ||z|| of sample_latents(n, z_dim, seed, truncation=tau)}; include a tau <= 1."""
    fb = Feedback("05.2")
    if not fb.expect(any(float(t) <= 1 for t in norms), "a truncation <= 1 measured",
                     f"include at least one truncation <= 1, got {sorted(norms)}"):
        fb.done()
    full = chi_mean_std(z_dim)[0]
    for tau, value in sorted(norms.items()):
        radius = math.sqrt(z_dim * truncated_variance(float(tau)))
        got = _number(fb, f"the norm at truncation {tau}", value)
        if got is None:
            continue
        if _close(got, full, 0.02) and not _close(got, radius, 0.02):
            fb.wrong(f"truncation {tau}: {got:.2f} is the untruncated shell: pass truncation={tau} to sample_latents")
            continue
        fb.expect(_close(got, radius, 0.02), f"truncation {tau}: radius {radius:.2f} = {radius / full:.0%} of sqrt(d)",
                  f"truncation {tau}: expected about sqrt(d x Var) = {radius:.2f}, got {got:.2f}")
    fb.note("G was trained on latents of norm about sqrt(d): truncated latents lie inside that shell, in a "
            "region it never saw; truncation helps only where G behaves smoothly there")
    fb.done()
