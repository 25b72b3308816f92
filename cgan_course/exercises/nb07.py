"""Notebook 07 (the class sampler): the checks of its exercises.
"""
from __future__ import annotations

import io
import math
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from .. import metrics
from ..runtime import eval_mode
from ..sampling import sample_grid, sample_latents, to_image_grid
from .core import Feedback, _close, _exercise, _number

# ----------------------------------------------------------------------------------------------
# 06 · The class sampler


def _column_accuracy(G: nn.Module, clf: metrics.ClassifierFeatures, seed: int) -> float:
    """Share of the 10 classes the classifier recognises in one latent's column of the class grid."""
    with eval_mode(G):
        images = sample_grid(G, per_class=1, seed=seed)  # (10, 3, S, S): one z, every class
    logits = clf.features_and_logits(images)[1]
    return (logits.argmax(1) == torch.arange(G.num_classes)).float().mean().item()


@_exercise("07.1", "good seeds and poor seeds: does the latent's norm tell them apart?")
def check_seed_columns(G: nn.Module, seeds, norms, accuracies) -> None:
    """For each seed: ``norms`` = ||sample_latents(1, G.z_dim, seed)||, ``accuracies`` = the share of
    the 10 classes the course classifier recognises in ``sample_grid(G, per_class=1, seed=seed)``."""
    fb = Feedback("07.1")
    seeds, norms, accuracies = list(seeds), [float(v) for v in norms], [float(v) for v in accuracies]
    if not fb.expect(len(seeds) == len(norms) == len(accuracies) >= 8, f"{len(seeds)} seeds",
                     "give at least 8 seeds and one norm and one accuracy per seed"):
        fb.done()
    true_norms = [sample_latents(1, G.z_dim, s)[0].norm().item() for s in seeds]
    bad = [s for s, a, b in zip(seeds, norms, true_norms) if not _close(a, b, 1e-4)]
    fb.expect(not bad, "every norm matches", f"seed {bad[0]}: the norm should be the norm of "
                                             "sample_latents(1, G.z_dim, seed)[0]" if bad else "")
    clf = metrics.ClassifierFeatures()
    true_acc = [_column_accuracy(G, clf, s) for s in seeds]
    bad = [s for s, a, b in zip(seeds, accuracies, true_acc) if abs(a - b) > 1e-6]
    fb.expect(not bad, "every column accuracy matches",
              f"seed {bad[0]}: the accuracy should be the share of the 10 class rows whose classifier argmax is "
              "that class" if bad else "")
    r = float(np.corrcoef(true_norms, true_acc)[0, 1]) if np.std(true_acc) > 0 else 0.0
    centre, half = math.atanh(max(min(r, 0.999), -0.999)), 1.96 / math.sqrt(len(seeds) - 3)  # Fisher's z
    low, high = math.tanh(centre - half), math.tanh(centre + half)
    verdict = "the interval holds 0: no pattern this many seeds can show" if low <= 0 <= high else \
        "the interval excludes 0: the norm does tell something here"
    fb.note(f"correlation of norm and accuracy r = {r:+.2f}, 95% CI {low:+.2f} to {high:+.2f} "
            f"({len(seeds)} seeds): {verdict}")
    fb.done()


@_exercise("07.2", "lerp and slerp midpoints of a seed walk")
def check_midpoint_norms(za: torch.Tensor, zb: torch.Tensor, lerp_norm, slerp_norm) -> None:
    """The norms of ``sampling.lerp`` and ``sampling.slerp`` between ``za`` and ``zb`` at t = 0.5."""
    fb = Feedback("07.2")
    a, b = _number(fb, "lerp_norm", lerp_norm), _number(fb, "slerp_norm", slerp_norm)
    if a is None or b is None:
        fb.done()
    lerp_true = (0.5 * (za + zb)).norm().item()
    slerp_true = 0.5 * (za.norm() + zb.norm()).item()
    fb.expect(_close(a, lerp_true, 1e-4), f"lerp midpoint norm {lerp_true:.2f}",
              f"the lerp midpoint (za + zb) / 2 has norm {lerp_true:.2f}, got {a:.2f}")
    if _close(b, math.sqrt(za.numel()), 1e-3) and not _close(b, slerp_true, 1e-3):
        fb.wrong("slerp does not project onto sqrt(z_dim): it interpolates the norm linearly between ||za|| and ||zb||")
    else:
        fb.expect(_close(b, slerp_true, 1e-4), f"slerp midpoint norm {slerp_true:.2f} = (||za|| + ||zb||) / 2",
                  f"slerp's midpoint norm is the mean of the endpoint norms, {slerp_true:.2f}; got {b:.2f}")
    cos = torch.nn.functional.cosine_similarity(za, zb, dim=0).item()
    fb.note(f"cos(za, zb) = {cos:+.2f}: nearly orthogonal, as independent latents in high dimension are, so "
            f"the straight line's midpoint is about 1/sqrt 2 = 71% as long ({lerp_true / slerp_true:.0%} here)")
    fb.done()


