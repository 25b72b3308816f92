"""Measuring a conditional GAN: Fréchet distance (FID), intra-class FD, Inception Score and
label fidelity, each returned with its provenance.

The Fréchet distance compares two clouds of image features through their Gaussian fits:

    FD = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))

where (S1 S2)^(1/2) is the *matrix* square root. The number depends on the feature space, the
sample count and the reference set, so every score here is a ``Score`` that carries them:
``FD_classifier = 12.3 (classifier features, 10,000 samples vs train split, cifar10-jpg mirror)``.

Two feature spaces behind one interface (``FeatureExtractor``):

* ``ClassifierFeatures``: the course classifier's penultimate layer (256-d), offline and fast on
  a CPU. Numbers in this space are *not* comparable with published FIDs.
* ``InceptionFeatures``: the standard FID network (pytorch-fid's InceptionV3, pool3, 2048-d).
  Its weights come from a local file (argument or ``$CGAN_COURSE_INCEPTION_WEIGHTS``), torch's
  hub cache, or a download when online; published FIDs use this space (and 50,000 samples).

Reference statistics of a CIFAR-10 split are computed once and cached as ``.npz`` under
``data/.cgan_cache`` (or ``$CGAN_COURSE_CACHE``), keyed by extractor, weights, split and the data's
file list (each file's path, size and mtime), so adding or rewriting an image recomputes them.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from scipy import linalg

from .errors import CourseError, MissingFile
from .data import (CACHE_ENV_VAR, ENV_VAR, REPO_ROOT, SAMPLE_ROOT, describe_source, load_cifar10, resolve_source,
                   to_unit_range)
from .checkpoints import sha256
from .classifier import CLASSIFIER_FILE, load_classifier, probabilities
from .sampling import class_index, generate, interpolate_classes, sample_latents

INCEPTION_ENV_VAR = "CGAN_COURSE_INCEPTION_WEIGHTS"
INCEPTION_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                 "pt_inception-2015-12-05-6726825d.pth")
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_SHA256_PREFIX = "6726825d"  # pytorch-fid names the file after its hash


# ----------------------------------------------------------------------------------------------
# The Fréchet distance


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6, method: str = "sqrtm") -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2): means ``[d]``, covariances ``[d, d]``.

    ``||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 @ sigma2))``, computed in float64.

    ``method="sqrtm"`` (default) is pytorch-fid's computation: ``scipy.linalg.sqrtm`` of the
    product; when the product is near-singular (sqrtm not finite) ``eps * I`` is added to both
    covariances; round-off leaves a tiny imaginary part, which is dropped (a large one means the
    inputs are not covariance matrices, and raises ValueError). ``method="eigh"`` gives the same
    trace from two symmetric eigendecompositions, Tr sqrtm(S1 S2) = sum sqrt(eig(A S2 A)) with
    A = S1^(1/2): symmetric eigensolvers are much cheaper than sqrtm's Schur decomposition of a
    non-symmetric matrix, which matters at d = 2048 (Inception). ``method="auto"`` uses sqrtm up
    to d = 512, eigh above. Non-finite inputs (a diverged generator) raise at once: sqrtm would
    spend minutes on a NaN matrix.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0],) * 2:
        raise CourseError(f"shapes do not match: mu1 {mu1.shape}, sigma1 {sigma1.shape}, mu2 {mu2.shape}, "
                         f"sigma2 {sigma2.shape}; both sides need the same feature extractor (same d).")
    for name, a in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(a).all():
            raise CourseError(f"{name} has {int((~np.isfinite(a)).sum())} NaN/inf entries: the statistics come "
                              "from non-finite features (a diverged generator?); recompute them from finite ones.")
    if method == "auto":
        method = "sqrtm" if mu1.shape[0] <= 512 else "eigh"
    diff = mu1 - mu2
    if method == "eigh":
        return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * _trace_sqrt_product(sigma1, sigma2))
    if method != "sqrtm":
        raise CourseError(f"method must be 'sqrtm', 'eigh' or 'auto', got {method!r}")
    with warnings.catch_warnings():  # singular products are expected (few samples); handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():  # singular product (e.g. fewer samples than dimensions)
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise CourseError(f"sqrtm(sigma1 @ sigma2) has a large imaginary part "
                             f"({np.abs(covmean.imag).max():.3g}): the covariances are not positive "
                             "semi-definite. Pass covariance matrices (e.g. RunningStats.cov).")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr sqrtm(S1 S2) for PSD S1, S2: S1 S2 is similar to A S2 A (A = S1^(1/2)), a PSD matrix,
    so its eigenvalues are real and >= 0 and the trace of the root is the sum of their roots."""
    w, v = np.linalg.eigh(sigma1)
    if w.min() < -1e-6 * max(1.0, abs(w.max())):
        raise CourseError(f"sigma1 has a negative eigenvalue ({w.min():.3g}): not a covariance matrix.")
    a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # S1^(1/2)
    mu = np.linalg.eigvalsh(a @ sigma2 @ a)
    if mu.min() < -1e-6 * max(1.0, abs(mu.max())):
        raise CourseError(f"sigma2 is not positive semi-definite (eigenvalue {mu.min():.3g} of A S2 A).")
    return float(np.sqrt(np.clip(mu, 0, None)).sum())


