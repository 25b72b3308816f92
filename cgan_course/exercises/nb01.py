"""Notebook 01 (GAN theory on a toy): the checks of its exercises.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import toy
from .core import Feedback, NotYetRight, _close, _exercise, _number, check_choice

# ----------------------------------------------------------------------------------------------
# 01 · GAN theory


def _toy_frames(result) -> list[tuple[int, torch.Tensor]]:
    frames = getattr(result, "frames", None)
    if not frames:
        raise NotYetRight("result must be the ToyResult that toy.train_toy(...) returned: pass it as it is")
    return frames


@_exercise("01.1", "an unconditional toy trained 3x longer: mode coverage of every frame")
def check_coverage_over_training(result, coverage, ever_all_modes, sigma: float = 0.05) -> None:
    """``coverage``: ``modes_covered`` of every frame of ``result`` (a ``ToyResult``), in order;
    ``ever_all_modes``: whether any frame covers all modes at once."""
    fb = Feedback("01.1")
    frames = _toy_frames(result)
    fb.expect(not result.G.num_classes, "the run is unconditional",
              "train the unconditional toy: toy.ToyConfig(conditional=False, ...)")
    expected = [toy.mode_coverage(pts, result.centers, sigma)["modes_covered"] for _, pts in frames]
    coverage = list(coverage)
    if len(coverage) != len(expected):
        fb.wrong(f"coverage has {len(coverage)} values but the run has {len(expected)} frames: one value per "
                 "frame of result.frames")
    else:
        bad = [(step, c, e) for (step, _), c, e in zip(frames, coverage, expected) if c != e]
        fb.expect(not bad, "every frame's coverage matches toy.mode_coverage",
                  f"at step {bad[0][0]} you have {bad[0][1]} modes, toy.mode_coverage(frame, result.centers, "
                  f"{sigma}) gives {bad[0][2]}: use ['modes_covered'] of each frame" if bad else "")
    k = result.centers.shape[0]
    truth = max(expected) == k
    fb.expect(bool(ever_all_modes) == truth, f"ever_all_modes = {truth}",
              f"ever_all_modes should be {truth}: the most modes any frame covers is {max(expected)} of {k}")
    fb.note("coverage by step: " + ", ".join(f"{s}: {e}" for (s, _), e in zip(frames, expected)))
    fb.done()


@_exercise("01.2", "the minimax generator loss: how strongly does G still learn?")
def check_minimax_toy(result, d_fake_mean) -> None:
    """``d_fake_mean``: the mean of D(G(z)) = sigmoid(logit) of ``result.D`` on the last frame's samples."""
    fb = Feedback("01.2")
    loss = getattr(getattr(result, "config", None), "generator_loss", None)
    fb.expect(loss == "minimax", "the run was trained with the minimax generator loss",
              f"this run was trained with the {loss or 'unknown'} generator loss: train it with "
              "toy.train_toy(toy.ToyConfig(generator_loss=\"minimax\"))")
    _, pts = _toy_frames(result)[-1]
    k = result.D.num_classes
    y = toy.balanced_labels(len(pts), k) if k else None
    with torch.no_grad():
        logits = result.D(pts, y)
    p = torch.sigmoid(logits).mean().item()
    value = _number(fb, "d_fake_mean", d_fake_mean)
    if value is not None:
        if _close(value, logits.mean().item(), 1e-3) and not _close(value, p, 1e-3):
            fb.wrong("that is the mean logit: D(G(z)) is torch.sigmoid(result.D(points)), then the mean")
        else:
            fb.expect(_close(value, p, 1e-3), f"mean D(G(z)) on the last frame = {p:.3f}",
                      f"mean D(G(z)) should be {p:.4f}, got {value:.4f}: sigmoid of result.D on "
                      "result.frames[-1][1], averaged")
    cov = toy.mode_coverage(pts, result.centers, 0.05)
    fb.note(f"per-sample gradient magnitudes at this D: minimax |-D| = {p:.3f}, non-saturating |-(1 - D)| = "
            f"{1 - p:.3f}; modes covered {cov['modes_covered']}/{result.centers.shape[0]}")
    fb.note("where D rejects the fakes (D near 0) the minimax gradient vanishes: section 3's plot")
    fb.done()


def _mixture_value() -> tuple[float, float]:
    x = np.linspace(-12, 12, 24001)
    p_data = toy.gaussian_pdf(x, 0.0, 1.0)
    p_g = 0.5 * toy.gaussian_pdf(x, -2.0, 1.0) + 0.5 * toy.gaussian_pdf(x, 2.0, 1.0)
    v = toy.value_function(toy.optimal_discriminator(p_data, p_g), p_data, p_g, x)
    return v, toy.js_divergence(p_data, p_g, x)


