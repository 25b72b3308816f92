"""CIFAR-10 the way a course needs it: several sources, one cache, clear errors, fast batches.

`load_cifar10` returns the whole split as two tensors, ``images`` ``uint8 [N, 3, 32, 32]`` and
``labels`` ``int64 [N]``. CIFAR-10 is 180 MB as uint8, so holding it in memory (or on the GPU)
is cheaper than any DataLoader: decoding happens once, then every epoch is tensor indexing.

Sources, tried in this order by ``source="auto"``:

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

import argparse
import hashlib
import io
import os
import pickle
import shlex
import tarfile
import warnings
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .errors import CourseError, run_cli

CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
ENV_VAR = "CGAN_COURSE_CIFAR10"  # a class-folder tree or .tar.gz used by source="auto"/"folder"
CACHE_ENV_VAR = "CGAN_COURSE_CACHE"  # where decoded arrays go when the data folder is read-only
REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_ROOT = REPO_ROOT / "data" / "cifar10-sample"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SOURCES = ("torchvision", "folder", "sample")
DEFAULT_ROOT = REPO_ROOT / "data"
# MD5 of each official python batch, as torchvision's CIFAR10 publishes them (train_list, test_list)
OFFICIAL_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}


class DatasetError(CourseError):
    """Bad or missing data; the message names the path and the fix."""


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
    root = Path(root) if root is not None else DEFAULT_ROOT
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
            "classes use cgan_course.data.load_image_folder instead.")
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
    root = Path(root).expanduser() if root is not None else DEFAULT_ROOT
    explicit = root.resolve() != DEFAULT_ROOT.resolve()
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
    Every image must already be ``image_size`` x ``image_size``. Decoded arrays are cached as
    ``.npz`` next to the data (or under ``$CGAN_COURSE_CACHE`` when that folder is read-only),
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


def _find_split_root(root: Path, split: str) -> Path:
    """Return the folder that holds ``<split>/``: root itself or its single top-level folder."""
    if root.is_file():
        if not root.name.endswith((".tar.gz", ".tgz", ".tar")):
            raise DatasetError(f"{root} is a file but not a .tar.gz/.tar archive of class folders.")
        return root
    if (root / split).is_dir():
        return root
    subdirs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")] if root.is_dir() else []
    if len(subdirs) == 1 and (subdirs[0] / split).is_dir():
        return subdirs[0]  # e.g. an extracted cifar10-jpg/ inside the given folder
    raise DatasetError(f"{root} has no {split}/ folder (expected {root}/{split}/<class>/*.jpg|png).")


def _decode(data: bytes | Path, name: str, image_size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
            im = im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DatasetError(f"{name}: cannot read this image ({err}). Delete or replace the file.") from None
    if im.size != (image_size, image_size):
        raise DatasetError(f"{name}: image is {im.size[0]}x{im.size[1]}, expected "
                           f"{image_size}x{image_size}. Resize your dataset first (or pass image_size).")
    return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)  # (H, W, 3) -> (3, H, W)


def _check_classes(found: list[str], where: str) -> list[str]:
    if not found:
        raise DatasetError(f"{where} holds no class folders with images (expected {where}/<class>/*.jpg|png).")
    return sorted(found)


def _list_images(base: Path) -> dict[str, list[os.DirEntry]]:
    """``{class: image files sorted by name}`` of ``base/<class>/``, classes sorted, hidden entries
    (``.ipynb_checkpoints``, ``._*`` AppleDouble files) skipped."""
    classes = sorted(e.name for e in os.scandir(base) if e.is_dir() and not e.name.startswith("."))
    return {cls: sorted((e for e in os.scandir(base / cls) if not e.name.startswith(".")
                         and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES), key=lambda e: e.name)
            for cls in classes}


def _decode_folder(base: Path, listing: dict[str, list[os.DirEntry]], image_size: int):
    classes = _check_classes(list(listing), str(base))
    images, labels = [], []
    for label, cls in enumerate(_progress(classes, f"decoding {base}")):
        if not listing[cls]:
            raise DatasetError(f"{base / cls} holds no .png/.jpg images.")
        images += [_decode(Path(e.path), e.path, image_size) for e in listing[cls]]
        labels += [label] * len(listing[cls])
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes


def _decode_tarball(path: Path, split: str, image_size: int):
    per_class: dict[str, list[np.ndarray]] = {}
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                parts = Path(member.name).parts
                if (not member.isfile() or Path(member.name).suffix.lower() not in IMAGE_SUFFIXES
                        or Path(member.name).name.startswith(".")):
                    continue
                # accept <split>/<class>/f and <top>/<split>/<class>/f
                if len(parts) >= 3 and parts[-3] == split:
                    data = tar.extractfile(member).read()
                    per_class.setdefault(parts[-2], []).append(
                        (member.name, _decode(data, f"{path}:{member.name}", image_size)))
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DatasetError(f"{path}: cannot read the archive ({err}). Check the download "
                           "(sha256) or extract it and point at the folder.") from None
    classes = _check_classes(list(per_class), f"{path}:{split}/")
    images, labels = [], []
    for label, cls in enumerate(classes):
        for _, arr in sorted(per_class[cls], key=lambda t: t[0]):  # file order, as for folders
            images.append(arr)
            labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes


def _stat_stamp(st: os.stat_result) -> str:
    # ctime as well as mtime: a copy that restores the old mtime (cp -p) still changes the ctime
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def _listing_stamp(listing: dict[str, list[os.DirEntry]]) -> str:
    lines = [f"{cls}/" + "".join(f"\n{e.name}|{_stat_stamp(e.stat())}" for e in files)
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
        stamp = _stat_stamp(root.stat())
    else:
        if listing is None:
            listing = _list_images(_find_split_root(root, split) / split)
        stamp = _listing_stamp(listing)
    key = hashlib.sha1(f"{root.resolve()}|{stamp}".encode()).hexdigest()[:12]
    name = f"{root.name.split('.')[0]}-{split}-{image_size}px-{key}.npz"
    beside = (root.parent if root.is_file() else root) / ".cgan_cache"
    # mode bits, not os.access: root may write anywhere, but a folder marked read-only (a shared
    # data mount) should stay untouched
    if not os.environ.get(CACHE_ENV_VAR) and beside.parent.stat().st_mode & 0o222 and os.access(beside.parent, os.W_OK):
        return beside / name
    return Path(os.environ.get(CACHE_ENV_VAR, Path.home() / ".cache" / "cgan_course")) / name


def _read_cache(path: Path, image_size: int, listing: dict[str, list[os.DirEntry]] | None
                ) -> tuple[torch.Tensor, torch.Tensor, list[str]] | None:
    """The cached ``(images [N, 3, S, S], labels [N], classes)`` if ``path`` is a valid cache of this
    source; otherwise None after a one-line warning, and the caller decodes again."""
    try:
        arrays = np.load(path, allow_pickle=False)  # object arrays would need unpickling: refused
        if not isinstance(arrays, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with arrays:
            images, labels, classes = arrays["images"], arrays["labels"], arrays["classes"]
        problem = _cache_problem(images, labels, classes, image_size, listing)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        problem = f"{type(err).__name__}: {err}"
    if problem is None:
        return torch.from_numpy(images), torch.from_numpy(labels), classes.tolist()
    warnings.warn(f"{path}: broken image cache ({' '.join(problem.split())}); discarding it and "
                  "decoding the images again.", stacklevel=3)
    return None


def _cache_problem(images: np.ndarray, labels: np.ndarray, classes: np.ndarray, image_size: int,
                   listing: dict[str, list[os.DirEntry]] | None) -> str | None:
    """What is wrong with cached arrays, or None. Beyond dtypes and shapes, the labels must be
    grouped by class as decoding writes them, and for a folder the classes and per-class counts
    must be those of the listing the cache key was made from."""
    if images.dtype != np.uint8 or images.shape[1:] != (3, image_size, image_size):
        return f"images are {images.dtype} {list(images.shape)}, expected uint8 [N, 3, {image_size}, {image_size}]"
    if labels.dtype != np.int64 or labels.shape != images.shape[:1]:
        return f"labels are {labels.dtype} {list(labels.shape)}, expected int64 [{images.shape[0]}]"
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


def _save_cache(path: Path, images: np.ndarray, labels: np.ndarray, classes: list[str]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:  # uncompressed: loading 180 MB is then a plain read
            np.savez(f, images=images, labels=labels, classes=np.asarray(classes))
        os.replace(tmp, path)  # atomic: a killed run never leaves a half-written cache
    except OSError:
        pass  # a cache is an optimisation; a read-only disk must not break loading


def _check_labels(images: torch.Tensor, labels: torch.Tensor, num_classes: int, where: str) -> None:
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(f"{where}: {images.shape[0]} images but {labels.shape[0]} labels.")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(f"{where}: labels range over [{int(labels.min())}, {int(labels.max())}], "
                           f"expected [0, {num_classes - 1}]. The files are corrupt or not CIFAR-10.")


def _progress(items, desc: str):
    try:
        from tqdm.auto import tqdm

        return tqdm(items, desc=desc, leave=False)
    except ImportError:
        return items


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


def random_hflip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image of [N, C, H, W] left-right with probability 1/2 (safe for CIFAR GANs:
    a mirrored car is still a car, so the generator learns nothing it should not)."""
    flip = torch.rand(x.shape[0], generator=generator, device="cpu").to(x.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


class DeviceBatches:
    """Shuffled mini-batches of a uint8 dataset kept on ``device``; scaling and flips done there.

    This is the course's training input pipeline: one host-to-device copy of the dataset (180 MB
    for CIFAR-10), then each batch is an index, a cast and a flip, with no worker processes.
    Iterating yields ``(x [B, 3, H, W] float in [-1, 1], y [B] int64)`` forever; the order is a
    function of ``seed`` and the epoch, and ``state_dict`` allows exact resumption.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 device: torch.device | str = "cpu", hflip: bool = True, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise CourseError(f"images must be uint8 [N, C, H, W], got {images.dtype} {list(images.shape)}")
        if batch_size > images.shape[0] // world_size:
            raise CourseError(f"batch_size {batch_size} is larger than the {images.shape[0] // world_size} "
                             "images per process; lower batch_size.")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size, self.hflip, self.seed = batch_size, hflip, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.position = 0, 0
        self._order = self._epoch_order()

    def _epoch_order(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.images.shape[0], generator=g)
        return order[self.rank::self.world_size]  # each DDP rank gets a disjoint shard

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.position + self.batch_size > len(self._order):  # drop the ragged tail
            self.epoch, self.position = self.epoch + 1, 0
            self._order = self._epoch_order()
        idx = self._order[self.position:self.position + self.batch_size].to(self.device)
        self.position += self.batch_size
        g = torch.Generator().manual_seed(self.seed * 7919 + self.epoch * 1_000_003 + self.position)
        x = to_unit_range(self.images[idx])
        if self.hflip:
            x = random_hflip(x, g)
        return x, self.labels[idx]

    @property
    def batches_per_epoch(self) -> int:
        return len(self._order) // self.batch_size

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch, self.position = state["seed"], state["epoch"], state["position"]
        self._order = self._epoch_order()


class CIFAR10Tensors(torch.utils.data.Dataset):
    """A plain map-style Dataset over the uint8 tensors, for people who want a DataLoader.

    Items are ``(x [3, H, W] float in [-1, 1], y int)``; pass ``transform`` for anything else.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform=None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int):
        x = self.images[i]
        x = self.transform(x) if self.transform is not None else to_unit_range(x)
        return x, int(self.labels[i])