class RunningStats:
    """Streaming mean and covariance of ``[N, dim]`` features in float64 (Chan et al.'s merge).

    ``update`` takes one batch at a time, so 50,000 Inception features (400 MB) never sit in
    memory together. ``cov`` is the unbiased estimate, like ``np.cov(x, rowvar=False)``.
    """

    def __init__(self, dim: int):
        self.dim = dim
        self.count = 0
        self._mean = np.zeros(dim)
        self._m2 = np.zeros((dim, dim))  # sum of outer products of centred features

    def update(self, features: torch.Tensor | np.ndarray) -> "RunningStats":
        x = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else np.asarray(features, np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise CourseError(f"features must be [N, {self.dim}], got {list(x.shape)}")
        bad = int((~np.isfinite(x).all(1)).sum())
        if bad:  # one NaN row would turn every statistic, and the FD, into NaN
            raise CourseError(f"{bad} of {x.shape[0]} feature rows contain NaN or inf (a diverged generator or "
                              "extractor?): the statistics need finite features; score finite samples.")
        n_b = x.shape[0]
        if n_b == 0:
            return self
        mean_b = x.mean(0)
        xc = x - mean_b
        n = self.count + n_b
        delta = mean_b - self._mean
        self._m2 += xc.T @ xc + np.outer(delta, delta) * (self.count * n_b / n)
        self._mean += delta * (n_b / n)
        self.count = n
        return self

    @property
    def mean(self) -> np.ndarray:
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        if self.count < 2:
            raise CourseError(f"a covariance needs at least 2 samples, got {self.count}")
        return self._m2 / (self.count - 1)


# ----------------------------------------------------------------------------------------------
# Feature extractors


class FeatureExtractor:
    """Images -> features. ``__call__`` takes uint8 ``[N, 3, H, W]`` or finite floats in [-1, 1]
    (anything else raises) and returns float32 features ``[N, dim]``, in batches;
    ``features_and_logits`` also returns class logits ``[N, K]`` when the network has a classifier
    head (for the Inception Score)."""

    name: str = "features"
    dim: int = 0
    fingerprint: str = ""  # identifies the weights; part of the reference-statistics cache key
    batch_size: int = 250

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One batch ``x [B, 3, H, W]`` in [-1, 1] -> (features [B, dim], logits [B, K] or None)."""
        raise NotImplementedError

    @torch.no_grad()
    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise CourseError(f"expected images [N, 3, H, W], got {list(images.shape)}")
        if images.dtype != torch.uint8:
            _check_unit_range(images)
        feats, logits = [], []
        for i in range(0, images.shape[0], self.batch_size):
            x = images[i:i + self.batch_size]
            x = to_unit_range(x) if x.dtype == torch.uint8 else x.float().clamp(-1, 1)  # clips round-off only
            f, l = self._forward(x)
            feats.append(f.float().cpu())
            if l is not None:
                logits.append(l.float().cpu())
        f = torch.cat(feats) if feats else torch.zeros(0, self.dim)
        return f, (torch.cat(logits) if logits else None)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(images)[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


def _check_unit_range(images: torch.Tensor, tolerance: float = 1e-2) -> None:
    """Float images ``[N, 3, H, W]`` must be finite and within [-1, 1] (+- ``tolerance``): NaN means a
    diverged generator, and pixels in [0, 255] cast to float would otherwise be clamped to +-1
    and scored as a meaningless number."""
    bad = int((~torch.isfinite(images).flatten(1).all(1)).sum())
    if bad:
        raise CourseError(f"{bad} of {images.shape[0]} images contain NaN or inf (a diverged generator?): "
                          "score finite images, e.g. from an earlier checkpoint.")
    if images.numel():
        lo, hi = images.min().item(), images.max().item()
        if lo < -1 - tolerance or hi > 1 + tolerance:
            raise CourseError(f"float images must be in [-1, 1] (a tanh generator's range), got values in "
                              f"[{lo:.4g}, {hi:.4g}]: pass uint8 images in [0, 255] as they are, or scale "
                              "floats in [0, 255] with x / 127.5 - 1.")


class ClassifierFeatures(FeatureExtractor):
    """The course classifier's penultimate layer (256-d) and its 10 logits. Offline, fast on a CPU."""

    name = "classifier"

    def __init__(self, model: nn.Module | None = None, device: str | torch.device = "cpu", batch_size: int = 250):
        self.model = (model if model is not None else load_classifier(device)).eval()
        self.device = next(self.model.parameters()).device
        if self.device.type == "cpu":  # channels-last convolutions are faster on x86 CPUs (docs/RESULTS.md: throughput)
            self.model = self.model.to(memory_format=torch.channels_last)
        self.dim = self.model.feature_dim
        self.batch_size = batch_size
        self.fingerprint = sha256(CLASSIFIER_FILE)[:12] if model is None else _weights_digest(self.model)
        # the image size the judge was trained at: CIFAR-10's for the committed one; unknown for yours
        self.image_size = 32 if model is None else getattr(model, "image_size", None)

    def _forward(self, x):
        x = x.to(self.device)
        if self.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        f = self.model.features(x)
        return f, self.model.head(f) * self.model.cfg.logit_scale

    def probabilities(self, images: torch.Tensor, calibrated: bool = True) -> torch.Tensor:
        """Class probabilities ``[N, K]``: ``softmax(logits / T)`` with the temperature fitted on held-out
        images and recorded on the classifier's card (``classifier.calibrate``), or the raw softmax."""
        logits = self.features_and_logits(images)[1]
        return probabilities(self.model, logits) if calibrated else torch.softmax(logits, dim=1)


def _weights_digest(model: nn.Module) -> str:
    """A short hash of a model's weights: reference statistics cached for other weights never match."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:12]


class InceptionFeatures(FeatureExtractor):
    """The standard FID feature space: pytorch-fid's InceptionV3 pool3 features (2048-d), the
    input resized to 299x299, plus the network's 1008 logits for the Inception Score.

    Weights, first found wins: ``weights`` (a path), ``$CGAN_COURSE_INCEPTION_WEIGHTS``, torch's
    hub cache, a download (online only; fails within seconds offline, with instructions).

    ``random_weights=True`` builds the same network untrained, so the benchmarks
    (``benchmarks/eval_throughput.py``, ``benchmarks/memory.py``) can time and size the FID
    pipeline offline: its cost does not depend on the weights. Such an extractor is named
    ``"inception-random"``, so its statistics are never compared with real Inception ones.
    """

    name = "inception"
    dim = 2048

    def __init__(self, weights: str | Path | None = None, device: str | torch.device = "cpu",
                 batch_size: int = 50, random_weights: bool = False, download_timeout: float = 10.0):
        from pytorch_fid import inception as pf

        state = _random_inception_state() if random_weights else _inception_state(weights, download_timeout)
        with _patched(pf, "load_state_dict_from_url", lambda *args, **kwargs: state):
            net = pf.InceptionV3([pf.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True, normalize_input=False)
        self.net = net.to(device).eval()
        self.fc = nn.Linear(2048, state["fc.weight"].shape[0]).to(device)  # 1008-way head: for the IS
        self.fc.load_state_dict({"weight": state["fc.weight"], "bias": state["fc.bias"]})
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.random_weights = random_weights
        self.name = "inception-random" if random_weights else "inception"
        self.fingerprint = "random-seed0" if random_weights else INCEPTION_SHA256_PREFIX

    def _forward(self, x):
        f = self.net(x.to(self.device))[0].flatten(1)  # pool3: (B, 2048, 1, 1) -> (B, 2048)
        return f, self.fc(f)


@contextlib.contextmanager
def _patched(module, name: str, value):
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def _inception_help(problem: str) -> str:
    return (f"{problem}\nThe FID Inception weights ({INCEPTION_FILE}, 91 MB) are needed. Get the file on a "
            f"machine with internet:\n  {INCEPTION_URL}\nthen either put it in torch's hub cache "
            f"({Path(torch.hub.get_dir()) / 'checkpoints' / INCEPTION_FILE}), or anywhere and set "
            f"{INCEPTION_ENV_VAR}=/path/to/{INCEPTION_FILE} (or pass InceptionFeatures(weights=path)). "
            "Offline without the file, use ClassifierFeatures() (the course's offline feature space).")


def _inception_state(weights: str | Path | None, timeout: float) -> dict:
    """Find the FID Inception state dict: argument, env var, hub cache, then a (fast-failing) download."""
    candidates = [(Path(weights), "the weights argument")] if weights is not None else []
    if os.environ.get(INCEPTION_ENV_VAR):
        candidates.append((Path(os.environ[INCEPTION_ENV_VAR]), f"${INCEPTION_ENV_VAR}"))
    for path, origin in candidates:
        if not path.is_file():
            raise MissingFile(_inception_help(f"{origin} points at {path}, which is not a file."))
        return _load_inception_file(path)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    if cached.is_file():
        return _load_inception_file(cached)
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # a blackholed network must not hang for minutes
    try:
        torch.hub.load_state_dict_from_url(INCEPTION_URL, progress=False, check_hash=True)
    except Exception as err:
        raise MissingFile(_inception_help(
            f"could not download the Inception weights ({type(err).__name__}: {err}); offline?")) from None
    finally:
        socket.setdefaulttimeout(old_timeout)
    return _load_inception_file(cached)


def _load_inception_file(path: Path) -> dict:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(INCEPTION_SHA256_PREFIX):
        raise CourseError(_inception_help(f"{path} is not the FID Inception file (sha256 {digest[:8]}..., "
                                         f"expected {INCEPTION_SHA256_PREFIX}...)."))
    return torch.load(path, map_location="cpu", weights_only=True)


def _random_inception_state(seed: int = 0) -> dict:
    """A randomly initialised state dict with the FID Inception's keys and shapes."""
    import torchvision

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=True)
    return net.state_dict()


