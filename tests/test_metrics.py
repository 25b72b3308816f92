"""Metrics pinned against closed forms and pytorch-fid; fast, offline, CPU."""
import urllib.error
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from cgan_course import metrics
from cgan_course.classifier import CLASSIFIER_FILE
from cgan_course.data import load_cifar10, to_unit_range
from cgan_course.errors import CourseError
from cgan_course.metrics import (FeatureExtractor, RunningStats, frechet_distance, inception_score_from_logits)


def random_spd(d: int, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    """Covariance of n random samples (rank-deficient when n <= d)."""
    x = rng.standard_normal((n or 4 * d, d)) @ rng.standard_normal((d, d))
    return np.cov(x, rowvar=False)


def pytorch_fid_value(mu1, s1, mu2, s2) -> float:
    from pytorch_fid.fid_score import calculate_frechet_distance

    with warnings.catch_warnings():  # pytorch-fid passes scipy's deprecated sqrtm(disp=False)
        warnings.simplefilter("ignore", DeprecationWarning)
        return float(calculate_frechet_distance(mu1, s1, mu2, s2))


# ----------------------------------------------------------------------------------------------
# Fréchet distance


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frechet_distance_matches_pytorch_fid(seed):
    rng = np.random.default_rng(seed)
    d = 24
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = random_spd(d, rng), random_spd(d, rng)
    expected = pytorch_fid_value(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(mu1, s1, mu2, s2, method="eigh") == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_near_singular_matches_pytorch_fid(capsys):
    rng = np.random.default_rng(3)
    d = 32
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = random_spd(d, rng, n=10), random_spd(d, rng, n=12)  # rank 9 and 11 in 32 dimensions
    expected = pytorch_fid_value(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(mu1, s1, mu2, s2, method="eigh") == pytest.approx(expected, rel=1e-5)


def test_frechet_distance_of_identical_stats_is_zero():
    rng = np.random.default_rng(4)
    mu, s = rng.standard_normal(16), random_spd(16, rng)
    for method in ("sqrtm", "eigh"):
        assert abs(frechet_distance(mu, s, mu, s, method=method)) < 1e-8 * np.trace(s)


def test_frechet_distance_shifted_mean_same_cov():
    rng = np.random.default_rng(5)
    mu, s, delta = rng.standard_normal(16), random_spd(16, rng), rng.standard_normal(16)
    assert frechet_distance(mu, s, mu + delta, s) == pytest.approx(delta @ delta, rel=1e-6, abs=1e-8)


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(6)
    a, b = rng.uniform(0.1, 3, 10), rng.uniform(0.1, 3, 10)
    mu1, mu2 = rng.standard_normal(10), rng.standard_normal(10)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    for method in ("sqrtm", "eigh"):
        assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b), method=method) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_rejects_bad_input():
    with pytest.raises(ValueError, match="same feature extractor"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="positive"):  # -I is no covariance: sqrtm(-I) = i I
        frechet_distance(np.zeros(3), -np.eye(3), np.zeros(3), np.eye(3))


# ----------------------------------------------------------------------------------------------
# Streaming statistics


def test_running_stats_equal_batch_stats():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1000, 12)) * rng.uniform(0.5, 3, 12) + 100.0  # a large mean tests stability
    stats = RunningStats(12)
    start = 0
    for size in [1, 0, 7, 300, 2, 513, 177]:  # uneven batches, an empty one included
        batch = x[start:start + size]
        stats.update(torch.from_numpy(batch) if size == 7 else batch)  # tensors and arrays both work
        start += size
    assert stats.count == 1000
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-10)
    np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False), rtol=1e-8, atol=1e-10)


def test_running_stats_rejects_wrong_width():
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        RunningStats(4).update(np.zeros((2, 5)))


# ----------------------------------------------------------------------------------------------
# Inception feature space (standard FID): plumbing with random weights, clear offline error


