"""Reference solutions to notebook 07's exercises (the class sampler).

``solve_k(fast)`` returns the keyword arguments of exercise k's check,
``cgan_course.exercises.EXERCISES["07.k"].check``. ``python solutions/ex07.py`` checks them all
with the committed generator.
"""
from __future__ import annotations

import sys

import torch
import torch.nn as nn

from cgan_course import exercises, metrics, pretrained
from cgan_course.data import CLASSES
from cgan_course.sampling import (
    lerp,
    png_bytes,
    sample_grid,
    sample_latents,
    slerp,
    to_image_grid,
)


def solve_1(fast: bool = False) -> dict:
    G, clf = pretrained.load_generator("cpu"), metrics.ClassifierFeatures()
    seeds = list(range(8 if fast else 40))
    norms = [sample_latents(1, G.z_dim, s)[0].norm().item() for s in seeds]
    accuracies = []
    for s in seeds:
        logits = clf.features_and_logits(sample_grid(G, per_class=1, seed=s))[1]  # one z drawn as every class
        accuracies.append((logits.argmax(1) == torch.arange(G.num_classes)).float().mean().item())
    return dict(G=G, seeds=seeds, norms=norms, accuracies=accuracies)


def solve_2(fast: bool = False) -> dict:
    za, zb = sample_latents(1, 128, seed=0)[0], sample_latents(1, 128, seed=1)[0]
    half = torch.tensor([0.5])
    return dict(za=za, zb=zb, lerp_norm=lerp(za, zb, half)[0].norm().item(),
                slerp_norm=slerp(za, zb, half)[0].norm().item())


def solve_3(fast: bool = False) -> dict:
    G, clf = pretrained.load_generator("cpu"), metrics.ClassifierFeatures()
    n, steps = (4, 3) if fast else (100, 8)
    near, distant = (metrics.class_morph_curve(G, clf, CLASSES.index("cat"), CLASSES.index(b), num_latents=n,
                                               steps=steps) for b in ("dog", "truck"))
    (rn, hn), (rd, hd) = exercises.morph_rise(near), exercises.morph_rise(distant)
    gap, half = rd - rn, (hn ** 2 + hd ** 2) ** 0.5
    answer = "no difference" if abs(gap) <= half else ("distant" if gap > 0 else "near")
    return dict(near=near, distant=distant, answer=answer)


def render_all_classes(G: nn.Module, seed: int, per_class: int) -> bytes:
    """What an 'all classes' checkbox would show: one row per class, the same latents in every row."""
    return png_bytes(to_image_grid(sample_grid(G, per_class=per_class, seed=seed), nrow=per_class))


def solve_4(fast: bool = False) -> dict:
    return dict(render_fn=render_all_classes, G=pretrained.load_generator("cpu"))


if __name__ == "__main__":
    exercises.check_solutions(sys.modules[__name__], "07")