# ----------------------------------------------------------------------------------------------
# Statistics of a set of images, with provenance


@dataclass
class FeatureStats:
    """Gaussian fit of a set of features plus where it came from.

    ``class_mean [C, d]`` / ``class_cov [C, d, d]`` / ``class_count [C]`` are present when labels
    were known (per-class FD). ``logits [N, K]`` and ``labels [N]`` are kept for generated sets
    (Inception Score, label fidelity); cached reference statistics do not store them.
    ``image_size`` ``(H, W)`` of the images behind the features (None: features given directly);
    an FD between two known, different sizes is refused.
    """

    mean: np.ndarray
    cov: np.ndarray
    count: int
    extractor: str
    split: str  # "train" / "test" for CIFAR-10, "generated" or "images" otherwise
    data_source: str  # e.g. "cifar10-jpg mirror", or a description of the generator
    class_mean: np.ndarray | None = None
    class_cov: np.ndarray | None = None
    class_count: np.ndarray | None = None
    logits: torch.Tensor | None = field(default=None, repr=False)
    labels: torch.Tensor | None = field(default=None, repr=False)
    image_size: tuple[int, int] | None = None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"mean": self.mean, "cov": self.cov, "count": np.int64(self.count),
                  "extractor": np.str_(self.extractor), "split": np.str_(self.split),
                  "data_source": np.str_(self.data_source)}
        if self.class_mean is not None:
            arrays.update(class_mean=self.class_mean, class_cov=self.class_cov, class_count=self.class_count)
        if self.image_size is not None:
            arrays["image_size"] = np.asarray(self.image_size, np.int64)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)  # atomic: an interrupted run never leaves half a cache file
        return path

    @classmethod
    def load(cls, path: str | Path) -> "FeatureStats":
        with np.load(path, allow_pickle=False) as z:
            extra = {k: z[k] for k in ("class_mean", "class_cov", "class_count") if k in z}
            if "image_size" in z:
                extra["image_size"] = tuple(int(v) for v in z["image_size"])
            return cls(mean=z["mean"], cov=z["cov"], count=int(z["count"]), extractor=str(z["extractor"]),
                       split=str(z["split"]), data_source=str(z["data_source"]), **extra)


def _resolve_source(source: str, root, split: str) -> tuple[str, Path | None]:
    if source != "auto":
        if source == "folder" and root is None and os.environ.get(ENV_VAR):
            root = os.environ[ENV_VAR]  # read the same way as load_cifar10 does
        return source, Path(root).expanduser() if root is not None else None
    return resolve_source(root, train=split == "train")


def stats_from_features(features: torch.Tensor, labels: torch.Tensor | None, extractor: str, split: str,
                        data_source: str, num_classes: int = 10, logits: torch.Tensor | None = None) -> FeatureStats:
    """``FeatureStats`` of features ``[N, d]`` (with per-class statistics when ``labels [N]`` is given)."""
    stats = RunningStats(features.shape[1]).update(features)
    out = FeatureStats(stats.mean, stats.cov, stats.count, extractor, split, data_source, logits=logits, labels=labels)
    if labels is not None:
        _add_class_stats(out, [RunningStats(features.shape[1]).update(features[labels == c]) for c in range(num_classes)])
    return out


