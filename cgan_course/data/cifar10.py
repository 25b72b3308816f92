"""CIFAR-10 from one of three sources, tried in this order by ``source="auto"``:

* ``"torchvision"``: the official python batches (``<root>/cifar-10-batches-py``), downloaded by
  torchvision when ``download=True`` and online. They are pickles, so each file's MD5 must be the
  official one before it is unpickled: a crafted "batch" could otherwise run code.
* ``"folder"``: images in class folders, ``<root>/{train,test}/<class>/*.{png,jpg}``, or a
  ``.tar.gz`` of such a tree (the offline JPEG mirror is one). The environment variable
  ``CGAN_COURSE_CIFAR10`` may point at such a folder or tarball.
* ``"sample"``: 100 train + 100 test images per class from the JPEG mirror, committed under
  ``data/cifar10-sample`` so tests and smoke runs work anywhere.

A ``root`` passed explicitly must hold one of the first two: a typo never falls back to the sample.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import shlex
from pathlib import Path

import numpy as np
import torch

from ..paths import CIFAR10_ENV_VAR as ENV_VAR
from ..paths import DATA_DIR, SAMPLE_ROOT
from .base import CLASSES, DatasetError, _check_labels
from .cache import _cache_path, _read_cache, _save_cache
from .decode import _decode_folder, _decode_tarball, _find_split_root, _list_images

SOURCES = ("torchvision", "folder", "sample")
# MD5 of each official python batch, as torchvision's CIFAR10 publishes them (train_list, test_list)
OFFICIAL_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}


# ----------------------------------------------------------------------------------------------
# Loading


def load_cifar10(root: str | os.PathLike | None = None, train: bool = True, source: str = "auto",
                 download: bool = False, cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one CIFAR-10 split as ``(images uint8 [N, 3, 32, 32], labels int64 [N])``.

    ``root`` (default: the repository's ``data/``) is the torchvision data folder, or a class-folder tree / ``.tar.gz`` for
    ``source="folder"``. ``download=True`` lets torchvision fetch the official set (online only).
    """
    split = "train" if train else "test"
    if source in ("torchvision", "folder") and root is not None and not download:
        _require_root(Path(root).expanduser(), split)
    if source == "folder" and root is None and os.environ.get(ENV_VAR):
        root = os.environ[ENV_VAR]  # documented: the variable names the class-folder tree
    if source == "auto":
        source, root = _resolve_auto(root, split, download)
    root = Path(root) if root is not None else DATA_DIR
    if source == "torchvision":
        images, labels = _load_torchvision(Path(root), train, download)
        _check_labels(images, labels, len(CLASSES), f"{root} (official batches)")
        return images, labels
    if source == "sample":
        root = SAMPLE_ROOT
    elif source != "folder":
        raise DatasetError(f"unknown source {source!r}; choose one of 'auto', {', '.join(map(repr, SOURCES))}")
    images, labels, classes = load_image_folder(root, split, image_size=32, cache=cache)
    if tuple(classes) != CLASSES:
        missing = sorted(set(CLASSES) - set(classes))
        extra = sorted(set(classes) - set(CLASSES))
        raise DatasetError(
            f"{root}: the class folders of {split}/ are not CIFAR-10's ten classes "
            f"(missing: {missing or 'none'}, unexpected: {extra or 'none'}). Rename or remove "
            f"folders so that {split}/ holds exactly {', '.join(CLASSES)}; for a dataset of your own "
            "classes use cgan_course.data.load_class_folders instead.")
    return images, labels


def resolve_source(root: str | os.PathLike | None = None, train: bool = True,
                   download: bool = False) -> tuple[str, Path]:
    """The ``(source, root)`` that ``load_cifar10(root, train, source="auto")`` would use.

    Notebooks print it, so every number says whether it came from the official set, a class-folder
    tree (such as the JPEG mirror) or the 1,000-image sample."""
    return _resolve_auto(root, "train" if train else "test", download)


def describe_source(source: str, root: str | os.PathLike | None = None) -> str:
    """A short human name of a CIFAR-10 source, for provenance strings."""
    if source == "sample":
        return "committed 1,000-image sample"
    if source == "torchvision":
        return "official CIFAR-10"
    if source == "folder":
        name = Path(root).name if root is not None else "data"
        return "cifar10-jpg mirror" if "jpg" in name.lower() else f"image folder {name}"
    return source


def _require_root(root: Path, split: str) -> None:
    """An explicitly named root must exist: a typo must not silently mean "the sample"."""
    if not root.exists():
        raise DatasetError(f"the data root {root} does not exist. Fix the path (a folder holding "
                           f"cifar-10-batches-py/ or {split}/<class>/ image folders, or a .tar.gz of "
                           f"such a tree), or leave it out to use ${ENV_VAR} or the committed sample.")


