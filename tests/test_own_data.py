"""cgan_course.data on a dataset of your own (issue 14, section 1): any class folders, any sizes
and formats, resized and centre-cropped once into the cache, unreadable files reported together
or skipped, a seeded stratified split that is recorded, and the prepare / info / subset commands.

Every dataset is made here, in tmp_path: coloured shapes of several sizes in RGBA and palette PNG,
16-bit PNG, greyscale and CMYK JPEG, an EXIF-rotated JPEG and corrupt files.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cgan_course import data, pretrained, release, serve
from cgan_course.checkpoints import CheckpointError, load_checkpoint
from cgan_course.data import (DatasetError, SkippedFilesWarning, load_cifar10, load_class_folders,
                              make_subset)
from cgan_course.models import ModelConfig
from cgan_course.train import TrainConfig, load_generator_from_checkpoint, train

RED, GREEN, BLUE, YELLOW, WHITE = (220, 30, 30), (30, 180, 60), (40, 60, 220), (230, 210, 30), (255, 255, 255)
CLASSES = ["Rock", "paper", "scissors_2"]  # sorted order: upper case first, as torchvision's ImageFolder


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    """No developer setting leaks in: the data and cache variables are unset, HOME is private."""
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.delenv(data.CACHE_ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _rgb(w: int, h: int, colour) -> np.ndarray:
    return np.full((h, w, 3), colour, dtype=np.uint8)


def _jpeg_bytes(im: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=95, **kwargs)
    return buf.getvalue()


def make_shapes(root: Path) -> Path:
    """``root/{Rock,paper,scissors_2}/``: 4 image files per class (2 of scissors_2 corrupt), one
    text file and one hidden file. The expected pixels are checked in ``test_formats_and_crops``."""
    for cls in CLASSES:
        (root / cls).mkdir(parents=True)
    # Rock: RGBA PNG (right half transparent over black), landscape PNG and portrait greyscale JPEG
    # with bands the centre crop removes (white left and right, black top and bottom; away from the
    # crop by more than the bicubic filter reaches, and JPEG bands in whole 8x8 blocks), 16-bit PNG
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[:, :20] = RED + (255,)
    Image.fromarray(rgba, "RGBA").save(root / "Rock" / "01 alpha.png")
    wide = _rgb(64, 48, RED)
    wide[:, :4] = wide[:, 60:] = WHITE
    Image.fromarray(wide).save(root / "Rock" / "02.png")
    tall = np.full((96, 48), 128, np.uint8)
    tall[:8] = tall[88:] = 0
    Image.fromarray(tall, "L").save(root / "Rock" / "03 grey.jpeg", quality=95)
    Image.fromarray(np.full((20, 30), 40000, np.uint16)).save(root / "Rock" / "04.PNG")  # mode I;16
    (root / "Rock" / "notes.txt").write_text("not an image")
    # paper: palette PNG, palette PNG with a transparent index, CMYK JPEG, a large JPEG
    pal = Image.new("P", (33, 47), 1)
    pal.putpalette([0, 0, 0, *GREEN] + [0] * 762)
    pal.save(root / "paper" / "a.png")
    half = Image.new("P", (40, 40), 0)
    half.putpalette([0, 0, 0, *GREEN] + [0] * 762)
    half.paste(1, (0, 0, 20, 40))
    half.save(root / "paper" / "b.png", transparency=0)
    Image.new("CMYK", (30, 20), (200, 0, 200, 0)).save(root / "paper" / "c.jpg", quality=95)
    Image.fromarray(_rgb(400, 200, GREEN)).save(root / "paper" / "d.jpg", quality=95)
    (root / "paper" / ".DS_Store").write_bytes(b"\x00\x01junk")
    # scissors_2: stored landscape, left blue / right yellow, EXIF orientation 6 ("rotate 90 deg
    # clockwise to view"): upright it is portrait, blue on top. An exact 32x32 PNG. Two corrupt files.
    stored = _rgb(60, 30, YELLOW)
    stored[:, :30] = BLUE
    exif = Image.Exif()
    exif[0x0112] = 6
    (root / "scissors_2" / "rotated.jpg").write_bytes(_jpeg_bytes(Image.fromarray(stored), exif=exif.tobytes()))
    Image.fromarray(_rgb(32, 32, BLUE)).save(root / "scissors_2" / "e.png")
    (root / "scissors_2" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    full = _jpeg_bytes(Image.fromarray(_rgb(64, 64, BLUE)))
    (root / "scissors_2" / "truncated.jpg").write_bytes(full[: len(full) // 2])
    return root


def make_counts(root: Path, counts: dict[str, int], size: int = 8) -> Path:
    """``root/<class>/<i>.png``: ``counts[class]`` tiny images, pixel value = 10 * class + i."""
    for c, (cls, n) in enumerate(counts.items()):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((size, size, 3), 10 * c + i, np.uint8)).save(root / cls / f"{i:03d}.png")
    return root


def _pixel(images: torch.Tensor, files: list[str], name: str, row: int, col: int) -> np.ndarray:
    return images[files.index(name), :, row, col].numpy().astype(int)


def _close(got: np.ndarray, want, tol: int = 12) -> bool:
    return bool(np.abs(got - np.asarray(want)).max() <= tol)


def _forbid_decoding(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("decoded an image although the cache should have been used")

    monkeypatch.setattr(data.decode, "_decode", fail)


BAD = ["scissors_2/broken.png", "scissors_2/truncated.jpg"]


# ----------------------------------------------------------------------------------------------
# Formats, resizing, centre crop


def test_formats_and_crops(tmp_path):
    root = make_shapes(tmp_path / "shapes")
    with pytest.warns(SkippedFilesWarning):
        got = load_class_folders(root, image_size=32, test_fraction=0, skip_unreadable=True)
    images, labels, classes = got  # unpacks like the CIFAR-10 loaders
    assert classes == CLASSES
    assert images.dtype == torch.uint8 and list(images.shape) == [10, 3, 32, 32]
    assert labels.dtype == torch.int64 and labels.tolist() == [0] * 4 + [1] * 4 + [2] * 2
    assert got.files == ["Rock/01 alpha.png", "Rock/02.png", "Rock/03 grey.jpeg", "Rock/04.PNG",
                         "paper/a.png", "paper/b.png", "paper/c.jpg", "paper/d.jpg",
                         "scissors_2/e.png", "scissors_2/rotated.jpg"]
    px = lambda name, row, col: _pixel(images, got.files, name, row, col)  # noqa: E731
    # alpha composited on white (dropping alpha would leave the black underneath)
    assert _close(px("Rock/01 alpha.png", 16, 4), RED, 0) and _close(px("Rock/01 alpha.png", 16, 28), WHITE, 0)
    # short side resized, centre kept: the white side bands and black top/bottom bands are cut off
    for col in (0, 16, 31):
        assert _close(px("Rock/02.png", 16, col), RED, 0)
    for row in (0, 16, 31):
        assert _close(px("Rock/03 grey.jpeg", row, 16), (128, 128, 128), 3)
    assert _close(px("Rock/04.PNG", 16, 16), (156, 156, 156), 0)  # 40000 >> 8, not clipped to white
    assert _close(px("paper/a.png", 16, 16), GREEN, 0)
    assert _close(px("paper/b.png", 16, 4), GREEN, 0) and _close(px("paper/b.png", 16, 28), WHITE, 0)
    assert _close(px("paper/c.jpg", 16, 16), (55, 255, 55))  # CMYK (200, 0, 200, 0)
    assert _close(px("paper/d.jpg", 16, 16), GREEN)
    exact = images[got.files.index("scissors_2/e.png")]  # already 32x32: unchanged
    assert torch.equal(exact, torch.tensor(BLUE, dtype=torch.uint8).view(3, 1, 1).expand(3, 32, 32))
    # EXIF orientation applied: blue on top, yellow below (unrotated: blue left, yellow right)
    for col in (4, 28):
        assert _close(px("scissors_2/rotated.jpg", 4, col), BLUE, 25)
        assert _close(px("scissors_2/rotated.jpg", 28, col), YELLOW, 25)


@pytest.mark.parametrize("size", [64, 128])
def test_other_sizes(tmp_path, size):
    root = make_shapes(tmp_path / "shapes")
    with pytest.warns(SkippedFilesWarning):
        images, _, _ = load_class_folders(root, image_size=size, test_fraction=0, skip_unreadable=True)
    assert list(images.shape) == [10, 3, size, size]
    c = size // 2
    assert _close(images[0, :, c, size // 8].numpy().astype(int), RED, 0)  # 01 alpha.png, upscaled
    assert _close(images[0, :, c, size - size // 8].numpy().astype(int), WHITE, 0)


def test_tarball_matches_folder(tmp_path):
    root = make_shapes(tmp_path / "shapes")
    with tarfile.open(tmp_path / "shapes.tar.gz", "w:gz") as tar:
        tar.add(root, arcname="shapes")  # one top folder, as archives usually have
    skipped = []
    for split in ("train", "test"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkippedFilesWarning)
            want = load_class_folders(root, split, 32, skip_unreadable=True, test_fraction=0.25, cache=False)
            got = load_class_folders(tmp_path / "shapes.tar.gz", split, 32, skip_unreadable=True, test_fraction=0.25)
        assert torch.equal(got.images, want.images) and torch.equal(got.labels, want.labels)
        assert got.files == ["shapes/" + f for f in want.files]  # the same split: it depends on names only
        assert got.skipped == ["shapes/" + f for f in want.skipped]
        skipped += want.skipped
    assert sorted(skipped) == BAD


# ----------------------------------------------------------------------------------------------
# Unreadable files: all of them in one error, or skipped and counted


def test_unreadable_files_are_listed_together(tmp_path):
    root = make_shapes(tmp_path / "shapes")
    with pytest.raises(DatasetError) as err:
        load_class_folders(root, image_size=32, test_fraction=0)
    message = str(err.value)
    assert "\n" not in message
    assert re.match(rf"2 of 12 image files in the train split of {re.escape(str(root))} cannot be read: ", message)
    assert f"{root / BAD[0]}: cannot read this image (not an image format Pillow can read)" in message
    assert re.search(rf"{re.escape(str(root / BAD[1]))}: cannot read this image \([^)]+\)\. Delete", message)
    assert message.endswith("Delete or replace these files, or pass skip_unreadable=True (--skip-unreadable) "
                            "to leave them out.")


def test_many_unreadable_files_are_counted(tmp_path):
    root = make_counts(tmp_path / "d", {"a": 3, "b": 3})
    for i in range(12):
        (root / "b" / f"bad{i:02d}.jpg").write_bytes(b"junk")
    with pytest.raises(DatasetError, match=r"^12 of 18 image files .* cannot be read: .*; and 2 more\. Delete") as err:
        load_class_folders(root, image_size=32, test_fraction=0)
    for i in range(12):
        assert (f"bad{i:02d}.jpg" in str(err.value)) == (i < 10)


def test_skip_unreadable_counts_and_caches(tmp_path, monkeypatch):
    root = make_shapes(tmp_path / "shapes")
    with pytest.warns(SkippedFilesWarning, match=r"left out 2 unreadable image file\(s\) of 12 in the train split "
                                                 r".*broken\.png; .*truncated\.jpg\); see \.skipped"):
        got = load_class_folders(root, image_size=32, test_fraction=0, skip_unreadable=True)
    assert got.skipped == BAD and got.images.shape[0] == 10
    with monkeypatch.context() as m:  # recorded in the cache: no decoding, the same answer both ways
        _forbid_decoding(m)
        with pytest.warns(SkippedFilesWarning, match="left out 2"):
            again = load_class_folders(root, image_size=32, test_fraction=0, skip_unreadable=True)
        assert torch.equal(again.images, got.images) and again.skipped == BAD
        with pytest.raises(DatasetError, match=r"2 of 12 image files .*broken\.png.*truncated\.jpg"):
            load_class_folders(root, image_size=32, test_fraction=0)


def test_skipping_every_image_of_a_class_is_an_error(tmp_path):
    root = make_counts(tmp_path / "d", {"a": 2, "b": 0})
    (root / "b" / "x.png").write_bytes(b"junk")
    with pytest.raises(DatasetError, match=r"no readable training images in class b \(all left out as unreadable\)"):
        load_class_folders(root, image_size=32, test_fraction=0, skip_unreadable=True)


def test_cifar10_folders_list_every_unreadable_file(tmp_path):
    """The CIFAR-10 loader shares the decoder: all unreadable files in one error there too."""
    for cls in data.CLASSES:
        for split in ("train", "test"):
            (tmp_path / split / cls).mkdir(parents=True)
            Image.fromarray(_rgb(32, 32, RED)).save(tmp_path / split / cls / "0.png")
    (tmp_path / "train" / "cat" / "x.png").write_bytes(b"junk")
    (tmp_path / "train" / "dog" / "y.jpg").write_bytes(b"junk")
    with pytest.raises(DatasetError, match=r"^2 of 12 image files in .*train cannot be read: .*cat/x\.png: cannot "
                                           r"read this image .*; .*dog/y\.jpg: cannot read this image .*Delete or "
                                           r"replace these files\.$"):
        load_cifar10(tmp_path, source="folder")


# ----------------------------------------------------------------------------------------------
# The split


def _split(root: Path, **kwargs) -> tuple[data.ClassFolderData, data.ClassFolderData]:
    return (load_class_folders(root, "train", 32, **kwargs), load_class_folders(root, "test", 32, **kwargs))


def test_stratified_split_counts(tmp_path):
    root = make_counts(tmp_path / "d", {"Rock": 10, "paper": 3, "scissors_2": 1})
    train, test = _split(root, test_fraction=0.25)
    # round(0.25 * n), at least 1 when a class has 2 or more images, at most n - 1
    assert torch.bincount(test.labels, minlength=3).tolist() == [3, 1, 0]
    assert torch.bincount(train.labels, minlength=3).tolist() == [7, 2, 1]
    assert not set(train.files) & set(test.files)
    assert sorted(train.files + test.files) == sorted(f"{p.parent.name}/{p.name}" for p in root.glob("*/*.png"))
    assert test.classes == train.classes == CLASSES
    # labels and pixels belong together: pixel value = 10 * class + index in the file name
    for d in (train, test):
        for image, label, f in zip(d.images, d.labels, d.files):
            assert int(image[0, 0, 0]) == 10 * int(label) + int(Path(f).stem)


def test_stratified_split_is_reproducible_and_recorded(tmp_path):
    root = make_counts(tmp_path / "d", {"Rock": 10, "paper": 6, "scissors_2": 4})
    train, test = _split(root, test_fraction=0.25, seed=0)
    again = load_class_folders(root, "test", 32, test_fraction=0.25, seed=0, cache=False)
    assert again.files == test.files and torch.equal(again.images, test.images)
    other = load_class_folders(root, "test", 32, test_fraction=0.25, seed=1)
    assert other.files != test.files and len(other.files) == len(test.files)
    # recorded beside the cache, as JSON a person can read
    assert test.split_file == train.split_file == data.split_record_path(root, 0.25, 0)
    assert test.split_file.parent == root / ".cgan_cache" and test.split_file.name.startswith("d-split-seed0-test0.25-")
    record = json.loads(test.split_file.read_text())
    assert record["test"] == test.files and record["classes"] == CLASSES
    assert record["seed"] == 0 and record["test_fraction"] == 0.25 and "sha1" in record["rule"]
    assert record["counts"] == {"train": [7, 4, 3], "test": [3, 2, 1]}
    assert other.split_file != test.split_file and other.split_file.is_file()
    # one more image moves no image of another class
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "Rock" / "new.png")
    after = load_class_folders(root, "test", 32, test_fraction=0.25, seed=0)
    assert [f for f in after.files if not f.startswith("Rock/")] == [f for f in test.files if not f.startswith("Rock/")]


def test_no_test_split(tmp_path):
    root = make_counts(tmp_path / "d", {"a": 3, "b": 3})
    assert load_class_folders(root, "train", 32, test_fraction=0).images.shape[0] == 6
    with pytest.raises(DatasetError, match=r"the test split is empty \(test_fraction=0 draws no test split\)"):
        load_class_folders(root, "test", 32, test_fraction=0)


def test_train_test_folders(tmp_path):
    make_counts(tmp_path / "d" / "train", {"Rock": 3, "paper": 2, "scissors_2": 2})
    make_counts(tmp_path / "d" / "test", {"Rock": 1, "paper": 1})  # a class may be missing from test/
    train, test = _split(tmp_path / "d")
    assert train.classes == test.classes == CLASSES
    assert train.files[0] == "train/Rock/000.png" and train.images.shape[0] == 7
    assert test.files == ["test/Rock/000.png", "test/paper/000.png"] and test.labels.tolist() == [0, 1]
    assert train.split_file is None and test.split_file is None  # nothing drawn, nothing recorded
    make_counts(tmp_path / "d" / "test", {"zebra": 1})
    with pytest.raises(DatasetError, match=r"test has class folders that train/ lacks: zebra"):
        load_class_folders(tmp_path / "d", "test", 32)


def test_train_folder_without_test_folder_is_split(tmp_path):
    make_counts(tmp_path / "d" / "train", {"a": 4, "b": 4})
    train, test = _split(tmp_path / "d", test_fraction=0.25)
    assert torch.bincount(test.labels).tolist() == [1, 1] and train.images.shape[0] == 6
    assert test.files[0].startswith("train/a/")


# ----------------------------------------------------------------------------------------------
# Cache


def test_cache_is_keyed_on_size(tmp_path, monkeypatch):
    root = make_counts(tmp_path / "d", {"a": 3, "b": 3}, size=20)
    small = load_class_folders(root, "train", 32, test_fraction=0)
    big = load_class_folders(root, "train", 64, test_fraction=0)  # another size: decoded again
    assert list(big.images.shape) == [6, 3, 64, 64] and list(small.images.shape) == [6, 3, 32, 32]
    assert "-train-32px-" in small.cache_file.name and "-train-64px-" in big.cache_file.name
    assert small.cache_file.is_file() and big.cache_file.is_file()
    with monkeypatch.context() as m:
        _forbid_decoding(m)
        for size, want in ((32, small), (64, big)):
            hit = load_class_folders(root, "train", size, test_fraction=0)
            assert torch.equal(hit.images, want.images) and hit.files == want.files


def test_cache_follows_the_files(tmp_path):
    root = make_counts(tmp_path / "d", {"a": 3, "b": 3})
    first = load_class_folders(root, "train", 32, test_fraction=0)
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(root / "b" / "zz.png")
    second = load_class_folders(root, "train", 32, test_fraction=0)
    assert second.files == first.files + ["b/zz.png"] and int(second.images[-1, 0, 0, 0]) == 200
    assert second.cache_file != first.cache_file


def test_broken_cache_is_rebuilt(tmp_path):
    root = make_counts(tmp_path / "d", {"a": 3, "b": 3})
    want = load_class_folders(root, "train", 32, test_fraction=0)
    with np.load(want.cache_file) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["labels"] = arrays["labels"][::-1].copy()
    with open(want.cache_file, "wb") as f:
        np.savez(f, **arrays)
    with pytest.warns(UserWarning, match=r"broken image cache \(labels do not match the class folders of the files\)"):
        got = load_class_folders(root, "train", 32, test_fraction=0)
    assert torch.equal(got.labels, want.labels)


def test_cifar10_cache_names_unchanged(tmp_path):
    """load_cifar10 keeps its cache file and key: the same name as before this change."""
    for split in ("train", "test"):
        for cls in data.CLASSES:
            (tmp_path / "t" / split / cls).mkdir(parents=True)
            Image.fromarray(_rgb(32, 32, RED)).save(tmp_path / "t" / split / cls / "0.png")
    load_cifar10(tmp_path / "t", source="folder")
    (cache,) = (tmp_path / "t" / ".cgan_cache").glob("*.npz")
    entries = {cls: sorted(os.scandir(tmp_path / "t" / "train" / cls), key=lambda e: e.name)
               for cls in data.CLASSES}
    stamp = hashlib.sha1("\n".join(f"{cls}/" + "".join(
        f"\n{e.name}|{e.stat().st_size}:{e.stat().st_mtime_ns}:{e.stat().st_ctime_ns}" for e in files)
        for cls, files in entries.items()).encode()).hexdigest()
    key = hashlib.sha1(f"{(tmp_path / 't').resolve()}|{stamp}".encode()).hexdigest()[:12]
    assert cache.name == f"t-train-32px-{key}.npz"
    with np.load(cache) as z:
        assert sorted(z.files) == ["classes", "images", "labels"]


# ----------------------------------------------------------------------------------------------
# Bad input: one line naming the problem and the fix


@pytest.mark.parametrize("kwargs,pattern", [
    ({"image_size": 48}, r"image_size must be one of 32, 64, 128, got 48"),
    ({"split": "val"}, r"split must be one of 'train', 'test', got 'val'"),
    ({"test_fraction": 1.0}, r"test_fraction must be a finite number in \[0, 1\), got 1\.0"),
    ({"test_fraction": -0.1}, r"test_fraction must be a finite number in \[0, 1\), got -0\.1"),
])
def test_bad_arguments(tmp_path, kwargs, pattern):
    root = make_counts(tmp_path / "d", {"a": 2, "b": 2})
    with pytest.raises(DatasetError, match=pattern):
        load_class_folders(root, **kwargs)


def test_bad_folders(tmp_path):
    with pytest.raises(DatasetError, match=r"nope does not exist\. Point it at a folder of class folders"):
        load_class_folders(tmp_path / "nope")
    make_counts(tmp_path / "one", {"cats": 3})
    with pytest.raises(DatasetError, match=r"one holds one class folder \(cats\); a conditional GAN needs at least 2"):
        load_class_folders(tmp_path / "one")
    make_counts(tmp_path / "empty", {"a": 2, "b": 0, "c": 0})
    with pytest.raises(DatasetError, match=r"empty: class folder\(s\) without images: b, c \(read: .png .jpg"):
        load_class_folders(tmp_path / "empty")
    (tmp_path / "loose").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "loose" / "x.png")
    with pytest.raises(DatasetError, match=r"loose holds no class folders\. Put each class's images in a folder"):
        load_class_folders(tmp_path / "loose")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DatasetError, match=r"notes\.txt is a file but not a \.tar\.gz/\.tar archive"):
        load_class_folders(tmp_path / "notes.txt")
    (tmp_path / "bad.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match=r"bad\.tar\.gz: cannot read the archive"):
        load_class_folders(tmp_path / "bad.tar.gz")


# ----------------------------------------------------------------------------------------------
# Command line


def test_cli_prepare_own(tmp_path, capsys, cli_error):
    root = make_shapes(tmp_path / "shapes")
    cli_error(data.main, ["prepare", str(root), "--size", "64"],
              r"error: \d of \d+ image files in the \w+ split of .*cannot be read: .*--skip-unreadable")
    data.main(["prepare", str(root), "--size", "64", "--skip-unreadable", "--test-fraction", "0.25"])
    out = capsys.readouterr().out
    with pytest.warns(SkippedFilesWarning):
        train, test = _split_64(root)
    for split, d in (("train", train), ("test", test)):
        counts = torch.bincount(d.labels, minlength=3).tolist()
        assert f"{split}: {len(d.files)} images, 3 classes, 64 px, cached ({d.cache_file})" in out
        assert f"  per class: Rock: {counts[0]}, paper: {counts[1]}, scissors_2: {counts[2]}" in out
    assert sorted(train.skipped + test.skipped) == BAD
    assert f"skipped {len(train.skipped)} unreadable file(s) (--skip-unreadable)" in out
    assert f"the test files are listed in {test.split_file}" in out


def test_cli_prepare_without_test_split(tmp_path, capsys, cli_error):
    root = make_counts(tmp_path / "d", {"a": 3, "b": 2})
    data.main(["prepare", str(root), "--test-fraction", "0"])
    out = capsys.readouterr().out
    assert "train: 5 images, 2 classes, 32 px, cached" in out and "  per class: a: 3, b: 2" in out
    assert "test: no images (test_fraction 0" in out
    cli_error(data.main, ["prepare", str(root), "--test-fraction", "1.5"],
              r"test_fraction must be a finite number in \[0, 1\), got 1\.5")


def _split_64(root: Path):
    return tuple(load_class_folders(root, s, 64, skip_unreadable=True, test_fraction=0.25) for s in ("train", "test"))


def test_cli_info_own(tmp_path, capsys):
    root = make_counts(tmp_path / "d", {"Rock": 10, "paper": 3, "scissors_2": 1})
    data.main(["info", "--root", str(root), "--test-fraction", "0.25"])
    out = capsys.readouterr().out
    assert (f"own class-folder dataset {root}: 3 classes (no test/ folder: 0.25 of each class is held out "
            "(seed 0)") in out
    assert "train: 10 image files; per class Rock: 7, paper: 2, scissors_2: 1" in out
    assert "test: 4 image files; per class Rock: 3, paper: 1, scissors_2: 0" in out
    make_counts(tmp_path / "e" / "train", {"a": 2, "b": 2})
    make_counts(tmp_path / "e" / "test", {"a": 1, "b": 1})
    data.main(["info", "--root", str(tmp_path / "e")])
    out = capsys.readouterr().out
    assert "2 classes (train/ and test/ folders)" in out and "test: 2 image files; per class a: 1, b: 1" in out


def _mirror(root: Path) -> Path:
    """A CIFAR-like JPEG mirror: ``root/{train,test}/<class>/NNNN.jpg``, 32x32, 5 train images a class."""
    for c, cls in enumerate(("airplane", "automobile", "bird")):
        for split, n in (("train", 5), ("test", 2)):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                pixels = _rgb(32, 32, (40 * c + 10 * i, 100, 200))
                pixels[12:20, 12:20] = 255 - pixels[12:20, 12:20]
                Image.fromarray(pixels).save(root / split / cls / f"{i:04d}.jpg", quality=95)
    return root


def test_cli_subset(tmp_path, capsys):
    src = _mirror(tmp_path / "mirror")
    data.main(["subset", str(src), str(tmp_path / "sub"), "--classes", "airplane,bird", "--per-class", "3"])
    assert f"wrote 6 images at 64 px to {tmp_path / 'sub'}: airplane: 3, bird: 3" in capsys.readouterr().out
    files = sorted(p.relative_to(tmp_path / "sub").as_posix() for p in (tmp_path / "sub").rglob("*") if p.is_file())
    assert len(files) == 6 and all(f.endswith(".png") for f in files)
    assert {f.split("/")[0] for f in files} == {"airplane", "bird"}
    assert all(Image.open(tmp_path / "sub" / f).size == (64, 64) for f in files)
    got = load_class_folders(tmp_path / "sub", image_size=64, test_fraction=0)
    assert got.classes == ["airplane", "bird"] and got.images.shape[0] == 6
    # reproducible: the same picks again; another seed picks others
    assert make_subset(src, tmp_path / "again", 3, ["airplane", "bird"]) == {"airplane": 3, "bird": 3}
    assert sorted(p.name for p in (tmp_path / "again").rglob("*.png")) == sorted(Path(f).name for f in files)
    make_subset(src, tmp_path / "seed1", 3, ["airplane", "bird"], seed=1)
    assert sorted(p.name for p in (tmp_path / "seed1").rglob("*.png")) != sorted(Path(f).name for f in files)


def test_cli_subset_bad_input(tmp_path, cli_error):
    src = _mirror(tmp_path / "mirror")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    cli_error(data.main, ["subset", str(src), str(tmp_path / "taken"), "--per-class", "2"],
              r"taken already exists; name a new folder \(nothing is overwritten\)")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]
    cli_error(data.main, ["subset", str(src), str(tmp_path / "o"), "--per-class", "2", "--classes", "bird,cat"],
              r"has no class 'cat'; its classes are airplane, automobile, bird")
    cli_error(data.main, ["subset", str(src), str(tmp_path / "o"), "--per-class", "6"],
              r"fewer than 6 images in airplane \(5\), automobile \(5\), bird \(5\); lower per_class")
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.tmp-*"))


def test_cli_subset_skip_unreadable(tmp_path, capsys, cli_error):
    src = _mirror(tmp_path / "mirror")
    (src / "train" / "bird" / "0000.jpg").write_bytes(b"junk")  # among the picks: every image is
    cli_error(data.main, ["subset", str(src), str(tmp_path / "o"), "--per-class", "5"],
              r"1 of 15 image files in .*train cannot be read: .*bird/0000\.jpg: .*--skip-unreadable")
    assert not (tmp_path / "o").exists()
    data.main(["subset", str(src), str(tmp_path / "o"), "--per-class", "5", "--skip-unreadable"])
    out = capsys.readouterr().out
    assert "wrote 14 images at 64 px" in out and "bird: 4" in out
    assert re.search(r"left out 1 unreadable image file\(s\) of 15: .*bird/0000\.jpg", out)
    assert len(list((tmp_path / "o" / "bird").iterdir())) == 4


# ----------------------------------------------------------------------------------------------
# Training on your own class folders: the class names travel with the model


def _tiny_run(root: Path, out: Path, **kw) -> TrainConfig:
    model = ModelConfig(num_classes=3, image_size=32, g_width=4, d_width=4, z_dim=8)
    return TrainConfig(model=model, data_source="folders", data_root=str(root), steps=2, batch_size=4,
                       log_every=1, sample_every=0, ckpt_every=1, progress=False, out=str(out), **kw)


def test_training_on_own_folders_keeps_the_class_names(tmp_path):
    root = make_counts(tmp_path / "rps", {"Rock": 6, "paper": 6, "scissors_2": 6}, size=40)  # resized to 32
    cfg = _tiny_run(root, tmp_path / "run")
    result = train(cfg)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    assert load_checkpoint(ckpt)["classes"] == ["Rock", "paper", "scissors_2"]
    G = load_generator_from_checkpoint(ckpt)
    assert G.classes == ["Rock", "paper", "scissors_2"] and result.step == 2
    exported = release.export_generator(ckpt, tmp_path / "export" / "generator.pt")
    assert pretrained.load_generator(path=exported).classes == ["Rock", "paper", "scissors_2"]
    service = serve.GeneratorService(serve.load_service_generator(ckpt))
    assert service.classes == ["Rock", "paper", "scissors_2"]
    assert service.images(serve.GenerateRequest(**{"class": "paper", "n": 2})).shape == (2, 3, 32, 32)


def test_own_folders_must_match_the_model_and_the_run(tmp_path):
    root = make_counts(tmp_path / "rps", {"Rock": 6, "paper": 6, "scissors_2": 6})
    with pytest.raises(DatasetError, match=r"the data has 3 classes \(Rock, paper, scissors_2\) but the model has "
                                           r"num_classes=4; set --num-classes 3"):
        train(dataclasses.replace(_tiny_run(root, tmp_path / "a"),
                                  model=ModelConfig(num_classes=4, g_width=4, d_width=4, z_dim=8)))
    with pytest.raises(DatasetError, match="--data-source folders needs --data-root"):
        train(dataclasses.replace(_tiny_run(root, tmp_path / "b"), data_root=None))
    train(_tiny_run(root, tmp_path / "c"))
    other = make_counts(tmp_path / "other", {"cats": 6, "dogs": 6, "rats": 6})
    with pytest.raises(CheckpointError, match=r"trained on the classes \['Rock', 'paper', 'scissors_2'\], but the "
                                              r"data now has \['cats', 'dogs', 'rats'\]"):
        train(dataclasses.replace(_tiny_run(other, tmp_path / "c"), steps=3, resume=True))


# ----------------------------------------------------------------------------------------------
# Issue 27: archives and folders that used to load silently wrong, or hang


def _png_bytes(value: int, size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_archive_members_that_collide_once_normalised_are_refused(tmp_path):
    tar = _tar(tmp_path / "d.tar.gz", {"cat/0.png": _png_bytes(1), "./cat/0.png": _png_bytes(200),
                                       "cat//1.png": _png_bytes(2), "dog/0.png": _png_bytes(3), "dog/1.png": _png_bytes(4)})
    with pytest.raises(DatasetError, match=r"the members 'cat/0.png' and './cat/0.png' are the same file cat/0.png"):
        load_class_folders(tar, test_fraction=0)


def test_an_oversized_archive_member_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(data.decode, "MAX_MEMBER_BYTES", 1000)
    tar = _tar(tmp_path / "d.tar.gz", {"cat/0.png": _png_bytes(1), "cat/1.png": b"\0" * 5000,
                                       "dog/0.png": _png_bytes(3), "dog/1.png": _png_bytes(4)})
    with pytest.raises(DatasetError, match=r"'cat/1.png' is 5,000 bytes, over MAX_MEMBER_BYTES=1,000"):
        load_class_folders(tar, test_fraction=0)


def test_an_image_over_the_pixel_limit_is_not_decoded(tmp_path, monkeypatch):
    root = make_counts(tmp_path / "d", {"a": 2, "b": 2})
    Image.fromarray(np.zeros((300, 200, 3), np.uint8)).save(root / "a" / "big.png")
    monkeypatch.setattr(data.decode, "MAX_IMAGE_PIXELS", 50_000)
    with pytest.raises(DatasetError, match=r"big.png.*200 x 300 pixels, over MAX_IMAGE_PIXELS=50,000"):
        load_class_folders(root, test_fraction=0, cache=False)


def test_numeric_class_names_sort_as_numbers(tmp_path):
    root = make_counts(tmp_path / "d", {str(i): 1 for i in range(12)})
    got = load_class_folders(root, test_fraction=0, cache=False)
    assert got.classes == [str(i) for i in range(12)]
    assert got.labels.tolist() == list(range(12))  # folder "10" is label 10, not label 2


def test_a_class_folder_beside_train_is_not_ignored(tmp_path):
    root = tmp_path / "d"
    make_counts(root / "train", {"a": 2, "b": 2})
    make_counts(root / "stray", {"c": 1})
    with pytest.raises(DatasetError, match=r"holds train/ and also stray: put every class folder inside train/"):
        load_class_folders(root, test_fraction=0.5)


def test_subset_into_its_own_source_and_empty_names_are_refused(tmp_path, cli_error):
    root = make_counts(tmp_path / "d", {"a": 2, "b": 2})
    cli_error(data.main, ["subset", str(root), str(root / "sub"), "--per-class", "1"],
              r"sub is inside .*: the new images would become part of the dataset they came from")
    cli_error(data.main, ["subset", str(root), str(tmp_path / "s"), "--per-class", "1", "--classes", ",,,"],
              r"--classes ',,,' names no class")
    cli_error(data.main, ["prepare", ""], r"path must be a non-empty string, got ''")
    cli_error(data.main, ["subset", str(root), str(tmp_path / "s"), "--per-class", "0"],
              r"per_class must be an integer >= 1, got 0")
    assert not (root / "sub").exists() and not (tmp_path / "s").exists()


def test_prepare_on_a_thousand_classes_does_not_hang(tmp_path):
    """The split record counted files per class in O(classes x files): 1,000 classes x 10 images
    were killed at 60 s. Now one pass: this test takes about 2 s (no timing asserted here)."""
    root = tmp_path / "d"
    png = _png_bytes(7, size=4)
    for c in range(1000):
        (root / f"c{c:04d}").mkdir(parents=True)
        for i in range(10):
            (root / f"c{c:04d}" / f"{i}.png").write_bytes(png)
    got = load_class_folders(root, test_fraction=0.1)  # with the cache and its split record
    assert len(got.classes) == 1000 and len(got.labels) == 9000 and got.split_file is not None


def test_prepare_does_not_claim_a_cache_it_could_not_write(tmp_path, capsys, monkeypatch):
    root = make_counts(tmp_path / "d", {"a": 3, "b": 2})
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("")
    monkeypatch.setenv(data.CACHE_ENV_VAR, str(blocker))
    data.main(["prepare", str(root), "--test-fraction", "0"])
    out = capsys.readouterr().out
    assert "train: 5 images, 2 classes, 32 px, not cached (cannot write" in out and " px, cached (" not in out


def test_a_dangling_symlink_is_listed_not_dropped(tmp_path):
    root = make_counts(tmp_path / "d", {"a": 3, "b": 2})
    (root / "a" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(DatasetError, match=r"gone.png"):
        load_class_folders(root, test_fraction=0, cache=False)
    with pytest.warns(SkippedFilesWarning, match="gone.png"):
        got = load_class_folders(root, test_fraction=0, cache=False, skip_unreadable=True)
    assert len(got.files) == 5 and any("gone.png" in f for f in got.skipped)


def test_prepare_reports_a_loose_folder_at_32_px_too(tmp_path, cli_error):
    """prepare's CIFAR-10 path used to swallow the refusal (and silently ignore the folder)."""
    root = tmp_path / "d"
    make_counts(root / "train", {"a": 2, "b": 2})
    make_counts(root / "test", {"a": 1, "b": 1})
    make_counts(root / "stray", {"c": 1})
    cli_error(data.main, ["prepare", str(root)], r"holds train/ and also stray")


def test_numpy_sizes_are_sizes(tmp_path):
    root = make_counts(tmp_path / "d", {"a": 2, "b": 2})
    assert load_class_folders(root, image_size=np.int64(32), test_fraction=0, cache=False).images.shape[-1] == 32