def _add_class_stats(out: FeatureStats, per_class: list[RunningStats]) -> None:
    if all(s.count >= 2 for s in per_class):
        out.class_mean = np.stack([s.mean for s in per_class])
        out.class_cov = np.stack([s.cov for s in per_class])
        out.class_count = np.array([s.count for s in per_class])


def image_stats(images: torch.Tensor, extractor: FeatureExtractor, labels: torch.Tensor | None = None,
                split: str = "images", data_source: str = "images") -> FeatureStats:
    """Feature statistics of images ``[N, 3, H, W]`` (uint8 or [-1, 1]), keeping the logits;
    with ``labels [N]`` also per-class statistics (intra-class FD, label fidelity)."""
    feats, logits = extractor.features_and_logits(images)
    stats = stats_from_features(feats, labels, extractor.name, split, data_source, logits=logits)
    stats.image_size = tuple(images.shape[-2:])
    return stats


def cache_dir() -> Path:
    return Path(os.environ[CACHE_ENV_VAR]) if os.environ.get(CACHE_ENV_VAR) else REPO_ROOT / "data" / ".cgan_cache"


def reference_stats(extractor: FeatureExtractor, split: str = "train", source: str = "auto",
                    root: str | os.PathLike | None = None, num_images: int | None = None,
                    per_class: bool | None = None, cache: bool = True, verbose: bool = True) -> FeatureStats:
    """Feature statistics of a CIFAR-10 split, computed once and cached on disk.

    ``num_images`` (>= 2) takes a fixed random subset (seed 0) instead of the whole split. The
    cache file (``refstats-<extractor>-<weights>-<data>-<split>-<n>.npz`` under
    ``data/.cgan_cache`` or ``$CGAN_COURSE_CACHE``) is keyed by all of these, ``<data>`` naming
    the source and hashing its file list, sizes and mtimes, so changing any of them recomputes.
    ``per_class`` (default: when dim <= 512) adds per-class statistics for intra-class FD.
    """
    if split not in ("train", "test"):
        raise CourseError(f"split must be 'train' or 'test', got {split!r}")
    if num_images is not None and not (isinstance(num_images, (int, np.integer)) and num_images >= 2):
        raise CourseError(f"num_images must be a whole number >= 2 (a covariance needs two images), or None "
                          f"for the whole split; got {num_images!r}")
    source, root = _resolve_source(source, root, split)
    data_source = describe_source(source, root)
    per_class = extractor.dim <= 512 if per_class is None else per_class
    path = None
    if cache:
        data_key = _data_fingerprint(source, root, split)
        path = cache_dir() / (f"refstats-{extractor.name}-{extractor.fingerprint}-{data_key}-{split}-"
                              f"{num_images or 'all'}{'-classes' if per_class else ''}.npz")
        if path.is_file():
            return FeatureStats.load(path)
    images, labels = load_cifar10(root, train=split == "train", source=source)
    if num_images is not None and num_images < len(labels):
        keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:num_images]
        images, labels = images[keep], labels[keep]
    t0 = time.time()
    per = [RunningStats(extractor.dim) for _ in range(10)] if per_class else []
    total = RunningStats(extractor.dim)
    chunk = 2000  # features are folded into the running statistics chunk by chunk
    for i in range(0, len(labels), chunk):
        feats = extractor(images[i:i + chunk])
        total.update(feats)
        for c, s in enumerate(per):
            s.update(feats[labels[i:i + chunk] == c])
    stats = FeatureStats(total.mean, total.cov, total.count, extractor.name, split, data_source,
                         image_size=tuple(images.shape[-2:]))
    if per_class:
        _add_class_stats(stats, per)
    if verbose:
        print(f"reference statistics: {extractor.name} features of {total.count:,} {split} images "
              f"({data_source}) in {time.time() - t0:.0f} s" + (f", cached at {path}" if path else ""))
    if path is not None:
        try:
            stats.save(path)
        except OSError:
            pass  # a read-only disk only costs the recomputation next time
    return stats


def _data_fingerprint(source: str, root: Path | None, split: str) -> str:
    """``<source>[-<folder name>]-<hash>`` of the files ``load_cifar10`` reads for ``split``: the
    hash covers each file's relative path, size and mtime (stat only, no reads; cheap even for
    CIFAR-10's 60,000 JPEGs), so an image added, removed or rewritten anywhere changes the key."""
    if source == "sample":
        root = SAMPLE_ROOT
    elif root is None:
        root = REPO_ROOT / "data"  # load_cifar10's default root
    if not root.exists():
        raise CourseError(f"the data root {root} does not exist: fix the path (--data-root), or leave it out "
                          "to use $CGAN_COURSE_CIFAR10 or the committed sample")
    if source == "torchvision":
        files = root / "cifar-10-batches-py"
    else:  # a class-folder tree (its split folder, when it has one) or a .tar.gz
        files = root / split if (root / split).is_dir() else root
    listing = "".join(f"{rel}|{st.st_size}|{st.st_mtime_ns}\n" for rel, st in _stat_files(files))
    h = hashlib.sha1(f"{files.resolve()}\n{listing}".encode())
    name = source if source in ("sample", "torchvision") else f"{source}-{root.name.split('.')[0]}"
    return f"{name}-{h.hexdigest()[:10]}"


def _stat_files(path: Path) -> list[tuple[str, os.stat_result]]:
    """``(relative path, stat)`` of ``path`` (a file) or of every file below it, in sorted order,
    skipping hidden names as the loaders do (the image cache lives in a hidden folder)."""
    if path.is_file():
        return [(path.name, path.stat())]
    found = []
    pending = [(path, "")]
    while pending:
        folder, prefix = pending.pop()
        with os.scandir(folder) as entries:
            for entry in sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name):
                if entry.is_dir():
                    pending.append((entry.path, f"{prefix}{entry.name}/"))
                else:
                    found.append((prefix + entry.name, entry.stat()))
    return sorted(found, key=lambda item: item[0])


