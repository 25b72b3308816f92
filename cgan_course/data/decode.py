"""Image files to ``uint8 (N, 3, S, S)`` arrays: any format PIL reads, converted to RGB, resized
and centre-cropped; sizes bounded before decoding (pixels from the header, archive members
before they are read); unreadable files reported together, or skipped with a warning.
"""
from __future__ import annotations

import io
import os
import struct
import tarfile
from pathlib import Path
from typing import Iterable

import numpy as np

from .base import DatasetError

MAX_IMAGE_PIXELS = 64_000_000  # width x height of one image file (a 64 MP photo); larger is refused before decoding
MAX_MEMBER_BYTES = 64 * 2**20  # one image file inside an archive; larger is refused before it is read
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
OWN_SUFFIXES = IMAGE_SUFFIXES + (".bmp", ".gif", ".tif", ".tiff", ".webp")  # what load_class_folders reads


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


def _progress(items: list, desc: str):
    if len(items) < 500:  # a bar for a few hundred fast decodes is noise (and extra stderr lines)
        return items
    try:
        from tqdm.auto import tqdm

        return tqdm(items, desc=desc, leave=False)
    except ImportError:
        return items
