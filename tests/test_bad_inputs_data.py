"""The bad-input contract of cgan_course.data (issue 15, items 3, 6, 8 and 9).

Crafted official batches are never unpickled, a mistyped data root is an error instead of the
1,000-image sample, an image changed in place is decoded again, and a broken ``.npz`` cache is
discarded with a one-line warning and rebuilt. Everything runs on tiny trees in tmp_path.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
import tarfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cgan_course import data
from cgan_course.data import CLASSES, DatasetError, load_cifar10, load_image_folder, resolve_source
from test_data import _clean_env, _image as _pixels  # noqa: F401  (_clean_env: an autouse fixture)


def make_tree(root: Path, classes=CLASSES, per_class: int = 2) -> Path:
    """``root/{train,test}/<class>/<i>.png``: uncompressed PNGs, so every file has the same size."""
    for s, split in enumerate(("train", "test")):
        for c, cls in enumerate(classes):
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(_pixels(1000 * s + 10 * c + i)).save(root / split / cls / f"{i}.png",
                                                                     compress_level=0)
    return root


# ----------------------------------------------------------------------------------------------
# Item 3: the official batches are pickles; only the official bytes are unpickled


class _Payload:
    """Unpickling this runs ``open(marker, "w")``: a harmless stand-in for arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")


