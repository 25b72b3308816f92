"""Pixels to model inputs and back: ``uint8 [0, 255]`` <-> ``float [-1, 1]``, channel statistics,
standardisation, and the seeded horizontal flip.
"""
from __future__ import annotations

import torch

from ..errors import CourseError

# ----------------------------------------------------------------------------------------------
# Preprocessing


def _require_uint8(images: torch.Tensor, fn: str) -> None:
    # float input would already be scaled (scaling it twice is silent garbage), and the in-place
    # arithmetic below would overwrite the caller's tensor
    if images.dtype != torch.uint8:
        raise CourseError(f"{fn} expects uint8 images in [0, 255] (as load_cifar10 returns them), got {images.dtype}")


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range of a tanh generator."""
    _require_uint8(images, "to_unit_range")
    return images.float().div_(127.5).sub_(1.0)


def from_unit_range(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255] (clamped, rounded)."""
    return x.add(1.0).mul(127.5).round_().clamp_(0, 255).to(torch.uint8)


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images [N, 3, H, W], in [0, 1] units, computed in float64."""
    _require_uint8(images, "channel_stats")
    x = images.to(torch.float64).div_(255.0)
    return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))


def standardize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 3, H, W] -> float, each channel with zero mean and unit std (classifier input)."""
    _require_uint8(images, "standardize")
    x = images.float().div_(255.0)
    return (x - mean.to(x).view(1, -1, 1, 1)) / std.to(x).view(1, -1, 1, 1)


def hflip_mask(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Which of n images to flip: (n,) bool, each True with probability 1/2, drawn on the CPU so a
    seeded generator gives the same mask on every device."""
    return torch.rand(n, generator=generator, device="cpu") < 0.5


def apply_hflip(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Flip the images of [N, C, H, W] whose ``mask`` entry (N,) is True, left-right."""
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(3), x)


def random_hflip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image of [N, C, H, W] left-right with probability 1/2 (safe for CIFAR GANs:
    a mirrored car is still a car, so the generator learns nothing it should not)."""
    return apply_hflip(x, hflip_mask(x.shape[0], generator).to(x.device))
