"""Self-checks for the notebooks' exercises: ``check_<name>(...)`` says what is right and what is not.

Each check prints one line per criterion (✓ right, ✗ wrong, with a hint that names the fix),
returns ``None`` when everything is right and raises ``NotYetRight`` otherwise, so an answer cell
fails visibly, like an autograder's test. Checks recompute what they can from the learner's own
inputs (their batch, their training run, their generator), so an answer is judged against the
data it came from rather than against numbers that change with the machine or the generator.

``show("01")`` lists a notebook's exercises, their checks and where the reference solutions live
(``solutions/exNN.py``: ``solve_<k>()`` returns the keyword arguments of check ``k``; the test
suite feeds every solution to its check, so neither can rot).

Why not otter-grader or nbgrader: both need their own folder layout and an instructor-side build
step (otter: a ``tests/`` folder of OK-format files per question and ``otter assign``; nbgrader: a
course database and release/collect), which a self-study reader of this repository would have to
install and learn first. Plain functions work in any kernel, offline, give feedback about the
course's own objects (a ``ToyResult``, a generator, a tensor of images) and are tested by pytest
like the rest of the package.
"""
from __future__ import annotations

import csv
import inspect
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from . import data, losses, metrics, models, toy
from .classifier import accuracy
from .errors import CourseError
from .sampling import generate, sample_grid, sample_latents, to_image_grid

SOLUTIONS_DIR = Path(__file__).resolve().parent.parent / "solutions"


class NotYetRight(CourseError, AssertionError):
    """An exercise answer is not right yet; the message names the first thing to fix."""


class Feedback:
    """Collects the verdicts on one answer, prints them, and raises if any is wrong."""

    def __init__(self, key: str):
        self.key, self.lines, self.problems = key, [], []

    def right(self, text: str) -> None:
        self.lines.append(f"  ✓ {text}")

    def wrong(self, text: str) -> None:
        self.lines.append(f"  ✗ {text}")
        self.problems.append(text)

    def note(self, text: str) -> None:
        self.lines.append(f"    {text}")

    def expect(self, ok: bool, right: str, wrong: str) -> bool:
        (self.right if ok else self.wrong)(right if ok else wrong)
        return ok

    def done(self) -> None:
        verdict = "right" if not self.problems else f"not yet ({len(self.problems)} to fix)"
        print(f"Exercise {self.key}: {verdict}")
        print("\n".join(self.lines))
        if self.problems:
            raise NotYetRight(f"exercise {self.key}: {self.problems[0]}")


