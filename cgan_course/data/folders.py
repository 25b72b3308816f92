"""A dataset of your own classes, at 32, 64 or 128 px: any class folders (``<class>/*`` or
``train/<class>/*``, a folder or a ``.tar.gz``), images of any size and format resized and
centre-cropped once into the cache, unreadable files reported together (or skipped), and a
recorded, seeded, stratified test split when there is no ``test/`` folder. ``make_subset`` writes
such a dataset from CIFAR-10 (or any class-folder set).
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import shutil
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

import numpy as np
import torch

from ..files import atomic_write, cache_dir, stat_stamp
from ..validate import check_choice, check_float, check_int
from .base import IMAGE_SIZES, DatasetError, SkippedFilesWarning
from .cache import _array_problem, _read_npz, _save_cache
from .decode import (
    OWN_SUFFIXES,
    _check_member_size,
    _decode_each,
    _progress,
    _unreadable_error,
)

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
        cache_file = cache_dir(root) / f"{root.name.split('.')[0]}-{split}-{image_size}px-{key}.npz"
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
            return f"{stat_stamp(self.root.stat())}|{hashlib.sha1(names.encode()).hexdigest()}"
        lines = (f"{rel}|{stat_stamp(self._entries[rel].stat(follow_symlinks=self._entries[rel].is_file()))}"
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
    return cache_dir(root) / f"{root.name.split('.')[0]}-split-seed{seed}-test{test_fraction:g}-{tag}.json"


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
            atomic_write(path, lambda tmp: tmp.write_text(text))
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
