"""The metrics' contract for bad input (issue 15, items 5, 8 and 14): a diverged generator, images
in the wrong range or size, impossible sample counts and stale reference statistics each fail at
once with a ``CourseError`` that names the problem and the fix, or (a changed dataset) recompute.
Fast, offline, CPU: a 6-d toy extractor and tiny image folders in tmp_path."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from cgan_course import metrics
from cgan_course.data import CACHE_ENV_VAR, CLASSES
from cgan_course.errors import CourseError
from cgan_course.metrics import FeatureStats
from test_metrics import MeanColour


class ConstantG(nn.Module):
    """A stand-in generator whose every image is ``value`` at ``size`` x ``size``."""

    z_dim, num_classes = 4, 10

    def __init__(self, value: float, size: int = 32):
        super().__init__()
        self.value, self.size = value, size
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, z, y):
        noise = 0.1 * torch.tanh(z[:, :3, None, None]).expand(-1, 3, self.size, self.size)
        return noise + self.value


def unit_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture
def reference() -> FeatureStats:
    """Statistics of 40 random 32 x 32 images in the toy feature space."""
    return metrics.image_stats(unit_images(40, seed=1), MeanColour(), split="test", data_source="random")


# ----------------------------------------------------------------------------------------------
# Item 5: non-finite images or features fail at once (sqrtm used to spend minutes on NaN)


def test_fid_of_nan_images_fails_at_once_naming_how_many(reference):
    images = unit_images(8)
    images[[1, 5], 0, 3, 3] = float("nan")
    start = time.perf_counter()
    with pytest.raises(CourseError, match=r"^2 of 8 images contain NaN or inf \(a diverged generator\?\)"):
        metrics.fid(images, reference, MeanColour())
    with pytest.raises(CourseError, match=r"^20 of 20 images contain NaN or inf"):
        metrics.fid(ConstantG(float("nan")), reference, MeanColour(), num_samples=20)
    assert time.perf_counter() - start < 1.0


def test_fid_of_nan_features_fails_at_once_naming_how_many():
    feats = torch.randn(300, 256, generator=torch.Generator().manual_seed(0))
    feats[[0, 7, 9]] = float("nan")
    with pytest.raises(CourseError, match=r"^3 of 300 feature rows contain NaN or inf"):
        metrics.stats_from_features(feats, None, "classifier", "generated", "diverged G")
    # statistics assembled by hand at d = 256, where scipy's sqrtm of a NaN matrix ran for minutes
    good = FeatureStats(np.zeros(256), np.eye(256), 300, "classifier", "train", "x")
    bad = FeatureStats(np.full(256, np.nan), np.full((256, 256), np.nan), 300, "classifier", "generated", "x")
    start = time.perf_counter()
    with pytest.raises(CourseError, match=r"^mu1 has 256 NaN/inf entries"):
        metrics.fid(bad, good)
    with pytest.raises(CourseError, match=r"^sigma2 has 1 NaN/inf entries"):
        metrics.frechet_distance(np.zeros(256), np.eye(256), np.zeros(256), np.diag([np.inf] + [1.0] * 255))
    assert time.perf_counter() - start < 1.0


# ----------------------------------------------------------------------------------------------
# Item 8: the reference-statistics cache follows the files, not the top folder's mtime


def _class_tree(root: Path, per_class: int, split: str = "test") -> None:
    rng = np.random.default_rng(0)
    for cls in CLASSES:
        folder = root / split / cls
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_reference_stats_see_images_added_or_rewritten_inside_class_folders(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))
    root = tmp_path / "mini-cifar"
    _class_tree(root, per_class=5)  # 50 images
    ext = MeanColour()
    assert metrics.reference_stats(ext, "test", source="folder", root=root, verbose=False).count == 50
    calls = ext.calls
    assert metrics.reference_stats(ext, "test", source="folder", root=root, verbose=False).count == 50
    assert ext.calls == calls  # unchanged files: served from the cache
    for i, cls in enumerate(CLASSES[:5]):  # 5 more, inside class folders: the top folder's mtime stays
        Image.new("RGB", (32, 32), (i, 0, 0)).save(root / "test" / cls / "extra.png")
    assert metrics.reference_stats(ext, "test", source="folder", root=root, verbose=False).count == 55
    calls = ext.calls
    image = root / "test" / "cat" / "0.png"  # rewritten in place: same name, same count
    Image.new("RGB", (32, 32), (9, 9, 9)).save(image)
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    metrics.reference_stats(ext, "test", source="folder", root=root, verbose=False)
    assert ext.calls > calls  # recomputed
    assert len(list((tmp_path / "cache").glob("refstats-meancolour-v1-folder-mini-cifar-*-test-all-classes.npz"))) == 3


# ----------------------------------------------------------------------------------------------
# Item 14: metrics that used to lie


def test_fid_refuses_images_of_another_size_than_the_reference(monkeypatch, tmp_path, reference):
    big = unit_images(40, size=64)
    with pytest.raises(CourseError, match=r"^the samples are 64x64 images but the reference statistics come "
                                          r"from 32x32 images.*interpolate\(x, size=\(32, 32\)"):
        metrics.fid(big, reference, MeanColour())
    with pytest.raises(CourseError, match=r"64x64 images .* 32x32"):
        metrics.fid(ConstantG(0.0, size=64), reference, MeanColour(), num_samples=20)
    # the size survives the reference cache
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path))
    metrics.reference_stats(MeanColour(), "test", source="sample", verbose=False)
    cached = metrics.reference_stats(MeanColour(), "test", source="sample", verbose=False)
    assert cached.image_size == (32, 32)
    with pytest.raises(CourseError, match=r"64x64 images .* 32x32"):
        metrics.intra_fid(big, cached, MeanColour(), labels=torch.arange(40) % 10)
    assert np.isfinite(float(metrics.fid(unit_images(40, seed=2), cached, MeanColour())))  # 32 px: scored


def test_float_images_outside_unit_range_are_refused_not_clamped(reference):
    pixels = torch.randint(0, 256, (20, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    with pytest.raises(CourseError, match=r"^float images must be in \[-1, 1\].*got values in \[0, 255\]: pass "
                                          r"uint8 images.*x / 127.5 - 1"):
        metrics.fid(pixels.float(), reference, MeanColour())
    with pytest.raises(CourseError, match=r"got values in \[0, 255\]"):
        metrics.fid(pixels, reference, MeanColour())  # int64 pixels are floats to the extractor too
    # round-off just beyond +-1 is accepted and clipped: the features of the exact images
    exact = pixels.to(torch.uint8)
    nudged = (exact.float() / 127.5 - 1) * (1 + 1e-4)
    assert nudged.abs().max() > 1
    torch.testing.assert_close(MeanColour()(nudged), MeanColour()(exact), atol=2e-4, rtol=0)


@pytest.mark.parametrize("n", [-5, 0, 1, 2.5])
def test_impossible_sample_counts_are_refused(monkeypatch, tmp_path, reference, n):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path))
    with pytest.raises(CourseError, match=rf"^num_images must be a whole number >= 2 .* got {n}$"):
        metrics.reference_stats(MeanColour(), "test", source="sample", num_images=n, verbose=False)
    with pytest.raises(CourseError, match=rf"^num_samples must be a whole number >= 2, got {n}$"):
        metrics.fid(ConstantG(0.0), reference, MeanColour(), num_samples=n)
    assert not list(tmp_path.iterdir())  # nothing computed, nothing cached


def test_inception_score_needs_two_samples_per_split():
    with pytest.raises(CourseError, match=r"^the Inception Score over 10 splits needs at least 20 samples .* "
                                          r"got 5: pass more samples or fewer splits"):
        metrics.inception_score_from_logits(torch.randn(5, 10))
    stats = FeatureStats(np.zeros(6), np.eye(6), 15, "meancolour", "generated", "G", logits=torch.randn(15, 10))
    with pytest.raises(CourseError, match=r"needs at least 20 samples"):
        metrics.inception_score(stats)
    with pytest.raises(CourseError, match=r"^splits must be a whole number >= 1, got 0"):
        metrics.inception_score_from_logits(torch.randn(40, 10), splits=0)
    # every split is used and holds >= 2 samples: 21 confident samples alternating between two
    # classes give nine splits of 2 (IS 2 each) and one of 3 (IS (3 * 1.5**2) ** (1/3))
    alternating = torch.eye(2)[torch.arange(21) % 2] * 50.0
    mean, _ = metrics.inception_score_from_logits(alternating, splits=10)
    assert mean == pytest.approx((9 * 2 + 6.75 ** (1 / 3)) / 10, rel=1e-6)


def test_mixed_feature_spaces_are_refused_by_intra_fd_too():
    labels = torch.arange(40) % 10
    a = metrics.stats_from_features(torch.randn(40, 6), labels, "meancolour", "generated", "x")
    b = metrics.stats_from_features(torch.randn(40, 6), labels, "inception-random", "train", "x")
    with pytest.raises(CourseError, match="same extractor"):
        metrics.intra_fid(a, b)


# Issue 27: a judge that cannot judge this generator is refused, not reported as a score


def test_label_fidelity_refuses_a_judge_of_other_classes_or_another_size():
    import pytest

    from cgan_course import metrics
    from cgan_course.errors import CourseError
    from cgan_course.models import ModelConfig, build_generator

    two = build_generator(ModelConfig(num_classes=2, g_width=8, z_dim=16)).eval()
    with pytest.raises(CourseError, match="the generator has 2 classes but the classifier judges 10"):
        metrics.label_fidelity(two, num_samples=20)
    big = build_generator(ModelConfig(image_size=128, g_width=8, z_dim=16)).eval()
    with pytest.raises(CourseError, match="the generator draws 128 px images but the classifier judges 32 px ones"):
        metrics.label_fidelity(big, num_samples=20)