def generator_stats(G: nn.Module, extractor: FeatureExtractor, num_samples: int = 10_000, seed: int = 0,
                    truncation: float | None = None, batch_size: int = 500, per_class: bool = True,
                    description: str = "generator") -> FeatureStats:
    """Feature statistics of ``num_samples`` images from ``G`` with class-balanced labels.

    Labels are ``num_samples / num_classes`` of each class (the remainder spread over the first
    classes); latents come from ``seed``. Features stream into running statistics batch by batch;
    only the logits ``[N, K]`` and labels ``[N]`` are kept (for IS and label fidelity).
    """

    for name, value, least in (("num_samples", num_samples, 2), ("batch_size", batch_size, 1)):
        if not (isinstance(value, (int, np.integer)) and value >= least):
            raise CourseError(f"{name} must be a whole number >= {least}, got {value!r}")
    num_classes = G.num_classes or 0
    # class-balanced and interleaved (0, 1, ..., 9, 0, ...): every IS split sees every class
    y = torch.arange(num_samples) % num_classes if num_classes else None
    z = sample_latents(num_samples, G.z_dim, seed, truncation)
    total = RunningStats(extractor.dim)
    per = [RunningStats(extractor.dim) for _ in range(num_classes)] if per_class and num_classes else []
    logits = []
    image_size = None
    was_training = G.training
    G.eval()
    try:
        for i in range(0, num_samples, batch_size):
            yi = y[i:i + batch_size] if y is not None else None
            x_fake = generate(G, z[i:i + batch_size], yi, batch_size)
            image_size = tuple(x_fake.shape[-2:])
            feats, lg = extractor.features_and_logits(x_fake)
            total.update(feats)
            for c, s in enumerate(per):
                s.update(feats[yi == c])
            if lg is not None:
                logits.append(lg)
    finally:
        G.train(was_training)
    stats = FeatureStats(total.mean, total.cov, total.count, extractor.name, "generated", description,
                         logits=torch.cat(logits) if logits else None, labels=y, image_size=image_size)
    if per:
        _add_class_stats(stats, per)
    return stats


# ----------------------------------------------------------------------------------------------
# Scores with provenance


@dataclass
class Score:
    """A number and what it was measured with. ``str(score)`` gives the provenance line."""

    metric: str  # "FD", "intra-FD", "IS", "label accuracy"
    value: float
    extractor: str  # feature space / judge: "classifier", "inception", ...
    num_samples: int
    reference_split: str | None = None  # "train", "test" or None (IS, label accuracy)
    data_source: str | None = None  # e.g. "cifar10-jpg mirror"
    details: dict = field(default_factory=dict, repr=False)  # per-class values, std, confusion matrix
    reference_count: int | None = None  # images behind the reference statistics

    def __float__(self) -> float:
        return float(self.value)

    def __str__(self) -> str:
        if self.metric in ("FD", "intra-FD"):
            n_ref = f" ({self.reference_count:,} images)" if self.reference_count else ""
            ref = f" vs {self.reference_split} split{n_ref}, {self.data_source}" if self.reference_split else ""
            return (f"{self.metric}_{self.extractor} = {self.value:.2f} ({self.extractor} features, "
                    f"{self.num_samples:,} samples{ref})")
        if self.metric == "IS":
            std = f" ± {self.details['std']:.2f}" if "std" in self.details else ""
            return (f"IS_{self.extractor} = {self.value:.2f}{std} ({self.extractor} logits, {self.num_samples:,} "
                    f"samples, {self.details.get('splits', 10)} splits)")
        chance = self.details.get("chance", 0.1)
        return (f"{self.metric} = {self.value:.1%} (judged by the {self.extractor}, {self.num_samples:,} samples, "
                f"chance {chance:.0%})")

    def as_dict(self) -> dict:
        return {"metric": self.metric, "value": self.value, "extractor": self.extractor,
                "num_samples": self.num_samples, "reference_split": self.reference_split,
                "reference_count": self.reference_count, "data_source": self.data_source}


def _as_stats(source, extractor: FeatureExtractor | None, num_samples: int, labels: torch.Tensor | None,
              **kwargs) -> FeatureStats:
    """A generator, a tensor of images or ready ``FeatureStats`` -> ``FeatureStats``."""
    if isinstance(source, FeatureStats):
        return source
    if extractor is None:
        raise CourseError("pass a feature extractor (e.g. metrics.ClassifierFeatures()) to score a generator or images")
    if isinstance(source, nn.Module):
        return generator_stats(source, extractor, num_samples, **kwargs)
    if isinstance(source, torch.Tensor):
        return image_stats(source, extractor, labels)
    raise TypeError(f"expected a generator G(z, y), an image tensor [N, 3, H, W] or FeatureStats, got {type(source).__name__}")


def _check_reference(reference) -> None:
    """Before any sample is drawn: the reference must be statistics, not None or images."""
    if not isinstance(reference, FeatureStats):
        raise CourseError(f"reference must be FeatureStats (from metrics.reference_stats(extractor, 'train')), got "
                          f"{type(reference).__name__}")


def _check_comparable(stats: FeatureStats, reference: FeatureStats) -> None:
    """An FD is only meaningful in one feature space and at one image size."""
    if stats.extractor != reference.extractor:
        raise CourseError(f"the reference holds {reference.extractor} features but the samples {stats.extractor} "
                          "features; compute both with the same extractor.")
    if stats.image_size and reference.image_size and tuple(stats.image_size) != tuple(reference.image_size):
        (h, w), (rh, rw) = stats.image_size, reference.image_size
        raise CourseError(f"the samples are {h}x{w} images but the reference statistics come from {rh}x{rw} "
                          "images: the FD would measure the resolution, not the generator. Resize the samples "
                          f"first (torch.nn.functional.interpolate(x, size=({rh}, {rw}), mode='bilinear', "
                          "antialias=True)) or compute reference statistics at their size.")


def fd_between(a: FeatureStats, b: FeatureStats, method: str = "auto") -> Score:
    """FD between two sets of statistics (e.g. train vs test: the real-data floor)."""
    _check_comparable(a, b)
    value = frechet_distance(a.mean, a.cov, b.mean, b.cov, method=method)
    return Score("FD", value, a.extractor, a.count, b.split, b.data_source,
                 {"samples": f"{a.count:,} {a.split} ({a.data_source})"}, reference_count=b.count)


