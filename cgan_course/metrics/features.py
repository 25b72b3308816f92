"""The feature spaces FD is measured in, behind one interface (``FeatureExtractor``):

* ``ClassifierFeatures``: the course classifier's penultimate layer (256-d), offline and fast on
  a CPU. Numbers in this space are *not* comparable with published FIDs.
* ``InceptionFeatures``: the standard FID network (pytorch-fid's InceptionV3, pool3, 2048-d).
  Its weights come from a local file (argument or ``$CGAN_COURSE_INCEPTION_WEIGHTS``), torch's
  hub cache, or a download when online; published FIDs use this space (and 50,000 samples).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import socket
from pathlib import Path

import torch
import torch.nn as nn

from ..classifier import CLASSIFIER_FILE, load_classifier, probabilities
from ..data import to_unit_range
from ..errors import CourseError, MissingFile
from ..files import sha256

INCEPTION_ENV_VAR = "CGAN_COURSE_INCEPTION_WEIGHTS"
INCEPTION_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                 "pt_inception-2015-12-05-6726825d.pth")
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_SHA256_PREFIX = "6726825d"  # pytorch-fid names the file after its hash


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
