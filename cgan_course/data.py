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

A dataset of your own classes, at 32, 64 or 128 px, comes from ``load_class_folders``: any class
folders (``<class>/*`` or ``train/<class>/*``, a folder or a ``.tar.gz``), images of any size and
format resized and centre-cropped once into the same cache, unreadable files reported together (or
skipped), and a recorded, seeded, stratified test split when there is no ``test/`` folder.
``python -m cgan_course.data prepare PATH --size 64`` does this from the shell; ``subset`` writes
such a dataset from CIFAR-10 (or any class-folder set).
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import io
import json
import os
import pickle
import shlex
import shutil
import struct
import tarfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

import numpy as np
import torch

from .errors import CourseError, run_cli
from .validate import check_choice, check_float, check_int, check_str

CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
ENV_VAR = "CGAN_COURSE_CIFAR10"  # a class-folder tree or .tar.gz used by source="auto"/"folder"
CACHE_ENV_VAR = "CGAN_COURSE_CACHE"  # where decoded arrays go when the data folder is read-only
REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_ROOT = REPO_ROOT / "data" / "cifar10-sample"
MAX_IMAGE_PIXELS = 64_000_000  # width x height of one image file (a 64 MP photo); larger is refused before decoding
MAX_MEMBER_BYTES = 64 * 2**20  # one image file inside an archive; larger is refused before it is read
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
OWN_SUFFIXES = IMAGE_SUFFIXES + (".bmp", ".gif", ".tif", ".tiff", ".webp")  # what load_class_folders reads
IMAGE_SIZES = (32, 64, 128)  # the sizes the models are built for
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


class SkippedFilesWarning(UserWarning):
    """``skip_unreadable=True`` left unreadable image files out; the message counts and names them."""


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


class _Unreadable(Exception):
    """An image file Pillow cannot decode; the message is the reason, the caller adds the path."""


def _open_rgb(data: bytes | Path, draft_size: int | None = None):
    """Decode one image file into an upright 8-bit RGB PIL image (see ``_to_rgb``).

    ``draft_size`` lets a JPEG decode at 1/2, 1/4 or 1/8 scale while both sides stay >= it: a
    12-megapixel photo then decodes ~10x faster, and it is resized to a few dozen pixels anyway."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:  # the header says; nothing is decoded yet
                raise _Unreadable(f"{im.width} x {im.height} pixels, over MAX_IMAGE_PIXELS={MAX_IMAGE_PIXELS:,}: "
                                  "shrink it first")
            if draft_size:
                im.draft(None, (draft_size, draft_size))
            return _to_rgb(im)
    except UnidentifiedImageError:
        raise _Unreadable("not an image format Pillow can read") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error,
            Image.DecompressionBombError) as err:  # what Pillow's decoders raise on malformed files
        raise _Unreadable(" ".join(str(err).split())[:120] or type(err).__name__) from None


def _to_rgb(im):
    """Any PIL image -> 8-bit RGB as a viewer shows it: EXIF orientation applied, 16-bit greyscale
    scaled to 8 bits (``convert`` would clip it to white), transparency (alpha channel, palette or
    colour key) composited on white, palettes, greyscale and CMYK converted."""
    from PIL import Image, ImageOps

    im = ImageOps.exif_transpose(im)  # phones store "rotate by 90" as a tag, not in the pixels
    if im.mode.startswith("I"):  # I;16 (16-bit PNG/TIFF greyscale) or I: keep the top 8 bits
        im = Image.fromarray((np.asarray(im).astype(np.int64).clip(0, 65535) >> 8).astype(np.uint8))
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        im = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im.convert("RGBA"))
    return im.convert("RGB")


def _centre_square(im, size: int):
    """Resize the short side to ``size`` and keep the centre: one bicubic resampling of the
    centred square of the source (as Resize(size) + CenterCrop(size), without a rounded
    intermediate). An image already ``size`` x ``size`` is returned unchanged."""
    from PIL import Image

    w, h = im.size
    side = min(w, h)
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    return im.resize((size, size), Image.Resampling.BICUBIC, box=box)


def _decode(data: bytes | Path, name: str, image_size: int, fit: bool = False) -> np.ndarray:
    """One image file -> uint8 [3, S, S]. ``fit``: resize and centre-crop to S; otherwise the image
    must already be S x S. Raises ``_Unreadable`` for a file Pillow cannot decode."""
    im = _open_rgb(data, image_size if fit else None)
    if fit:
        im = _centre_square(im, image_size)
    elif im.size != (image_size, image_size):
        raise DatasetError(f"{name}: image is {im.size[0]}x{im.size[1]}, expected "
                           f"{image_size}x{image_size}. Resize your dataset first (or pass image_size).")
    return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)  # (H, W, 3) -> (3, H, W)


def _decode_each(items: Iterable[tuple[str, bytes | Path]], image_size: int, fit: bool
                 ) -> tuple[list[np.ndarray | None], list[tuple[str, str]]]:
    """Decode every ``(name, file)``; returns the arrays (None where unreadable) and the
    ``(name, reason)`` of each unreadable file, so that all of them are reported at once."""
    arrays, bad = [], []
    for name, data in items:
        try:
            arrays.append(_decode(data, name, image_size, fit))
        except _Unreadable as err:
            arrays.append(None)
            bad.append((name, str(err)))
    return arrays, bad


def _unreadable_error(bad: list[tuple[str, str]], total: int, where: str, can_skip: bool) -> DatasetError:
    """One error naming every unreadable file (the first 10 in full, then a count) and the fix."""
    shown = "; ".join(f"{name}: cannot read this image ({reason})" for name, reason in bad[:10])
    more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
    fix = "Delete or replace " + ("the file" if len(bad) == 1 else "these files")
    if can_skip:
        fix += ", or pass skip_unreadable=True (--skip-unreadable) to leave them out"
    return DatasetError(f"{len(bad)} of {total} image files in {where} cannot be read: {shown}{more}. {fix}.")


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
    for cls in classes:
        if not listing[cls]:
            raise DatasetError(f"{base / cls} holds no .png/.jpg images.")
    items = [(e.path, Path(e.path)) for cls in classes for e in listing[cls]]
    images, bad = _decode_each(_progress(items, f"decoding {base}"), image_size, fit=False)
    if bad:
        raise _unreadable_error(bad, len(items), str(base), can_skip=False)
    labels = [label for label, cls in enumerate(classes) for _ in listing[cls]]
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes


def _check_member_size(archive: Path, member: tarfile.TarInfo) -> None:
    """Before a member is read into memory: a 312 KB .tar.gz can hold a 300 MB 'image'."""
    if member.size > MAX_MEMBER_BYTES:
        raise DatasetError(f"{archive}: the member {member.name!r} is {member.size:,} bytes, over "
                           f"MAX_MEMBER_BYTES={MAX_MEMBER_BYTES:,} for one image; remove it or shrink it")


def _decode_tarball(path: Path, split: str, image_size: int):
    per_class: dict[str, list[tuple[str, bytes]]] = {}
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                parts = Path(member.name).parts
                if (not member.isfile() or Path(member.name).suffix.lower() not in IMAGE_SUFFIXES
                        or Path(member.name).name.startswith(".")):
                    continue
                # accept <split>/<class>/f and <top>/<split>/<class>/f
                if len(parts) >= 3 and parts[-3] == split:
                    _check_member_size(path, member)
                    per_class.setdefault(parts[-2], []).append((member.name, tar.extractfile(member).read()))
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DatasetError(f"{path}: cannot read the archive ({err}). Check the download "
                           "(sha256) or extract it and point at the folder.") from None
    classes = _check_classes(list(per_class), f"{path}:{split}/")
    items = [(f"{path}:{name}", data) for cls in classes  # file order, as for folders
             for name, data in sorted(per_class[cls], key=lambda t: t[0])]
    images, bad = _decode_each(items, image_size, fit=False)
    if bad:
        raise _unreadable_error(bad, len(items), f"{path}:{split}/", can_skip=False)
    labels = [label for label, cls in enumerate(classes) for _ in per_class[cls]]
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
    return _cache_dir(root) / f"{root.name.split('.')[0]}-{split}-{image_size}px-{key}.npz"


def _cache_dir(root: Path) -> Path:
    """``.cgan_cache/`` beside the data when that folder is writable, else ``$CGAN_COURSE_CACHE``
    or ``~/.cache/cgan_course``."""
    beside = (root.parent if root.is_file() else root) / ".cgan_cache"
    # mode bits, not os.access: root may write anywhere, but a folder marked read-only (a shared
    # data mount) should stay untouched
    if not os.environ.get(CACHE_ENV_VAR) and beside.parent.stat().st_mode & 0o222 and os.access(beside.parent, os.W_OK):
        return beside
    return Path(os.environ.get(CACHE_ENV_VAR, Path.home() / ".cache" / "cgan_course"))


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
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:  # uncompressed: loading 180 MB is then a plain read
            np.savez(f, images=images, labels=labels, classes=np.asarray(classes), **extra)
        os.replace(tmp, path)  # atomic: a killed run never leaves a half-written cache
    except OSError:
        pass  # a cache is an optimisation; a read-only disk must not break loading


def _check_labels(images: torch.Tensor, labels: torch.Tensor, num_classes: int, where: str) -> None:
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(f"{where}: {images.shape[0]} images but {labels.shape[0]} labels.")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(f"{where}: labels range over [{int(labels.min())}, {int(labels.max())}], "
                           f"expected [0, {num_classes - 1}]. The files are corrupt or not CIFAR-10.")


def _progress(items: list, desc: str):
    if len(items) < 500:  # a bar for a few hundred fast decodes is noise (and extra stderr lines)
        return items
    try:
        from tqdm.auto import tqdm

        return tqdm(items, desc=desc, leave=False)
    except ImportError:
        return items


# ----------------------------------------------------------------------------------------------
# Any class-folder dataset: load_class_folders


@dataclass(frozen=True)
class ClassFolderData:
    """One split of a class-folder dataset, as ``load_class_folders`` returns it.

    Unpacks like the CIFAR-10 loaders: ``images, labels, classes = load_class_folders(...)``.
    """

    images: torch.Tensor  # uint8 [N, 3, S, S]
    labels: torch.Tensor  # int64 [N], indices into classes
    classes: list[str]  # the class folder names in label order (sorted; numerically when all are numbers)
    files: list[str]  # each image's path relative to root, e.g. "paper/001.jpg" or "train/paper/001.jpg"
    skipped: list[str]  # root-relative paths of the unreadable files left out (skip_unreadable=True)
    split_file: Path | None  # the JSON record of a test split drawn here (None: a test/ folder, or cache=False)
    cache_file: Path | None  # the .npz these arrays were read from or written to (None: cache=False)

    def __iter__(self) -> Iterator:
        return iter((self.images, self.labels, self.classes))


def load_class_folders(root: str | os.PathLike, split: str = "train", image_size: int = 64, *,
                       skip_unreadable: bool = False, test_fraction: float = 0.1, seed: int = 0,
                       cache: bool = True) -> ClassFolderData:
    """Load one split of any class-folder dataset, resized to ``image_size`` (32, 64 or 128).

    ``root`` is a folder or a ``.tar.gz`` holding ``<class>/<image>`` folders, or
    ``train/<class>/<image>`` (and optionally ``test/<class>/<image>``), possibly inside one top
    folder. There must be at least 2 classes; their names are any folder names, and Python's sorted
    order (case-sensitive, as torchvision's ``ImageFolder``) is the label order, except that folders all
    named by numbers (0, 1, ..., 11) are ordered as numbers. Files ending in
    .png .jpg .jpeg .bmp .gif .tif .tiff .webp are read; hidden files and subfolders of a class
    folder are not.

    Every image is made upright (EXIF orientation), converted to 8-bit RGB (transparency is
    composited on white; palettes, greyscale, 16-bit and CMYK are converted), its short side is
    resized to ``image_size`` (bicubic) and the centre square kept. This happens once: the arrays
    are cached as ``.npz`` (see ``load_image_folder``), keyed on every selected file's name, size and
    timestamps and on the size, so another size is decoded again into another file.

    Unreadable files are all reported in one ``DatasetError``; with ``skip_unreadable=True`` they are
    left out, listed in ``.skipped`` and counted in a ``SkippedFilesWarning``.

    Without a ``test/`` folder a stratified test split is drawn: in each class of n images, the first
    ``round(test_fraction * n)`` (at least 1 when n >= 2, at most n - 1) in the order of
    ``sha1(f"{seed}/{class}/{file name}")``. It depends only on the file names and the seed, so it is
    reproducible, and adding an image changes only its own class's test files (by at most one more).
    The split is recorded in ``<cache folder>/<name>-split-seed<seed>-test<fraction>-<hash>.json``
    (``.split_file``).
    ``test_fraction=0`` trains on every image and has no test split.

    Returns a ``ClassFolderData``: ``images`` uint8 [N, 3, S, S], ``labels`` int64 [N] grouped by
    class, ``classes``, each image's ``files`` path, ``skipped``, ``split_file`` and ``cache_file``.
    """
    _check_options(split, image_size, test_fraction)
    root = Path(root).expanduser()
    plan = _plan(root, test_fraction, seed)
    files = plan.splits[split]
    if not files:
        why = ("test_fraction=0 draws no test split" if plan.made_split and test_fraction == 0 else
               "every class has fewer than 2 images" if plan.made_split else "the test/ folder holds no images")
        raise DatasetError(f"{root}: the test split is empty ({why}). Pass a test_fraction > 0 or add "
                           "images, or use the train split only.")
    cache_file = None
    if cache:
        key = hashlib.sha1(f"class-folders|{root.resolve()}|{plan.tree.stamp(files)}".encode()).hexdigest()[:12]
        cache_file = _cache_dir(root) / f"{root.name.split('.')[0]}-{split}-{image_size}px-{key}.npz"
    got = _read_own_cache(cache_file, image_size, plan.classes, files) if cache_file and cache_file.is_file() else None
    if got is None:
        got = _decode_split(plan, files, image_size)
        if cache_file is not None:  # kept with its unreadable files, so a retry with skipping is instant
            _save_cache(cache_file, got["images"], got["labels"], plan.classes,
                        files=np.asarray(got["files"], dtype=np.str_),
                        skipped=np.asarray(got["skipped"], dtype=np.str_).reshape(-1, 2))
    bad = [(plan.tree.display(rel), reason) for rel, reason in got["skipped"]]
    if bad and not skip_unreadable:
        raise _unreadable_error(bad, len(files), f"the {split} split of {root}", can_skip=True)
    counts = np.bincount(got["labels"], minlength=len(plan.classes))
    if split == "train" and not counts.all():
        empty = [cls for cls, n in zip(plan.classes, counts) if n == 0]
        raise DatasetError(f"{root}: no readable training images in class {', '.join(empty)} (all left out as "
                           "unreadable). Replace those files or remove the class folder.")
    if bad:
        warnings.warn(f"{root}: left out {len(bad)} unreadable image file(s) of {len(files)} in the {split} "
                      f"split ({'; '.join(name for name, _ in bad[:3])}{'; ...' if len(bad) > 3 else ''}); "
                      "see .skipped.", SkippedFilesWarning, stacklevel=2)
    split_file = _record_split(root, plan, test_fraction, seed) if plan.made_split and cache else None
    return ClassFolderData(torch.from_numpy(got["images"]), torch.from_numpy(got["labels"]), list(plan.classes),
                           list(got["files"]), [rel for rel, _ in got["skipped"]], split_file, cache_file)


def _check_options(split: str, image_size: int, test_fraction: float) -> None:
    check_choice("split", split, ("train", "test"), error=DatasetError)
    check_choice("image_size", image_size, IMAGE_SIZES, error=DatasetError)  # the sizes the models are built for
    check_float("test_fraction", test_fraction, 0, 1, hi_open=True, error=DatasetError,
                fix="e.g. 0.1 holds out 10% of each class, 0 holds out nothing")


class _Tree:
    """A read-only view of a folder or a tar archive: its visible subfolders and image files by
    POSIX path relative to the root, how to read them, and a stamp of their state for cache keys."""

    def __init__(self, root: Path):
        self.root = root
        self._entries: dict[str, os.DirEntry] = {}  # folders: scandir entries, for their stat
        self._index: dict[PurePosixPath, tuple[set[str], list[str]]] | None = None  # archives
        if not root.exists():
            raise DatasetError(f"{root} does not exist. Point it at a folder of class folders "
                               "(<class>/*.jpg|png, or train/<class>/ and test/<class>/), or a .tar.gz of one.")
        if root.is_file():
            self._index = self._read_index()

    def _read_index(self) -> dict[PurePosixPath, tuple[set[str], list[str]]]:
        index: dict[PurePosixPath, tuple[set[str], list[str]]] = {}
        seen: dict[str, str] = {}  # normalised path -> the member name that had it
        for member in self._members():
            parts = [p for p in PurePosixPath(member.name).parts if p not in ("", ".")]
            if not parts or not all(map(_visible, parts)) or parts[0] == "/" or ".." in parts:
                continue
            if member.isfile() and _is_image(parts[-1]):
                rel = "/".join(parts)
                if rel in seen:  # cat/0.jpg and ./cat/0.jpg: one name, two files; which is meant?
                    raise DatasetError(f"{self.root}: the members {seen[rel]!r} and {member.name!r} are the same "
                                       f"file {rel} once normalised; rebuild the archive with one of them")
                seen[rel] = member.name
                _check_member_size(self.root, member)
            n_dirs = len(parts) - 1 if member.isfile() else len(parts) if member.isdir() else 0
            for depth in range(n_dirs):  # every folder on the path lists the next one
                index.setdefault(PurePosixPath(*parts[:depth]), (set(), []))[0].add(parts[depth])
            if member.isfile() and _is_image(parts[-1]):
                index.setdefault(PurePosixPath(*parts[:-1]), (set(), []))[1].append(parts[-1])
        return index

    def _members(self) -> list[tarfile.TarInfo]:
        if not self.root.name.endswith((".tar.gz", ".tgz", ".tar")):
            raise DatasetError(f"{self.root} is a file but not a .tar.gz/.tar archive of class folders.")
        try:
            with tarfile.open(self.root) as tar:
                return tar.getmembers()
        except (tarfile.TarError, EOFError, OSError) as err:
            raise DatasetError(f"{self.root}: cannot read the archive ({err}). Check the download "
                               "or extract it and point at the folder.") from None

    def subdirs(self, rel: PurePosixPath) -> list[str]:
        if self._index is not None:
            return sorted(self._index.get(rel, (set(), []))[0])
        if not (self.root / rel).is_dir():
            return []
        return sorted(e.name for e in os.scandir(self.root / rel) if e.is_dir() and _visible(e.name))

    def images(self, rel: PurePosixPath) -> list[str]:
        """Root-relative paths of the image files directly in ``rel``, sorted by name."""
        if self._index is not None:
            return [str(rel / name) for name in sorted(self._index.get(rel, (set(), []))[1])]
        # a dangling symlink is kept: decoding it fails, so it is listed with the unreadable files
        # instead of vanishing from the dataset unseen
        entries = sorted((e for e in os.scandir(self.root / rel) if _visible(e.name) and _is_image(e.name) and (
            e.is_file() or (e.is_symlink() and not os.path.exists(e.path)))), key=lambda e: e.name)
        self._entries.update((str(rel / e.name), e) for e in entries)
        return [str(rel / e.name) for e in entries]

    def stamp(self, files: list[str]) -> str:
        """The state of ``files``: each one's name, size and timestamps (folders), or the archive's
        size and timestamps and the names (archives)."""
        names = "\n".join(files)
        if self._index is not None:
            return f"{_stat_stamp(self.root.stat())}|{hashlib.sha1(names.encode()).hexdigest()}"
        lines = (f"{rel}|{_stat_stamp(self._entries[rel].stat(follow_symlinks=self._entries[rel].is_file()))}"
                 for rel in files)
        return hashlib.sha1("\n".join(lines).encode()).hexdigest()

    def display(self, rel: str) -> str:
        """How messages name a file or folder: its path, or ``archive:member``."""
        if rel == ".":
            return str(self.root)
        return f"{self.root}:{rel}" if self._index is not None else str(self.root / rel)

    def read(self, files: list[str]) -> Iterator[tuple[str, bytes | Path]]:
        """``(rel, file)`` for each of ``files`` in order: a path, or the member's bytes."""
        if self._index is None:
            yield from ((rel, self.root / rel) for rel in files)
            return
        wanted, data = set(files), {}
        try:
            with tarfile.open(self.root) as tar:  # one forward pass: a .tar.gz cannot seek cheaply
                for member in tar:
                    rel = str(PurePosixPath(*[p for p in PurePosixPath(member.name).parts if p not in ("", ".")]))
                    if rel in wanted and member.isfile():
                        data[rel] = tar.extractfile(member).read()
        except (tarfile.TarError, EOFError, OSError) as err:
            raise DatasetError(f"{self.root}: cannot read the archive ({err}). Check the download "
                               "or extract it and point at the folder.") from None
        yield from ((rel, data[rel]) for rel in files)


def _visible(name: str) -> bool:
    # .ipynb_checkpoints, .DS_Store, ._* AppleDouble files and macOS zips' __MACOSX are not data
    return not name.startswith(".") and name != "__MACOSX"


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in OWN_SUFFIXES


@dataclass
class _Plan:
    """What a class-folder dataset holds before any decoding: classes and each split's files."""

    tree: _Tree
    where: str  # the folder holding the class folders (or train/), for messages
    classes: list[str]
    splits: dict[str, list[str]]  # "train"/"test" -> root-relative paths, by class, then by name
    made_split: bool  # no test/ folder: the test split is drawn here


class _NoClassFolders(DatasetError):
    """The tree holds no class folders at all (every other problem with the folders is reported as is)."""


def _find_classes(root: Path) -> tuple[_Tree, PurePosixPath, dict[str, list[str]], dict[str, list[str]] | None]:
    """Locate the class folders: ``(tree, base, {class: files} of base, {class: files} of test/ or None)``.

    base is ``top/train`` (with ``top/test`` beside it when present) or ``top`` itself, where top is
    root or, when root holds nothing but one folder of folders, that folder (an extracted archive)."""
    tree = _Tree(root)
    top = PurePosixPath()
    names = tree.subdirs(top)
    if "train" not in names and len(names) == 1 and not tree.images(top) and tree.subdirs(top / names[0]):
        top = top / names[0]
        names = tree.subdirs(top)
    base = top / "train" if "train" in names and tree.subdirs(top / "train") else top
    test = None
    if base != top and "test" in names:
        test = {cls: tree.images(top / "test" / cls) for cls in tree.subdirs(top / "test")}
    loose = [n for n in names if n not in ("train", "test")] if base != top else []
    if loose:  # they would be silently ignored
        raise DatasetError(f"{tree.display(str(top))} holds train/ and also {', '.join(loose)}: put every class "
                           "folder inside train/ (and test/), or move the extra folders out")
    classes = _class_order(tree.subdirs(base))
    if not classes:
        raise _NoClassFolders(f"{tree.display(str(base))} holds no class folders. Put each class's images in a "
                           "folder named after the class (<class>/*.jpg|png), or use train/<class>/ and test/<class>/.")
    return tree, base, {cls: tree.images(base / cls) for cls in classes}, test


def _class_order(names: list[str]) -> list[str]:
    """Label order: numeric when every class name is a number (folders 0..11 give labels 0..11,
    not 0, 1, 10, 11, 2...), else sorted by name."""
    if names and all(n.isascii() and n.isdecimal() for n in names):
        return sorted(names, key=lambda n: (int(n), n))
    return sorted(names)


def _plan(root: Path, test_fraction: float, seed: int) -> _Plan:
    """Find the classes and the files of each split (drawing the test split when there is no
    ``test/`` folder); every problem with the folders is one ``DatasetError``."""
    tree, base, train, test = _find_classes(root)
    where = tree.display(str(base))
    classes = list(train)
    if len(classes) < 2:
        raise DatasetError(f"{where} holds one class folder ({classes[0]}); a conditional GAN needs at least 2 "
                           "classes: add a folder of images for each class.")
    empty = [cls for cls in classes if not train[cls]]
    if empty:
        raise DatasetError(f"{where}: class folder(s) without images: {', '.join(empty)} (read: "
                           f"{' '.join(OWN_SUFFIXES)}; subfolders are not searched). Add images or remove them.")
    if test is not None:
        extra = sorted(set(test) - set(classes))
        if extra:
            raise DatasetError(f"{tree.display(str(base.parent / 'test'))} has class folders that train/ lacks: "
                               f"{', '.join(extra)}. Rename or remove them, or add them to train/.")
        splits = {"train": [f for cls in classes for f in train[cls]],
                  "test": [f for cls in classes for f in test.get(cls, [])]}
        return _Plan(tree, where, classes, splits, made_split=False)
    held_out = {cls: _held_out(cls, files, test_fraction, seed) for cls, files in train.items()}
    splits = {"train": [f for cls in classes for f in train[cls] if f not in held_out[cls]],
              "test": [f for cls in classes for f in train[cls] if f in held_out[cls]]}
    return _Plan(tree, where, classes, splits, made_split=True)


def _held_out(cls: str, files: list[str], test_fraction: float, seed: int) -> set[str]:
    """The test files of one class: the first ``round(test_fraction * n)`` (at least 1 when n >= 2,
    at most n - 1) of its n files in the order of ``sha1(f"{seed}/{class}/{file name}")``."""
    n = len(files)
    k = 0 if n < 2 or test_fraction == 0 else min(n - 1, max(1, int(test_fraction * n + 0.5)))
    return set(_seeded_order(cls, files, seed)[:k])


def _seeded_order(cls: str, files: list[str], seed: int) -> list[str]:
    """``files`` of class ``cls`` shuffled by ``seed``: sorted by ``sha1(f"{seed}/{cls}/{file name}")``.
    A hash of the name, not a permutation of the list, so one file more or less moves no other."""
    return sorted(files, key=lambda f: hashlib.sha1(f"{seed}/{cls}/{PurePosixPath(f).name}".encode()).digest())


def _labels_of(files: list[str], classes: list[str]) -> np.ndarray:
    index = {cls: i for i, cls in enumerate(classes)}
    return np.asarray([index[PurePosixPath(f).parent.name] for f in files], dtype=np.int64)


def _decode_split(plan: _Plan, files: list[str], image_size: int) -> dict:
    """Decode ``files``, resized and centre-cropped; unreadable ones are recorded, not raised."""
    arrays, bad = _decode_each(_progress(list(plan.tree.read(files)), f"decoding {plan.where}"),
                               image_size, fit=True)
    kept = [f for f, a in zip(files, arrays) if a is not None]
    images = (np.stack([a for a in arrays if a is not None]) if kept
              else np.zeros((0, 3, image_size, image_size), np.uint8))
    return {"images": images, "labels": _labels_of(kept, plan.classes), "files": kept, "skipped": bad}


def _read_own_cache(path: Path, image_size: int, classes: list[str], files: list[str]) -> dict | None:
    """A valid cache of ``files`` as ``_decode_split`` returns it, or None (after a warning)."""
    def problem_of(a: dict[str, np.ndarray]) -> str | None:
        problem = _array_problem(a["images"], a["labels"], image_size)
        if problem is not None:
            return problem
        if a["classes"].tolist() != classes:
            return f"classes {a['classes'].tolist()}, but the folders hold {classes}"
        if a["skipped"].ndim != 2 or a["skipped"].shape[1] != 2:
            return f"skipped is {list(a['skipped'].shape)}, expected [K, 2]"
        left_out = set(a["skipped"][:, 0].tolist())
        kept = [f for f in files if f not in left_out]
        if a["files"].tolist() != kept or len(kept) + len(left_out) != len(files):
            return f"{a['files'].size} images and {len(left_out)} skipped, but the split holds {len(files)} other files"
        if a["labels"].tolist() != _labels_of(kept, classes).tolist():
            return "labels do not match the class folders of the files"
        return None

    arrays = _read_npz(path, ("images", "labels", "classes", "files", "skipped"), problem_of)
    if arrays is None:
        return None
    return {"images": arrays["images"], "labels": arrays["labels"], "files": arrays["files"].tolist(),
            "skipped": [tuple(pair) for pair in arrays["skipped"].tolist()]}


def split_record_path(root: str | os.PathLike, test_fraction: float = 0.1, seed: int = 0) -> Path:
    """Where ``load_class_folders`` records a test split it draws (beside its cache)."""
    root = Path(root).expanduser()
    tag = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:8]
    return _cache_dir(root) / f"{root.name.split('.')[0]}-split-seed{seed}-test{test_fraction:g}-{tag}.json"


def _per_class(files: list[str]) -> dict[str, int]:
    """Files per class folder (the parent folder's name), in one pass."""
    return collections.Counter(f.rsplit("/", 2)[-2] for f in files)


def _record_split(root: Path, plan: _Plan, test_fraction: float, seed: int) -> Path | None:
    """Write (atomically) the drawn split as JSON when the record is missing or differs; its path."""
    path = split_record_path(root, test_fraction, seed)
    record = {"dataset": str(root.resolve()), "seed": seed, "test_fraction": test_fraction,
              "rule": "per class of n images: the first round(test_fraction * n) (at least 1 when n >= 2, "
                      "at most n - 1) in the order of sha1(f'{seed}/{class}/{file name}')",
              "classes": plan.classes,
              "counts": {split: [n.get(cls, 0) for cls in plan.classes]
                         for split, n in ((split, _per_class(files)) for split, files in plan.splits.items())},
              "test": plan.splits["test"]}
    text = json.dumps(record, indent=1) + "\n"
    try:
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
    except OSError:
        return None  # like the cache: a read-only disk must not break loading (the rule reproduces it)
    return path


def make_subset(src: str | os.PathLike, dst: str | os.PathLike, per_class: int,
                classes: list[str] | None = None, image_size: int = 64, seed: int = 0,
                skip_unreadable: bool = False) -> dict[str, int]:
    """Write a class-folder dataset ``dst/<class>/<name>.png`` from ``src`` (any class-folder tree or
    ``.tar.gz``, e.g. the CIFAR-10 JPEG mirror): ``per_class`` images of each of ``classes`` (default:
    all) from src's training images, resized and centre-cropped to ``image_size`` as
    ``load_class_folders`` does. The images are the first ``per_class`` of each class in the seeded
    order of the test-split rule, so the same arguments give the same files. ``dst`` must not exist:
    it is filled under a temporary name beside it and renamed at the end. Returns ``{class: count}``.
    """
    _check_options("train", image_size, 0.0)
    dst = Path(dst).expanduser()
    if dst.exists():
        raise DatasetError(f"{dst} already exists; name a new folder (nothing is overwritten) or delete it first.")
    check_int("per_class", per_class, 1, error=DatasetError)
    if Path(src).expanduser().is_dir() and dst.resolve().is_relative_to(Path(src).expanduser().resolve()):
        raise DatasetError(f"{dst} is inside {src}: the new images would become part of the dataset they came from; "
                           "write the subset somewhere else")
    plan = _plan(Path(src).expanduser(), 0.0, seed)
    chosen = list(dict.fromkeys(classes)) if classes else plan.classes
    unknown = [cls for cls in chosen if cls not in plan.classes]
    if unknown:
        raise DatasetError(f"{plan.where} has no class {', '.join(map(repr, unknown))}; its classes are "
                           f"{', '.join(plan.classes)}.")
    files_of: dict[str, list[str]] = {}
    for f in plan.splits["train"]:
        files_of.setdefault(f.rsplit("/", 2)[-2], []).append(f)
    by_class = {cls: files_of.get(cls, []) for cls in chosen}
    short = [f"{cls} ({len(files)})" for cls, files in by_class.items() if len(files) < per_class]
    if short:
        raise DatasetError(f"{plan.where}: fewer than {per_class} images in {', '.join(short)}; lower per_class.")
    picks = [f for cls, files in by_class.items() for f in sorted(_seeded_order(cls, files, seed)[:per_class])]
    arrays, bad = _decode_each(_progress(list(plan.tree.read(picks)), f"decoding {plan.where}"), image_size, fit=True)
    bad = [(plan.tree.display(f), why) for f, why in bad]
    if bad and not skip_unreadable:
        raise _unreadable_error(bad, len(picks), plan.where, can_skip=True)
    if bad:
        warnings.warn(f"{plan.where}: left out {len(bad)} unreadable image file(s) of {len(picks)}: "
                      f"{'; '.join(name for name, _ in bad)}", SkippedFilesWarning, stacklevel=2)
    from PIL import Image

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}.tmp-{os.getpid()}"
    written: dict[str, int] = {cls: 0 for cls in chosen}
    try:
        for f, array in zip(picks, arrays):
            if array is None:
                continue
            cls, name = PurePosixPath(f).parent.name, PurePosixPath(f).name
            (tmp / cls).mkdir(parents=True, exist_ok=True)
            out = tmp / cls / f"{Path(name).stem}.png"
            out = out.with_name(f"{name}.png") if out.exists() else out  # x.jpg beside x.png
            Image.fromarray(array.transpose(1, 2, 0)).save(out)
            written[cls] += 1
        os.rename(tmp, dst)  # all or nothing: an interrupted run leaves no half-written dataset
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return written


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
# Command line: python -m cgan_course.data {download,prepare,info,subset}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m cgan_course.data",
        description="Get CIFAR-10 or your own class-folder dataset ready: download the official set "
                    "(online) or decode a class-folder tree / .tar.gz into the cache (offline).")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("download", help="download the official CIFAR-10 with torchvision (needs internet)")
    p.add_argument("--root", default=None,
                   help="folder for cifar-10-batches-py (default: the repository's data/)")
    p = sub.add_parser("prepare", help="decode a class-folder tree or .tar.gz once and cache it")
    p.add_argument("path", help="a class-folder tree or .tar.gz: CIFAR-10's (e.g. $CGAN_COURSE_CIFAR10) "
                                "or your own (<class>/* or train/<class>/*)")
    p.add_argument("--size", type=int, default=32, choices=IMAGE_SIZES,
                   help="image size in pixels: short side resized, centre cropped (default: 32)")
    p.add_argument("--skip-unreadable", action="store_true",
                   help="leave out image files that cannot be read (default: list them and stop)")
    _split_arguments(p)
    p = sub.add_parser("info", help="show which source 'auto' picks and the split sizes, or describe "
                                    "your own class-folder dataset")
    p.add_argument("--root", default=None, help="the root to resolve (default: the repository's data/, "
                                                f"then ${ENV_VAR}, then the committed sample)")
    _split_arguments(p)
    p = sub.add_parser("subset", help="write a class-folder dataset of PNGs: some classes of SRC, "
                                      "N images each, resized (e.g. CIFAR-10 at 64 px)")
    p.add_argument("src", help="a class-folder tree or .tar.gz (its train/ split when it has one)")
    p.add_argument("dst", help="the new folder to write (must not exist)")
    p.add_argument("--per-class", type=int, required=True, help="images per class")
    p.add_argument("--classes", default=None, help="comma-separated class names (default: all)")
    p.add_argument("--size", type=int, default=64, choices=IMAGE_SIZES, help="image size (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="which images are picked (default: 0)")
    p.add_argument("--skip-unreadable", action="store_true", help="leave out unreadable image files")
    args = parser.parse_args(argv)
    run_cli(lambda: _run(args), parser.prog)


def _split_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--test-fraction", type=float, default=0.1,
                   help="own data without a test/ folder: share of each class held out (default: 0.1)")
    p.add_argument("--seed", type=int, default=0, help="own data: seed of that split (default: 0)")


def _run(args: argparse.Namespace) -> None:
    for name in ("path", "src", "dst", "root"):  # "" would silently mean the current folder
        if getattr(args, name, None) is not None:
            check_str(name if name != "root" else "--root", getattr(args, name), error=DatasetError)
    if args.command == "download":
        for train in (True, False):
            images, _ = load_cifar10(args.root, train=train, source="torchvision", download=True)
            print(f"{'train' if train else 'test'}: {images.shape[0]} images in {args.root or DEFAULT_ROOT}")
    elif args.command == "prepare":
        path = Path(args.path).expanduser()
        if args.size == 32 and not args.skip_unreadable and not _is_own_dataset(path):
            _prepare_cifar10(path)
        else:
            _prepare_own(path, args)
    elif args.command == "subset":
        classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes is not None else None
        if classes == []:  # "" or ",,,": a typo, not "every class" (omit --classes for that)
            raise DatasetError(f"--classes {args.classes!r} names no class: pass comma-separated names, or omit it "
                               "for every class")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SkippedFilesWarning)
            written = make_subset(args.src, args.dst, args.per_class, classes, args.size, args.seed,
                                  args.skip_unreadable)
        print(f"wrote {sum(written.values())} images at {args.size} px to {args.dst}: {_counts(written)}")
        for w in caught:
            print(w.message)
    elif args.root is not None and _is_own_dataset(Path(args.root).expanduser()):
        _info_own(Path(args.root).expanduser(), args.test_fraction, args.seed)
    else:
        for train in (True, False):
            split = "train" if train else "test"
            source, root = resolve_source(args.root, train=train)
            print(f"{split} source: {source} {root} ({describe_source(source, root)})")
            images, labels = load_cifar10(root, train=train, source=source)
            print(f"{split}: {list(images.shape)} per class {torch.bincount(labels, minlength=10).tolist()}")


def _is_own_dataset(root: Path) -> bool:
    """Whether ``prepare``/``info`` describe ``root`` as a dataset of its own classes: it holds class
    folders, but not CIFAR-10's ten in train/ and test/ (nor the official batches)."""
    if not root.exists() or (root / "cifar-10-batches-py").is_dir():
        return False
    try:
        _, _, train, test = _find_classes(root)
    except _NoClassFolders:
        return False  # no class folders at all: the CIFAR-10 path says everything it tried
    return test is None or tuple(train) != CLASSES


def _counts(per_class: dict[str, int]) -> str:
    return ", ".join(f"{cls}: {n}" for cls, n in per_class.items())


def _cache_note(cache: Path | None) -> str:
    """What prepare says of the cache: only "cached" when the file is really there (a cache folder
    that is a file, or read-only, makes the write fail quietly: loading still works, uncached)."""
    if cache is not None and cache.is_file():
        return f"cached ({cache})"
    return (f"not cached (cannot write {cache}; set ${CACHE_ENV_VAR} to a writable folder, or the next load decodes "
            "again)")


def _prepare_cifar10(path: Path) -> None:
    for split in ("train", "test"):
        images, labels, classes = load_image_folder(path, split)
        print(f"{split}: {images.shape[0]} images, {len(classes)} classes, {_cache_note(_cache_path(path, split, 32))}")
        print(f"  per class: {_counts(dict(zip(classes, torch.bincount(labels, minlength=len(classes)).tolist())))}")
    print(f"Use it: export {ENV_VAR}={path.resolve()}")


def _prepare_own(path: Path, args: argparse.Namespace) -> None:
    _check_options("train", args.size, args.test_fraction)
    plan, made = _plan(path, args.test_fraction, args.seed), None
    for split in ("train", "test"):
        if not plan.splits[split]:
            print(f"{split}: no images (test_fraction {args.test_fraction:g}, or a test/ folder without images)")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkippedFilesWarning)  # printed below instead
            got = load_class_folders(path, split, args.size, skip_unreadable=args.skip_unreadable,
                                     test_fraction=args.test_fraction, seed=args.seed)
        counts = torch.bincount(got.labels, minlength=len(got.classes)).tolist()
        print(f"{split}: {len(got.files)} images, {len(got.classes)} classes, {args.size} px, "
              f"{_cache_note(got.cache_file)}")
        print(f"  per class: {_counts(dict(zip(got.classes, counts)))}")
        if got.skipped:
            print(f"  skipped {len(got.skipped)} unreadable file(s) (--skip-unreadable): {', '.join(got.skipped)}")
        made = got.split_file if got.split_file is not None else made
    if made is not None:
        print(f"split: no test/ folder, so {args.test_fraction:g} of each class is held out "
              f"(seed {args.seed}); the test files are listed in {made}")
    print(f"Use it: cgan_course.data.load_class_folders({str(path.resolve())!r}, image_size={args.size})")


def _info_own(root: Path, test_fraction: float, seed: int) -> None:
    plan = _plan(root, test_fraction, seed)
    how = "train/ and test/ folders"
    if plan.made_split:
        how = (f"no test/ folder: {test_fraction:g} of each class is held out (seed {seed}), recorded in "
               f"{split_record_path(root, test_fraction, seed)} once loaded")
    print(f"own class-folder dataset {plan.where}: {len(plan.classes)} classes ({how})")
    for split, files in plan.splits.items():
        labels = torch.from_numpy(_labels_of(files, plan.classes))
        counts = torch.bincount(labels, minlength=len(plan.classes)).tolist()
        print(f"{split}: {len(files)} image files; per class {_counts(dict(zip(plan.classes, counts)))}")


if __name__ == "__main__":
    main()