def _number(fb: Feedback, name: str, value) -> float | None:
    """``value`` as a float, or a verdict saying it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        fb.wrong(f"{name} must be a number (a float or a 1-element tensor), got {type(value).__name__}")
        return None


def _close(a: float, b: float, rel: float = 1e-3, abs_: float = 1e-6) -> bool:
    return abs(a - b) <= max(abs_, rel * abs(b))


# ----------------------------------------------------------------------------------------------
# The registry: which check belongs to which exercise


@dataclass(frozen=True)
class Exercise:
    key: str  # "01.3": notebook 01, exercise 3
    title: str
    check: Callable[..., None]

    @property
    def notebook(self) -> str:
        return self.key.split(".")[0]

    @property
    def number(self) -> int:
        return int(self.key.split(".")[1])

    @property
    def solution(self) -> Path:
        return SOLUTIONS_DIR / f"ex{self.notebook}.py"


EXERCISES: dict[str, Exercise] = {}


def _exercise(key: str, title: str):
    def register(check: Callable[..., None]) -> Callable[..., None]:
        EXERCISES[key] = Exercise(key, title, check)
        return check
    return register


def show(notebook: str) -> None:
    """Print the exercises of ``notebook`` ("01".."07"), each with its check and solution."""
    found = [e for e in EXERCISES.values() if e.notebook == notebook]
    if not found:
        raise CourseError(f"no exercises for notebook {notebook!r}; choose one of "
                          f"{sorted({e.notebook for e in EXERCISES.values()})}")
    for e in found:
        params = ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}"
                           for p in inspect.signature(e.check).parameters.values())
        print(f"{e.key}  {e.title}\n      check:    exercises.{e.check.__name__}({params})\n"
              f"      solution: solutions/{e.solution.name}, solve_{e.number}()")


def check_solutions(module, notebook: str, fast: bool = False) -> None:
    """Feed every ``module.solve_<k>(fast)`` of ``notebook`` to its check (``python solutions/exNN.py``)."""
    for e in (e for e in EXERCISES.values() if e.notebook == notebook):
        e.check(**getattr(module, f"solve_{e.number}")(fast=fast))


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


def call_learner(fb: Feedback, name: str, fn, *args, reraise: tuple[type[BaseException], ...] = ()):
    """``fn(*args)`` for a learner's ``fn``: an exception becomes a verdict on ``fb`` (and None),
    not a crash of the check; those in ``reraise`` (the build exercises' NotImplementedError: the
    stub, not a mistake) go through."""
    try:
        return fn(*args)
    except reraise:
        raise
    except Exception as err:  # noqa: BLE001 - the learner's code: any failure is feedback
        fb.wrong(f"{name} raised {type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}")
        return None


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


@_exercise("01.4", "conditioning on less information: y // 2 (4 classes of 2 modes)")
def check_pair_conditioning(samples, labels, centers: torch.Tensor | None = None, sigma: float = 0.05) -> None:
    """``samples`` [N, 2] drawn by your G(z, y // 2) for the coarse ``labels`` [N] in 0..3."""
    fb = Feedback("01.4")
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
    key = str(answer).strip().lower()[:1]
    if key not in _DIP_OPTIONS:
        fb.wrong(f"answer with one letter of {sorted(_DIP_OPTIONS)}, got {answer!r}")
    else:
        ok, why = _DIP_OPTIONS[key]
        fb.expect(ok, why, f"not ({key}): {why}")
    fb.done()


# ----------------------------------------------------------------------------------------------
# 02 · CIFAR-10


def _as_vector(fb: Feedback, name: str, value, size: int) -> torch.Tensor | None:
    try:
        v = torch.as_tensor(value, dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError):
        fb.wrong(f"{name} must be {size} numbers (a tensor or a list), got {type(value).__name__}")
        return None
    if v.numel() != size:
        fb.wrong(f"{name} must hold {size} values, one per channel (average over dims 0, 2, 3), got {v.numel()}")
        return None
    return v


@_exercise("02.1", "per-channel mean and std, by hand")
def check_channel_stats(images: torch.Tensor, mean, std) -> None:
    """``mean``, ``std``: your per-channel statistics of the uint8 ``images`` [N, 3, H, W], in [0, 1] units."""
    fb = Feedback("02.1")
    m, s = _as_vector(fb, "mean", mean, 3), _as_vector(fb, "std", std, 3)
    if m is None or s is None:
        fb.done()
    true_m, true_s = data.channel_stats(images)
    if m.max() > 1.5:
        fb.wrong("the means are in [0, 255] units: divide the pixels by 255 first")
    else:
        fb.expect(torch.allclose(m, true_m, atol=1e-4), f"means {[round(v, 4) for v in true_m.tolist()]}",
                  f"means should be {[round(v, 4) for v in true_m.tolist()]}, got {[round(v, 4) for v in m.tolist()]}: "
                  "x.double() / 255, then .mean(dim=(0, 2, 3))")
        fb.expect(torch.allclose(s, true_s, atol=1e-4), f"stds {[round(v, 4) for v in true_s.tolist()]}",
                  f"stds should be {[round(v, 4) for v in true_s.tolist()]}, got {[round(v, 4) for v in s.tolist()]}: "
                  ".std(dim=(0, 2, 3)) over all pixels of a channel, not the mean of per-image stds")
    fb.done()


def _shift_match(original: torch.Tensor, moved: torch.Tensor, reach: int) -> tuple[int, int, float] | None:
    """The shift (dy, dx) within ``reach`` with ``moved[:, r, c] == original[:, r + dy, c + dx]`` wherever
    that pixel exists, and the constant value of the other pixels; None if there is none."""
    _, h, w = original.shape
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            rows, cols = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
            src = original[:, max(0, dy):min(h, h + dy), max(0, dx):min(w, w + dx)]
            if not torch.allclose(moved[:, rows, cols], src, atol=1e-5):
                continue
            band = torch.ones(h, w, dtype=torch.bool)
            band[rows, cols] = False
            values = moved[:, band]
            if values.numel() == 0:
                return dy, dx, float("nan")
            if torch.allclose(values, values.flatten()[0].expand_as(values), atol=1e-5):
                return dy, dx, values.flatten()[0].item()
    return None


@_exercise("02.2", "RandomCrop(32, padding=4) on GAN reals: what it adds")
def check_crop_padding(x: torch.Tensor, cropped: torch.Tensor, padding: int = 4) -> None:
    """``x`` [B, 3, 32, 32] a batch, ``cropped`` the same batch after ``T.RandomCrop(32, padding=4)``."""
    fb = Feedback("02.2")
    if not fb.expect(cropped.shape == x.shape, f"shape {list(x.shape)} kept",
                     f"cropped must have x's shape {list(x.shape)}, got {list(cropped.shape)}: crop back to 32"):
        fb.done()
    found = [_shift_match(a, b, padding) for a, b in zip(x.float(), cropped.float())]
    if not fb.expect(all(f is not None for f in found), "every image is its original shifted by at most "
                                                      f"{padding} px, the gap filled with one value",
                     f"image {[f is None for f in found].index(True) if None in found else 0} is not a "
                     f"padded crop of the original: apply T.RandomCrop(32, padding={padding}) to x itself"):
        fb.done()
    banded = [f for f in found if f[:2] != (0, 0)]
    fb.expect(bool(banded), f"{len(banded)} of {len(found)} images carry a padded band",
              "no image was shifted: draw a few more, RandomCrop picks the offset at random")
    if banded:
        fb.note(f"the band's value is {banded[0][2]:+.2f} (in [-1, 1]: -1 is black, 0 grey): a generator trained "
                "on these reals learns to draw such bars along the borders, because D sees them as real")
    fb.done()


@_exercise("02.3", "DiffAugment, one op at a time")
def check_diffaugment_ops(x: torch.Tensor, augmented: dict, largest: str) -> None:
    """``augmented``: {"color": ..., "translation": ..., "cutout": ...}, ``diff_augment(x, op)`` for each op;
    ``largest``: the op that changes the batch's per-image mean and std the most."""
    fb = Feedback("02.3")
    ops = ("color", "translation", "cutout")
    if not fb.expect(set(augmented) == set(ops), "one batch per op", f"augmented needs exactly the keys {ops}, got "
                                                                     f"{sorted(augmented)}"):
        fb.done()
    x = x.float()
    change = {}
    for op in ops:
        a = augmented[op].float()
        if a.shape != x.shape:
            fb.wrong(f"{op}: shape {list(a.shape)}, expected {list(x.shape)}")
            continue
        change[op] = ((a.mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3))).abs().mean()
                      + (a.std(dim=(1, 2, 3)) - x.std(dim=(1, 2, 3))).abs().mean()).item()
    cut = augmented["cutout"].float()
    fb.expect(bool(((cut == x) | (cut == 0)).all() and (cut != x).any()), "cutout: pixels kept or zeroed",
              "the cutout batch is not x with zeroed squares: diff_augment(x, 'cutout')")
    shifted = [_shift_match(a, b, 4) for a, b in zip(x, augmented["translation"].float())]
    fb.expect(all(s is not None for s in shifted), "translation: each image shifted, zeros shifted in",
              "the translation batch is not x shifted by up to 4 px: diff_augment(x, 'translation')")
    fb.expect(not torch.equal(augmented["color"].float(), x), "color: the pixel values changed",
              "the color batch equals x: diff_augment(x, 'color')")
    if len(change) == len(ops):
        top = max(change, key=change.get)
        fb.expect(str(largest) == top, f"largest change: {top}",
                  f"the largest change of per-image mean + std is {top}'s, not {largest!r}")
        fb.note("mean |change of per-image mean| + |change of per-image std|: "
                + ", ".join(f"{k} {v:.3f}" for k, v in change.items()))
    fb.done()