def morph_rise(curve: dict) -> tuple[float, float]:
    """How far a ``metrics.class_morph_curve`` rises from t = 0 to t = 1, with a 95% half-width."""
    p, ci = curve["p_end"], curve["ci95"]
    return p[-1] - p[0], math.hypot(ci[0], ci[-1])


@_exercise("07.3", "a near and a distant class walk, measured")
def check_morph_comparison(near: dict, distant: dict, answer: str) -> None:
    """``near``, ``distant``: ``metrics.class_morph_curve`` of cat -> dog and cat -> truck; ``answer``:
    which rises more, "near", "distant" or "no difference" (when the gap is within its 95% half-width)."""
    fb = Feedback("07.3")
    for name, c in (("near", near), ("distant", distant)):
        if not isinstance(c, dict) or not {"p_end", "ci95"} <= set(c):
            fb.wrong(f"{name} must be the dict metrics.class_morph_curve returns")
            fb.done()
    (rn, hn), (rd, hd) = morph_rise(near), morph_rise(distant)
    gap, half = rd - rn, math.hypot(hn, hd)
    truth = "no difference" if abs(gap) <= half else ("distant" if gap > 0 else "near")
    fb.expect(str(answer) == truth, f"{truth}: rises {rn:+.2f} ± {hn:.2f} (near) vs {rd:+.2f} ± {hd:.2f} (distant)",
              f"the rises are {rn:+.2f} ± {hn:.2f} (near) and {rd:+.2f} ± {hd:.2f} (distant), a gap of {gap:+.2f} "
              f"± {half:.2f}: the answer is {truth!r}, not {answer!r}")
    fb.done()


@_exercise("07.4", "the function behind an 'all classes' checkbox")
def check_render_all_classes(render_fn: Callable[..., bytes], G: nn.Module, seed: int = 0, per_class: int = 3) -> None:
    """``render_fn(G, seed, per_class)``: PNG bytes of the class grid (one row per class, one column per latent)."""
    from PIL import Image

    fb = Feedback("07.4")
    png = render_fn(G, seed, per_class)
    if not fb.expect(isinstance(png, bytes) and png[:8] == b"\x89PNG\r\n\x1a\n", "returns PNG bytes",
                     "return PNG bytes (sampling.png_bytes(grid) makes them), not an array or a figure"):
        fb.done()
    picture = torch.from_numpy(np.array(Image.open(io.BytesIO(png)).convert("RGB"))).permute(2, 0, 1)  # (3, H, W)
    expected = to_image_grid(sample_grid(G, per_class=per_class, seed=seed), nrow=per_class)  # (3, h, w)
    scale = picture.shape[2] // expected.shape[2]
    same = (scale >= 1 and picture.shape[1:] == (expected.shape[1] * scale, expected.shape[2] * scale)
            and torch.equal(picture[:, ::scale, ::scale], expected))
    fb.expect(same, f"the grid of sample_grid(G, per_class={per_class}, seed={seed}), {G.num_classes} rows"
                    + (f", drawn {scale}x" if scale > 1 else ""),
              f"the picture is not sample_grid(G, per_class, seed) as a grid of {per_class} per row "
              f"(expected {expected.shape[1]} x {expected.shape[2]} pixels or a whole multiple, got "
              f"{picture.shape[1]} x {picture.shape[2]})")
    fb.done()