@_exercise("01.3", "V(D*, G) = -log 4 + 2 JSD for a mixture generator")
def check_mixture_value(v_star, jsd) -> None:
    """``v_star`` = V(D*, G) and ``jsd`` = JSD(p_data || p_g) for p_data = N(0, 1),
    p_g = N(-2, 1)/2 + N(2, 1)/2, both integrated on a grid."""
    fb = Feedback("01.3")
    v, j = _number(fb, "v_star", v_star), _number(fb, "jsd", jsd)
    if v is None or j is None:
        fb.done()
    v_true, j_true = _mixture_value()
    if _close(v, -0.614226, 1e-3):
        fb.wrong("that is section 2's generator N(2, 0.8²): use p_g = 0.5 N(-2, 1) + 0.5 N(2, 1)")
    elif _close(v, j_true, 1e-3):
        fb.wrong("v_star equals the JSD: V(D*, G) is -log 4 + 2 JSD, compute it with toy.value_function")
    else:
        fb.expect(_close(v, v_true, 2e-3, 1e-3), f"V(D*, G) = {v_true:.4f}",
                  f"V(D*, G) should be {v_true:.4f}, got {v:.4f}: D* = toy.optimal_discriminator(p_data, p_g) "
                  "on a grid wide enough for both densities (e.g. -12..12)")
    fb.expect(0 <= j <= math.log(2) + 1e-9, "the JSD lies in [0, log 2]",
              f"a JSD must lie in [0, log 2 = {math.log(2):.4f}] nats, got {j:.4f}")
    fb.expect(_close(j, j_true, 2e-3, 1e-3), f"JSD = {j_true:.4f} nats",
              f"JSD should be {j_true:.4f} nats, got {j:.4f}: toy.js_divergence(p_data, p_g, x)")
    fb.expect(_close(v, -math.log(4) + 2 * j, 2e-3, 1e-3), "your two numbers satisfy V = -log 4 + 2 JSD",
              f"your numbers break the identity: -log 4 + 2 x {j:.4f} = {-math.log(4) + 2 * j:.4f}, not {v:.4f}")
    fb.done()


_INSIDE_CLASS_OPTIONS = {
    "a": (True, "each coarse class is two modes, a multimodal p(x | y) again: inside a class G is back in "
                "the unconditional game, and nothing prevents it from covering one of the two modes (or hopping "
                "between them); whether this run does is for your samples to show"),
    "b": (False, "samples of one class landing in another class's modes is what the label prevents: D sees "
                 "the label and rejects such pairs, whatever the class's size"),
    "c": (False, "a smear around the whole ring would cost G against D in every class; the label keeps each "
                 "class near its own modes"),
    "d": (False, "the labels guarantee only that each class stays near its own modes; two modes under one "
                 "label are one unconditional problem, and nothing makes G cover both"),
}


@_exercise("01.4", "conditioning on less information: y // 2 (4 classes of 2 modes)")
def check_pair_conditioning(samples, labels, expected: str, centers: torch.Tensor | None = None,
                            sigma: float = 0.05) -> None:
    """``samples`` [N, 2] drawn by your G(z, y // 2) for the coarse ``labels`` [N] in 0..3;
    ``expected``: your prediction before training, one letter of exercise 4's options."""
    fb = Feedback("01.4")
    check_choice(fb, "expected", expected, _INSIDE_CLASS_OPTIONS)
    centers = toy.ring_centers(8, 2.0) if centers is None else centers
    samples, labels = torch.as_tensor(samples).float(), torch.as_tensor(labels).long()
    if samples.ndim != 2 or samples.shape[1] != 2 or labels.shape != (samples.shape[0],):
        fb.wrong(f"samples must be [N, 2] and labels [N], got {list(samples.shape)} and {list(labels.shape)}")
        fb.done()
    groups = centers.shape[0] // 2
    present = sorted(set(labels.tolist()))
    if not fb.expect(present == list(range(groups)), f"labels are the {groups} coarse classes 0..{groups - 1}",
                     f"labels must be the coarse classes 0..{groups - 1} (y // 2), all present; got {present}"):
        fb.done()
    nearest = torch.cdist(samples, centers).argmin(dim=1)  # (N,) nearest mode of each sample
    for c in range(groups):
        mine = labels == c
        own = (nearest[mine] // 2 == c).float().mean().item()
        cov = toy.mode_coverage(samples[mine], centers[2 * c:2 * c + 2], sigma)
        fb.expect(own >= 0.8, f"class {c}: {own:.0%} of its samples lie nearest its own modes {2 * c}, {2 * c + 1}; "
                              f"modes covered {cov['modes_covered']}/2",
                  f"class {c}: only {own:.0%} of its samples lie nearest its modes {2 * c}, {2 * c + 1}: give G and "
                  "D the label y // 2 (G(z, y // 2), D(x, y // 2)) and train longer")
    fb.note("a class covering 1 of its 2 modes is mode collapse inside a class: coarse labels give each "
            "class a multimodal p(x | y) again, the unconditional problem at a smaller scale")
    fb.done()


_DIP_OPTIONS = {
    "a": (True, "D's BCE loss below log 4 means D tells real from fake better than chance: G's samples sit "
                "where D says 'fake', and G's next steps move them towards where D currently says 'real'"),
    "b": (False, "at the optimum D's loss is log 4 (D* = 1/2 everywhere), not below it"),
    "c": (False, "covering modes is what mode_coverage measures; a low D loss says D is winning, whatever "
                 "G covers"),
    "d": (False, "the learning rate changes how fast the players move, but a dip is a statement about "
                 "the players: D currently separates the two distributions"),
}


@_exercise("01.5", "what a dip of D's loss below log 4 means")
def check_d_loss_dip(answer: str) -> None:
    """``answer``: "a", "b", "c" or "d" (the options are in notebook 01's exercise 5)."""
    fb = Feedback("01.5")
    check_choice(fb, "answer", answer, _DIP_OPTIONS)
    fb.done()
