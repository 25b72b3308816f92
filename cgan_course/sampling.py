"""Drawing from a trained generator: class grids, latent interpolation, truncation.

Works with any ``G(z, y)`` that exposes ``z_dim`` and ``num_classes``.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn

from .errors import CourseError


def sample_latents(n: int, z_dim: int, seed: int | None = None, truncation: float | None = None,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` latents ``[n, z_dim]`` from N(0, I), reproducible from ``seed`` (drawn on the CPU so
    the same seed gives the same images on every device). ``truncation`` t resamples every
    coordinate with |z| > t: smaller t, more typical (and less varied) images."""
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    z = torch.randn(n, z_dim, generator=g)
    if truncation is not None:
        if truncation <= 0:
            raise CourseError(f"truncation must be > 0, got {truncation}")
        while (mask := z.abs() > truncation).any():
            z[mask] = torch.randn(int(mask.sum()), generator=g)
    return z.to(device)


def _device_of(G: nn.Module) -> torch.device:
    p = next(G.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def generate(G: nn.Module, z: torch.Tensor, y: torch.Tensor | None, batch_size: int = 500) -> torch.Tensor:
    """Run ``G`` in batches; returns images ``[N, 3, S, S]`` in [-1, 1] on the CPU."""
    device = _device_of(G)
    out = []
    for i in range(0, z.shape[0], batch_size):
        yi = y[i:i + batch_size].to(device) if y is not None else None
        out.append(G(z[i:i + batch_size].to(device), yi).float().cpu())
    return torch.cat(out)


def sample_grid(G: nn.Module, per_class: int = 10, seed: int = 0, truncation: float | None = None,
                classes: list[int] | None = None) -> torch.Tensor:
    """One row per class, ``per_class`` samples per row: images ``[rows * per_class, 3, S, S]``.

    Row r uses the same ``per_class`` latents as every other row, so a column shows one latent
    drawn as every class. An unconditional G gives 10 rows of fresh samples.
    """
    rows = classes if classes is not None else list(range(G.num_classes or 10))
    z = sample_latents(per_class, G.z_dim, seed, truncation).repeat(len(rows), 1)  # (R * P, z_dim)
    y = torch.tensor(rows).repeat_interleave(per_class) if G.num_classes else None
    if not G.num_classes:
        z = sample_latents(len(rows) * per_class, G.z_dim, seed, truncation)
    return generate(G, z, y)


def to_image_grid(images: torch.Tensor, nrow: int, padding: int = 2) -> torch.Tensor:
    """[N, 3, S, S] in [-1, 1] -> one uint8 picture [3, H, W] with ``nrow`` images per row."""
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=nrow, padding=padding, normalize=True,
                     value_range=(-1, 1), pad_value=1.0)
    return (grid * 255).round().to(torch.uint8)


def save_image_grid(images: torch.Tensor, path: str | Path, nrow: int) -> Path:
    """Save [N, 3, S, S] in [-1, 1] as a PNG grid (written atomically)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = to_image_grid(images.cpu(), nrow).permute(1, 2, 0).numpy()
    tmp = path.with_name(path.name + ".tmp.png")
    Image.fromarray(grid).save(tmp, optimize=True)
    tmp.replace(path)
    return path


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight line: (1 - t) z0 + t z1. ``t`` [T] -> [T, z_dim]."""
    t = t.view(-1, 1)
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation along the great circle from z0 to z1 (norms interpolated linearly).

    A Gaussian latent in high dimension lives near the sphere of radius sqrt(z_dim); the midpoint
    of a straight line is shorter by about 1/sqrt(2), a region G rarely saw in training. slerp
    stays on the shell. ``t`` [T] -> [T, z_dim].
    """
    t = t.view(-1, 1)
    n0, n1 = z0.norm(), z1.norm()
    u0, u1 = z0 / n0, z1 / n1
    omega = torch.arccos((u0 * u1).sum().clamp(-1 + 1e-7, 1 - 1e-7))
    if omega.abs() < 1e-4:  # (nearly) parallel: slerp degenerates to lerp
        return lerp(z0, z1, t)
    direction = (torch.sin((1 - t) * omega) * u0 + torch.sin(t * omega) * u1) / torch.sin(omega)
    return direction * ((1 - t) * n0 + t * n1)



@torch.no_grad()
def interpolate_classes(G: nn.Module, z: torch.Tensor, y0: int, y1: int, t: torch.Tensor) -> torch.Tensor:
    """One latent ``z [z_dim]`` drawn while the class slides from ``y0`` to ``y1``: images ``[T, 3, S, S]``.

    The course's generators read the class only through ``nn.Embedding`` lookups (CBN gains and
    biases, or the classic label embedding), so mixing the looked-up vectors,
    (1 - t) E[y0] + t E[y1], is the same as feeding G a soft one-hot label.
    """
    device = _device_of(G)
    t = t.view(-1, 1).to(device)  # (T, 1): broadcasts over the embedding width
    y_a = torch.full((t.shape[0],), y0, dtype=torch.long, device=device)
    y_b = torch.full_like(y_a, y1)

    def mix(module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        return (1 - t) * output + t * nn.functional.embedding(y_b, module.weight)

    handles = [m.register_forward_hook(mix) for m in G.modules() if isinstance(m, nn.Embedding)]
    try:
        return G(z.reshape(1, -1).expand(t.shape[0], -1).to(device), y_a).float().cpu()  # (T, z_dim) -> (T, 3, S, S)
    finally:
        for h in handles:
            h.remove()

@torch.no_grad()
def recalibrate_batchnorm(G: nn.Module, batches: int = 20, batch_size: int = 256, seed: int = 0) -> nn.Module:
    """Recompute every BatchNorm's running statistics from ``batches`` generated batches
    ("standing statistics", BigGAN). An EMA generator's averaged weights no longer match the
    running statistics collected for the raw weights; this makes eval-mode sampling match."""
    bns = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return G
    device = _device_of(G)
    was_training = G.training
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the recalibration batches
    G.train()
    g = torch.Generator().manual_seed(seed)
    for _ in range(batches):
        z = torch.randn(batch_size, G.z_dim, generator=g).to(device)
        y = torch.randint(0, G.num_classes, (batch_size,), generator=g).to(device) if G.num_classes else None
        G(z, y)
    for bn in bns:
        bn.momentum = 0.1
    G.train(was_training)
    return G


def grid_side(n: int) -> int:
    """Images per row for a roughly square grid of ``n`` images."""
    return max(1, math.isqrt(n - 1) + 1) if n > 0 else 1
