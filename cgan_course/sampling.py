"""Drawing from a trained generator: class grids, latent interpolation, truncation.

Works with any ``G(z, y)`` that exposes ``z_dim`` and ``num_classes``.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import torch
import torch.nn as nn

from .data import CLASSES
from .errors import CourseError
from .files import atomic_write
from .runtime import eval_mode
from .validate import MAX_SEED, check_int

RESAMPLE_ROUNDS = 100  # truncation: redraws before the exact fallback (a bound on the time it takes)
MAX_GRID_SAMPLES = 10_000  # images in one sample_grid call (10k at 32 px are 120 MB as float)


def _as_index(value: object) -> int | None:
    """``value`` as a Python int if it is a whole number (int, np.int64, a 0-d integer tensor;
    not a bool, a float or a name), else None."""
    if isinstance(value, bool):
        return None
    try:
        return value.__index__()
    except (AttributeError, TypeError, RuntimeError):
        return None


def _truncated_normal(k: int, truncation: float, g: torch.Generator | None) -> torch.Tensor:
    """``k`` draws of N(0, 1) restricted to [-t, t], by inverse CDF (float64: at t = 1e-5 the
    interval is a sliver of probability around 1/2)."""
    lo = torch.special.ndtr(torch.tensor(-truncation, dtype=torch.float64))
    u = lo + (1 - 2 * lo) * torch.rand(k, generator=g, dtype=torch.float64)  # uniform on [Phi(-t), Phi(t)]
    return torch.special.ndtri(u)


def sample_latents(n: int, z_dim: int, seed: int | None = None, truncation: float | None = None,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` latents ``[n, z_dim]`` from N(0, I), reproducible from ``seed`` (drawn on the CPU so
    the same seed gives the same images on every device).

    ``truncation`` t > 0 resamples every coordinate with |z| > t: smaller t, more typical (and
    less varied) images. The resampling is bounded: after ``RESAMPLE_ROUNDS`` (100) rounds the
    coordinates still outside [-t, t] are drawn at once from N(0, 1) truncated to [-t, t] by
    inverse CDF, the same distribution in bounded time. Only tiny truncations get there (at
    t = 0.2 a coordinate is still outside after 100 rounds with probability 3e-8; at t = 1e-5
    almost all are), so the usual truncations keep the draws they always had.
    """
    if truncation is not None and not truncation > 0:  # `not >` also rejects NaN, which compares False
        raise CourseError(f"truncation must be a number > 0, or None for no truncation; got {truncation}")
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    z = torch.randn(n, z_dim, generator=g)
    if truncation is not None:
        mask = z.abs() > truncation
        for _ in range(RESAMPLE_ROUNDS):
            if not mask.any():
                break
            z[mask] = torch.randn(int(mask.sum()), generator=g)
            mask = z.abs() > truncation
        if mask.any():
            # clamp: the float64 draw can round just past t when cast to z's dtype
            z[mask] = _truncated_normal(int(mask.sum()), truncation, g).to(z.dtype).clamp(-truncation, truncation)
    return z.to(device)