def fid(source, reference: FeatureStats, extractor: FeatureExtractor | None = None, num_samples: int = 10_000,
        labels: torch.Tensor | None = None, method: str = "auto", **kwargs) -> Score:
    """Fréchet distance of a generator (class-balanced samples, fixed ``seed``), a tensor of images
    or ``FeatureStats`` to ``reference`` (from ``reference_stats``). Lower is better; the real-data
    floor (train vs test) is not zero. ``kwargs`` go to ``generator_stats`` (seed, truncation)."""
    _check_reference(reference)
    stats = _as_stats(source, extractor, num_samples, labels, **kwargs)
    _check_comparable(stats, reference)
    value = frechet_distance(stats.mean, stats.cov, reference.mean, reference.cov, method=method)
    return Score("FD", value, reference.extractor, stats.count, reference.split, reference.data_source,
                 reference_count=reference.count)


def intra_fid(source, reference: FeatureStats, extractor: FeatureExtractor | None = None,
              num_samples: int = 10_000, labels: torch.Tensor | None = None, method: str = "auto",
              **kwargs) -> Score:
    """Mean over classes of the FD between the samples of class c and the real images of class c
    (Miyato & Koyama 2018). It punishes a generator that draws good images of the wrong class,
    which the plain FD cannot see. ``details["per_class"]`` holds the ten values."""
    _check_reference(reference)
    stats = _as_stats(source, extractor, num_samples, labels, **kwargs)
    _check_comparable(stats, reference)
    if reference.class_mean is None:
        raise CourseError("the reference has no per-class statistics: call reference_stats(..., per_class=True).")
    if stats.class_mean is None:
        raise CourseError("the samples have no per-class statistics: pass labels with images, or a conditional "
                         "generator (at least 2 samples per class).")
    per = [frechet_distance(stats.class_mean[c], stats.class_cov[c], reference.class_mean[c], reference.class_cov[c],
                            method=method)
           for c in range(len(reference.class_mean))]
    return Score("intra-FD", float(np.mean(per)), reference.extractor, stats.count, reference.split,
                 reference.data_source, {"per_class": per}, reference_count=reference.count)


