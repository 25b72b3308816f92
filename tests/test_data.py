"""cgan_course.data: sources, cache, errors, preprocessing, batching, command line.

Everything runs offline on tiny data written to tmp_path (a few dozen 32x32 images), plus the
committed 1,000-image sample.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import stat
import subprocess
import sys
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cgan_course import data
from cgan_course.data import (CLASSES, CIFAR10Tensors, DatasetError, DeviceBatches, channel_stats,
                              from_unit_range, load_cifar10, load_image_folder, random_hflip,
                              resolve_source, standardize, to_unit_range)

PER_CLASS = {"train": 3, "test": 2}  # images per class in the tiny trees


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    """No developer setting leaks in: the data and cache variables are unset, HOME is private."""
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.delenv(data.CACHE_ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _image(seed: int) -> np.ndarray:
    """A random 32x32 RGB image, uint8 [32, 32, 3]."""
    return np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def make_tree(root: Path, classes=CLASSES, per_split=PER_CLASS) -> dict[str, list[np.ndarray]]:
    """Write ``root/<split>/<class>/<odd name>.{png,jpg}``; return the PNG images per split in load
    order (classes sorted, files sorted by name) with None where the file is a lossy JPEG."""
    expected: dict[str, list[np.ndarray | None]] = {}
    for split, n in per_split.items():
        expected[split] = []
        for c, cls in enumerate(sorted(classes)):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = _image(10_000 * (split == "test") + 100 * c + i)
                # arbitrary names and mixed formats: a PNG, then a JPEG with an upper-case suffix
                if i % 2 == 0:
                    Image.fromarray(pixels).save(folder / f"{i}-img {cls}.png")
                    expected[split].append(pixels.transpose(2, 0, 1))  # (H, W, 3) -> (3, H, W)
                else:
                    Image.fromarray(pixels).save(folder / f"{i}-photo_{c}.JPEG", format="JPEG", quality=95)
                    expected[split].append(None)
    return expected


def make_tarball(tree: Path, path: Path, top: str | None) -> Path:
    """Pack ``tree``'s split folders into ``path``, under a single folder ``top`` or at the root."""
    with tarfile.open(path, "w:gz") as tar:
        for split in ("train", "test"):
            if (tree / split).exists():
                tar.add(tree / split, arcname=f"{top}/{split}" if top else split)
    return path


