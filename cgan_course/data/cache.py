"""The ``.npz`` cache of decoded images: written once beside the data (or under
``$CGAN_COURSE_CACHE`` when that folder is read-only), keyed by the file listing it was made from,
checked before use, written atomically.
"""
from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_write, cache_dir, stat_stamp
from .decode import _find_split_root, _list_images


def _listing_stamp(listing: dict[str, list[os.DirEntry]]) -> str:
    lines = [f"{cls}/" + "".join(f"\n{e.name}|{stat_stamp(e.stat())}" for e in files)
             for cls, files in listing.items()]
    return hashlib.sha1("\n".join(lines).encode()).hexdigest()


def _cache_path(root: Path, split: str, image_size: int,
                listing: dict[str, list[os.DirEntry]] | None = None) -> Path:
    """``<data>/.cgan_cache/...npz`` beside the data, keyed by the path and the state of the source:
    the archive's size and timestamps, or the name, size and timestamps of every image file (one
    stat each, no reading: ~0.4 s for CIFAR-10's 50,000 train images on a slow disk), so adding,
    removing, renaming or overwriting an image in place all give a new key. ``listing`` is
    ``_list_images``' result."""
    if root.is_file():
        stamp = stat_stamp(root.stat())
    else:
        if listing is None:
            listing = _list_images(_find_split_root(root, split) / split)
        stamp = _listing_stamp(listing)
    key = hashlib.sha1(f"{root.resolve()}|{stamp}".encode()).hexdigest()[:12]
    return cache_dir(root) / f"{root.name.split('.')[0]}-{split}-{image_size}px-{key}.npz"


def _read_cache(path: Path, image_size: int, listing: dict[str, list[os.DirEntry]] | None
                ) -> tuple[torch.Tensor, torch.Tensor, list[str]] | None:
    """The cached ``(images [N, 3, S, S], labels [N], classes)`` if ``path`` is a valid cache of this
    source; otherwise None after a one-line warning, and the caller decodes again."""
    arrays = _read_npz(path, ("images", "labels", "classes"), lambda a: _cache_problem(
        a["images"], a["labels"], a["classes"], image_size, listing))
    if arrays is None:
        return None
    return torch.from_numpy(arrays["images"]), torch.from_numpy(arrays["labels"]), arrays["classes"].tolist()


def _read_npz(path: Path, keys: tuple[str, ...], problem_of) -> dict[str, np.ndarray] | None:
    """The arrays ``keys`` of the cache ``path`` if ``problem_of(arrays)`` finds nothing wrong;
    otherwise None after a one-line warning, and the caller decodes again."""
    try:
        arrays = np.load(path, allow_pickle=False)  # object arrays would need unpickling: refused
        if not isinstance(arrays, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with arrays:
            got = {key: arrays[key] for key in keys}
        problem = problem_of(got)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        problem = f"{type(err).__name__}: {err}"
    if problem is None:
        return got
    warnings.warn(f"{path}: broken image cache ({' '.join(problem.split())}); discarding it and "
                  "decoding the images again.", stacklevel=4)
    return None


def _array_problem(images: np.ndarray, labels: np.ndarray, image_size: int) -> str | None:
    """What is wrong with the dtypes and shapes of cached images and labels, or None."""
    if images.dtype != np.uint8 or images.shape[1:] != (3, image_size, image_size):
        return f"images are {images.dtype} {list(images.shape)}, expected uint8 [N, 3, {image_size}, {image_size}]"
    if labels.dtype != np.int64 or labels.shape != images.shape[:1]:
        return f"labels are {labels.dtype} {list(labels.shape)}, expected int64 [{images.shape[0]}]"
    return None


def _cache_problem(images: np.ndarray, labels: np.ndarray, classes: np.ndarray, image_size: int,
                   listing: dict[str, list[os.DirEntry]] | None) -> str | None:
    """What is wrong with cached arrays, or None. Beyond dtypes and shapes, the labels must be
    grouped by class as decoding writes them, and for a folder the classes and per-class counts
    must be those of the listing the cache key was made from."""
    problem = _array_problem(images, labels, image_size)
    if problem is not None:
        return problem
    if classes.dtype.kind != "U" or classes.ndim != 1 or classes.size == 0 or labels.size == 0:
        return f"{classes.size} class names and {labels.size} images"
    if labels.min() < 0 or labels.max() >= classes.size:
        return f"labels range over [{labels.min()}, {labels.max()}], expected [0, {classes.size - 1}]"
    if np.any(np.diff(labels) < 0):
        return "labels are not grouped by class"
    names, counts = classes.tolist(), np.bincount(labels, minlength=classes.size).tolist()
    if listing is not None:
        want = [len(files) for files in listing.values()]
        if names != list(listing) or counts != want:
            return f"{names} with {counts} images per class, but the folders hold {list(listing)} with {want}"
    elif names != sorted(set(names)) or 0 in counts:
        return f"{names} with {counts} images per class"
    return None


def _save_cache(path: Path, images: np.ndarray, labels: np.ndarray, classes: list[str],
                **extra: np.ndarray) -> None:
    try:
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # uncompressed: loading 180 MB is then a plain read
                np.savez(f, images=images, labels=labels, classes=np.asarray(classes), **extra)
        atomic_write(path, write)  # a killed run never leaves a half-written cache
    except OSError:
        pass  # a cache is an optimisation; a read-only disk must not break loading
