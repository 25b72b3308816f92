"""``python -m cgan_course.data``: info, prepare (decode and cache a dataset once), subset.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch

from ..errors import run_cli
from ..paths import CACHE_ENV_VAR, DATA_DIR
from ..paths import CIFAR10_ENV_VAR as ENV_VAR
from ..validate import check_str
from .base import CLASSES, IMAGE_SIZES, DatasetError, SkippedFilesWarning
from .cache import _cache_path
from .cifar10 import describe_source, load_cifar10, load_image_folder, resolve_source
from .folders import (
    _check_options,
    _find_classes,
    _labels_of,
    _NoClassFolders,
    _plan,
    load_class_folders,
    make_subset,
    split_record_path,
)

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
            print(f"{'train' if train else 'test'}: {images.shape[0]} images in {args.root or DATA_DIR}")
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