def write_official_batches(monkeypatch, root: Path, labels_offset: int = 0, n: int = 4,
                           skip: str = "") -> torch.Tensor:
    """A fake ``root/cifar-10-batches-py`` in the official format (pickled dicts, rows of 3072 bytes
    R-plane then G then B), whose MD5s stand in for the official ones for this test. Returns the
    train images uint8 [5 * n, 3, 32, 32] in file order."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        labels = [(j + labels_offset) % 11 if labels_offset else j % 10 for j in range(n)]
        if name.startswith("data"):
            train.append(images)
        if name == skip:
            continue
        entry = {"batch_label": name, "data": images.reshape(n, 3072), "labels": labels,
                 "filenames": [f"{name}_{j}.png" for j in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
    monkeypatch.setattr(data.cifar10, "OFFICIAL_MD5", {
        p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()})
    return torch.from_numpy(np.concatenate(train))


# ----------------------------------------------------------------------------------------------
# Sources


@pytest.mark.parametrize("train", [True, False])
def test_sample_source(train):
    images, labels = load_cifar10(source="sample", train=train)
    assert images.dtype == torch.uint8 and list(images.shape) == [1000, 3, 32, 32]
    assert labels.dtype == torch.int64 and list(labels.shape) == [1000]
    assert torch.bincount(labels, minlength=10).tolist() == [100] * 10
    # the label order is CIFAR-10's: folder names sorted are exactly CLASSES
    split = data.SAMPLE_ROOT / ("train" if train else "test")
    assert tuple(sorted(p.name for p in split.iterdir() if p.is_dir() and not p.name.startswith("."))) == CLASSES
    assert images.float().std() > 40  # real photos, not a blank array


def test_folder_source_png_and_jpeg(tmp_path):
    expected = make_tree(tmp_path / "tree")
    images, labels = load_cifar10(tmp_path / "tree", train=True, source="folder")
    assert list(images.shape) == [30, 3, 32, 32] and images.dtype == torch.uint8
    assert labels.tolist() == [c for c in range(10) for _ in range(3)]
    for got, want in zip(images, expected["train"]):
        if want is not None:  # PNG: lossless
            assert torch.equal(got, torch.from_numpy(want))
        else:  # JPEG q95 of noise: close, not equal
            assert got.shape == (3, 32, 32)
    test_images, test_labels = load_cifar10(tmp_path / "tree", train=False, source="folder")
    assert list(test_images.shape) == [20, 3, 32, 32]
    assert torch.bincount(test_labels).tolist() == [2] * 10


def test_folder_source_skips_hidden_entries(tmp_path):
    make_tree(tmp_path / "tree")
    (tmp_path / "tree" / "train" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "tree" / "train" / "cat" / "._0-img cat.png").write_bytes(b"AppleDouble junk")
    images, _ = load_cifar10(tmp_path / "tree", source="folder")
    assert images.shape[0] == 30


@pytest.mark.parametrize("top", [None, "cifar10-jpg"])
def test_folder_source_tarball(tmp_path, top):
    make_tree(tmp_path / "tree")
    tarball = make_tarball(tmp_path / "tree", tmp_path / "mirror.tar.gz", top)
    for train in (True, False):
        want = load_cifar10(tmp_path / "tree", train=train, source="folder", cache=False)
        got = load_cifar10(tarball, train=train, source="folder", cache=False)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_folder_source_single_top_level_folder(tmp_path):
    """A folder holding the extracted archive (``parent/cifar10-jpg/train/...``) works too, even
    after the cache folder appears beside it."""
    make_tree(tmp_path / "parent" / "cifar10-jpg")
    first = load_cifar10(tmp_path / "parent", source="folder")
    assert (tmp_path / "parent" / ".cgan_cache").is_dir()
    second = load_cifar10(tmp_path / "parent", source="folder", cache=False)
    assert torch.equal(first[0], second[0])


def test_folder_source_reads_env_var(tmp_path, monkeypatch):
    make_tree(tmp_path / "tree")
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "tree"))
    images, _ = load_cifar10(source="folder")
    assert images.shape[0] == 30


def test_auto_order(tmp_path, monkeypatch):
    make_tree(tmp_path / "tree")
    empty = tmp_path / "empty"
    empty.mkdir()
    # the repository's data/ holds only the sample: "sample"; so does the sample's own folder
    if not (data.cifar10.DATA_DIR / "cifar-10-batches-py").exists():
        assert resolve_source() == ("sample", data.SAMPLE_ROOT)
    assert resolve_source(data.SAMPLE_ROOT) == ("sample", data.SAMPLE_ROOT)
    # a root named explicitly never falls back to the sample (tests/test_bad_inputs_data.py)
    with pytest.raises(DatasetError, match="holds no CIFAR-10"):
        resolve_source(empty)
    # a class-folder tree given as root
    assert resolve_source(tmp_path / "tree") == ("folder", tmp_path / "tree")
    # the environment variable comes before root's folders...
    make_tree(tmp_path / "other")
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "other"))
    assert resolve_source(tmp_path / "tree") == ("folder", tmp_path / "other")
    images, _ = load_cifar10(empty, train=False)  # source="auto"
    assert images.shape[0] == 20
    # ...and the official batches before both
    write_official_batches(monkeypatch, empty)
    assert resolve_source(empty) == ("torchvision", empty)
    assert load_cifar10(empty)[0].shape[0] == 20
    # download=True asks for the official set even when it is not there yet
    assert resolve_source(tmp_path / "tree", download=True)[0] == "torchvision"


def test_auto_env_var_typo_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "nope.tar.gz"))
    with pytest.raises(DatasetError, match=r"CGAN_COURSE_CIFAR10 is set to .*nope\.tar\.gz, which does not exist"):
        load_cifar10(tmp_path)
    (tmp_path / "flat").mkdir()
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "flat"))
    with pytest.raises(DatasetError, match=r"CGAN_COURSE_CIFAR10 is set to .*flat, but: .*has no train/ folder"):
        load_cifar10(tmp_path)


def test_auto_nothing_found(tmp_path, monkeypatch):
    monkeypatch.setattr(data.cifar10, "SAMPLE_ROOT", tmp_path / "no-sample")
    monkeypatch.setattr(data.cifar10, "DATA_DIR", tmp_path)  # the default root, as if data/ were empty
    with pytest.raises(DatasetError, match="no CIFAR-10 found") as err:
        load_cifar10()
    message = str(err.value)
    for tried in ("official batches", "CGAN_COURSE_CIFAR10 is not set", "committed sample", "Fix:",
                  "python -m cgan_course.data download"):
        assert tried in message, message


def test_torchvision_source_official_format(tmp_path, monkeypatch):
    want = write_official_batches(monkeypatch, tmp_path)
    images, labels = load_cifar10(tmp_path, source="torchvision")
    assert torch.equal(images, want)
    assert labels.dtype == torch.int64 and labels.tolist() == [0, 1, 2, 3] * 5
    test_images, _ = load_cifar10(tmp_path, train=False, source="torchvision")
    assert list(test_images.shape) == [4, 3, 32, 32]


def test_torchvision_source_labels_out_of_range(tmp_path, monkeypatch):
    write_official_batches(monkeypatch, tmp_path, labels_offset=7)  # labels 7, 8, 9, 10
    with pytest.raises(DatasetError, match=r"labels range over \[\d+, 10\], expected \[0, 9\]"):
        load_cifar10(tmp_path, source="torchvision")


def test_torchvision_source_incomplete(tmp_path, monkeypatch):
    write_official_batches(monkeypatch, tmp_path, skip="data_batch_3")
    with pytest.raises(DatasetError, match=r"data_batch_3 is missing.*download again"):
        load_cifar10(tmp_path, source="torchvision")


def test_download_offline_is_a_clear_error(tmp_path, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DatasetError, match=r"could not download CIFAR-10 .*URLError.*CGAN_COURSE_CIFAR10"):
        load_cifar10(tmp_path, source="torchvision", download=True)


# ----------------------------------------------------------------------------------------------
# Errors on bad folders


def test_missing_class_folder(tmp_path):
    make_tree(tmp_path / "tree", classes=CLASSES[:-1])
    with pytest.raises(DatasetError, match=r"missing: \['truck'\], unexpected: none.*Rename or remove"):
        load_cifar10(tmp_path / "tree", source="folder")


def test_extra_class_folder(tmp_path):
    make_tree(tmp_path / "tree", classes=CLASSES + ("zebra",))
    with pytest.raises(DatasetError, match=r"missing: none, unexpected: \['zebra'\]"):
        load_cifar10(tmp_path / "tree", source="folder")


@pytest.mark.parametrize("packed", [False, True])
def test_corrupt_image_is_named(tmp_path, packed):
    make_tree(tmp_path / "tree")
    (tmp_path / "tree" / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    root = make_tarball(tmp_path / "tree", tmp_path / "t.tar.gz", None) if packed else tmp_path / "tree"
    with pytest.raises(DatasetError, match=r"dog/broken\.png: cannot read this image.*Delete or replace"):
        load_cifar10(root, source="folder")


def test_wrong_image_size_is_named(tmp_path):
    make_tree(tmp_path / "tree")
    Image.new("RGB", (16, 16)).save(tmp_path / "tree" / "train" / "cat" / "small.png")
    with pytest.raises(DatasetError, match=r"cat/small\.png: image is 16x16, expected 32x32"):
        load_cifar10(tmp_path / "tree", source="folder")


def test_other_bad_inputs(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(DatasetError, match="unknown source 'cifar'"):
        load_cifar10(tmp_path, source="cifar")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DatasetError, match=r"notes\.txt: cannot read the archive"):
        load_image_folder(tmp_path / "notes.txt")
    (tmp_path / "bad.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match=r"bad\.tar\.gz: cannot read the archive"):
        load_image_folder(tmp_path / "bad.tar.gz")


# ----------------------------------------------------------------------------------------------
# Cache


def _forbid_decoding(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("decoded an image although the cache should have been used")

    monkeypatch.setattr(data.decode, "_decode", fail)


def test_cache_hit_and_invalidation(tmp_path, monkeypatch):
    make_tree(tmp_path / "tree")
    first = load_cifar10(tmp_path / "tree", source="folder")
    cached = list((tmp_path / "tree" / ".cgan_cache").glob("*.npz"))
    assert len(cached) == 1 and "train" in cached[0].name
    with monkeypatch.context() as m:
        _forbid_decoding(m)
        second = load_cifar10(tmp_path / "tree", source="folder")  # the .npz, no decoding
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    # a new image in a class folder changes that folder's mtime -> the cache key. Timestamps can
    # be coarser than this test is fast, so the mtime is also moved on explicitly.
    cat = tmp_path / "tree" / "train" / "cat"
    Image.fromarray(_image(99)).save(cat / "new.png")
    os.utime(cat, ns=(cat.stat().st_atime_ns, cat.stat().st_mtime_ns + 10**9))
    third = load_cifar10(tmp_path / "tree", source="folder")
    assert third[0].shape[0] == 31


def test_cache_tarball_invalidated_by_mtime(tmp_path, monkeypatch):
    make_tree(tmp_path / "tree")
    tarball = make_tarball(tmp_path / "tree", tmp_path / "mirror.tar.gz", "top")
    load_cifar10(tarball, source="folder")
    assert len(list((tmp_path / ".cgan_cache").glob("mirror-train-*.npz"))) == 1
    with monkeypatch.context() as m:
        _forbid_decoding(m)
        load_cifar10(tarball, source="folder")
    st = tarball.stat()
    os.utime(tarball, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with monkeypatch.context() as m:
        _forbid_decoding(m)
        with pytest.raises(AssertionError, match="decoded an image"):
            load_cifar10(tarball, source="folder")


def test_cache_falls_back_when_folder_is_read_only(tmp_path, monkeypatch):
    make_tree(tmp_path / "tree")
    root = tmp_path / "tree"
    mode = root.stat().st_mode
    os.chmod(root, mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))  # mode bits: root may write anyway
    try:
        images, _ = load_cifar10(root, source="folder")
        assert not (root / ".cgan_cache").exists()
        home_cache = tmp_path / "home" / ".cache" / "cgan_course"
        assert len(list(home_cache.glob("tree-train-*.npz"))) == 1
        with monkeypatch.context() as m:
            _forbid_decoding(m)
            assert torch.equal(load_cifar10(root, source="folder")[0], images)
        # $CGAN_COURSE_CACHE says where instead
        monkeypatch.setenv(data.CACHE_ENV_VAR, str(tmp_path / "elsewhere"))
        load_cifar10(root, train=False, source="folder")
        assert len(list((tmp_path / "elsewhere").glob("tree-test-*.npz"))) == 1
    finally:
        os.chmod(root, mode)


def test_cache_off(tmp_path):
    make_tree(tmp_path / "tree")
    load_cifar10(tmp_path / "tree", source="folder", cache=False)
    assert not (tmp_path / "tree" / ".cgan_cache").exists()


# ----------------------------------------------------------------------------------------------
# Preprocessing


def test_unit_range_round_trip_all_values():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    u = to_unit_range(x)
    assert u.dtype == torch.float32 and u.min() == -1.0 and u.max() == 1.0
    assert torch.equal(from_unit_range(u), x)
    # out-of-range generator outputs are clamped, not wrapped around
    assert from_unit_range(torch.tensor([-1.5, 1.5])).tolist() == [0, 255]


@pytest.mark.parametrize("fn", [to_unit_range, channel_stats, lambda x: standardize(x, torch.zeros(3), torch.ones(3))])
def test_float_input_is_refused_not_scaled_twice(fn):
    x = torch.rand(2, 3, 4, 4)
    before = x.clone()
    with pytest.raises(ValueError, match="expects uint8 images"):
        fn(x)
    assert torch.equal(x, before)  # the caller's tensor is untouched


def test_channel_stats_matches_numpy():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (50, 3, 8, 8), generator=g, dtype=torch.uint8)
    mean, std = channel_stats(images)
    x = images.numpy().astype(np.float64) / 255.0
    np.testing.assert_allclose(mean.numpy(), x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std.numpy(), x.transpose(1, 0, 2, 3).reshape(3, -1).std(axis=1, ddof=1), rtol=1e-12)


def test_standardize_zero_mean_unit_std():
    g = torch.Generator().manual_seed(0)
    # channels with different brightness and contrast, like R, G, B of real photos
    images = torch.stack([torch.randint(lo, hi, (40, 8, 8), generator=g) for lo, hi in
                          [(0, 100), (50, 250), (120, 140)]], dim=1).to(torch.uint8)  # (40, 3, 8, 8)
    mean, std = channel_stats(images)
    x = standardize(images, mean, std)
    assert x.shape == images.shape and x.dtype == torch.float32
    torch.testing.assert_close(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-4, rtol=0)


def test_random_hflip():
    x = torch.randn(1000, 3, 4, 4)
    out = random_hflip(x, torch.Generator().manual_seed(0))
    flipped = (out == x.flip(3)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert torch.all(flipped ^ kept)  # every image is either mirrored or untouched
    assert 0.4 < flipped.float().mean() < 0.6
    assert torch.equal(out, random_hflip(x, torch.Generator().manual_seed(0)))
    assert not torch.equal(out, random_hflip(x, torch.Generator().manual_seed(1)))


# ----------------------------------------------------------------------------------------------
# DeviceBatches


def _indexed_dataset(n: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    """Image i is constant 4 * i (so flips keep it and the index reads back), label i % 10."""
    images = (torch.arange(n, dtype=torch.uint8) * 4).view(n, 1, 1, 1).expand(n, 3, 4, 4).contiguous()
    return images, torch.arange(n) % 10


def _indices(x: torch.Tensor) -> list[int]:
    return from_unit_range(x[:, 0, 0, 0]).div(4, rounding_mode="floor").tolist()


def test_device_batches_shapes_and_coverage():
    images, labels = _indexed_dataset()
    batches = DeviceBatches(images, labels, batch_size=12, seed=0)
    assert batches.batches_per_epoch == 5
    epochs = []
    for _ in range(2):
        seen = []
        for _ in range(5):
            x, y = next(batches)
            assert list(x.shape) == [12, 3, 4, 4] and x.dtype == torch.float32
            assert x.min() >= -1 and x.max() <= 1
            assert y.dtype == torch.int64 and y.tolist() == [i % 10 for i in _indices(x)]
            seen += _indices(x)
        assert sorted(seen) == list(range(60))  # every image exactly once per epoch
        epochs.append(seen)
    assert epochs[0] != epochs[1]  # reshuffled each epoch


def _take(batches: DeviceBatches, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [next(batches) for _ in range(n)]


def test_device_batches_reproducible_and_resumable():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 3, 4, 4), generator=g, dtype=torch.uint8)
    labels = torch.arange(40) % 10
    a = _take(DeviceBatches(images, labels, batch_size=8, seed=3), 12)
    b = _take(DeviceBatches(images, labels, batch_size=8, seed=3), 12)
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    c = _take(DeviceBatches(images, labels, batch_size=8, seed=4), 12)
    assert not all(torch.equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))
    # stop after 7 batches (mid-epoch 2), save, restore into a fresh object, continue
    run = DeviceBatches(images, labels, batch_size=8, seed=3)
    _take(run, 7)
    state = run.state_dict()
    resumed = DeviceBatches(images, labels, batch_size=8, seed=0)
    resumed.load_state_dict(state)
    for (xa, ya), (xr, yr) in zip(a[7:], _take(resumed, 5)):
        assert torch.equal(xa, xr) and torch.equal(ya, yr)


def test_device_batches_shards_disjoint():
    images, labels = _indexed_dataset(60)
    shards = []
    for rank in range(2):
        batches = DeviceBatches(images, labels, batch_size=10, seed=0, rank=rank, world_size=2)
        shards.append({i for _ in range(batches.batches_per_epoch) for i in _indices(next(batches)[0])})
    assert len(shards[0]) == len(shards[1]) == 30
    assert not shards[0] & shards[1] and shards[0] | shards[1] == set(range(60))


def test_device_batches_bad_input():
    images, labels = _indexed_dataset(20)
    with pytest.raises(ValueError, match="must be uint8"):
        DeviceBatches(images.float(), labels, batch_size=4)
    with pytest.raises(ValueError, match="batch_size 16 is larger than the 10 images per process"):
        DeviceBatches(images, labels, batch_size=16, world_size=2)


def test_cifar10_tensors_with_dataloader():
    images, labels = load_cifar10(source="sample", train=False)
    dataset = CIFAR10Tensors(images, labels)
    assert len(dataset) == 1000
    loader = torch.utils.data.DataLoader(dataset, batch_size=16, shuffle=False)
    x, y = next(iter(loader))
    assert list(x.shape) == [16, 3, 32, 32] and x.dtype == torch.float32
    assert -1 <= x.min() and x.max() <= 1
    assert torch.equal(y, labels[:16]) and torch.equal(from_unit_range(x), images[:16])
    halves = CIFAR10Tensors(images, labels, transform=lambda img: img.float() / 2)
    assert torch.equal(halves[3][0], images[3].float() / 2)


# ----------------------------------------------------------------------------------------------
# Command line


def test_cli_info(tmp_path, monkeypatch, capsys, cli_error):
    make_tree(tmp_path / "tree")
    monkeypatch.setenv(data.ENV_VAR, str(make_tarball(tmp_path / "tree", tmp_path / "m.tar.gz", "m")))
    data.main(["info", "--root", str(tmp_path)])
    out = capsys.readouterr().out
    assert f"train source: folder {tmp_path / 'm.tar.gz'} (image folder m.tar.gz)" in out
    assert "train: [30, 3, 32, 32] per class [3, 3, 3, 3, 3, 3, 3, 3, 3, 3]" in out
    assert "test: [20, 3, 32, 32]" in out
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "typo"))
    cli_error(data.main, ["info", "--root", str(tmp_path)], "error: .*typo, which does not exist")


def test_cli_prepare_subprocess(tmp_path, cli_error):
    make_tree(tmp_path / "tree")
    tarball = make_tarball(tmp_path / "tree", tmp_path / "mini.tar.gz", "mini")
    env = {k: v for k, v in os.environ.items() if k not in (data.ENV_VAR, data.CACHE_ENV_VAR)}
    done = subprocess.run([sys.executable, "-m", "cgan_course.data", "prepare", str(tarball)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "train: 30 images, 10 classes, cached" in done.stdout
    assert "test: 20 images, 10 classes, cached" in done.stdout
    assert f"export CGAN_COURSE_CIFAR10={tarball}" in done.stdout
    assert len(list((tmp_path / ".cgan_cache").glob("mini-*.npz"))) == 2
    # bad input: one line naming the problem, exit status 2, no traceback
    cli_error(data.main, ["prepare", str(tmp_path / "nope")], r"error: .*nope does not exist")
