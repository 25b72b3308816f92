"""Notebook 02 (CIFAR-10 preprocessing): the checks of its exercises.
"""
from __future__ import annotations

from typing import Callable

import torch

from .. import data
from .core import Feedback, _as_vector, _exercise, check_choice

_STATS_OPTIONS = {
    "a": (True, "no: train and test are draws from one distribution, so on the full splits their channel "
                "statistics differ only in the third decimal, and you pass the training split's statistics to "
                "standardize for both anyway"),
    "b": (False, "test images are standardised with the *training* statistics (the model was fitted to "
                 "those), so the test split's own statistics are never used"),
    "c": (False, "a GAN's reals are scaled to [-1, 1] to match tanh; per-channel standardisation is for "
                 "classifiers, and there the split difference is far below anything a model notices"),
    "d": (False, "the differences are in the third decimal, not a large fraction of a standard deviation: "
                 "compare your numbers with the training split's"),
}


@_exercise("02.1", "per-channel mean and std, by hand")
def check_channel_stats(images: torch.Tensor, mean, std, matters: str) -> None:
    """``mean``, ``std``: your per-channel statistics of the uint8 ``images`` [N, 3, H, W], in [0, 1] units;
    ``matters``: one letter of exercise 1's options (does the train/test difference matter?)."""
    fb = Feedback("02.1")
    check_choice(fb, "matters", matters, _STATS_OPTIONS)
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


_CROP_OPTIONS = {
    "a": (True, "bands of one flat value along one or two borders: D sees them on real images, so a "
                "generator that draws them looks more real to D"),
    "b": (False, "a crop moves the picture by whole pixels; it does not blur it"),
    "c": (False, "the padding adds constant pixels at the borders; the colours of the picture itself are "
                 "unchanged"),
    "d": (False, "the crops change the real distribution (all but 1 in 81 of the reals get a border band: "
                 "only the centred crop has none), and a GAN learns the distribution it is shown, bands "
                 "included"),
}


@_exercise("02.2", "RandomCrop(32, padding=4) on GAN reals: what it adds")
def check_crop_padding(x: torch.Tensor, cropped: torch.Tensor, artefact: str, padding: int = 4) -> None:
    """``x`` [B, 3, 32, 32] a batch, ``cropped`` the same batch after ``T.RandomCrop(32, padding=4)``;
    ``artefact``: your prediction, one letter of exercise 2's options."""
    fb = Feedback("02.2")
    check_choice(fb, "artefact", artefact, _CROP_OPTIONS)
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
