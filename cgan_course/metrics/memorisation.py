"""The memorisation check: does the generator copy its training images? FD cannot tell (a copy of
the training set scores FD's floor), so compare, for each generated sample, the distance to its
nearest training image with the same distance for held-out real images: a generator that copies
sits much closer to the training set than fresh real images do. Distances in pixel space and in
a feature space answer different questions (exact copies; copies up to small changes).
"""
from __future__ import annotations

import torch

from ..errors import CourseError
from ..validate import check_int
from .kid import _check_rows, _check_same_width
from .scores import wilson_interval

MAX_BATCH = 1_000_000
PERCENTILE = 0.01  # "closer than 99% of held-out real images are"


# ----------------------------------------------------------------------------------------------
# Nearest training neighbours and memorisation


def _squared_distances(q: torch.Tensor, t: torch.Tensor, t_sq: torch.Tensor) -> torch.Tensor:
    """||q_i - t_j||^2 for q [B, D], t [C, D] (``t_sq``: its squared norms [C]) -> [B, C], through
    one matrix product; round-off can take it just below 0, hence the clamp."""
    return (q.square().sum(1, keepdim=True) - 2 * q @ t.T + t_sq).clamp_min_(0)


def _exact_distances(q: torch.Tensor, train: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """||q_i - train[idx_ij]|| for q [B, D], idx [B, k] -> [B, k] in float64, one neighbour column at
    a time ((B, D) in memory): the matrix-product form loses the small distances (an exact copy
    of a 3,072-pixel image would show as ~1e-2 in float32, not 0)."""
    cols = [(q.double() - train[idx[:, j]].double()).norm(dim=1) for j in range(idx.shape[1])]
    return torch.stack(cols, dim=1)


@torch.no_grad()
def nearest_training_neighbours(queries: torch.Tensor, train: torch.Tensor, k: int = 1, batch: int = 1024,
                                train_batch: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest rows of ``train`` [T, D] to each row of ``queries`` [Q, D] (Euclidean):
    distances [Q, k] (float64, nearest first) and their row indices in ``train`` [Q, k].

    Images [N, C, H, W] are flattened to pixels, so this works for pixels and for features alike.
    The search runs on ``queries``' device over blocks of ``batch`` queries x ``train_batch``
    training rows, keeping a running top k, so scratch memory is a few (batch, train_batch) blocks,
    not (Q, T): about 100 MB in float32 at the defaults, for 10,000 queries against 50,000 x 512
    training features (plus a float32 copy of inputs that are not float32 already). The
    search uses the inputs' precision (float32 at least); the returned distances are recomputed
    exactly in float64, so an exact copy is at distance 0.
    """
    q = _check_rows("queries", queries, 1)  # (Q, D)
    t = _check_rows("train", train, 1)  # (T, D)
    _check_same_width("queries", q, "train", t)
    k = check_int("k", k, 1, t.shape[0], "k can be at most the number of training rows")
    batch = check_int("batch", batch, 1, MAX_BATCH)
    train_batch = check_int("train_batch", train_batch, 1, MAX_BATCH)
    # float32 at least: uint8 pixels would wrap around, float16 sums drift
    dtype = torch.promote_types(torch.promote_types(q.dtype, t.dtype), torch.float32)
    q, t = q.to(dtype), t.to(q.device, dtype)
    dists, indices = [], []
    for start in range(0, q.shape[0], batch):
        qb = q[start:start + batch]  # (B, D)
        best_d = qb.new_empty(qb.shape[0], 0)  # (B, <=k) squared distances so far
        best_i = torch.empty(qb.shape[0], 0, dtype=torch.long, device=q.device)
        for t_start in range(0, t.shape[0], train_batch):
            tb = t[t_start:t_start + train_batch]  # (C, D)
            d = _squared_distances(qb, tb, tb.square().sum(1))  # (B, C)
            d, i = d.topk(min(k, d.shape[1]), dim=1, largest=False)
            best_d, best_i = torch.cat([best_d, d], 1), torch.cat([best_i, i + t_start], 1)
            best_d, order = best_d.topk(min(k, best_d.shape[1]), dim=1, largest=False)
            best_i = best_i.gather(1, order)
        exact = _exact_distances(qb, t, best_i)  # (B, k)
        exact, order = exact.sort(dim=1, stable=True)  # the float64 values can swap near-ties
        dists.append(exact)
        indices.append(best_i.gather(1, order))
    return torch.cat(dists), torch.cat(indices)


def memorisation_ratio(gen_feats: torch.Tensor, train_feats: torch.Tensor, test_feats: torch.Tensor,
                       batch: int = 1024) -> dict:
    """Does the generator copy its training images? For each generated sample, the distance to its
    nearest training row; for each held-out real image (``test_feats``, never trained on), the
    same distance. Fresh images from the data distribution sit as far from the training set as
    the test images do (ratio ~1, and about 1% of them below the test images' 1st percentile);
    a generator that reproduces training images sits at distance ~0 (ratio ~0, fraction ~1).

    Features [N, d] or images [N, C, H, W] (compared as pixels); all three in the same space.
    Returns ``{"median_gen_to_train", "median_test_to_train", "ratio" (gen / test medians),
    "threshold" (1st percentile of the test-to-train distances), "fraction_below" (share of
    samples at or below it), "fraction_below_ci95" (Wilson), "expected_fraction" (0.01 if the
    generator does not copy), "n_gen", "n_test", "n_train"}``. With fewer than ~100 test images
    the 1st percentile is close to their minimum, and the fraction is coarse: report n.
    """
    gen = _check_rows("gen_feats", gen_feats, 1)
    train = _check_rows("train_feats", train_feats, 1)
    test = _check_rows("test_feats", test_feats, 2)
    _check_same_width("gen_feats", gen, "train_feats", train)
    _check_same_width("test_feats", test, "train_feats", train)
    d_gen = nearest_training_neighbours(gen, train, 1, batch)[0][:, 0]  # (G,)
    d_test = nearest_training_neighbours(test, train, 1, batch)[0][:, 0]  # (N_test,)
    median_gen, median_test = d_gen.median().item(), d_test.median().item()
    if median_test == 0:
        raise CourseError(f"{int((d_test == 0).sum())} of {d_test.numel()} test_feats rows are identical to "
                          "training rows: the comparison needs held-out images (the test split), not training ones")
    threshold = torch.quantile(d_test, PERCENTILE).item()
    # <=, not <: when a few test images duplicate training ones the threshold is 0, and exact
    # copies (distance 0) must still count
    fraction = (d_gen <= threshold).double().mean().item()
    return {"median_gen_to_train": median_gen, "median_test_to_train": median_test,
            "ratio": median_gen / median_test, "threshold": threshold, "fraction_below": fraction,
            "fraction_below_ci95": wilson_interval(fraction, d_gen.numel()), "expected_fraction": PERCENTILE,
            "n_gen": d_gen.numel(), "n_test": d_test.numel(), "n_train": train.shape[0]}
