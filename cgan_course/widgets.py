"""Play with a conditional generator: pick a class, a seed, how many samples, the truncation.

The real work is done by plain functions that return PNG bytes, so they can be tested, timed
and shown as static images (GitHub does not render widgets):

- ``render_samples(G, class_name, seed, n, truncation)``: ``n`` samples of one class;
- ``render_interpolation(G, t, mode, class_a, class_b, seed_a, seed_b)``: start | point t | end of
  a walk between two seeds (slerp, class fixed) or between two classes (z fixed, the class
  embeddings blended); ``interpolate`` gives the images of any points of the walk.

``ClassSampler`` and ``InterpolationView`` only wire those functions to ipywidgets. Works with any
``G(z, y)`` exposing ``z_dim`` and ``num_classes`` (class names from ``G.classes`` if present).
"""
from __future__ import annotations

import random
import statistics
import time
from typing import Callable

import torch
import torch.nn as nn

from .data import CLASSES
from .errors import CourseError
from .models import ModelConfig, build_generator
from .pretrained import GENERATOR_FILE, PretrainedMissing, load_generator
from .runtime import eval_mode
from .sampling import (
    MAX_SAMPLES,
    class_index,
    class_names,
    generate,
    grid_side,
    interpolate_classes,
    png_bytes,
    recalibrate_batchnorm,
    sample_images,
    sample_latents,
    slerp,
    to_image_grid,
)
from .training.recipes import PRETRAINED_MODEL
from .validate import MAX_SEED, check_int

MAX_POINTS = 256  # points of one interpolation call (a strip of frames; 256 take about half a second)
TRUNCATION_RANGE = (0.2, 2.0)  # the truncation slider's range
INTERPOLATION_MODES = ("seeds", "classes")

# ----------------------------------------------------------------------------------------------
# Pure render functions


def render_samples(G: nn.Module, class_name: str | int, seed: int = 0, n: int = 16,
                   truncation: float | None = None, scale: int = 2) -> bytes:
    """PNG bytes of a square-ish grid of ``n`` samples of ``class_name`` (see ``sample_images``)."""
    images = sample_images(G, class_name, seed, n, truncation)
    return png_bytes(to_image_grid(images, nrow=grid_side(n)), scale)


def _check_embeddings(G: nn.Module) -> None:
    if not any(isinstance(m, nn.Embedding) for m in G.modules()):
        raise CourseError("class interpolation needs a generator whose class enters through nn.Embedding "
                         "layers (both cgan_course generators do); interpolate between seeds instead.")


def interpolate(G: nn.Module, ts: torch.Tensor, mode: str = "seeds", class_a: str | int = 0,
                class_b: str | int = 1, seed_a: int = 0, seed_b: int = 1,
                truncation: float | None = None) -> torch.Tensor:
    """Images [T, 3, S, S] at the points ``ts`` [T] (each in [0, 1]) of a walk.

    ``mode="seeds"``: class ``class_a`` fixed, z slerps from seed ``seed_a``'s latent to ``seed_b``'s.
    ``mode="classes"``: z fixed (seed ``seed_a``), the class embeddings move from ``class_a`` to
    ``class_b`` (``sampling.interpolate_classes``); ``seed_b`` is ignored.
    """
    if mode not in INTERPOLATION_MODES:
        raise CourseError(f"mode must be one of {INTERPOLATION_MODES}, got {mode!r}")
    ts = torch.as_tensor(ts, dtype=torch.float32).flatten()
    if not 1 <= ts.numel() <= MAX_POINTS:
        raise CourseError(f"ts must hold 1 to MAX_POINTS={MAX_POINTS} points of the walk, got {ts.numel()}: "
                          "a slider or a strip of frames needs far fewer")
    if not ((ts >= 0) & (ts <= 1)).all():  # NaN fails both comparisons
        raise CourseError(f"t must be in [0, 1], got {ts.tolist()[:8]}")
    seed_a, seed_b = check_int("seed_a", seed_a, 0, MAX_SEED), check_int("seed_b", seed_b, 0, MAX_SEED)
    a = class_index(G, class_a)
    z_a = sample_latents(1, G.z_dim, seed_a, truncation)[0]  # (z_dim,)
    y = torch.full((ts.numel(),), a, dtype=torch.int64)  # (T,)
    with eval_mode(G):
        if mode == "seeds":
            z = slerp(z_a, sample_latents(1, G.z_dim, seed_b, truncation)[0], ts)  # (T, z_dim)
            return generate(G, z, y)
        _check_embeddings(G)
        return interpolate_classes(G, z_a, a, class_index(G, class_b), ts)  # (T, 3, S, S)


