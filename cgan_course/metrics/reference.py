"""Feature statistics of real images and of a generator's samples.

Reference statistics of a CIFAR-10 split are computed once and cached as ``.npz`` under
``data/.cgan_cache`` (or ``$CGAN_COURSE_CACHE``), keyed by extractor, weights, split and the data's
file list (each file's path, size and mtime), so adding or rewriting an image recomputes them.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .. import files
from ..data import (
    describe_source,
    load_cifar10,
    resolve_source,
)
from ..errors import CourseError
from ..files import atomic_write, stat_stamp
from ..paths import CIFAR10_ENV_VAR as ENV_VAR
from ..paths import DATA_DIR, SAMPLE_ROOT
from ..runtime import eval_mode
from ..sampling import generate, sample_latents
from .fd import RunningStats
from .features import FeatureExtractor

# ----------------------------------------------------------------------------------------------
# Statistics of a set of images, with provenance


@dataclass
class FeatureStats:
    """Gaussian fit of a set of features plus where it came from.

    ``class_mean [C, d]`` / ``class_cov [C, d, d]`` / ``class_count [C]`` are present when labels
    were known (per-class FD). ``logits [N, K]`` and ``labels [N]`` are kept for generated sets
    (Inception Score, label fidelity); cached reference statistics do not store them.
    ``image_size`` ``(H, W)`` of the images behind the features (None: features given directly);
    an FD between two known, different sizes is refused.
    """

    mean: np.ndarray
    cov: np.ndarray
    count: int
    extractor: str
    split: str  # "train" / "test" for CIFAR-10, "generated" or "images" otherwise
    data_source: str  # e.g. "cifar10-jpg mirror", or a description of the generator
    class_mean: np.ndarray | None = None
    class_cov: np.ndarray | None = None
    class_count: np.ndarray | None = None
    logits: torch.Tensor | None = field(default=None, repr=False)
    labels: torch.Tensor | None = field(default=None, repr=False)
    image_size: tuple[int, int] | None = None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"mean": self.mean, "cov": self.cov, "count": np.int64(self.count),
                  "extractor": np.str_(self.extractor), "split": np.str_(self.split),
                  "data_source": np.str_(self.data_source)}
        if self.class_mean is not None:
            arrays.update(class_mean=self.class_mean, class_cov=self.class_cov, class_count=self.class_count)
        if self.image_size is not None:
            arrays["image_size"] = np.asarray(self.image_size, np.int64)
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        atomic_write(path, write)  # an interrupted run never leaves half a cache file
        return path

    @classmethod
    def load(cls, path: str | Path) -> "FeatureStats":
        with np.load(path, allow_pickle=False) as z:
            extra = {k: z[k] for k in ("class_mean", "class_cov", "class_count") if k in z}
            if "image_size" in z:
                extra["image_size"] = tuple(int(v) for v in z["image_size"])
            return cls(mean=z["mean"], cov=z["cov"], count=int(z["count"]), extractor=str(z["extractor"]),
                       split=str(z["split"]), data_source=str(z["data_source"]), **extra)


def _resolve_source(source: str, root, split: str) -> tuple[str, Path | None]:
    if source != "auto":
        if source == "folder" and root is None and os.environ.get(ENV_VAR):
            root = os.environ[ENV_VAR]  # read the same way as load_cifar10 does
        return source, Path(root).expanduser() if root is not None else None
    return resolve_source(root, train=split == "train")


def stats_from_features(features: torch.Tensor, labels: torch.Tensor | None, extractor: str, split: str,
                        data_source: str, num_classes: int = 10, logits: torch.Tensor | None = None) -> FeatureStats:
    """``FeatureStats`` of features ``[N, d]`` (with per-class statistics when ``labels [N]`` is given)."""
    stats = RunningStats(features.shape[1]).update(features)
    out = FeatureStats(stats.mean, stats.cov, stats.count, extractor, split, data_source, logits=logits, labels=labels)
    if labels is not None:
        _add_class_stats(out, [RunningStats(features.shape[1]).update(features[labels == c]) for c in range(num_classes)])
    return out


def _add_class_stats(out: FeatureStats, per_class: list[RunningStats]) -> None:
    if all(s.count >= 2 for s in per_class):
        out.class_mean = np.stack([s.mean for s in per_class])
        out.class_cov = np.stack([s.cov for s in per_class])
        out.class_count = np.array([s.count for s in per_class])


def image_stats(images: torch.Tensor, extractor: FeatureExtractor, labels: torch.Tensor | None = None,
                split: str = "images", data_source: str = "images") -> FeatureStats:
    """Feature statistics of images ``[N, 3, H, W]`` (uint8 or [-1, 1]), keeping the logits;
    with ``labels [N]`` also per-class statistics (intra-class FD, label fidelity)."""
    feats, logits = extractor.features_and_logits(images)
    stats = stats_from_features(feats, labels, extractor.name, split, data_source, logits=logits)
    stats.image_size = tuple(images.shape[-2:])
    return stats


def cache_dir() -> Path:
    """Where reference statistics are cached: the data cache's rule, beside the repository's data/."""
    return files.cache_dir(DATA_DIR)


def reference_stats(extractor: FeatureExtractor, split: str = "train", source: str = "auto",
                    root: str | os.PathLike | None = None, num_images: int | None = None,
                    per_class: bool | None = None, cache: bool = True, verbose: bool = True) -> FeatureStats:
    """Feature statistics of a CIFAR-10 split, computed once and cached on disk.

    ``num_images`` (>= 2) takes a fixed random subset (seed 0) instead of the whole split. The
    cache file (``refstats-<extractor>-<weights>-<data>-<split>-<n>.npz`` under
    ``data/.cgan_cache`` or ``$CGAN_COURSE_CACHE``) is keyed by all of these, ``<data>`` naming
    the source and hashing its file list, sizes and mtimes, so changing any of them recomputes.
    ``per_class`` (default: when dim <= 512) adds per-class statistics for intra-class FD.
    """
    if split not in ("train", "test"):
        raise CourseError(f"split must be 'train' or 'test', got {split!r}")
    if num_images is not None and not (isinstance(num_images, (int, np.integer)) and num_images >= 2):
        raise CourseError(f"num_images must be a whole number >= 2 (a covariance needs two images), or None "
                          f"for the whole split; got {num_images!r}")
    source, root = _resolve_source(source, root, split)
    data_source = describe_source(source, root)
    per_class = extractor.dim <= 512 if per_class is None else per_class
    path = None
    if cache:
        data_key = _data_fingerprint(source, root, split)
        path = cache_dir() / (f"refstats-{extractor.name}-{extractor.fingerprint}-{data_key}-{split}-"
                              f"{num_images or 'all'}{'-classes' if per_class else ''}.npz")
        if path.is_file():
            return FeatureStats.load(path)
    images, labels = load_cifar10(root, train=split == "train", source=source)
    if num_images is not None and num_images < len(labels):
        keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:num_images]
        images, labels = images[keep], labels[keep]
    t0 = time.time()
    per = [RunningStats(extractor.dim) for _ in range(10)] if per_class else []
    total = RunningStats(extractor.dim)
    chunk = 2000  # features are folded into the running statistics chunk by chunk
    for i in range(0, len(labels), chunk):
        feats = extractor(images[i:i + chunk])
        total.update(feats)
        for c, s in enumerate(per):
            s.update(feats[labels[i:i + chunk] == c])
    stats = FeatureStats(total.mean, total.cov, total.count, extractor.name, split, data_source,
                         image_size=tuple(images.shape[-2:]))
    if per_class:
        _add_class_stats(stats, per)
    if verbose:
        print(f"reference statistics: {extractor.name} features of {total.count:,} {split} images "
              f"({data_source}) in {time.time() - t0:.0f} s" + (f", cached at {path}" if path else ""))
    if path is not None:
        try:
            stats.save(path)
        except OSError:
            pass  # a read-only disk only costs the recomputation next time
    return stats


def _data_fingerprint(source: str, root: Path | None, split: str) -> str:
    """``<source>[-<folder name>]-<hash>`` of the files ``load_cifar10`` reads for ``split``: the
    hash covers each file's relative path, size, mtime and ctime (``files.stat_stamp``) (stat only, no reads; cheap even for
    CIFAR-10's 60,000 JPEGs), so an image added, removed or rewritten anywhere changes the key."""
    if source == "sample":
        root = SAMPLE_ROOT
    elif root is None:
        root = DATA_DIR  # load_cifar10's default root
    if not root.exists():
        raise CourseError(f"the data root {root} does not exist: fix the path (--data-root), or leave it out "
                          "to use $CGAN_COURSE_CIFAR10 or the committed sample")
    if source == "torchvision":
        folder = root / "cifar-10-batches-py"
    else:  # a class-folder tree (its split folder, when it has one) or a .tar.gz
        folder = root / split if (root / split).is_dir() else root
    listing = "".join(f"{rel}|{stat_stamp(st)}\n" for rel, st in _stat_files(folder))
    h = hashlib.sha1(f"{folder.resolve()}\n{listing}".encode())
    name = source if source in ("sample", "torchvision") else f"{source}-{root.name.split('.')[0]}"
    return f"{name}-{h.hexdigest()[:10]}"


