"""Reference solutions to notebook 02's exercises (CIFAR-10 and its preprocessing).

``solve_k(fast)`` returns the keyword arguments of exercise k's check,
``cgan_course.exercises.EXERCISES["02.k"].check``. They use the committed 1,000-image sample, so
they run anywhere; swap in ``data.load_cifar10(source="auto")`` for the whole set.
``python solutions/ex02.py`` checks them all.
"""
from __future__ import annotations

import sys

import torch
import torchvision.transforms as T

from cgan_course import data, exercises
from cgan_course.diffaugment import diff_augment


def _batch(n: int = 8) -> torch.Tensor:
    images, labels = data.load_cifar10(None, train=True, source="sample")
    return data.to_unit_range(torch.cat([images[labels == c][:1] for c in range(n)]))  # (n, 3, 32, 32)


def solve_1(fast: bool = False) -> dict:
    images, _ = data.load_cifar10(None, train=False, source="sample")
    x = images.double() / 255  # [0, 1] units, float64 so 10^7 pixels sum exactly enough
    return dict(images=images, mean=x.mean(dim=(0, 2, 3)), std=x.std(dim=(0, 2, 3)), matters="a")


def solve_2(fast: bool = False) -> dict:
    x = _batch()
    crop = T.RandomCrop(32, padding=4)  # pads with 0: grey in [-1, 1]
    torch.manual_seed(0)
    return dict(x=x, cropped=torch.stack([crop(image) for image in x]), artefact="a")  # flat border bands


def solve_3(fast: bool = False) -> dict:
    x = _batch()
    torch.manual_seed(0)
    augmented = {op: diff_augment(x, op) for op in ("color", "translation", "cutout")}
    change = {op: ((a.mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3))).abs().mean()
                   + (a.std(dim=(1, 2, 3)) - x.std(dim=(1, 2, 3))).abs().mean()).item()
              for op, a in augmented.items()}
    return dict(x=x, augmented=augmented, largest=max(change, key=change.get))


def to_unit(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1  # a new float tensor: the uint8 input stays as it is


def from_unit(x: torch.Tensor) -> torch.Tensor:
    return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def solve_4(fast: bool = False) -> dict:
    return dict(to_unit=to_unit, from_unit=from_unit)


if __name__ == "__main__":
    exercises.check_solutions(sys.modules[__name__], "02")