def render_interpolation(G: nn.Module, t: float, mode: str = "seeds", class_a: str | int = 0,
                         class_b: str | int = 1, seed_a: int = 0, seed_b: int = 1,
                         truncation: float | None = None, scale: int = 3) -> bytes:
    """PNG bytes of three pictures: the start of the walk | the point ``t`` | the end (see ``interpolate``)."""
    images = interpolate(G, torch.tensor([0.0, float(t), 1.0]), mode, class_a, class_b, seed_a, seed_b, truncation)
    return png_bytes(to_image_grid(images, nrow=3), scale)


def median_seconds(fn: Callable[[int], object], repeats: int = 20) -> float:
    """Median wall-clock time of ``fn(i)`` for i = 0..repeats-1 (after one warm-up call)."""
    fn(-1)
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ----------------------------------------------------------------------------------------------
# A generator to play with




@torch.no_grad()
def stand_in_generator(cfg: ModelConfig = PRETRAINED_MODEL, seed: int = 0) -> nn.Module:
    """An untrained generator that still shows something per class, in eval mode.

    A fresh projection G starts with every class's BatchNorm gain at 1 and bias at 0, so all
    classes would draw the same picture; here the class embeddings get random values instead
    (gain ~ N(1, 0.5), bias ~ N(0, 0.5)), and BatchNorm's running statistics are measured on a
    few generated batches, since the initial ones (mean 0, var 1) would turn eval-mode output grey.
    The pictures are coloured noise: the widgets work, the samples mean nothing yet.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = build_generator(cfg)
        g = torch.Generator().manual_seed(seed)
        for name, m in G.named_modules():
            if isinstance(m, nn.Embedding):
                base = 1.0 if name.endswith("gamma") else 0.0  # CBN gain, else a bias or a label embedding
                m.weight.copy_(base + 0.5 * torch.randn(m.weight.shape, generator=g))
        recalibrate_batchnorm(G, batches=4, batch_size=64, seed=seed)
    G.classes = list(CLASSES[:cfg.num_classes]) if cfg.num_classes == len(CLASSES) else None
    return G.eval()


def load_generator_or_stand_in(device: str | torch.device = "cpu") -> tuple[nn.Module, str]:
    """The pretrained generator if ``data/pretrained/generator.pt`` is there, else
    ``stand_in_generator()``; returns (G, a sentence saying which one it is)."""
    try:
        return load_generator(device), f"pretrained generator from {GENERATOR_FILE.name}"
    except PretrainedMissing:
        return (stand_in_generator().to(device),
                f"{GENERATOR_FILE.name} not found: using an UNTRAINED stand-in of the same size "
                "(samples are noise; the widgets work the same)")


# ----------------------------------------------------------------------------------------------
# Widgets: wiring only


class ClassSampler:
    """Dropdown (class), seed, sample count, truncation, "new seed" button -> one PNG image.

    Every control change redraws through ``render_samples``; ``display(sampler)`` shows it.
    Attributes are the ipywidgets themselves, so tests and notebooks can set ``.value`` and
    call ``.click()``. A starting value the controls cannot show (a seed outside 0..MAX_SEED, n
    outside 1..MAX_SAMPLES, a truncation outside the slider's TRUNCATION_RANGE) is refused with a
    CourseError rather than silently clamped by the widget.
    """

    def __init__(self, G: nn.Module, class_name: str | int | None = None, seed: int = 0, n: int = 16,
                 truncation: float | None = None, scale: int = 2):
        import ipywidgets as W

        seed, n = check_int("seed", seed, 0, MAX_SEED), check_int("n", n, 1, MAX_SAMPLES)
        lo, hi = TRUNCATION_RANGE
        if truncation is not None and not lo <= truncation <= hi:  # NaN fails too
            raise CourseError(f"truncation must be in {lo}..{hi} (the slider's range) or None, got {truncation}: "
                              "for other values call render_samples")
        self.G, self.scale = G, scale
        names = class_names(G)
        self._rng = random.Random(seed)  # "new seed" is reproducible too
        class_name = names[class_index(G, class_name if class_name is not None else 0)]  # clear error if unknown
        narrow = dict(style={"description_width": "70px"}, layout=W.Layout(width="240px"))
        self.class_dropdown = W.Dropdown(options=names, value=class_name, description="class", **narrow)
        self.seed = W.BoundedIntText(value=seed, min=0, max=MAX_SEED, description="seed", **narrow)
        self.n = W.IntSlider(value=n, min=1, max=MAX_SAMPLES, description="samples", **narrow)
        self.truncate = W.Checkbox(value=truncation is not None, description="truncate z", indent=False)
        self.truncation = W.FloatSlider(value=truncation or 1.0, min=lo, max=hi, step=0.1,
                                        description="truncation", disabled=truncation is None)
        self.new_seed_button = W.Button(description="new seed", icon="dice")
        self.image = W.Image(format="png")
        self.status = W.Label()
        for control in (self.class_dropdown, self.seed, self.n, self.truncate, self.truncation):
            control.observe(self._on_change, names="value")
        self.new_seed_button.on_click(self._on_new_seed)
        self.widget = W.VBox([
            W.HBox([self.class_dropdown, self.seed, self.new_seed_button]),
            W.HBox([self.n, self.truncate, self.truncation]),
            self.image, self.status])
        self.widget.add_class("cgan-class-sampler")  # a handle for the browser test
        self.update()

    def values(self) -> dict:
        """The current control values as ``render_samples`` keyword arguments."""
        return {"class_name": self.class_dropdown.value, "seed": int(self.seed.value), "n": int(self.n.value),
                "truncation": float(self.truncation.value) if self.truncate.value else None,
                "scale": self.scale}

    def update(self) -> None:
        t0 = time.perf_counter()
        self.image.value = render_samples(self.G, **self.values())
        self.status.value = f"rendered in {1000 * (time.perf_counter() - t0):.0f} ms"

    def _on_change(self, change: dict) -> None:
        self.truncation.disabled = not self.truncate.value
        self.update()

    def _on_new_seed(self, _button) -> None:
        self.seed.value = self._rng.randrange(self.seed.max)  # the observer redraws

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


class InterpolationView:
    """Start | point t | end of a walk between two seeds or two classes, t on a slider. Seeds
    outside 0..MAX_SEED and t outside [0, 1] are refused with a CourseError, not clamped."""

    def __init__(self, G: nn.Module, mode: str = "seeds", class_a: str | int | None = None,
                 class_b: str | int | None = None, seed_a: int = 0, seed_b: int = 1, t: float = 0.5,
                 truncation: float | None = None, scale: int = 3):
        import ipywidgets as W

        seed_a, seed_b = check_int("seed_a", seed_a, 0, MAX_SEED), check_int("seed_b", seed_b, 0, MAX_SEED)
        if not 0 <= t <= 1:  # NaN fails too
            raise CourseError(f"t must be in [0, 1], got {t}")
        self.G, self.truncation, self.scale, self._quiet = G, truncation, scale, False
        names = class_names(G)
        if mode not in INTERPOLATION_MODES:
            raise CourseError(f"mode must be one of {INTERPOLATION_MODES}, got {mode!r}")
        class_a = names[class_index(G, class_a if class_a is not None else 0)]  # clear errors for bad names
        class_b = names[class_index(G, class_b if class_b is not None else min(1, len(names) - 1))]
        self._rng = random.Random(seed_a)
        self.mode = W.ToggleButtons(options=[("between two seeds", "seeds"), ("between two classes", "classes")],
                                    value=mode, description="walk")
        narrow = dict(style={"description_width": "70px"}, layout=W.Layout(width="240px"))
        self.class_a = W.Dropdown(options=names, value=class_a, description="class A", **narrow)
        self.class_b = W.Dropdown(options=names, value=class_b, description="class B", **narrow)
        self.seed_a = W.BoundedIntText(value=seed_a, min=0, max=MAX_SEED, description="seed A", **narrow)
        self.seed_b = W.BoundedIntText(value=seed_b, min=0, max=MAX_SEED, description="seed B", **narrow)
        self.t = W.FloatSlider(value=t, min=0.0, max=1.0, step=0.05, description="t", continuous_update=True,
                               style={"description_width": "70px"}, layout=W.Layout(width="490px"))
        self.new_seeds_button = W.Button(description="new seeds", icon="dice")
        self.image = W.Image(format="png")
        for control in (self.mode, self.class_a, self.class_b, self.seed_a, self.seed_b, self.t):
            control.observe(self._on_change, names="value")
        self.new_seeds_button.on_click(self._on_new_seeds)
        self.widget = W.VBox([self.mode, W.HBox([self.class_a, self.class_b]),
                              W.HBox([self.seed_a, self.seed_b, self.new_seeds_button]), self.t, self.image])
        self.widget.add_class("cgan-interpolation")
        self._sync_enabled()
        self.update()

    def values(self) -> dict:
        """The current control values as ``render_interpolation`` keyword arguments."""
        return {"t": float(self.t.value), "mode": self.mode.value, "class_a": self.class_a.value,
                "class_b": self.class_b.value, "seed_a": int(self.seed_a.value), "seed_b": int(self.seed_b.value),
                "truncation": self.truncation, "scale": self.scale}

    def update(self) -> None:
        self.image.value = render_interpolation(self.G, **self.values())

    def _sync_enabled(self) -> None:
        self.class_b.disabled = self.mode.value == "seeds"  # a seed walk stays in class A
        self.seed_b.disabled = self.mode.value == "classes"  # a class walk keeps seed A's z

    def _on_change(self, change: dict) -> None:
        self._sync_enabled()
        if not self._quiet:
            self.update()

    def _on_new_seeds(self, _button) -> None:
        self._quiet = True  # set both seeds, then redraw once
        try:
            self.seed_a.value = self._rng.randrange(self.seed_a.max)
            self.seed_b.value = self._rng.randrange(self.seed_b.max)
        finally:
            self._quiet = False
        self.update()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