# ----------------------------------------------------------------------------------------------
# Command line: python -m cgan_course.data {download,prepare,info}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m cgan_course.data",
        description="Get CIFAR-10 ready: download the official set (online) or decode a class-folder "
                    "tree / .tar.gz into the cache (offline).")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("download", help="download the official CIFAR-10 with torchvision (needs internet)")
    p.add_argument("--root", default=None,
                   help="folder for cifar-10-batches-py (default: the repository's data/)")
    p = sub.add_parser("prepare", help="decode a class-folder tree or .tar.gz once and cache it")
    p.add_argument("path", help="a class-folder tree or .tar.gz, e.g. $CGAN_COURSE_CIFAR10")
    p = sub.add_parser("info", help="show which source 'auto' picks and the split sizes")
    p.add_argument("--root", default=None, help="the root to resolve (default: the repository's data/, "
                                                f"then ${ENV_VAR}, then the committed sample)")
    args = parser.parse_args(argv)
    run_cli(lambda: _run(args), parser.prog)


def _run(args: argparse.Namespace) -> None:
    if args.command == "download":
        for train in (True, False):
            images, _ = load_cifar10(args.root, train=train, source="torchvision", download=True)
            print(f"{'train' if train else 'test'}: {images.shape[0]} images in {args.root or DEFAULT_ROOT}")
    elif args.command == "prepare":
        for split in ("train", "test"):
            images, labels, classes = load_image_folder(args.path, split)
            print(f"{split}: {images.shape[0]} images, {len(classes)} classes, cached "
                  f"({_cache_path(Path(args.path), split, 32)})")
        print(f"Use it: export {ENV_VAR}={Path(args.path).resolve()}")
    else:
        for train in (True, False):
            split = "train" if train else "test"
            source, root = resolve_source(args.root, train=train)
            print(f"{split} source: {source} {root} ({describe_source(source, root)})")
            images, labels = load_cifar10(root, train=train, source=source)
            print(f"{split}: {list(images.shape)} per class {torch.bincount(labels, minlength=10).tolist()}")


if __name__ == "__main__":
    main()