def inception_score_from_logits(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """IS = exp(E_x KL(p(y|x) || p(y))) on ``splits`` chunks of ``logits [N, K]``: (mean, std).
    High when each image is confidently one class and all classes appear; at most K. Each chunk
    needs two samples or more: a chunk of one always scores exactly 1."""
    if not (isinstance(splits, (int, np.integer)) and splits >= 1):
        raise CourseError(f"splits must be a whole number >= 1, got {splits!r}")
    if logits.shape[0] < 2 * splits:
        raise CourseError(f"the Inception Score over {splits} splits needs at least {2 * splits} samples (one "
                          f"sample per split always scores 1.0), got {logits.shape[0]}: pass more samples or "
                          "fewer splits.")
    p = torch.softmax(logits.double(), dim=1)
    scores = []
    for chunk in p.tensor_split(splits):  # exactly `splits` chunks, sizes differing by at most one
        p_y = chunk.mean(0, keepdim=True)
        kl = (chunk * (torch.log(chunk + 1e-12) - torch.log(p_y + 1e-12))).sum(1).mean()
        scores.append(kl.exp().item())
    return float(np.mean(scores)), float(np.std(scores))


def inception_score(source, extractor: FeatureExtractor | None = None, num_samples: int = 10_000,
                    splits: int = 10, **kwargs) -> Score:
    """Inception Score from the extractor's softmax (the standard IS uses Inception's logits; with
    the course classifier it is an "IS_classifier" on 10 classes, at most 10)."""
    stats = _as_stats(source, extractor, num_samples, None, **kwargs)
    if stats.logits is None:
        raise CourseError("these statistics have no logits: compute them with an extractor that has a classifier head.")
    mean, std = inception_score_from_logits(stats.logits, splits)
    return Score("IS", mean, stats.extractor, stats.count, details={"std": std, "splits": splits})


def label_fidelity(source, classifier: FeatureExtractor | None = None, num_samples: int = 10_000,
                   labels: torch.Tensor | None = None, **kwargs) -> Score:
    """Does the generator draw the class it is asked for? The course classifier's accuracy on
    generated images against the requested labels. ``details``: ``per_class`` accuracies and the
    ``confusion`` matrix ``[K, K]`` (rows: requested class, columns: predicted class), the ``ci95``
    Wilson interval and ``chance`` (1/K). A generator that ignores its label scores about 1/K (10%
    for CIFAR-10); real images score the classifier's accuracy. Any classifier with K outputs can
    judge: ``ClassifierFeatures(model)``, e.g. one trained on your own classes (notebook 07).
    """
    if classifier is None and not isinstance(source, FeatureStats):
        classifier = ClassifierFeatures()
    if isinstance(source, nn.Module) and isinstance(classifier, ClassifierFeatures):
        _check_judge(source, classifier)
    stats = _as_stats(source, classifier, num_samples, labels, **kwargs)
    if stats.extractor != "classifier" or stats.logits is None or stats.labels is None:
        raise CourseError("label fidelity needs the course classifier's logits and the requested labels: "
                         "use ClassifierFeatures() and a conditional generator (or images with labels).")
    y, pred = stats.labels, stats.logits.argmax(1)
    num_classes = stats.logits.shape[1]
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    confusion.index_put_((y, pred), torch.ones_like(y), accumulate=True)
    per_class = (confusion.diag() / confusion.sum(1).clamp(min=1)).tolist()
    accuracy = (pred == y).float().mean().item()
    return Score("label accuracy", accuracy, "classifier", stats.count,
                 details={"per_class": per_class, "confusion": confusion.numpy(),
                          "ci95": wilson_interval(accuracy, stats.count), "chance": 1 / num_classes})


def _check_judge(G: nn.Module, features: ClassifierFeatures) -> None:
    """A classifier can only judge a generator of its own classes, at its own image size: a
    2-class generator judged by the 10-class CIFAR classifier used to score "0.0%, chance 10%"."""
    judge = features.model
    k_g, k_j = int(getattr(G, "num_classes", 0) or 0), int(judge.cfg.num_classes)
    if k_g != k_j:
        raise CourseError(f"the generator has {k_g} classes but the classifier judges {k_j}: pass a classifier "
                          "trained on the generator's own classes (python -m cgan_course.classifier train on its data, "
                          "then ClassifierFeatures(model))")
    names_g, names_j = getattr(G, "classes", None), getattr(judge, "classes", None)
    placeholder = [f"class {i}" for i in range(k_j)]  # a classifier or generator never told its class names
    if names_g and names_j and placeholder not in (list(names_g), list(names_j)) and list(names_g) != list(names_j):
        raise CourseError(f"the generator's classes {list(names_g)[:5]} are not the classifier's "
                          f"{list(names_j)[:5]}: use a classifier trained on the same class folders")
    size, judged = getattr(G, "image_size", None), features.image_size
    if size and judged and size != judged:
        raise CourseError(f"the generator draws {size} px images but the classifier judges {judged} px ones: "
                          "its score would measure the resize, not the generator; judge at the classifier's size "
                          "(downsample the samples and score them as images) or train a classifier at that size")


@torch.no_grad()
def paired_label_fidelity(G_a: nn.Module, G_b: nn.Module, classifier: ClassifierFeatures, num_samples: int = 1000,
                          seed: int = 0) -> dict:
    """Label fidelity of two generators on the *same* latents and classes, and the difference
    b - a with its 95% interval from the paired per-sample differences (a comparison of two
    separate intervals ignores the pairing and is not a test; overlapping intervals do not mean
    "no difference"). Returns ``{"a", "b", "difference", "ci95", "a_only", "b_only", "n"}``:
    ``a_only``/``b_only`` count the samples only one of them gets right."""
    for G in (G_a, G_b):
        _check_judge(G, classifier)
    k = G_a.num_classes
    y = torch.arange(num_samples) % k  # class-balanced
    z = sample_latents(num_samples, G_a.z_dim, seed)
    right = []
    for G in (G_a, G_b):
        was_training = G.training
        G.eval()
        try:
            right.append(classifier.features_and_logits(generate(G, z, y))[1].argmax(1) == y)
        finally:
            G.train(was_training)
    a, b = (r.float() for r in right)
    diff = b - a  # (n,) in {-1, 0, 1}
    half = 1.96 * diff.std().item() / num_samples ** 0.5
    return {"a": a.mean().item(), "b": b.mean().item(), "difference": diff.mean().item(),
            "ci95": (diff.mean().item() - half, diff.mean().item() + half),
            "a_only": int((a > b).sum()), "b_only": int((b > a).sum()), "n": num_samples}


def wilson_interval(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``p`` measured on ``n`` trials (95% for z = 1.96):
    how far a label accuracy on n samples may sit from the generator's true rate."""
    if n <= 0:
        raise CourseError(f"n must be positive, got {n}")
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@torch.no_grad()
def class_morph_curve(G: nn.Module, classifier: FeatureExtractor, y0: int, y1: int, num_latents: int = 100,
                      steps: int = 8, seed: int = 0, calibrated: bool = True) -> dict:
    """Does the class input move the image? Morph class ``y0`` into ``y1`` with ``z`` fixed
    (``sampling.interpolate_classes``) for ``num_latents`` latents and record the classifier's
    probability of ``y1`` at each of ``steps`` points ``t`` in [0, 1]: calibrated (the temperature on
    the classifier's card) unless ``calibrated=False``, which gives the raw, underconfident softmax.

    Returns ``{"t": [steps], "p_end": [steps] mean P(y1), "ci95": [steps] half-widths of a normal
    95% interval over the latents, "p_start": [steps] mean P(y0), "num_latents": n, "temperature": T used}``. A generator
    that ignores its label gives a flat curve; one that obeys it rises from P(y1 | G(z, y0)) to
    P(y1 | G(z, y1)).
    """

    num_classes = G.num_classes or 0
    if not (0 <= y0 < num_classes and 0 <= y1 < num_classes):
        raise CourseError(f"y0 and y1 must be class indices in [0, {num_classes - 1}], got {y0} and {y1}")
    if num_latents < 2 or steps < 2:
        raise CourseError(f"num_latents and steps must be >= 2, got {num_latents} and {steps}")
    if classifier.name != "classifier":
        raise CourseError(f"a class morph is judged by a classifier with logits (metrics.ClassifierFeatures()), "
                         f"got the {classifier.name!r} extractor")
    was_training = G.training
    G.eval()
    t = torch.linspace(0, 1, steps)
    try:
        probs = torch.stack([  # (n, steps, K)
            classifier.probabilities(interpolate_classes(G, z, y0, y1, t), calibrated)
            for z in sample_latents(num_latents, G.z_dim, seed)])
    finally:
        G.train(was_training)
    p1, p0 = probs[:, :, y1], probs[:, :, y0]  # (n, steps)
    return {"t": t.tolist(), "p_end": p1.mean(0).tolist(), "p_start": p0.mean(0).tolist(),
            "ci95": (1.96 * p1.std(0) / num_latents ** 0.5).tolist(), "num_latents": num_latents,
            "temperature": getattr(classifier.model, "temperature", 1.0) if calibrated else 1.0}


# ----------------------------------------------------------------------------------------------
# Class control and diversity: does the class decide the picture, and at what cost in variety?

# Notebook 05's three morphs (two distant, one near) and five more distant pairs, the weakest of
# the 76% generator (truck -> bird) among them.
CONTROL_PAIRS = (("airplane", "frog"), ("horse", "ship"), ("cat", "dog"), ("truck", "bird"), ("ship", "deer"),
                 ("automobile", "cat"), ("frog", "airplane"), ("dog", "truck"))


def _mean_ci(x: torch.Tensor) -> tuple[float, float]:
    """Mean of the values ``x`` [n] and the half-width of a Student-t 95% interval for it."""
    from scipy import stats

    n = x.numel()
    return x.mean().item(), float(stats.t.ppf(0.975, n - 1)) * x.std().item() / n ** 0.5


@torch.no_grad()
def class_control(G: nn.Module, classifier: ClassifierFeatures, pairs=CONTROL_PAIRS, num_latents: int = 100,
                  seed: int = 0) -> dict:
    """With z fixed, does the class decide the picture? For each pair (A, B) and the same
    ``num_latents`` latents z, the classifier's calibrated probability of B on G(z, A) and on
    G(z, B). A generator that obeys its class gives P(B | G(z, B)) near 1 and P(B | G(z, A)) near
    0; one that ignores the class draws the same picture for A and B, so the two are equal and
    ``gap`` (their difference) is 0.

    Returns ``{"pairs": {"A -> B": {"p_b_given_a", "p_b_given_a_ci95", "p_b_given_b",
    "p_b_given_b_ci95", "gap", "gap_ci95"}}, "min_p_b_given_b", "max_p_b_given_a", "mean_gap",
    "num_latents", "temperature"}`` (intervals: half-widths of Student-t 95% intervals over the
    latents; the gap's is paired, the same z on both sides).
    """
    if num_latents < 2:
        raise CourseError(f"num_latents must be >= 2 (an interval needs two), got {num_latents}")
    if getattr(classifier, "name", None) != "classifier":
        raise CourseError("class control is judged by a classifier with logits: pass metrics.ClassifierFeatures()")
    _check_judge(G, classifier)
    z = sample_latents(num_latents, G.z_dim, seed)  # (n, z_dim), shared by every class of every pair
    was_training = G.training
    G.eval()
    try:
        out = {}
        for a_name, b_name in pairs:
            a, b = class_index(G, a_name), class_index(G, b_name)
            p_a, p_b = (classifier.probabilities(generate(G, z, torch.full((num_latents,), c)))[:, b] for c in (a, b))
            (m_a, ci_a), (m_b, ci_b), (gap, ci_gap) = _mean_ci(p_a), _mean_ci(p_b), _mean_ci(p_b - p_a)  # paired
            out[f"{a_name} -> {b_name}"] = {"p_b_given_a": round(m_a, 4), "p_b_given_a_ci95": round(ci_a, 4),
                                            "p_b_given_b": round(m_b, 4), "p_b_given_b_ci95": round(ci_b, 4),
                                            "gap": round(gap, 4), "gap_ci95": round(ci_gap, 4)}
    finally:
        G.train(was_training)
    rows = out.values()
    return {"pairs": out, "min_p_b_given_b": min(r["p_b_given_b"] for r in rows),
            "max_p_b_given_a": max(r["p_b_given_a"] for r in rows),
            "mean_gap": round(float(np.mean([r["gap"] for r in rows])), 4), "num_latents": num_latents,
            "temperature": getattr(classifier.model, "temperature", 1.0)}


def _manifold_hits(queries: torch.Tensor, points: torch.Tensor, k: int) -> torch.Tensor:
    """Whether each query [Q, d] lies inside the k-NN manifold of ``points`` [P, d]: within the
    distance from some point to its k-th nearest other point (Kynkaanniemi et al. 2019)."""
    d_pp = torch.cdist(points, points)  # (P, P)
    radius = d_pp.kthvalue(k + 1, dim=1).values  # (P,): k+1 because a point is its own nearest
    return (torch.cdist(queries, points) <= radius[None, :]).any(dim=1)  # (Q,)


@torch.no_grad()
def class_recall(G: nn.Module, classifier: ClassifierFeatures, real_images: torch.Tensor, real_labels: torch.Tensor,
                 per_class: int = 500, k: int = 3, seed: int = 0) -> dict:
    """Diversity within each class, in the judge's feature space: improved recall and precision
    (Kynkaanniemi et al. 2019) of ``per_class`` samples of each class against the real images of
    that class. Recall is the share of real images that fall inside the samples' k-NN manifold:
    it catches "easy to classify but all alike" (a generator that ignores z draws one picture
    per class, its manifold has radius 0, and its recall is 0). Precision is the share of samples
    inside the real images' manifold (realism). Returns ``{"recall", "precision", "per_class_recall",
    "per_class_precision", "k", "per_class", "real_images"}``."""
    if not 2 <= k < per_class:
        raise CourseError(f"k must be in [2, per_class), got k={k}, per_class={per_class}")
    if real_images.shape[0] != real_labels.shape[0]:
        raise CourseError(f"real_images and real_labels differ in length: {real_images.shape[0]} vs {real_labels.shape[0]}")
    _check_judge(G, classifier)
    real_feats = classifier.features_and_logits(real_images)[0]  # (N, d)
    z = sample_latents(per_class, G.z_dim, seed)
    recall, precision = [], []
    was_training = G.training
    G.eval()
    try:
        for c in range(G.num_classes):
            real_c = real_feats[real_labels == c]
            if real_c.shape[0] <= k:
                raise CourseError(f"class {c} has {real_c.shape[0]} real images; the k-NN manifold needs more than k={k}")
            fake_c = classifier.features_and_logits(generate(G, z, torch.full((per_class,), c)))[0]
            recall.append(_manifold_hits(real_c, fake_c, k).float().mean().item())
            precision.append(_manifold_hits(fake_c, real_c, k).float().mean().item())
    finally:
        G.train(was_training)
    return {"recall": round(float(np.mean(recall)), 4), "precision": round(float(np.mean(precision)), 4),
            "per_class_recall": [round(r, 4) for r in recall], "per_class_precision": [round(p, 4) for p in precision],
            "k": k, "per_class": per_class, "real_images": int(real_feats.shape[0])}


def evaluate_generator(G: nn.Module, reference: FeatureStats, extractor: FeatureExtractor,
                       num_samples: int = 10_000, seed: int = 0, truncation: float | None = None) -> dict[str, Score]:
    """FD, intra-class FD, IS and (with the classifier) label fidelity from one pass over the samples."""
    if isinstance(extractor, ClassifierFeatures):
        _check_judge(G, extractor)
    stats = generator_stats(G, extractor, num_samples, seed=seed, truncation=truncation)
    scores = {"fd": fid(stats, reference)}
    if reference.class_mean is not None and stats.class_mean is not None:
        scores["intra_fd"] = intra_fid(stats, reference)
    if stats.logits is not None:
        scores["is"] = inception_score(stats)
    if extractor.name == "classifier" and stats.labels is not None:
        scores["label_accuracy"] = label_fidelity(stats)
    return scores