def _device_of(G: nn.Module) -> torch.device:
    p = next(G.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def generate(G: nn.Module, z: torch.Tensor, y: torch.Tensor | None, batch_size: int = 500) -> torch.Tensor:
    """Run ``G`` in batches; returns images ``[N, 3, S, S]`` in [-1, 1] on the CPU."""
    batch_size = check_int("batch_size", batch_size, 1)
    if z.shape[0] == 0:
        raise CourseError(f"generate needs at least one latent, got z of shape {list(z.shape)}")
    if not torch.isfinite(z).all():  # NaN latents draw NaN images, shown as a black grid
        raise CourseError("z holds NaN or inf values: pass finite latents, e.g. from sample_latents")
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
    per_class = check_int("per_class", per_class, 1, MAX_GRID_SAMPLES)
    k = G.num_classes or 10
    if classes is not None and (isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__")):
        raise CourseError(f"classes must be a list of class indices (or None for every class), got {classes!r}")
    rows = [check_int("class index", c, 0, k - 1) for c in classes] if classes is not None else list(range(k))
    if not rows:
        raise CourseError("classes is empty: pass at least one class index, or None for every class")
    if len(rows) * per_class > MAX_GRID_SAMPLES:
        raise CourseError(f"a grid of {len(rows)} rows x {per_class} is over MAX_GRID_SAMPLES={MAX_GRID_SAMPLES} "
                          "images: draw fewer per class, or call generate in batches")
    if not G.num_classes:
        return generate(G, sample_latents(len(rows) * per_class, G.z_dim, seed, truncation), None)
    z = sample_latents(per_class, G.z_dim, seed, truncation).repeat(len(rows), 1)  # (R * P, z_dim)
    y = torch.tensor(rows).repeat_interleave(per_class)  # (R * P,): r r r ... for each row r
    return generate(G, z, y)


def to_image_grid(images: torch.Tensor, nrow: int, padding: int = 2) -> torch.Tensor:
    """[N, 3, S, S] in [-1, 1] -> one uint8 picture [3, H, W] with ``nrow`` images per row."""
    from torchvision.utils import make_grid

    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] == 0:
        got = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise CourseError(f"images must be a non-empty batch [N, 3, S, S], got {got}")
    grid = make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=check_int("nrow", nrow, 1), padding=padding,
                     normalize=True, value_range=(-1, 1), pad_value=1.0)
    return (grid * 255).round().to(torch.uint8)


def save_image_grid(images: torch.Tensor, path: str | Path, nrow: int) -> Path:
    """Save [N, 3, S, S] in [-1, 1] as a PNG grid (written atomically)."""
    from PIL import Image

    path = Path(path)
    grid = to_image_grid(images, nrow).permute(1, 2, 0).numpy()  # checks the images before touching the disk
    atomic_write(path, lambda tmp: Image.fromarray(grid).save(tmp, format="PNG", optimize=True))
    return path


def _path_t(t: torch.Tensor | float) -> torch.Tensor:
    """The points ``t`` (a number or [T]) of a path as a column [T, 1], each checked to lie in
    [0, 1]: outside it a path runs past its ends, which is never what a walk between two means."""
    t = torch.as_tensor(t)
    t = (t if t.is_floating_point() else t.to(torch.get_default_dtype())).reshape(-1, 1)
    inside = (t >= 0) & (t <= 1)  # NaN fails both comparisons
    if t.numel() == 0 or not inside.all():
        raise CourseError(f"t must be one or more values in [0, 1] (start to end of the path), got "
                          f"{t[~inside].tolist()[:5] or 'none'}: outside [0, 1] the path runs past its ends")
    return t