def test_inception_random_weights_end_to_end():
    """The benchmarks time the FID pipeline offline with random weights: same network, same
    shapes, a Fréchet distance that behaves as one, and statistics that never meet real ones."""
    torch.manual_seed(0)
    ext = metrics.InceptionFeatures(random_weights=True, batch_size=4)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    feats, logits = ext.features_and_logits(images)
    assert feats.shape == (6, 2048) and logits.shape == (6, 1008)
    assert torch.isfinite(feats).all() and (feats - feats[0]).abs().amax() > 0  # depends on the image
    feats = feats.double() / feats.std()  # float64: the shifted copy keeps the covariance exactly
    a = metrics.stats_from_features(feats, None, ext.name, "a", "random")
    shift = torch.linspace(-1, 1, 2048, dtype=torch.float64)
    b = metrics.stats_from_features(feats + shift, None, ext.name, "b", "random")
    trace = np.trace(a.cov)
    # d = 2048: the eigh path. A set against itself is 0; a shifted copy is |shift|^2 (same covariance)
    assert abs(float(metrics.fd_between(a, a))) < 1e-5 * trace
    assert float(metrics.fd_between(b, a)) == pytest.approx(float(shift @ shift), rel=1e-6, abs=1e-5 * trace)
    real = metrics.FeatureStats(a.mean, a.cov, a.count, "inception", "train", "cifar10")
    with pytest.raises(ValueError, match="inception features but the samples inception-random features"):
        metrics.fid(a, real)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No env var, an empty torch hub cache, and a download that fails like an offline machine."""
    monkeypatch.delenv(metrics.INCEPTION_ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)


def test_inception_without_weights_offline_explains_the_fix(offline):
    with pytest.raises(FileNotFoundError) as info:
        metrics.InceptionFeatures()
    message = str(info.value)
    assert metrics.INCEPTION_URL in message  # where to get it
    assert metrics.INCEPTION_ENV_VAR in message  # how to point at it
    assert "pt_inception-2015-12-05-6726825d.pth" in message and "checkpoints" in message  # where to put it
    assert "ClassifierFeatures" in message  # the offline alternative


def test_inception_env_var_pointing_nowhere(offline, monkeypatch, tmp_path):
    monkeypatch.setenv(metrics.INCEPTION_ENV_VAR, str(tmp_path / "missing.pth"))
    with pytest.raises(FileNotFoundError, match="missing.pth, which is not a file"):
        metrics.InceptionFeatures()


def test_inception_wrong_file_is_rejected(offline, tmp_path):
    fake = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save({"w": torch.zeros(1)}, fake)
    with pytest.raises(ValueError, match="not the FID Inception file"):
        metrics.InceptionFeatures(weights=fake)


# ----------------------------------------------------------------------------------------------
# Inception Score, reference cache, provenance


def test_inception_score_bounds():
    assert inception_score_from_logits(torch.zeros(100, 10))[0] == pytest.approx(1.0)  # no confidence
    confident = torch.eye(10).repeat(10, 1) * 50.0  # each image one class, all classes equally often
    assert inception_score_from_logits(confident, splits=1)[0] == pytest.approx(10.0, rel=1e-6)
    one_class = torch.zeros(100, 10)
    one_class[:, 3] = 50.0  # confident, but no diversity
    assert inception_score_from_logits(one_class)[0] == pytest.approx(1.0, abs=1e-6)


class MeanColour(FeatureExtractor):
    """A tiny extractor for plumbing tests: per-channel means and stds (6-d), no logits."""

    name, dim, fingerprint = "meancolour", 6, "v1"

    def __init__(self):
        self.calls = 0

    def _forward(self, x):
        self.calls += 1
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1), None


def test_reference_stats_are_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("CGAN_COURSE_CACHE", str(tmp_path))
    ext = MeanColour()
    first = metrics.reference_stats(ext, "test", source="sample", verbose=False)
    assert ext.calls > 0 and len(list(tmp_path.glob("refstats-meancolour-v1-sample-*-test-all-classes.npz"))) == 1
    calls = ext.calls
    second = metrics.reference_stats(ext, "test", source="sample")
    assert ext.calls == calls  # loaded from disk, not recomputed
    images, labels = load_cifar10(train=False, source="sample")
    feats = ext(images).double().numpy()
    np.testing.assert_allclose(second.mean, feats.mean(0), rtol=1e-6)
    np.testing.assert_allclose(second.cov, np.cov(feats, rowvar=False), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(second.class_mean[3], feats[labels.numpy() == 3].mean(0), rtol=1e-6)
    assert (second.split, second.data_source, second.count) == ("test", "committed 1,000-image sample", 1000)
    np.testing.assert_array_equal(first.cov, second.cov)


class RecordingG(nn.Module):
    """A stand-in generator that records the labels it is asked for."""

    z_dim, num_classes = 8, 10

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.seen = []

    def forward(self, z, y):
        self.seen.append(y.clone())
        return torch.tanh(z[:, :3, None, None].expand(-1, 3, 32, 32) * self.scale)


def test_generator_fd_is_class_balanced_seeded_and_labelled():
    from cgan_course.sampling import sample_latents

    ref = metrics.stats_from_features(torch.randn(500, 6), None, "meancolour", "test", "made up")
    G = RecordingG()
    score = metrics.fid(G, ref, MeanColour(), num_samples=200, seed=1, batch_size=64)
    assert torch.bincount(torch.cat(G.seen), minlength=10).tolist() == [20] * 10
    # the FD of the features of the images G draws from seed 1's latents, computed in one go
    feats = MeanColour()(G(sample_latents(200, G.z_dim, seed=1), torch.arange(200) % 10)).double().numpy()
    expected = frechet_distance(feats.mean(0), np.cov(feats, rowvar=False), ref.mean, ref.cov)
    assert score.num_samples == 200 and score.value == pytest.approx(expected, rel=1e-6)
    assert float(metrics.fid(RecordingG(), ref, MeanColour(), num_samples=200, seed=1, batch_size=64)) == score.value
    assert str(score) == (f"FD_meancolour = {score.value:.2f} (meancolour features, 200 samples vs test split "
                          "(500 images), made up)")
    assert score.as_dict()["reference_count"] == 500


def test_fd_refuses_mixed_feature_spaces():
    a = metrics.stats_from_features(torch.randn(50, 6), None, "meancolour", "test", "x")
    b = metrics.stats_from_features(torch.randn(50, 6), None, "classifier", "test", "x")
    with pytest.raises(ValueError, match="same extractor|one extractor"):
        metrics.fid(a, b)


# ----------------------------------------------------------------------------------------------
# Label fidelity and intra-class FD with the committed classifier


needs_classifier = pytest.mark.skipif(not CLASSIFIER_FILE.is_file(),
                                      reason="data/pretrained/classifier.pt is not committed yet")


class FromImagesG(nn.Module):
    """A fake generator drawing real test images. ``ignore_labels``: a random class's image
    whatever y asks for; otherwise the next image of the requested class (each used once)."""

    z_dim, num_classes = 4, 10

    def __init__(self, images, labels, ignore_labels: bool):
        super().__init__()
        self.x = images.float() / 127.5 - 1
        self.by_class = [torch.nonzero(labels == c).squeeze(1) for c in range(10)]
        self.next = [0] * 10
        self.ignore_labels = ignore_labels
        self.g = torch.Generator().manual_seed(0)

    def forward(self, z, y):
        if self.ignore_labels:
            return self.x[torch.randint(0, len(self.x), (len(y),), generator=self.g)]
        idx = []
        for c in y.tolist():
            idx.append(self.by_class[c][self.next[c] % len(self.by_class[c])])
            self.next[c] += 1
        return self.x[torch.stack(idx)]


@pytest.fixture(scope="module")
def sample_test():
    return load_cifar10(train=False, source="sample")


@needs_classifier
def test_label_fidelity_chance_for_a_label_blind_generator(sample_test):
    clf = metrics.ClassifierFeatures()
    score = metrics.label_fidelity(FromImagesG(*sample_test, ignore_labels=True), clf, num_samples=1000)
    assert abs(score.value - 0.10) < 0.05
    assert score.details["confusion"].sum() == 1000 and score.details["confusion"].shape == (10, 10)


@needs_classifier
def test_label_fidelity_of_a_perfect_generator_is_the_classifier_accuracy(sample_test):
    from cgan_course.classifier import accuracy, load_classifier

    images, labels = sample_test
    clf = metrics.ClassifierFeatures()
    stats = metrics.generator_stats(FromImagesG(images, labels, ignore_labels=False), clf, num_samples=1000)
    score = metrics.label_fidelity(stats)
    assert score.value == pytest.approx(accuracy(load_classifier(), images, labels, tta=False), abs=0.005)
    assert score.value > 0.8 and "chance 10%" in str(score)
    # the same 1,000 images as the reference: FD and intra-class FD vanish
    ref = metrics.image_stats(images, clf, labels, split="test", data_source="sample")
    assert float(metrics.fid(stats, ref)) < 1e-3 * np.trace(ref.cov)
    blind = metrics.generator_stats(FromImagesG(images, labels, ignore_labels=True), clf, num_samples=1000)
    assert float(metrics.intra_fid(stats, ref)) < 0.01 * float(metrics.intra_fid(blind, ref))


def test_wilson_interval_matches_the_textbook_values():
    """Reference values from the closed form (Wilson 1927), as tabulated e.g. by Newcombe (1998)."""
    low, high = metrics.wilson_interval(0.5, 100)
    assert (round(low, 4), round(high, 4)) == (0.4038, 0.5962)
    low, high = metrics.wilson_interval(0.0, 10)  # never below 0, unlike the normal approximation
    assert low == pytest.approx(0.0, abs=1e-12) and round(high, 4) == 0.2775
    with pytest.raises(ValueError, match="n must be positive"):
        metrics.wilson_interval(0.5, 0)


def test_label_fidelity_with_a_judge_of_other_classes():
    """Any K-class classifier can judge (notebook 08 trains one on your own data): chance is 1/K."""
    from cgan_course.classifier import Classifier, ClassifierConfig

    torch.manual_seed(0)
    judge = Classifier(ClassifierConfig(widths=(8, 8, 8), num_classes=4)).eval()
    images = torch.randint(0, 256, (40, 3, 64, 64), dtype=torch.uint8)
    labels = torch.arange(40) % 4
    score = metrics.label_fidelity(images, metrics.ClassifierFeatures(judge), labels=labels)
    predicted = judge(to_unit_range(images)).argmax(1)
    assert score.value == pytest.approx((predicted == labels).float().mean().item())
    assert score.details["confusion"].shape == (4, 4) and score.details["chance"] == 0.25
    assert "chance 25%" in str(score)


# ----------------------------------------------------------------------------------------------
# Issue 24: class control (does the class decide the picture?) and diversity within a class


class PickG(nn.Module):
    """A fake generator drawing real test images, picked by z and (unless ``ignore``) by y.
    ``ignore="y"``: the image depends on z only; ``ignore="z"``: on y only (one picture per class)."""

    z_dim, num_classes = 4, 10

    def __init__(self, images, labels, ignore: str | None = None):
        super().__init__()
        self.x = images.float() / 127.5 - 1
        self.by_class = [torch.nonzero(labels == c).squeeze(1) for c in range(10)]
        self.ignore = ignore

    def forward(self, z, y):
        pick = (z[:, 0].abs() * 1e4).long()  # (B,): a function of z alone
        if self.ignore == "y":
            return self.x[pick % len(self.x)]
        if self.ignore == "z":
            pick = torch.zeros_like(pick)
        return self.x[torch.stack([self.by_class[c][p % len(self.by_class[c])] for c, p in zip(y.tolist(), pick)])]


@needs_classifier
def test_class_control_is_zero_for_a_class_blind_generator_and_high_for_an_obedient_one(sample_test):
    clf = metrics.ClassifierFeatures()
    blind = metrics.class_control(PickG(*sample_test, ignore="y"), clf, num_latents=40)
    assert len(blind["pairs"]) == 8 and blind["mean_gap"] == 0.0
    assert all(r["p_b_given_a"] == r["p_b_given_b"] for r in blind["pairs"].values())
    obedient = metrics.class_control(PickG(*sample_test), clf, num_latents=40)
    # real images of the asked class: P(B) as the classifier gives it on real test images
    assert obedient["min_p_b_given_b"] > 0.5 and obedient["max_p_b_given_a"] < 0.2 and obedient["mean_gap"] > 0.6
    one = obedient["pairs"]["truck -> bird"]
    assert one["p_b_given_b"] - one["p_b_given_b_ci95"] > one["p_b_given_a"] + one["p_b_given_a_ci95"]


@needs_classifier
def test_class_recall_is_zero_for_a_generator_that_ignores_z(sample_test):
    clf = metrics.ClassifierFeatures()
    real = load_cifar10(train=True, source="sample")  # other images than the ones the fakes draw
    collapsed = metrics.class_recall(PickG(*sample_test, ignore="z"), clf, *real, per_class=40, k=3)
    assert collapsed["recall"] == 0.0 and collapsed["per_class_recall"] == [0.0] * 10
    varied = metrics.class_recall(PickG(*sample_test), clf, *real, per_class=40, k=3)
    assert varied["recall"] > 0.3 and varied["precision"] > 0.5, varied  # real images of the class
    with pytest.raises(CourseError, match=r"k must be in \[2, per_class\)"):
        metrics.class_recall(PickG(*sample_test), clf, *sample_test, per_class=3, k=3)


@needs_classifier
def test_paired_label_fidelity_of_a_generator_with_itself_is_exactly_zero_and_finds_a_real_gap(sample_test):
    clf = metrics.ClassifierFeatures()
    obedient, blind = PickG(*sample_test), PickG(*sample_test, ignore="y")
    same = metrics.paired_label_fidelity(obedient, obedient, clf, num_samples=60)
    assert same["difference"] == 0.0 and same["ci95"] == (0.0, 0.0) and same["a_only"] == same["b_only"] == 0
    gap = metrics.paired_label_fidelity(blind, obedient, clf, num_samples=60)
    assert gap["ci95"][0] > 0.3 and gap["b_only"] > gap["a_only"]  # real images of the class beat random ones


def test_a_confusion_matrix_is_read_aloud_from_its_own_numbers():
    C = np.array([[169, 48, 5, 28], [1, 249, 0, 0], [4, 123, 117, 6], [62, 24, 2, 162]])  # notebook 08's kind
    best, worst, both = metrics.read_confusion(C, ["automobile", "frog", "horse", "ship"])
    assert best == "best: frog, judged right 249 times of 250"
    assert worst == "worst: horse, judged right 117 times of 250; taken for frog 123 times"
    # frog/horse is confused one way only (0 frogs judged horse): automobile/ship is the pair both ways
    assert both == "confused both ways most: automobile and ship (28 automobile judged ship, 62 ship judged automobile)"
    assert metrics.read_confusion(torch.tensor([[3, 1], [2, 2]]), ["a", "b"])[2].endswith("(1 a judged b, 2 b judged a)")
    for bad, names in ((np.ones((2, 3)), ["a", "b"]), (np.ones((2, 2)), ["a"]), (np.ones((1, 1)), ["a"])):
        with pytest.raises(CourseError, match="read_confusion needs a K x K matrix"):
            metrics.read_confusion(bad, names)
