"""GAN theory you can watch: 1-D formulas on a grid and a 2-D mixture-of-Gaussians GAN.

Two halves, both used by notebook 01:

1. Theory on a grid (NumPy): the optimal discriminator ``D*(x) = p_data(x) / (p_data(x) + p_g(x))``,
   the value ``V(D, G) = E_x~p_data[log D(x)] + E_x~p_g[log(1 - D(x))]`` by numerical integration,
   and the Jensen-Shannon divergence, so that ``V(D*, G) = -log 4 + 2 JSD(p_data || p_g)`` can be
   checked with numbers.
2. A toy GAN (PyTorch): 2-D data from ``n_modes`` Gaussians on a ring, small MLPs ``G(z, y)`` and
   ``D(x, y)`` (unconditional when ``conditional=False``), a training loop with the package's BCE
   losses that keeps snapshots of the generated cloud, and a mode-coverage metric.

It trains in seconds on a CPU, which is the point: the classic failure (mode collapse) and its
conditional fix are visible live in class.
"""
from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import CourseError
from .losses import d_loss_bce, g_loss_minimax, g_loss_nonsaturating

# ----------------------------------------------------------------------------------------------
# Theory on a 1-D grid


def gaussian_pdf(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Density of N(mean, std^2) at every point of ``x`` (any shape)."""
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def optimal_discriminator(p_data: np.ndarray, p_g: np.ndarray) -> np.ndarray:
    """D*(x) = p_data(x) / (p_data(x) + p_g(x)), pointwise. Where both densities vanish D* is
    undefined (and irrelevant to V: no mass there); we return 1/2, "cannot tell"."""
    total = p_data + p_g
    safe = np.where(total > 0, total, 1.0)
    return np.where(total > 0, p_data / safe, 0.5)


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x * log(y) with 0 * log(0) = 0 (the convention that makes V and KL finite)."""
    return np.where(x > 0, x * np.log(np.where(x > 0, y, 1.0)), 0.0)


def value_function(d: np.ndarray, p_data: np.ndarray, p_g: np.ndarray, x: np.ndarray) -> float:
    """V(D, G) = integral of p_data(x) log D(x) + p_g(x) log(1 - D(x)) dx (trapezoid rule on ``x``).

    ``d``, ``p_data``, ``p_g`` are values on the grid ``x`` [N]; ``d`` must lie in [0, 1]. It is
    clipped to [1e-15, 1 - 1e-15]: in float64 D*(x) rounds to exactly 1 in the tails where
    p_g << p_data, and log(1 - 1) would turn a negligible term into -inf."""
    d = np.clip(d, 1e-15, 1.0 - 1e-15)
    integrand = _xlogy(p_data, d) + _xlogy(p_g, 1.0 - d)
    return float(np.trapezoid(integrand, x))


def kl_divergence(p: np.ndarray, q: np.ndarray, x: np.ndarray) -> float:
    """KL(p || q) = integral of p log(p / q) dx, in nats, on the grid ``x``."""
    return float(np.trapezoid(_xlogy(p, p) - _xlogy(p, q), x))


def js_divergence(p: np.ndarray, q: np.ndarray, x: np.ndarray) -> float:
    """JSD(p || q) = KL(p || m) / 2 + KL(q || m) / 2 with m = (p + q) / 2; in [0, log 2] nats."""
    m = 0.5 * (p + q)
    return 0.5 * kl_divergence(p, m, x) + 0.5 * kl_divergence(q, m, x)


def generator_loss_gradients(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Gradient of each generator loss with respect to the discriminator's logit on a fake.

    ``logits`` [N] are values of l = D's logit, so D(G(z)) = sigmoid(l). Returns [N] tensors
    computed by autograd through the package's losses (per sample, i.e. not divided by N):
    ``"minimax"``: d/dl log(1 - D) = -D, which vanishes when D rejects the fake (D -> 0);
    ``"nonsaturating"``: d/dl -log D = -(1 - D), which is largest exactly there.
    """
    out = {}
    for name, loss_fn in (("minimax", g_loss_minimax), ("nonsaturating", g_loss_nonsaturating)):
        l = logits.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(l) * l.numel(), l)  # undo the mean: per-sample gradients
        out[name] = grad
    return out


# ----------------------------------------------------------------------------------------------
# 2-D mixture of Gaussians

GENERATOR_LOSSES = {"nonsaturating": g_loss_nonsaturating, "minimax": g_loss_minimax}


@dataclass
class ToyConfig:
    n_modes: int = 8  # Gaussians evenly spaced on a ring; also the number of classes when conditional
    radius: float = 2.0  # ring radius
    sigma: float = 0.05  # standard deviation of every mode
    conditional: bool = False  # True: G(z, y) and D(x, y) both see the mode index y
    z_dim: int = 8  # latent size
    hidden: int = 128  # width of the MLPs' hidden layers
    steps: int = 2000  # one step = one D update then one G update
    batch_size: int = 256
    lr: float = 1e-3  # Adam, betas (0.5, 0.999) as in DCGAN
    generator_loss: str = "nonsaturating"  # or "minimax": log(1 - D(G(z))), to watch it stall
    n_frames: int = 8  # snapshots of the generated cloud, evenly spaced over training
    n_eval: int = 1000  # samples per snapshot and for the coverage metric
    seed: int = 0
    threads: int = 1  # torch CPU threads while training; tiny matrices gain nothing from more

    def __post_init__(self):
        if self.n_modes < 1 or self.sigma <= 0 or self.radius <= 0:
            raise CourseError(f"need n_modes >= 1, sigma > 0, radius > 0; got {self}")
        if self.steps < 1 or self.batch_size < 1 or self.n_frames < 1 or self.n_eval < self.n_modes:
            raise CourseError(f"need steps, batch_size, n_frames >= 1 and n_eval >= n_modes; got {self}")
        if self.generator_loss not in GENERATOR_LOSSES:
            raise CourseError(f"generator_loss must be one of {list(GENERATOR_LOSSES)}, got {self.generator_loss!r}")


def ring_centers(n_modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    """Mode means [n_modes, 2], evenly spaced on a circle, mode k at angle 2 pi k / n_modes."""
    angle = 2 * math.pi * torch.arange(n_modes, dtype=torch.float32) / n_modes
    return radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)


def sample_mixture(n: int, centers: torch.Tensor, sigma: float, generator: torch.Generator | None = None,
                   y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points from the equal-weight mixture: (x [n, 2], y [n] int64 mode index).

    ``y`` given: draw from those modes instead of uniformly (p_data(x | y) is one Gaussian)."""
    if y is None:
        y = torch.randint(0, centers.shape[0], (n,), generator=generator)
    x = centers[y] + sigma * torch.randn(n, 2, generator=generator)  # (n, 2)
    return x, y


def balanced_labels(n: int, n_modes: int) -> torch.Tensor:
    """[n] mode indices 0, 1, ..., n_modes-1, 0, 1, ...: equal weights, like p_data."""
    return torch.arange(n) % n_modes


class MLPGenerator(nn.Module):
    """G(z, y): (B, z_dim) [+ one-hot y (B, K)] -> 3 hidden ReLU layers -> (B, 2) points.

    ``num_classes=0`` is the unconditional generator (y ignored, may be None)."""

    def __init__(self, z_dim: int, num_classes: int = 0, hidden: int = 128):
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        self.net = nn.Sequential(
            nn.Linear(z_dim + num_classes, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 2))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise CourseError(f"z must be [B, {self.z_dim}], got {list(z.shape)}")
        return self.net(_with_label(z, y, self.num_classes))  # (B, z_dim + K) -> (B, 2)


class MLPDiscriminator(nn.Module):
    """D(x, y): (B, 2) [+ one-hot y (B, K)] -> 2 hidden LeakyReLU layers -> (B,) logits."""

    def __init__(self, num_classes: int = 0, hidden: int = 128):
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(
            nn.Linear(2 + num_classes, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(_with_label(x, y, self.num_classes)).flatten()  # (B, 1) -> (B,)


def _with_label(h: torch.Tensor, y: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    """Concatenate one-hot(y) [B, K] to h [B, F] (Mirza & Osindero's conditioning); no-op if K=0."""
    if not num_classes:
        return h
    if y is None or y.shape != (h.shape[0],):
        raise CourseError(f"y must be [B]=[{h.shape[0]}] mode indices for a conditional model, got "
                         f"{None if y is None else list(y.shape)}")
    return torch.cat([h, F.one_hot(y, num_classes).to(h.dtype)], dim=1)  # (B, F + K)


@dataclass
class ToyResult:
    G: MLPGenerator
    D: MLPDiscriminator
    centers: torch.Tensor  # [n_modes, 2]
    frames: list[tuple[int, torch.Tensor]]  # (step, generated points [n_eval, 2]) over training
    history: dict[str, list[float]] = field(default_factory=dict)  # "step", "d_loss", "g_loss"
    seconds: float = 0.0  # wall-clock training time
    config: ToyConfig | None = None  # what it was trained with (train_toy records it)


def train_toy(cfg: ToyConfig) -> ToyResult:
    """Train the toy GAN with the BCE losses of ``cgan_course.losses`` (D: ``d_loss_bce``,
    G: ``g_loss_nonsaturating`` unless ``cfg.generator_loss="minimax"``).

    Deterministic for a given ``cfg.seed`` (on the CPU); the global torch RNG is left untouched.
    The last frame is always taken after the final step; it is what ``mode_coverage`` should see.
    """
    threads = torch.get_num_threads()
    try:
        # 128-wide layers: thread start-up costs more than it saves, and on a busy machine
        # extra threads only fight for the cores
        torch.set_num_threads(cfg.threads)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            result = training_loop(cfg)
            result.config = cfg
            return result
    finally:
        torch.set_num_threads(threads)


def training_loop(cfg: ToyConfig) -> ToyResult:
    """The loop itself (``train_toy`` wraps it with the seed and the thread count)."""
    K = cfg.n_modes if cfg.conditional else 0
    G, D = MLPGenerator(cfg.z_dim, K, cfg.hidden), MLPDiscriminator(K, cfg.hidden)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    centers = ring_centers(cfg.n_modes, cfg.radius)
    data_rng = torch.Generator().manual_seed(cfg.seed + 1)
    # fixed evaluation latents: the frames show the same z moving, not fresh noise each time
    z_eval = torch.randn(cfg.n_eval, cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 2))
    y_eval = balanced_labels(cfg.n_eval, cfg.n_modes)
    frame_steps = {round(cfg.steps * (i + 1) / cfg.n_frames) for i in range(cfg.n_frames)} | {0}
    frames: list[tuple[int, torch.Tensor]] = []
    history: dict[str, list[float]] = {"step": [], "d_loss": [], "g_loss": []}
    t0 = time.perf_counter()
    for step in range(cfg.steps + 1):
        if step in frame_steps:
            with torch.no_grad():
                frames.append((step, G(z_eval, y_eval if K else None)))
        if step == cfg.steps:
            break
        x_real, y = sample_mixture(cfg.batch_size, centers, cfg.sigma, data_rng)
        y = y if K else None  # the unconditional players never see the mode
        z = torch.randn(cfg.batch_size, cfg.z_dim)
        # D step: push D(x_real) up and D(x_fake) down; x_fake detached, G is not updated here
        x_fake = G(z, y)
        d_loss = d_loss_bce(D(x_real, y), D(x_fake.detach(), y))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        # G step: -log D(G(z)) (non-saturating) by default, through the freshly updated D
        g_loss = GENERATOR_LOSSES[cfg.generator_loss](D(x_fake, y))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        if step % 50 == 0:
            history["step"].append(step)
            history["d_loss"].append(d_loss.item())
            history["g_loss"].append(g_loss.item())
    return ToyResult(G.eval(), D.eval(), centers, frames, history, time.perf_counter() - t0)


def mode_coverage(samples: torch.Tensor, centers: torch.Tensor, sigma: float, min_share: float = 0.25) -> dict:
    """How well ``samples`` [N, 2] cover the modes ``centers`` [K, 2] of standard deviation ``sigma``.

    A sample is *high quality* when it lies within 3 sigma of its nearest mode (the usual toy
    metric of Unrolled GAN / VEEGAN). A mode is *covered* when it receives at least ``min_share``
    of its fair share of all samples, i.e. ``>= min_share * N / K`` high-quality samples (with
    K=8 and min_share=0.25: at least 3.1% of the samples).

    Returns ``modes_covered`` (int), ``coverage`` (fraction of modes covered), ``high_quality``
    (fraction of samples), ``per_mode`` ([K] fraction of all samples near each mode).
    """
    if samples.ndim != 2 or samples.shape[1] != 2 or centers.ndim != 2 or centers.shape[1] != 2:
        raise CourseError(f"samples must be [N, 2] and centers [K, 2], got {list(samples.shape)} "
                         f"and {list(centers.shape)}")
    n, k = samples.shape[0], centers.shape[0]
    dist = torch.cdist(samples.float(), centers.float())  # (N, K)
    nearest_dist, nearest = dist.min(dim=1)  # (N,), (N,)
    good = nearest_dist <= 3 * sigma
    per_mode = torch.bincount(nearest[good], minlength=k).float() / n  # (K,)
    covered = int((per_mode >= min_share / k).sum())
    return {"modes_covered": covered, "coverage": covered / k, "high_quality": float(good.float().mean()),
            "per_mode": per_mode.tolist()}


# ----------------------------------------------------------------------------------------------
# Pictures


def plot_frames(frames: list[tuple[int, torch.Tensor]], centers: torch.Tensor, title: str = "",
                max_points: int = 500, size: float = 1.5):
    """One small scatter per frame (generated points in blue over the mode centres, light red crosses).

    Returns the matplotlib Figure (one row)."""
    import matplotlib.pyplot as plt

    lim = 1.35 * float(centers.abs().max())
    fig, axes = plt.subplots(1, len(frames), figsize=(size * len(frames), size + 0.3), squeeze=False)
    for ax, (step, pts) in zip(axes[0], frames):
        pts = pts[:max_points].numpy()
        # modes underneath: a collapsed cloud sits exactly on its mode and must stay visible
        ax.scatter(centers[:, 0], centers[:, 1], s=40, marker="x", color="lightcoral", linewidths=1, zorder=1)
        ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.6, color="tab:blue", linewidths=0, zorder=2)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xticks=[], yticks=[], aspect="equal")
        ax.set_title(f"step {step}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def frames_to_gif(frames: list[tuple[int, torch.Tensor]], centers: torch.Tensor, size: int = 160,
                  ms_per_frame: int = 400) -> bytes:
    """A small looping GIF of the frames (points drawn as pixels, no matplotlib): a few KB."""
    from PIL import Image, ImageDraw

    lim = 1.35 * float(centers.abs().max())

    def to_px(p: torch.Tensor) -> torch.Tensor:  # (N, 2) in [-lim, lim] -> (N, 2) pixels, y up
        px = (p + lim) / (2 * lim) * (size - 1)
        return torch.stack([px[:, 0], size - 1 - px[:, 1]], dim=1).round()

    images = []
    for step, pts in frames:
        im = Image.new("P", (size, size), 0)
        im.putpalette([255, 255, 255, 31, 119, 180, 214, 39, 40, 0, 0, 0])  # white, blue, red, black
        draw = ImageDraw.Draw(im)
        for cx, cy in to_px(centers).tolist():
            draw.line([(cx - 3, cy - 3), (cx + 3, cy + 3)], fill=2)
            draw.line([(cx - 3, cy + 3), (cx + 3, cy - 3)], fill=2)
        for px, py in to_px(pts.clamp(-lim, lim)).tolist():
            draw.point((px, py), fill=1)
        draw.text((3, 2), f"step {step}", fill=3)
        images.append(im)
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=ms_per_frame, loop=0)
    return buf.getvalue()
