"""The Kernel Inception Distance (KID; Binkowski et al. 2018, "Demystifying MMD GANs"): the squared
maximum mean discrepancy between two feature clouds under the cubic polynomial kernel
k(x, y) = (x.y / d + 1)^3. Unlike FD it has an unbiased estimator, so a small sample does not
inflate it, and a generator as good as the data scores about 0 (sometimes a little below).
"""
from __future__ import annotations

import torch

from ..errors import CourseError
from ..validate import MAX_SEED, check_int, fail

MAX_SUBSETS = 10_000  # KID's default is 100; more only tightens the mean
MAX_SUBSET_SIZE = 100_000  # a (m, m) float64 kernel matrix at this size is 80 GB: a typo, not a plan


# ----------------------------------------------------------------------------------------------
# Input checks


def _check_rows(name: str, x, min_rows: int) -> torch.Tensor:
    """``x`` as a (N, D) tensor: 2-D or more (images are flattened from dim 1), at least
    ``min_rows`` rows, every entry finite."""
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.is_complex():
        raise fail(name, "a real tensor of shape [N, D] (features) or [N, C, H, W] (images)", x)
    x = x.flatten(1)  # (N, D)
    if x.shape[0] < min_rows or x.shape[1] == 0:
        raise fail(name, f"at least {min_rows} rows of at least 1 value", x,
                   "pass more samples" if x.shape[0] < min_rows else "pass non-empty features")
    bad = int((~torch.isfinite(x).all(dim=1)).sum())
    if bad:  # one NaN row turns every kernel sum, or every distance, into NaN
        raise CourseError(f"{name} has {bad} of {x.shape[0]} rows with NaN or inf (a diverged generator or "
                          "extractor?): pass finite features")
    return x


def _check_same_width(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape[1] != b.shape[1]:
        raise CourseError(f"{name_a} has {a.shape[1]} values per row and {name_b} has {b.shape[1]}: "
                          "compute both with the same feature extractor (or both as flattened pixels)")


# ----------------------------------------------------------------------------------------------
# Kernel Inception Distance


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """KID's kernel k(x, y) = (x.y / d + 1)^3 for rows x [m, d] and y [n, d] -> [m, n]."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def kid_unbiased_mmd2(k_xx: torch.Tensor, k_yy: torch.Tensor, k_xy: torch.Tensor) -> torch.Tensor:
    """The unbiased estimate of MMD^2 from the kernel matrices K_XX [m, m], K_YY [n, n], K_XY [m, n]
    (Gretton et al. 2012, eq. 3):

        sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
            - 2 sum_{i, j} k(x_i, y_j) / (m n)

    The diagonals k(x_i, x_i) are left out (a point compared with itself would bias the
    within-set means upwards); the cross term keeps every pair, as X and Y are independent. For
    m = n this is torch-fidelity's ``mmd2(..., mmd_est="unbiased")`` and clean-fid's
    ``kernel_distance`` subset term. It can be negative when the two sets are alike.
    """
    m, n = k_xx.shape[0], k_yy.shape[0]
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return within_x + within_y - 2 * k_xy.sum() / (m * n)


def kid(features_a: torch.Tensor, features_b: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance between two feature sets [N_a, d] and [N_b, d]: the mean and the
    standard deviation over ``subsets`` random subsets of the unbiased MMD^2 estimate
    (``kid_unbiased_mmd2``) with the kernel (x.y / d + 1)^3 (``polynomial_kernel``).

    Each subset takes m = min(subset_size, N_a, N_b) rows of each set without replacement, drawn
    from a ``torch.Generator`` seeded with ``seed`` (same inputs and seed, same number). The
    estimator is torch-fidelity's (torch_fidelity/metric_kid.py: ``mmd2`` with
    ``mmd_est="unbiased"``, ``polynomial_kernel`` with gamma = 1/d, coef0 = 1, degree 3; the std is
    ``np.std``, population std) and clean-fid's ``kernel_distance`` (cleanfid/fid.py), which also
    caps the subset size at the smaller set. The random subsets differ from theirs (NumPy's
    generators), so on large sets the numbers agree to within the spread over subsets, and
    exactly when a subset is the whole of both sets. Computed in float64 (sums of up to 10^6
    kernel values, each a cube). The std is the spread of one subset's estimate, not the
    standard error of the mean (the subsets overlap).
    """
    a = _check_rows("features_a", features_a, 2).double()  # (N_a, d)
    b = _check_rows("features_b", features_b, 2).double()  # (N_b, d)
    _check_same_width("features_a", a, "features_b", b)
    subsets = check_int("subsets", subsets, 1, MAX_SUBSETS)
    subset_size = check_int("subset_size", subset_size, 2, MAX_SUBSET_SIZE, "the unbiased estimate needs 2 rows")
    seed = check_int("seed", seed, 0, MAX_SEED)
    b = b.to(a.device)
    m = min(subset_size, a.shape[0], b.shape[0])
    g = torch.Generator().manual_seed(seed)  # on the CPU, so a GPU run draws the same subsets
    mmd2 = torch.empty(subsets, dtype=torch.float64)
    for s in range(subsets):
        x = a[torch.randperm(a.shape[0], generator=g)[:m].to(a.device)]  # (m, d)
        y = b[torch.randperm(b.shape[0], generator=g)[:m].to(a.device)]  # (m, d)
        mmd2[s] = kid_unbiased_mmd2(polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y))
    return mmd2.mean().item(), mmd2.std(correction=0).item()