def _check_ends(z0: torch.Tensor, z1: torch.Tensor) -> None:
    for name, z in (("z0", z0), ("z1", z1)):
        if not isinstance(z, torch.Tensor) or not z.is_floating_point() or z.ndim != 1:
            got = f"{z.dtype} {list(z.shape)}" if isinstance(z, torch.Tensor) else type(z).__name__
            raise CourseError(f"{name} must be one latent, a float tensor [z_dim]; got {got}: pass z[i], not a batch")
    if z0.shape != z1.shape:
        raise CourseError(f"z0 and z1 must have the same size, got {z0.shape[0]} and {z1.shape[0]}")
    if not (torch.isfinite(z0).all() and torch.isfinite(z1).all()):
        raise CourseError("z0 and z1 must be finite: one holds NaN or inf")


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Straight line: (1 - t) z0 + t z1. ``z0``, ``z1`` [z_dim], ``t`` [T] in [0, 1] -> [T, z_dim]."""
    _check_ends(z0, z1)
    t = _path_t(t).to(z0.device)
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Spherical interpolation: the direction moves along the great circle from z0's to z1's at
    constant angular speed, and the norm moves linearly from |z0| to |z1|.
    ``z0``, ``z1`` [z_dim], ``t`` [T] in [0, 1] -> [T, z_dim] (z0's dtype and device).

    A Gaussian latent in high dimension lives near the sphere of radius sqrt(z_dim); the midpoint
    of a straight line (lerp) is shorter by about 1/sqrt(2), a region G rarely saw in training.
    slerp's norm never dips: it is constant when |z0| = |z1| and otherwise goes straight from
    |z0| to |z1| (for two latents of norms 11.2 and 12.1, every point's norm lies between them).

    Where the great circle is not unique, the path is still defined:
    - an end at the origin has no direction: the path is the straight ray to the other end (lerp);
    - opposite ends (z1 = -c z0, c > 0): every half great circle joins them; slerp takes the one
      through the coordinate axis least aligned with z0, so the same inputs give the same path.
    """
    _check_ends(z0, z1)
    t = _path_t(t)
    # in float64 on the CPU: two latents are cheap, and near-opposite ends need the precision
    a, b, t64 = (v.to("cpu", torch.float64) for v in (z0, z1, t))
    n0, n1 = a.norm(), b.norm()
    if n0 == 0 or n1 == 0:
        return lerp(z0, z1, t)
    u0, u1 = a / n0, b / n1
    if (u0 + u1).norm() < 16 * max(torch.finfo(z0.dtype).eps, torch.finfo(z1.dtype).eps):  # opposite, up to rounding
        axis = torch.zeros_like(u0)
        axis[u0.abs().argmin()] = 1.0
        p = axis - (axis @ u0) * u0  # (z_dim,): the unit vector at 90 degrees on the chosen half circle
        direction = torch.cos(math.pi * t64) * u0 + torch.sin(math.pi * t64) * (p / p.norm())
    else:
        omega = 2 * torch.atan2((u0 - u1).norm(), (u0 + u1).norm())  # the angle; unlike arccos, exact near 0 and pi
        # sin(t w) / sin(w) = t sinc(t w / pi) / sinc(w / pi): finite at w = 0, where the ends are parallel
        s = torch.sinc(omega / math.pi)
        direction = ((1 - t64) * torch.sinc((1 - t64) * omega / math.pi) * u0
                     + t64 * torch.sinc(t64 * omega / math.pi) * u1) / s  # (T, z_dim), unit rows
    return (direction * ((1 - t64) * n0 + t64 * n1)).to(z0.device, z0.dtype)


def _class_index(G: nn.Module, name: str, y: int) -> int:
    k = int(getattr(G, "num_classes", 0) or 0)
    if k == 0:
        raise CourseError("class interpolation needs a conditional generator (num_classes > 0)")
    index = _as_index(y)
    if index is None or not 0 <= index < k:
        raise CourseError(f"{name} must be a class index in 0..{k - 1}, got {y!r}")
    return index


