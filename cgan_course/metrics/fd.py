"""The Fréchet distance between two Gaussian fits, and the running mean and covariance of a
feature stream (float64, so 50,000 x 2,048 features sum without losing digits).

    FD = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import linalg

from ..errors import CourseError

# ----------------------------------------------------------------------------------------------
# The Fréchet distance


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6, method: str = "sqrtm") -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2): means ``[d]``, covariances ``[d, d]``.

    ``||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 @ sigma2))``, computed in float64.

    ``method="sqrtm"`` (default) is pytorch-fid's computation: ``scipy.linalg.sqrtm`` of the
    product; when the product is near-singular (sqrtm not finite) ``eps * I`` is added to both
    covariances; round-off leaves a tiny imaginary part, which is dropped (a large one means the
    inputs are not covariance matrices, and raises ValueError). ``method="eigh"`` gives the same
    trace from two symmetric eigendecompositions, Tr sqrtm(S1 S2) = sum sqrt(eig(A S2 A)) with
    A = S1^(1/2): symmetric eigensolvers are much cheaper than sqrtm's Schur decomposition of a
    non-symmetric matrix: at d = 256 about 3x faster for full-rank covariances and 25x for the
    singular ones of fewer samples than dimensions, and far more at d = 2048 (Inception); the two
    agree to about 1e-8 relative. ``method="auto"`` (what the scores use) is eigh. Non-finite inputs (a diverged generator) raise at once: sqrtm would
    spend minutes on a NaN matrix.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0],) * 2:
        raise CourseError(f"shapes do not match: mu1 {mu1.shape}, sigma1 {sigma1.shape}, mu2 {mu2.shape}, "
                         f"sigma2 {sigma2.shape}; both sides need the same feature extractor (same d).")
    for name, a in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(a).all():
            raise CourseError(f"{name} has {int((~np.isfinite(a)).sum())} NaN/inf entries: the statistics come "
                              "from non-finite features (a diverged generator?); recompute them from finite ones.")
    if method == "auto":
        method = "eigh"
    diff = mu1 - mu2
    if method == "eigh":
        return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * _trace_sqrt_product(sigma1, sigma2))
    if method != "sqrtm":
        raise CourseError(f"method must be 'sqrtm', 'eigh' or 'auto', got {method!r}")
    with warnings.catch_warnings():  # singular products are expected (few samples); handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():  # singular product (e.g. fewer samples than dimensions)
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise CourseError(f"sqrtm(sigma1 @ sigma2) has a large imaginary part "
                             f"({np.abs(covmean.imag).max():.3g}): the covariances are not positive "
                             "semi-definite. Pass covariance matrices (e.g. RunningStats.cov).")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr sqrtm(S1 S2) for PSD S1, S2: S1 S2 is similar to A S2 A (A = S1^(1/2)), a PSD matrix,
    so its eigenvalues are real and >= 0 and the trace of the root is the sum of their roots."""
    w, v = np.linalg.eigh(sigma1)
    if w.min() < -1e-6 * max(1.0, abs(w.max())):
        raise CourseError(f"sigma1 has a negative eigenvalue ({w.min():.3g}): not a covariance matrix.")
    a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # S1^(1/2)
    mu = np.linalg.eigvalsh(a @ sigma2 @ a)
    if mu.min() < -1e-6 * max(1.0, abs(mu.max())):
        raise CourseError(f"sigma2 is not positive semi-definite (eigenvalue {mu.min():.3g} of A S2 A).")
    return float(np.sqrt(np.clip(mu, 0, None)).sum())


class RunningStats:
    """Streaming mean and covariance of ``[N, dim]`` features in float64 (Chan et al.'s merge).

    ``update`` takes one batch at a time, so 50,000 Inception features (400 MB) never sit in
    memory together. ``cov`` is the unbiased estimate, like ``np.cov(x, rowvar=False)``.
    """

    def __init__(self, dim: int):
        self.dim = dim
        self.count = 0
        self._mean = np.zeros(dim)
        self._m2 = np.zeros((dim, dim))  # sum of outer products of centred features

    def update(self, features: torch.Tensor | np.ndarray) -> "RunningStats":
        x = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else np.asarray(features, np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise CourseError(f"features must be [N, {self.dim}], got {list(x.shape)}")
        bad = int((~np.isfinite(x).all(1)).sum())
        if bad:  # one NaN row would turn every statistic, and the FD, into NaN
            raise CourseError(f"{bad} of {x.shape[0]} feature rows contain NaN or inf (a diverged generator or "
                              "extractor?): the statistics need finite features; score finite samples.")
        n_b = x.shape[0]
        if n_b == 0:
            return self
        mean_b = x.mean(0)
        xc = x - mean_b
        n = self.count + n_b
        delta = mean_b - self._mean
        self._m2 += xc.T @ xc + np.outer(delta, delta) * (self.count * n_b / n)
        self._mean += delta * (n_b / n)
        self.count = n
        return self

    @property
    def mean(self) -> np.ndarray:
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        if self.count < 2:
            raise CourseError(f"a covariance needs at least 2 samples, got {self.count}")
        return self._m2 / (self.count - 1)