def _fake_official(folder: Path) -> dict[str, str]:
    """Write well-formed batches into ``folder`` (the same bytes on every call); return their MD5s,
    which a test may let stand in for the official ones."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in BATCHES:
        entry = {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 3]}
        (folder / name).write_bytes(pickle.dumps(entry))
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def _plant(root: Path, name: str, marker: Path) -> Path:
    """``root/cifar-10-batches-py/name`` as a crafted pickle; the other batches well-formed."""
    folder = root / "cifar-10-batches-py"
    _fake_official(folder)
    (folder / name).write_bytes(pickle.dumps(_Payload(marker)))
    return folder / name


@pytest.mark.parametrize("train,name", [(True, "data_batch_1"), (False, "test_batch")])
@pytest.mark.parametrize("source", ["auto", "torchvision"])
def test_crafted_batch_is_refused_not_unpickled(tmp_path, train, name, source):
    marker = tmp_path / "EXECUTED"
    crafted = _plant(tmp_path / "root", name, marker)
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(crafted))}: its checksum does not match "
                       r"the official CIFAR-10 python batches.*Re-download with `python -m "
                       r"cgan_course\.data download --root \S+` or delete it\.$") as err:
        load_cifar10(tmp_path / "root", train=train, source=source)
    assert "\n" not in str(err.value)
    assert not marker.exists()
    pickle.loads(crafted.read_bytes()).close()  # the payload is live: unpickling it does run
    assert marker.exists()


def test_crafted_batch_cli_is_one_line(tmp_path, cli_error):
    marker = tmp_path / "EXECUTED"
    _plant(tmp_path, "data_batch_1", marker)
    cli_error(data.main, ["info", "--root", str(tmp_path)],
              r"data_batch_1: its checksum does not match the official CIFAR-10 python batches")
    assert not marker.exists()


def test_download_replaces_a_crafted_batch(tmp_path, monkeypatch):
    """The fix the message names works: download=True fetches again when a file is not official."""
    import torchvision

    monkeypatch.setattr(data.cifar10, "OFFICIAL_MD5", _fake_official(tmp_path / "official"), raising=False)
    calls = []

    def fake_download(root, train, download):  # what torchvision does: fetch, verify, extract
        calls.append(root)
        _fake_official(Path(root) / "cifar-10-batches-py")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake_download)
    marker = tmp_path / "EXECUTED"
    _plant(tmp_path / "root", "data_batch_1", marker)
    images, _ = load_cifar10(tmp_path / "root", source="torchvision", download=True)
    assert calls == [str(tmp_path / "root")] and images.shape[0] == 20 and not marker.exists()
    load_cifar10(tmp_path / "root", source="torchvision", download=True)  # now verified: no fetch
    assert len(calls) == 1


def test_official_md5_are_torchvisions():
    torchvision = pytest.importorskip("torchvision")
    published = dict(torchvision.datasets.CIFAR10.train_list + torchvision.datasets.CIFAR10.test_list)
    assert data.OFFICIAL_MD5 == published


# ----------------------------------------------------------------------------------------------
# Item 6: a root named explicitly must hold the data; info says what it chose


@pytest.mark.parametrize("source", ["auto", "folder", "torchvision"])
def test_missing_explicit_root_is_an_error(tmp_path, source):
    with pytest.raises(DatasetError, match=rf"^the data root {tmp_path / 'typo'} does not exist\. "
                                           r"Fix the path .*or leave it out"):
        load_cifar10(tmp_path / "typo", source=source)


def test_missing_explicit_root_resolve_source(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match=r"the data root .*typo does not exist"):
        resolve_source(tmp_path / "typo")
    make_tree(tmp_path / "tree")
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "tree"))  # even with a valid variable set
    with pytest.raises(DatasetError, match=r"the data root .*typo does not exist"):
        resolve_source(tmp_path / "typo")


def test_explicit_root_without_data_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"^the data root .*empty holds no CIFAR-10: no "
                                           r"cifar-10-batches-py/, and .*has no train/ folder"):
        load_cifar10(tmp_path / "empty")


def test_cli_info_missing_root(tmp_path, cli_error):
    cli_error(data.main, ["info", "--root", str(tmp_path / "typo")],
              r"^python -m cgan_course\.data: error: the data root .*typo does not exist")


def test_cli_info_prints_the_source(tmp_path, capsys):
    make_tree(tmp_path / "tree")
    data.main(["info", "--root", str(tmp_path / "tree")])
    out = capsys.readouterr().out
    assert f"train source: folder {tmp_path / 'tree'} (image folder tree)" in out
    assert f"test source: folder {tmp_path / 'tree'} (image folder tree)" in out
    if not (data.cifar10.DATA_DIR / "cifar-10-batches-py").exists():
        data.main(["info"])  # the default: the repository's data/, here the committed sample
        out = capsys.readouterr().out
        assert f"train source: sample {data.SAMPLE_ROOT} (committed 1,000-image sample)" in out
        assert "train: [1000, 3, 32, 32]" in out


def test_help_and_messages_do_not_name_a_private_path(tmp_path, capsys, monkeypatch):
    for argv in (["--help"], ["download", "--help"], ["prepare", "--help"], ["info", "--help"]):
        with pytest.raises(SystemExit):
            data.main(argv)
        assert "../shared" not in capsys.readouterr().out
    monkeypatch.setattr(data.cifar10, "SAMPLE_ROOT", tmp_path / "no-sample")
    monkeypatch.setattr(data.cifar10, "DATA_DIR", tmp_path)
    with pytest.raises(DatasetError) as err:
        load_cifar10()
    assert "../shared" not in str(err.value) and "your copy" in str(err.value)


# ----------------------------------------------------------------------------------------------
# Item 8: the cache follows every image file, not only the folders


def _forbid_decoding(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("decoded an image although the cache should have been used")

    monkeypatch.setattr(data.decode, "_decode", fail)


def _overwrite(path: Path, pixels: np.ndarray, keep_mtime: bool) -> None:
    """Replace ``path`` in place (same inode, same size); its folder's mtime does not change."""
    st, folder_st = path.stat(), path.parent.stat()
    time.sleep(0.05)  # past the kernel's coarse timestamp tick, so the new ctime differs
    Image.fromarray(pixels).save(path, format="PNG", compress_level=0)
    assert path.stat().st_size == st.st_size
    mtime = st.st_mtime_ns if keep_mtime else st.st_mtime_ns + 10**9
    os.utime(path, ns=(st.st_atime_ns, mtime))
    os.utime(path.parent, ns=(folder_st.st_atime_ns, folder_st.st_mtime_ns))


@pytest.mark.parametrize("keep_mtime", [False, True], ids=["new-mtime", "old-mtime-restored"])
def test_cache_sees_an_image_overwritten_in_place(tmp_path, monkeypatch, keep_mtime):
    root = make_tree(tmp_path / "tree", classes=("a", "b"))
    images, _, _ = load_image_folder(root)
    with monkeypatch.context() as m:
        _forbid_decoding(m)
        assert torch.equal(load_image_folder(root)[0], images)  # a cache hit
    new = _pixels(999)
    _overwrite(root / "train" / "b" / "1.png", new, keep_mtime)
    got, _, _ = load_image_folder(root)
    assert torch.equal(got[3], torch.from_numpy(new.transpose(2, 0, 1)))
    assert torch.equal(got[:3], images[:3])


