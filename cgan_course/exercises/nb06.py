"""Notebook 06 (evaluation): the checks of its exercises.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from .. import metrics
from ..runtime import eval_mode
from ..sampling import generate, sample_latents
from .core import Feedback, _close, _exercise, _number, check_choice

# ----------------------------------------------------------------------------------------------
# 06 · Evaluation


@_exercise("06.1", "extrapolating FD to infinitely many samples")
def check_fd_extrapolation(ns, fds, fd_inf, c) -> None:
    """``fd_inf``, ``c``: the least-squares fit FD(N) = fd_inf + c / N to the measured ``(ns, fds)``."""
    fb = Feedback("06.1")
    ns, fds = np.asarray(ns, dtype=float), np.asarray(fds, dtype=float)
    if not fb.expect(ns.shape == fds.shape and ns.size >= 3, f"{ns.size} points to fit",
                     "give at least 3 sample sizes and one FD for each"):
        fb.done()
    (a, b), *_ = np.linalg.lstsq(np.stack([np.ones_like(ns), 1 / ns], axis=1), fds, rcond=None)
    f, k = _number(fb, "fd_inf", fd_inf), _number(fb, "c", c)
    if f is not None and k is not None:
        if abs(f) < 1e-9 and not _close(a, 0.0):
            fb.wrong("fd_inf = 0: fit an intercept too, FD(N) = fd_inf + c / N (columns 1 and 1/N)")
        else:
            fb.expect(_close(f, a, 1e-2, 1e-3) and _close(k, b, 1e-2, 1e-3), f"FD_inf = {a:.3f}, c = {b:.1f}",
                      f"the least-squares fit gives FD_inf = {a:.3f}, c = {b:.1f}; got {f:.3f}, {k:.1f}")
    fb.expect(b > 0, "c > 0: FD is biased upwards at small N",
              "the fitted c is not positive: measure more N, FD's bias makes small-N values larger")
    if a < 0:
        fb.note("FD_inf < 0: a distance cannot be negative, so the 1/N model or the points are too noisy here")
    fb.done()


_BLIND_OPTIONS = {
    "a": (True, "the plain FD compares the pool of all generated images with the pool of all real ones and never "
                "looks at a label; z and y are drawn independently, so the shuffled (z, y) pairs have the same "
                "distribution as G's, and so do the pooled images: FD moves only by sampling noise"),
    "b": (False, "FD's small-sample bias is the same for both generators (same N), so it cannot hide a "
                 "difference between them; the labels are what FD never reads"),
    "c": (False, "the classifier's features separate the classes well (that is why label fidelity sees the "
                 "shuffle); the plain FD just pools all classes before comparing"),
    "d": (False, "the shuffler keeps every latent; it only pairs each with another image's label"),
}


@_exercise("06.2", "a generator that ignores which label goes with which latent")
def check_label_shuffler(shuffler: nn.Module, G: nn.Module, why: str, num_samples: int = 200) -> None:
    """``shuffler``: a module whose ``forward(z, y)`` returns ``G(z, y[torch.randperm(len(y))])``
    and which exposes ``z_dim`` and ``num_classes`` like ``G``; ``why``: one letter of exercise 2's
    options (why the plain FD cannot see the shuffle)."""
    fb = Feedback("06.2")
    check_choice(fb, "why", why, _BLIND_OPTIONS)
    if not fb.expect(getattr(shuffler, "z_dim", None) == G.z_dim and getattr(shuffler, "num_classes", None)
                     == G.num_classes, "z_dim and num_classes copied from G",
                     "set self.z_dim = G.z_dim and self.num_classes = G.num_classes in __init__: the "
                     "metrics read them"):
        fb.done()
    with eval_mode(G), eval_mode(shuffler):  # the learner's modules are left as they were
        z = sample_latents(20, G.z_dim, seed=0)
        same = torch.full((20,), 3)
        fb.expect(torch.allclose(generate(shuffler, z, same), generate(G, z, same), atol=1e-5),
                  "with one label for all, it draws exactly G's images", "with y all equal it must return G(z, y): "
                                                                          "call the wrapped G, change only y")
        y = torch.arange(20) % G.num_classes
        out = generate(shuffler, z, y)  # (20, 3, S, S)
        every = torch.stack([generate(G, z, torch.full((20,), c)) for c in range(G.num_classes)], dim=1)  # (20, K, 3, S, S)
        matches = (every - out[:, None]).flatten(2).abs().amax(dim=2) < 1e-5  # (20, K): image i is G(z_i, class k)
        fb.expect(bool(matches.any(dim=1).all()) and not torch.allclose(out, generate(G, z, y), atol=1e-5),
                  "each image is G(z_i, y_j) for some other label j",
                  "every image must be G(z_i, y_j) with the labels permuted: G(z, y[torch.randperm(len(y))])")
    clf = metrics.ClassifierFeatures()
    acc_g = metrics.label_fidelity(G, clf, num_samples=num_samples).value
    acc_s = metrics.label_fidelity(shuffler, clf, num_samples=num_samples).value
    low, high = metrics.wilson_interval(acc_s, num_samples)
    fb.expect(acc_s < 0.25, f"label accuracy drops to {acc_s:.0%} (95% CI {low:.0%}-{high:.0%}), G: {acc_g:.0%}",
              f"label accuracy is still {acc_s:.0%}: the labels are not being shuffled")
    fb.note("the set of images is G's (same latents, same mix of classes), so the plain FD, which compares "
            "unlabelled sets, barely changes; intra-FD and label accuracy pair each image with its label")
    fb.done()


@_exercise("06.3", "the Inception Score by hand")
def check_inception_score(is_fn: Callable[[torch.Tensor], float]) -> None:
    """``is_fn(logits [N, K])``: exp(E_x KL(p(y|x) || p(y))) over all N (no splits)."""
    fb = Feedback("06.3")
    gen = torch.Generator().manual_seed(0)
    confident = 30.0 * torch.eye(10)
    cases = {"random logits": torch.randn(500, 10, generator=gen) * 2,
             "uniform predictions": torch.zeros(100, 10),
             "one confident image per class": confident,
             "every image confidently class 0": confident[[0] * 10]}
    for name, logits in cases.items():
        true = metrics.inception_score_from_logits(logits, splits=1)[0]
        got = _number(fb, f"is_fn on {name}", is_fn(logits.clone()))
        if got is not None:
            fb.expect(_close(got, true, 1e-4, 1e-6), f"{name}: IS = {true:.3f}",
                      f"{name}: IS should be {true:.3f}, got {got:.3f}: p = softmax(logits), p_y = p.mean(0), "
                      "exp of the mean over images of sum(p * (log p - log p_y))")
    fb.note("ten copies of one perfect image per class score the maximum, 10: IS rewards confident, "
            "class-balanced predictions and cannot see diversity within a class, nor compare with real data")
    fb.done()