def _resolve_auto(root: str | os.PathLike | None, split: str, download: bool) -> tuple[str, Path]:
    """Pick the first source that is present, or explain everything that was tried.

    Only the default root (``data/``) may fall back to the committed sample; a root the caller
    names must exist and hold the official batches or class folders (unless ``$CGAN_COURSE_CIFAR10``
    is set, which comes before root's class folders)."""
    root = Path(root).expanduser() if root is not None else DATA_DIR
    explicit = root.resolve() != DATA_DIR.resolve()
    if explicit and not download:
        _require_root(root, split)
    tried = []
    if (root / "cifar-10-batches-py").is_dir() or download:
        return "torchvision", root
    tried.append(f"official batches: {root / 'cifar-10-batches-py'} (not found)")
    env = os.environ.get(ENV_VAR)
    if env:
        # set on purpose: a typo must not silently fall back to the 1,000-image sample
        if not Path(env).expanduser().exists():
            raise DatasetError(f"${ENV_VAR} is set to {env}, which does not exist. Fix the path "
                               f"(a class-folder tree or .tar.gz) or unset ${ENV_VAR}.")
        try:
            _find_split_root(Path(env).expanduser(), split)
            return "folder", Path(env).expanduser()
        except DatasetError as err:
            raise DatasetError(f"${ENV_VAR} is set to {env}, but: {err} Fix the path or unset "
                               f"${ENV_VAR}.") from None
    tried.append(f"class folders: ${ENV_VAR} is not set")
    if root.exists():
        try:
            if _find_split_root(root, split).resolve() != SAMPLE_ROOT.resolve():
                return "folder", root
            return "sample", SAMPLE_ROOT  # the sample's own folder, named as root
        except DatasetError as err:
            if explicit:
                raise DatasetError(f"the data root {root} holds no CIFAR-10: no cifar-10-batches-py/, "
                                   f"and {err} Fix the path, or leave it out to use ${ENV_VAR} or the "
                                   "committed sample.") from None
            tried.append(f"class folders: {err}")
    if (SAMPLE_ROOT / split).is_dir():
        return "sample", SAMPLE_ROOT
    tried.append(f"committed sample: {SAMPLE_ROOT / split} (not found)")
    raise DatasetError(
        "no CIFAR-10 found. Tried:\n  - " + "\n  - ".join(tried) + "\nFix: online, run "
        "`python -m cgan_course.data download`; offline, point "
        f"${ENV_VAR} at a class-folder tree or .tar.gz (e.g. your copy of cifar10-jpg.tar.gz).")


def _load_torchvision(root: Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    batches = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    if download and not all(_is_official(batches / name) for name in names):
        import torchvision  # imported lazily: only this source needs it

        try:
            torchvision.datasets.CIFAR10(str(root), train=train, download=True)
        except Exception as err:  # URLError, socket errors, checksum errors...
            raise DatasetError(
                f"could not download CIFAR-10 into {root} ({type(err).__name__}: {err}). "
                f"Offline, point ${ENV_VAR} at a class-folder tree or .tar.gz and use "
                "source='folder' (e.g. your copy of cifar10-jpg.tar.gz).") from None
    fix = f"`python -m cgan_course.data download --root {shlex.quote(str(root))}`"
    images, labels = [], []
    for name in names:
        path = batches / name
        if not path.is_file():
            raise DatasetError(f"{path} is missing: the official CIFAR-10 folder is incomplete; "
                               f"download again with {fix}.")
        raw = path.read_bytes()  # checked and unpickled from the same bytes: no swap in between
        if hashlib.md5(raw).hexdigest() != OFFICIAL_MD5[name]:
            raise DatasetError(f"{path}: its checksum does not match the official CIFAR-10 python "
                               "batches, so it was not unpickled (a crafted file could run code). "
                               f"Re-download with {fix} or delete it.")
        entry = pickle.loads(raw, encoding="latin1")  # safe: byte-identical to the official file
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64))
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


def _is_official(path: Path) -> bool:
    """Whether ``path`` is present and byte-identical (by MD5) to the official batch of its name."""
    return path.is_file() and hashlib.md5(path.read_bytes()).hexdigest() == OFFICIAL_MD5[path.name]


def load_image_folder(root: str | os.PathLike, split: str = "train", image_size: int = 32,
                      cache: bool = True) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Load ``<root>/<split>/<class>/*`` (a folder or a ``.tar.gz`` of one) as uint8 tensors.

    Returns ``(images [N, 3, S, S], labels [N], classes)`` with classes in sorted folder order.
    Every image must already be ``image_size`` x ``image_size`` (``load_class_folders`` resizes
    any dataset), and all unreadable files are named in one ``DatasetError``. Decoded arrays are
    cached as ``.npz`` next to the data (or under ``$CGAN_COURSE_CACHE`` when that folder is read-only),
    so the second load of the full CIFAR-10 takes about a second. The cache is keyed on the
    source's state (see ``_cache_path``), so changed images are decoded again, and a cache file
    that fails validation is discarded with a warning and rebuilt.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{root} does not exist. Point it at a folder holding {split}/<class>/ "
                           "image folders, or at a .tar.gz of such a tree.")
    base = None if root.is_file() else _find_split_root(root, split) / split
    listing = _list_images(base) if base is not None else None
    cache_file = _cache_path(root, split, image_size, listing) if cache else None
    if cache_file is not None and cache_file.is_file():
        cached = _read_cache(cache_file, image_size, listing)
        if cached is not None:
            return cached
    if base is None:
        images, labels, classes = _decode_tarball(root, split, image_size)
    else:
        images, labels, classes = _decode_folder(base, listing, image_size)
    if cache_file is not None:
        _save_cache(cache_file, images, labels, classes)
    return torch.from_numpy(images), torch.from_numpy(labels), classes