# ----------------------------------------------------------------------------------------------
# Item 9: a broken .npz cache is discarded with a warning and rebuilt


def _rewrite(**changes):
    """A corruption that rewrites the cache with arrays replaced by ``change(old arrays)``, or
    dropped where the change is None."""
    def corrupt(path: Path) -> None:
        with np.load(path) as z:
            old = {k: z[k] for k in z.files}
        new = {k: changes[k](old) if k in changes else v for k, v in old.items()
               if k not in changes or changes[k] is not None}
        with open(path, "wb") as f:
            np.savez(f, **new)
    return corrupt


def _npy(path: Path) -> None:
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))


CORRUPTIONS = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "garbage": lambda p: p.write_bytes(b"\x00not an npz\xff" * 64),
    "empty": lambda p: p.write_bytes(b""),
    "npy-not-npz": _npy,
    "missing-key": _rewrite(labels=None),
    "object-array": _rewrite(classes=lambda a: np.array([[1], "b"], dtype=object)),
    "float-images": _rewrite(images=lambda a: a["images"].astype(np.float32)),
    "wrong-shape": _rewrite(images=lambda a: a["images"][:, :, :16, :16]),
    "labels-out-of-range": _rewrite(labels=lambda a: a["labels"] + 5),
    "negative-labels": _rewrite(labels=lambda a: a["labels"] - 1),
    "fewer-labels": _rewrite(labels=lambda a: a["labels"][:-1]),
    "labels-reordered": _rewrite(labels=lambda a: a["labels"][::-1].copy()),
    "image-missing": _rewrite(images=lambda a: a["images"][:-1], labels=lambda a: a["labels"][:-1]),
    "extra-class": _rewrite(classes=lambda a: np.array(["a", "b", "c"])),
    "classes-not-text": _rewrite(classes=lambda a: np.arange(2)),
}


def _only_cache(root: Path) -> Path:
    (cache,) = list((root.parent if root.is_file() else root).glob(".cgan_cache/*.npz"))
    return cache


@pytest.mark.parametrize("corruption,packed", [
    (c, packed) for c in CORRUPTIONS for packed in (False, True)
    if not (packed and c == "image-missing")])  # a tarball's image count is known only by reading it
def test_broken_cache_is_rebuilt(tmp_path, monkeypatch, corruption, packed):
    root = make_tree(tmp_path / "tree", classes=("a", "b"))
    if packed:
        with tarfile.open(tmp_path / "tree.tar.gz", "w:gz") as tar:
            tar.add(root / "train", arcname="train")
        root = tmp_path / "tree.tar.gz"
    want = load_image_folder(root)
    cache = _only_cache(root)
    CORRUPTIONS[corruption](cache)
    with pytest.warns(UserWarning) as record:
        got = load_image_folder(root)
    (warning,) = [w for w in record if "broken image cache" in str(w.message)]
    message = str(warning.message)
    assert message.startswith(f"{cache}: broken image cache (") and "\n" not in message, message
    assert message.endswith("discarding it and decoding the images again."), message
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]) and got[2] == want[2]
    with monkeypatch.context() as m, warnings.catch_warnings():
        warnings.simplefilter("error")  # rebuilt: the next load is a clean cache hit
        _forbid_decoding(m)
        again = load_image_folder(root)
    assert torch.equal(again[0], want[0]) and again[2] == want[2]


def test_broken_cache_through_load_cifar10(tmp_path):
    make_tree(tmp_path / "tree", per_class=1)
    want = load_cifar10(tmp_path / "tree", source="folder")
    CORRUPTIONS["labels-out-of-range"](_only_cache(tmp_path / "tree"))
    with pytest.warns(UserWarning, match=r"broken image cache \(labels range over \[5, 14\], expected \[0, 9\]\)"):
        got = load_cifar10(tmp_path / "tree", source="folder")
    assert torch.equal(got[1], want[1])