@torch.no_grad()
def interpolate_classes(G: nn.Module, z: torch.Tensor, y0: int, y1: int, t: torch.Tensor | float) -> torch.Tensor:
    """One latent ``z [z_dim]`` drawn while the class slides from ``y0`` to ``y1``: images ``[T, 3, S, S]``
    for ``t`` [T] in [0, 1].

    The course's generators read the class only through ``nn.Embedding`` lookups (CBN gains and
    biases, or the classic label embedding), so mixing the looked-up vectors,
    (1 - t) E[y0] + t E[y1], is the same as feeding G a soft one-hot label.
    """
    y0, y1 = _class_index(G, "y0", y0), _class_index(G, "y1", y1)
    device = _device_of(G)
    t = _path_t(t).to(device)  # (T, 1): broadcasts over the embedding width
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
    running statistics collected for the raw weights; this makes eval-mode sampling match.
    Each BatchNorm's momentum and G's train/eval mode are restored afterwards."""
    batches, batch_size = check_int("batches", batches, 1), check_int("batch_size", batch_size, 1)
    bns = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return G
    device = _device_of(G)
    was_training, momenta = G.training, [bn.momentum for bn in bns]
    try:
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the recalibration batches
        G.train()
        g = torch.Generator().manual_seed(seed)
        for _ in range(batches):
            z = torch.randn(batch_size, G.z_dim, generator=g).to(device)
            y = torch.randint(0, G.num_classes, (batch_size,), generator=g).to(device) if G.num_classes else None
            G(z, y)
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
        G.train(was_training)
    return G


def grid_side(n: int) -> int:
    """Images per row for a roughly square grid of ``n`` images."""
    return max(1, math.isqrt(n - 1) + 1) if n > 0 else 1


# ----------------------------------------------------------------------------------------------
# Drawing by class name: what the widgets and the service share

MAX_SAMPLES = 64  # one request or widget redraw; a grid larger than 8x8 stops feeling live on a CPU


def class_names(G: nn.Module) -> list[str]:
    """The class names of ``G``: ``G.classes`` if it has them, else CIFAR-10's (10 classes) or
    "class 0", "class 1", ... Refuses duplicate or empty names (a request by name would be ambiguous)."""
    k = int(getattr(G, "num_classes", 0) or 0)
    if k == 0:
        raise CourseError("this generator is unconditional (num_classes=0); the class sampler needs G(z, y) "
                         "with y a class index. Build it with ModelConfig(num_classes=10).")
    names = list(getattr(G, "classes", None) or (CLASSES if k == len(CLASSES) else [f"class {i}" for i in range(k)]))
    if len(names) != k:
        raise CourseError(f"G.classes has {len(names)} names but G.num_classes is {k}")
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != k:
        dupes = sorted({n for n in names if names.count(n) > 1}, key=str)
        raise CourseError(f"G.classes must be {k} different non-empty names, got {names[:12]}"
                          + (f" (repeated: {dupes})" if dupes else "") + ": re-export the generator with its classes")
    return names


def class_index(G: nn.Module, class_name: str | int) -> int:
    """Index of ``class_name`` in ``class_names(G)``; an index (int, np.int64, a 0-d integer
    tensor) is checked and returned as an int."""
    names = class_names(G)
    if isinstance(class_name, str):
        if class_name not in names:
            raise CourseError(f"unknown class {class_name!r}; choose one of {names}")
        return names.index(class_name)
    index = check_int("class index", class_name, 0, len(names) - 1, fix="pass a class name or its index")
    if str(index) in names and names.index(str(index)) != index:  # folders 0..11 sorted as strings: "10" is 2
        raise CourseError(f"class index {index} is ambiguous: class {index} is named {names[index]!r} while class "
                          f"{names.index(str(index))} is named {str(index)!r}; ask by name (\"{names[index]}\")")
    return index


def png_bytes(grid: torch.Tensor, scale: int = 2) -> bytes:
    """uint8 picture [3, H, W] -> PNG bytes, enlarged ``scale`` times (nearest: 32 px images are
    tiny on screen, and smoothing would invent detail)."""
    from PIL import Image

    if grid.dtype != torch.uint8 or grid.ndim != 3 or grid.shape[0] != 3:
        raise CourseError(f"grid must be uint8 [3, H, W], got {grid.dtype} {list(grid.shape)}")
    scale = check_int("scale", scale, 1, 16)  # 16: an 8x8 grid of 32 px samples is then 4,000 px wide
    im = Image.fromarray(grid.permute(1, 2, 0).contiguous().numpy())  # (3, H, W) -> (H, W, 3)
    if scale != 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)  # fast; these pictures are small anyway
    return buf.getvalue()


def sample_images(G: nn.Module, class_name: str | int, seed: int = 0, n: int = 16,
                  truncation: float | None = None) -> torch.Tensor:
    """``n`` samples of one class: images [n, 3, S, S] in [-1, 1]. The same (seed, n, truncation)
    gives the same latents for every class, so switching class keeps the "pose" of each sample."""
    n, seed = check_int("n", n, 1, MAX_SAMPLES), check_int("seed", seed, 0, MAX_SEED)
    y = torch.full((n,), class_index(G, class_name), dtype=torch.int64)  # (n,)
    z = sample_latents(n, G.z_dim, seed, truncation)  # (n, z_dim)
    with eval_mode(G):
        return generate(G, z, y)