@_exercise("02.4", "the [-1, 1] scaling and its inverse, by hand")
def check_unit_range(to_unit: Callable[[torch.Tensor], torch.Tensor],
                     from_unit: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Your ``to_unit(uint8 images) -> float in [-1, 1]`` and ``from_unit(float) -> uint8``."""
    fb = Feedback("02.4")
    levels = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    keep = levels.clone()
    x = to_unit(levels)
    fb.expect(torch.equal(levels, keep), "to_unit leaves its input alone",
              "to_unit changed its input tensor: compute on a float copy, not in place on the uint8 batch")
    if not fb.expect(torch.is_tensor(x) and x.is_floating_point() and x.shape == levels.shape,
                     "to_unit returns a float tensor of the same shape",
                     "to_unit must return a float tensor of the input's shape (uint8 would round -1..1 away)"):
        fb.done()
    fb.expect(torch.allclose(x, data.to_unit_range(levels), atol=1e-6), "0 -> -1, 255 -> +1, linear in between",
              f"to_unit maps 0 to {x.min().item():.3f} and 255 to {x.max().item():.3f}: use x / 127.5 - 1")
    back = from_unit(x)
    fb.expect(torch.is_tensor(back) and back.dtype == torch.uint8 and torch.equal(back, levels),
              "from_unit(to_unit(x)) == x on all 256 levels",
              "from_unit(to_unit(x)) must give back the same uint8 levels: (x + 1) * 127.5, round, then .to(uint8)")
    out = from_unit(torch.tensor([-1.7, 1.4]))
    fb.expect(torch.is_tensor(out) and out.tolist() == [0, 255], "values outside [-1, 1] are clamped",
              f"from_unit([-1.7, 1.4]) gives {out.tolist() if torch.is_tensor(out) else out}, expected [0, 255]: "
              "clamp to [0, 255] before the cast (a generator's tanh output can round past the ends)")
    fb.done()


# ----------------------------------------------------------------------------------------------
# 03 · Conditional architectures


@_exercise("03.1", "a 64-pixel generator: its blocks and where the extra parameters go")
def check_upsampling_blocks(n_blocks, extra_params) -> None:
    """``n_blocks``: up-sampling blocks of ``build_generator(ModelConfig(image_size=64))``;
    ``extra_params``: its parameter count minus the 32-pixel ``ModelConfig()`` generator's."""
    fb = Feedback("03.1")
    g64, g32 = models.build_generator(models.ModelConfig(image_size=64)), models.build_generator(models.ModelConfig())
    blocks, extra = len(g64.blocks.blocks), models.count_parameters(g64) - models.count_parameters(g32)
    hint = {3: "that is the 32-pixel generator's count (4 -> 8 -> 16 -> 32)",
            blocks + 1: "count only the blocks that double the resolution: len(G.blocks.blocks)"}
    fb.expect(n_blocks == blocks, f"{blocks} blocks: 4 -> 8 -> 16 -> 32 -> 64",
              hint.get(n_blocks, f"the 64-pixel generator has {blocks} up-sampling blocks, not {n_blocks}"))
    fb.expect(extra_params == extra, f"{extra:,} extra parameters",
              f"expected {extra:,} extra parameters, got {extra_params}: count_parameters(G64) - count_parameters(G32)")
    parts = {name: models.count_parameters(m) for name, m in g64.named_children()}
    parts32 = {name: models.count_parameters(m) for name, m in g32.named_children()}
    fb.note("where they go: " + ", ".join(f"{n} {parts[n] - parts32[n]:+,}" for n in parts)
            + " (the widest layers keep 8w channels for one more doubling)")
    fb.done()


@_exercise("03.2", "a per-class bias instead of the projection")
def check_bias_head(head_cls: type, features: int = 16, num_classes: int = 10) -> None:
    """``head_cls(features, num_classes)``: a module whose ``forward(phi [B, F], y [B])`` returns
    ``[B]`` logits ``w^T phi + b_y``."""
    fb = Feedback("03.2")
    try:
        head = head_cls(features, num_classes)
    except Exception as err:  # the learner's constructor: report whatever it raised
        fb.wrong(f"head_cls({features}, {num_classes}) raised {type(err).__name__}: {err}")
        fb.done()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in head.parameters():  # random values, so a zero initialisation cannot hide the class term
            p.copy_(torch.randn(p.shape, generator=gen))
        phi = torch.randn(32, features, generator=gen)
        out_a, out_b = head(phi, torch.full((32,), 3)), head(phi, torch.full((32,), 8))
    if not fb.expect(out_a.shape == (32,), "one logit per image, [B]",
                     f"the head must return [B] = [32] logits, got {list(out_a.shape)}: flatten the (B, 1) output"):
        fb.done()
    gap = out_a - out_b  # (B,): how much the class changes each image's score
    fb.expect(gap.abs().max() > 1e-6, "the score depends on y", "the score does not change with y: add b_y, "
                                                                  "e.g. nn.Embedding(num_classes, 1)(y).flatten()")
    fb.expect(gap.std() < 1e-5, "the class changes every image's score by the same amount",
              "the class term depends on phi, so it is not a per-class bias: return linear(phi) + bias(y) only")
    proj = models.ProjectionHead(features, num_classes).eval()
    with torch.no_grad():
        proj_gap = proj(phi, torch.full((32,), 3)) - proj(phi, torch.full((32,), 8))
    fb.note(f"spread over images of D(x, cat) - D(x, ship): bias head {gap.std():.1e}, projection head "
            f"{proj_gap.std():.2f}. A bias can make D stricter for a class, but cannot check whether this image "
            "matches this class")
    fb.done()


@_exercise("03.3", "sigma(W) by power iteration")
def check_power_iteration(sigma_fn: Callable[[torch.Tensor, int], float]) -> None:
    """``sigma_fn(W, iterations)`` for a 2-D ``W [m, n]``: its largest singular value, by that many
    steps of power iteration. The check makes sure it iterates: on a matrix whose two largest
    singular values are close, one step must still be short of sigma and 300 steps close to it
    (an exact SVD, ``torch.linalg.svdvals``, is right at once and fails the first test)."""
    fb = Feedback("03.3")
    gen = torch.Generator().manual_seed(0)
    conv = models.build_discriminator(models.ModelConfig(d_width=8)).body[2]
    cases = {"a random 64 x 27 matrix": torch.randn(64, 27, generator=gen),
             "a nearly rank-1 matrix": torch.outer(torch.randn(40, generator=gen), torch.randn(30, generator=gen))
             + 0.01 * torch.randn(40, 30, generator=gen),
             "a D conv weight, (out, in * k * k)": conv.parametrizations.weight.original.detach().flatten(1)}
    for name, W in cases.items():
        true = torch.linalg.matrix_norm(W, 2).item()
        got = _number(fb, f"sigma_fn on {name}", call_learner(fb, "sigma_fn(W, 100)", sigma_fn, W.clone(), 100))
        if got is None:
            continue
        if _close(got, torch.linalg.matrix_norm(W, "fro").item(), 1e-3) and not _close(got, true, 1e-3):
            fb.wrong(f"{name}: that is the Frobenius norm; sigma(W) = ||W v|| for the top right-singular vector v")
        elif _close(got, true ** 2, 1e-3):
            fb.wrong(f"{name}: you returned sigma squared (v^T W^T W v); sigma is its square root, u^T W v")
        else:
            fb.expect(_close(got, true, 1e-3), f"{name}: sigma = {true:.4f}",
                      f"{name}: sigma should be {true:.4f}, got {got:.4f}: iterate v <- W^T u / ||.||, "
                      "u <- W v / ||.|| (50 times), then sigma = u^T W v")
    q1, _ = torch.linalg.qr(torch.randn(30, 30, generator=gen))
    q2, _ = torch.linalg.qr(torch.randn(20, 20, generator=gen))
    close = q1[:, :20] @ torch.diag(torch.linspace(1.0, 0.5, 20)) @ q2.T  # sigma 1.0, then 0.97, 0.95, ...
    few, many = (_number(fb, f"sigma_fn(W, {k})", call_learner(fb, f"sigma_fn(W, {k})", sigma_fn, close.clone(), k)) for k in (1, 300))
    if few is not None and many is not None:
        fb.expect(few < 0.995 and abs(many - 1.0) < 0.02,
                  f"it iterates: one step gives {few:.3f}, 300 steps {many:.3f} (sigma = 1, the next 0.97)",
                  f"one step gave {few:.4f} and 300 steps {many:.4f}, for sigma = 1 with the next singular value "
                  "0.97: power iteration approaches sigma from below, step by step (no SVD, no matrix_norm)")
    fb.done()


@_exercise("03.4", "what conditioning costs for 100 classes")
def check_conditioning_params(answer, num_classes: int = 100) -> None:
    """``answer``: parameters of the projection ``ModelConfig(num_classes=100)`` generator minus
    those of the same generator with ``num_classes=0``."""
    fb = Feedback("03.4")
    cond = models.build_generator(models.ModelConfig(num_classes=num_classes))
    plain = models.build_generator(models.ModelConfig(num_classes=0))
    true = models.count_parameters(cond) - models.count_parameters(plain)
    ten = models.count_parameters(models.build_generator(models.ModelConfig(num_classes=10)))
    channels = sum(m.bn.num_features for m in cond.modules() if isinstance(m, models.ConditionalBatchNorm2d))
    hints = {2 * num_classes * channels: "that is all the class tables; the unconditional BatchNorms have their own "
                                         "gamma and beta (2 per channel), which conditioning replaces",
             ten - models.count_parameters(plain): "that is for 10 classes: build it with num_classes=100"}
    fb.expect(answer == true, f"{true:,} parameters: 2 x (100 - 1) per BN channel, {channels:,} channels",
              hints.get(answer, f"expected {true:,}, got {answer}: count_parameters(conditional) - "
                                "count_parameters(num_classes=0)"))
    fb.done()


@_exercise("03.5", "the EMA's half-life")
def check_ema_half_life(steps, decay: float = 0.999) -> None:
    """``steps``: after how many updates a weight's share in the EMA has fallen to half (d^k = 1/2)."""
    fb = Feedback("03.5")
    k = math.log(0.5) / math.log(decay)
    value = _number(fb, "steps", steps)
    if value is not None:
        if _close(value, 1 / (1 - decay), 1e-3):
            fb.wrong(f"1 / (1 - d) = {1 / (1 - decay):.0f} is the average's time constant (where the weight falls "
                     "to 1/e); solve d^k = 1/2 for k")
        else:
            fb.expect(math.floor(k) <= value <= math.ceil(k), f"about {k:.1f} steps: ln 2 / -ln d",
                      f"d^k = 1/2 gives k = ln 0.5 / ln d = {k:.1f} for d = {decay}, not {value:g}")
    fb.done()


@_exercise("03.6", "where the hinge loss stops pushing")
def check_hinge_zero_gradient(real, fake) -> None:
    """For ``d_real = [2.0, 0.5, -1.0]`` and ``d_fake = [-3.0, 0.0, 1.0]``: the indices of the real and
    of the fake samples whose hinge D-loss gradient is zero."""
    fb = Feedback("03.6")
    d_real = torch.tensor([2.0, 0.5, -1.0], requires_grad=True)
    d_fake = torch.tensor([-3.0, 0.0, 1.0], requires_grad=True)
    losses.d_loss_hinge(d_real, d_fake).backward()
    truth = {"real": [i for i, g in enumerate(d_real.grad) if g == 0],
             "fake": [i for i, g in enumerate(d_fake.grad) if g == 0]}
    for name, given, rule in (("real", real, "D(x) >= 1"), ("fake", fake, "D(G(z)) <= -1")):
        try:
            given = sorted(int(i) for i in given)
        except (TypeError, ValueError):
            fb.wrong(f"{name} must be a list of indices, got {given!r}")
            continue
        fb.expect(given == truth[name], f"{name}: {truth[name]} ({rule}: beyond the margin, no push)",
                  f"{name}: the zero-gradient samples are those with {rule}; got {given}" +
                  (" (the BCE loss never has a zero gradient; the hinge does)" if not given else ""))
    fb.done()


# ----------------------------------------------------------------------------------------------
# 05 · Interpolation and FID


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


@_exercise("05.3", "extrapolating FD to infinitely many samples")
def check_fd_extrapolation(ns, fds, fd_inf, c) -> None:
    """``fd_inf``, ``c``: the least-squares fit FD(N) = fd_inf + c / N to the measured ``(ns, fds)``."""
    fb = Feedback("05.3")
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


@_exercise("05.4", "a generator that ignores which label goes with which latent")
def check_label_shuffler(shuffler: nn.Module, G: nn.Module, num_samples: int = 200) -> None:
    """``shuffler``: a module whose ``forward(z, y)`` returns ``G(z, y[torch.randperm(len(y))])``
    and which exposes ``z_dim`` and ``num_classes`` like ``G``."""
    fb = Feedback("05.4")
    if not fb.expect(getattr(shuffler, "z_dim", None) == G.z_dim and getattr(shuffler, "num_classes", None)
                     == G.num_classes, "z_dim and num_classes copied from G",
                     "set self.z_dim = G.z_dim and self.num_classes = G.num_classes in __init__: the "
                     "metrics read them"):
        fb.done()
    G.eval()
    shuffler.eval()
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


@_exercise("05.5", "the Inception Score by hand")
def check_inception_score(is_fn: Callable[[torch.Tensor], float]) -> None:
    """``is_fn(logits [N, K])``: exp(E_x KL(p(y|x) || p(y))) over all N (no splits)."""
    fb = Feedback("05.5")
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


# ----------------------------------------------------------------------------------------------
# 06 · The class sampler


def _column_accuracy(G: nn.Module, clf: metrics.ClassifierFeatures, seed: int) -> float:
    """Share of the 10 classes the classifier recognises in one latent's column of the class grid."""
    G.eval()
    images = sample_grid(G, per_class=1, seed=seed)  # (10, 3, S, S): one z, every class
    logits = clf.features_and_logits(images)[1]
    return (logits.argmax(1) == torch.arange(G.num_classes)).float().mean().item()


@_exercise("06.1", "good seeds and poor seeds: does the latent's norm tell them apart?")
def check_seed_columns(G: nn.Module, seeds, norms, accuracies) -> None:
    """For each seed: ``norms`` = ||sample_latents(1, G.z_dim, seed)||, ``accuracies`` = the share of
    the 10 classes the course classifier recognises in ``sample_grid(G, per_class=1, seed=seed)``."""
    fb = Feedback("06.1")
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


@_exercise("06.2", "lerp and slerp midpoints of a seed walk")
def check_midpoint_norms(za: torch.Tensor, zb: torch.Tensor, lerp_norm, slerp_norm) -> None:
    """The norms of ``sampling.lerp`` and ``sampling.slerp`` between ``za`` and ``zb`` at t = 0.5."""
    fb = Feedback("06.2")
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


@_exercise("06.3", "a near and a distant class walk, measured")
def check_morph_comparison(near: dict, distant: dict, answer: str) -> None:
    """``near``, ``distant``: ``metrics.class_morph_curve`` of cat -> dog and cat -> truck; ``answer``:
    which rises more, "near", "distant" or "no difference" (when the gap is within its 95% half-width)."""
    fb = Feedback("06.3")
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


@_exercise("06.4", "the function behind an 'all classes' checkbox")
def check_render_all_classes(render_fn: Callable[..., bytes], G: nn.Module, seed: int = 0, per_class: int = 3) -> None:
    """``render_fn(G, seed, per_class)``: PNG bytes of the class grid (one row per class, one column per latent)."""
    from PIL import Image

    fb = Feedback("06.4")
    png = render_fn(G, seed, per_class)
    if not fb.expect(isinstance(png, bytes) and png[:8] == b"\x89PNG\r\n\x1a\n", "returns PNG bytes",
                     "return PNG bytes (widgets.png_bytes(grid) makes them), not an array or a figure"):
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


# ----------------------------------------------------------------------------------------------
# 04: training runs compared, measured


def _run_config(fb: Feedback, name: str, result) -> dict | None:
    """The config a ``train()`` call ran with (``result.config``), as a dict."""
    cfg = getattr(result, "config", None)
    if cfg is None or not hasattr(result, "G_ema"):
        fb.wrong(f"{name} must be what train(cfg) returned, got {type(result).__name__}")
        return None
    return cfg.to_dict()


def fidelity_difference(baseline, variant, num_samples: int) -> tuple[float, float, float, str]:
    """Label fidelity of two runs' EMA generators (the same latents and labels, the course
    classifier): ``(baseline's, variant's, 95% half-width of their difference, verdict)``, the
    verdict being "better", "worse" or "no difference" (within the half-width) for the variant."""
    clf = metrics.ClassifierFeatures()
    a, b = (metrics.label_fidelity(r.G_ema, clf, num_samples=num_samples).value for r in (baseline, variant))
    half = 1.96 * math.sqrt((a * (1 - a) + b * (1 - b)) / num_samples)
    return a, b, half, "no difference" if abs(b - a) <= half else ("better" if b > a else "worse")


def _compare_runs(fb: Feedback, baseline, variant, answer: str, num_samples: int) -> None:
    a, b, half, truth = fidelity_difference(baseline, variant, num_samples)
    fb.expect(str(answer) == truth, f"{truth}: label fidelity {b:.1%} (variant) vs {a:.1%} (baseline), "
                                    f"difference {b - a:+.1%} ± {half:.1%} (n = {num_samples} each)",
              f"label fidelity is {b:.1%} (variant) vs {a:.1%} (baseline), a difference of {b - a:+.1%} ± "
              f"{half:.1%}: the answer is {truth!r}, not {answer!r}")


def _check_variant(key: str, baseline, variant, answer: str, wanted: dict, num_samples: int) -> None:
    fb = Feedback(key)
    base_cfg, var_cfg = _run_config(fb, "baseline", baseline), _run_config(fb, "variant", variant)
    if base_cfg is None or var_cfg is None:
        fb.done()
    flat = {**var_cfg, **var_cfg["model"]}
    for field_name, (ok, hint) in wanted.items():
        fb.expect(ok(flat.get(field_name)), f"variant: {field_name} = {flat.get(field_name)!r}",
                  f"the variant was trained with {field_name} = {flat.get(field_name)!r}: {hint}")
    budget = lambda c: f"steps={c['steps']}, max_minutes={c['max_minutes']}"  # noqa: E731
    fb.expect(budget(var_cfg) == budget(base_cfg), f"the same budget as the baseline ({budget(base_cfg)})",
              f"the variant ran with {budget(var_cfg)}, the baseline with {budget(base_cfg)}: give both the same")
    if not fb.problems:
        _compare_runs(fb, baseline, variant, answer, num_samples)
    fb.done()


@_exercise("04.1", "the classic CGAN against the projection cGAN, measured")
def check_classic_vs_projection(baseline, variant, answer: str, num_samples: int = 1000) -> None:
    """``baseline``: the notebook's projection run (``result``); ``variant``: a classic CGAN run with
    the same budget; ``answer``: is the variant "better", "worse" or "no difference" in label fidelity."""
    _check_variant("04.1", baseline, variant, answer, {
        "arch": (lambda v: v == "classic", 'pass ModelConfig(arch="classic", ...)'),
        "loss": (lambda v: v in ("bce", "auto"), 'the classic CGAN trains with loss="bce"'),
        "beta1": (lambda v: v == 0.5, "DCGAN's Adam uses beta1=0.5")}, num_samples)


@_exercise("04.2", "DiffAugment on, measured")
def check_diffaug_effect(baseline, variant, answer: str, num_samples: int = 1000) -> None:
    """``variant``: the baseline's config with ``diffaug="color,translation,cutout"``; ``answer`` as in 04.1."""
    _check_variant("04.2", baseline, variant, answer, {
        "diffaug": (lambda v: bool(v), 'set diffaug="color,translation,cutout"'),
        "arch": (lambda v: v == "projection", "keep the baseline's projection model")}, num_samples)


@_exercise("04.3", "the generator before its fix, measured")
def check_init_ablation(baseline, variant, answer: str, num_samples: int = 1000) -> None:
    """``variant``: the baseline's config with ``ModelConfig(g_init="xavier", out_cbn=False)``; ``answer`` as in 04.1."""
    _check_variant("04.3", baseline, variant, answer, {
        "g_init": (lambda v: v == "xavier", 'pass ModelConfig(g_init="xavier", ...)'),
        "out_cbn": (lambda v: v is False, "pass ModelConfig(out_cbn=False, ...)")}, num_samples)


@_exercise("04.4", "a run stopped and resumed")
def check_resumed_run(run_folder: str | Path) -> None:
    """``run_folder``: the ``--out`` of a run that was stopped (Ctrl-C) and continued with ``--resume``."""
    fb = Feedback("04.4")
    folder = Path(run_folder)
    log, ckpt = folder / "log.csv", folder / "checkpoint.pt"
    if not fb.expect(log.is_file() and ckpt.is_file(), f"{folder} holds log.csv and checkpoint.pt",
                     f"{folder} has no log.csv and checkpoint.pt: pass the --out folder of your run"):
        fb.done()
    with open(log) as f:
        rows = [(int(r["step"]), float(r["time_s"])) for r in csv.DictReader(f)]
    if not fb.expect(bool(rows), f"the log has {len(rows)} rows", "the log is empty: train with log_every > 0"):
        fb.done()
    steps = [s for s, _ in rows]
    restarts = sum(t1 < t0 for (_, t0), (_, t1) in zip(rows, rows[1:]))  # time_s starts again at a resume
    fb.expect(restarts >= 1, f"the log shows {restarts} resume(s): its clock starts again",
              "the log shows one uninterrupted run: stop it with Ctrl-C after its first log rows and start the "
              "same command with --resume")
    fb.expect(steps == sorted(set(steps)), "every logged step appears once, in order",
              "the log repeats or reorders steps: resume with --resume (not a fresh run into the same --out)")
    fb.done()


# ----------------------------------------------------------------------------------------------
# 07: your data, your service


def _file_list(fb: Feedback, name: str, value) -> list[str] | None:
    if isinstance(value, (list, tuple)) and value and all(isinstance(f, str) for f in value):
        return list(value)
    fb.wrong(f"{name} must be the non-empty .files list of a load_class_folders(...) result, got "
             f"{type(value).__name__}")
    return None


@_exercise("07.1", "the recorded test split is reproducible")
def check_split_rule(files_a, files_b, files_other_seed) -> None:
    """Three ``.files`` lists of a test split: seed 0, seed 0 again, another seed."""
    from collections import Counter

    fb = Feedback("07.1")
    a, b, c = (_file_list(fb, n, v) for n, v in (("files_a", files_a), ("files_b", files_b),
                                                  ("files_other_seed", files_other_seed)))
    if None in (a, b, c):
        fb.done()
    fb.expect(a == b, f"the same seed draws the same {len(a)} test files",
              "files_a and files_b differ: load both with the same seed (and the same test_fraction)")
    fb.expect(set(a) != set(c), "another seed draws other test files",
              "files_other_seed is the same split: load it with another seed, e.g. seed=1 (a dataset with "
              "its own test/ folder has a fixed split that no seed changes: use the cut-out CIFAR-10 folder)")
    per_class = lambda files: Counter(Path(f).parent.name for f in files)  # noqa: E731
    fb.expect(per_class(a) == per_class(c), f"both seeds keep every class's share: {dict(per_class(a))}",
              f"the class counts differ ({dict(per_class(a))} vs {dict(per_class(c))}): pass test splits of "
              "the same folder and test_fraction")
    fb.done()


@_exercise("07.2", "label fidelity of real images is the judge's accuracy")
def check_judge_ceiling(score, judge: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
    """``score``: ``metrics.label_fidelity`` of the real ``images`` with their ``labels``, judged by ``judge``."""
    fb = Feedback("07.2")
    if not fb.expect(isinstance(score, metrics.Score) and score.metric == "label accuracy",
                     "a label-fidelity Score", "pass the Score that metrics.label_fidelity(...) returns"):
        fb.done()
    fb.expect(score.num_samples == len(labels), f"all {len(labels)} held-out images scored",
              f"{score.num_samples} images scored, expected all {len(labels)}: pass labels=test_set.labels")
    expected = accuracy(judge, images, labels, tta=False)
    # one image either way: channels-last and plain convolutions may round a near-tie differently
    if fb.expect(abs(score.value - expected) <= 1 / len(labels) + 1e-6, f"{score.value:.1%}: the judge's own accuracy on them",
                 f"{score.value:.1%} is not the judge's accuracy on these images ({expected:.1%}): score the "
                 "real test images with their true labels and metrics.ClassifierFeatures(judge)"):
        fb.note("Real images of the asked class score the judge's accuracy: a generator whose samples were as "
                "recognisable as real ones would score about that (one that draws only easy, prototypical "
                "examples can score more). Read a generator's label fidelity between 1/K and this.")
    fb.done()


@_exercise("07.3", "a client for the generator service")
def check_client(ask: Callable[[str, str, int], bytes], checkpoint: str | Path) -> None:
    """``ask(url, class_name, seed)``: PNG bytes of a 4-sample grid, an exception for a 4xx answer."""
    fb = Feedback("07.3")
    from . import serve  # here, not at the top: the other chapters' checks need no FastAPI

    with serve.ServerProcess(generator=checkpoint) as server:
        name = serve.call(server.url + "/classes").json()["classes"][0]
        expected = serve.call(server.url + "/generate", {"class": name, "n": 4, "seed": 3}).body
        try:
            got = ask(server.url, name, 3)
        except Exception as err:  # noqa: BLE001 - any failure of the learner's code is feedback
            got = err
        fb.expect(got == expected, f"ask(url, {name!r}, 3) returns the service's 4-sample PNG grid",
                  f"ask(url, {name!r}, 3) returned {type(got).__name__}, not the PNG bytes of POST /generate "
                  f"with {{'class': {name!r}, 'n': 4, 'seed': 3}}")
        try:
            answer = ask(server.url, "no-such-class", 0)
        except Exception as err:  # noqa: BLE001
            fb.expect("no-such-class" in str(err), f"an unknown class raises {type(err).__name__} with the "
                      "service's message", f"the exception says {str(err)!r}: include the service's "
                      "error message (reply.json()['error'])")
        else:
            fb.wrong(f"an unknown class returned {type(answer).__name__} instead of raising: check reply.status")
    fb.done()