def _stat_files(path: Path) -> list[tuple[str, os.stat_result]]:
    """``(relative path, stat)`` of ``path`` (a file) or of every file below it, in sorted order,
    skipping hidden names as the loaders do (the image cache lives in a hidden folder)."""
    if path.is_file():
        return [(path.name, path.stat())]
    found = []
    pending = [(path, "")]
    while pending:
        folder, prefix = pending.pop()
        with os.scandir(folder) as entries:
            for entry in sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name):
                if entry.is_dir():
                    pending.append((entry.path, f"{prefix}{entry.name}/"))
                else:
                    found.append((prefix + entry.name, entry.stat()))
    return sorted(found, key=lambda item: item[0])


def generator_stats(G: nn.Module, extractor: FeatureExtractor, num_samples: int = 10_000, seed: int = 0,
                    truncation: float | None = None, batch_size: int = 500, per_class: bool = True,
                    description: str = "generator") -> FeatureStats:
    """Feature statistics of ``num_samples`` images from ``G`` with class-balanced labels.

    Labels are ``num_samples / num_classes`` of each class (the remainder spread over the first
    classes); latents come from ``seed``. Features stream into running statistics batch by batch;
    only the logits ``[N, K]`` and labels ``[N]`` are kept (for IS and label fidelity).
    """

    for name, value, least in (("num_samples", num_samples, 2), ("batch_size", batch_size, 1)):
        if not (isinstance(value, (int, np.integer)) and value >= least):
            raise CourseError(f"{name} must be a whole number >= {least}, got {value!r}")
    num_classes = G.num_classes or 0
    # class-balanced and interleaved (0, 1, ..., 9, 0, ...): every IS split sees every class
    y = torch.arange(num_samples) % num_classes if num_classes else None
    z = sample_latents(num_samples, G.z_dim, seed, truncation)
    total = RunningStats(extractor.dim)
    per = [RunningStats(extractor.dim) for _ in range(num_classes)] if per_class and num_classes else []
    logits = []
    image_size = None
    with eval_mode(G):
        for i in range(0, num_samples, batch_size):
            yi = y[i:i + batch_size] if y is not None else None
            x_fake = generate(G, z[i:i + batch_size], yi, batch_size)
            image_size = tuple(x_fake.shape[-2:])
            feats, lg = extractor.features_and_logits(x_fake)
            total.update(feats)
            for c, s in enumerate(per):
                s.update(feats[yi == c])
            if lg is not None:
                logits.append(lg)
    stats = FeatureStats(total.mean, total.cov, total.count, extractor.name, "generated", description,
                         logits=torch.cat(logits) if logits else None, labels=y, image_size=image_size)
    if per:
        _add_class_stats(stats, per)
    return stats
