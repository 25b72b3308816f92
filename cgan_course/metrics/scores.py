"""The scores, each a ``Score`` that carries its feature space, sample count and reference:
FID and intra-class FD, Inception Score, label fidelity (and its paired comparison), the class
morph curve, class control (does the class decide the picture?) and per-class recall.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from ..errors import CourseError
from ..runtime import eval_mode
from ..sampling import class_index, generate, interpolate_classes, sample_latents
from .fd import frechet_distance
from .features import ClassifierFeatures, FeatureExtractor
from .reference import FeatureStats, generator_stats, image_stats

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
    judge: ``ClassifierFeatures(model)``, e.g. one trained on your own classes (notebook 08).
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


def read_confusion(confusion, classes: list[str]) -> list[str]:
    """A confusion matrix ``[K, K]`` (rows: requested, columns: judged) read aloud, for this run's
    numbers rather than a sentence written for another run: the class drawn best, the class drawn
    worst and what it was taken for most, and the pair of classes confused most both ways (the pair
    whose smaller count, i judged j or j judged i, is largest)."""
    c = torch.as_tensor(confusion).long()
    if c.dim() != 2 or c.shape[0] != c.shape[1] or c.shape[0] != len(classes) or len(classes) < 2:
        raise CourseError(f"read_confusion needs a K x K matrix and K >= 2 class names, got {tuple(c.shape)} and "
                          f"{len(classes)} names")
    asked, right = c.sum(1), c.diag()
    rate = right / asked.clamp(min=1)
    best, worst = int(rate.argmax()), int(rate.argmin())
    off = c.clone().fill_diagonal_(-1)
    taken = int(off[worst].argmax())
    both = torch.minimum(off, off.T).triu(1)  # (K, K): confused both ways at least this often
    i, j = divmod(int(both.argmax()), len(classes))
    return [f"best: {classes[best]}, judged right {int(right[best])} times of {int(asked[best])}",
            f"worst: {classes[worst]}, judged right {int(right[worst])} times of {int(asked[worst])}; taken for "
            f"{classes[taken]} {int(c[worst, taken])} times",
            f"confused both ways most: {classes[i]} and {classes[j]} ({int(c[i, j])} {classes[i]} judged "
            f"{classes[j]}, {int(c[j, i])} {classes[j]} judged {classes[i]})"]


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
        with eval_mode(G):
            right.append(classifier.features_and_logits(generate(G, z, y))[1].argmax(1) == y)
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
    t = torch.linspace(0, 1, steps)
    with eval_mode(G):
        probs = torch.stack([  # (n, steps, K)
            classifier.probabilities(interpolate_classes(G, z, y0, y1, t), calibrated)
            for z in sample_latents(num_latents, G.z_dim, seed)])
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
    with eval_mode(G):
        out = {}
        for a_name, b_name in pairs:
            a, b = class_index(G, a_name), class_index(G, b_name)
            p_a, p_b = (classifier.probabilities(generate(G, z, torch.full((num_latents,), c)))[:, b] for c in (a, b))
            (m_a, ci_a), (m_b, ci_b), (gap, ci_gap) = _mean_ci(p_a), _mean_ci(p_b), _mean_ci(p_b - p_a)  # paired
            out[f"{a_name} -> {b_name}"] = {"p_b_given_a": round(m_a, 4), "p_b_given_a_ci95": round(ci_a, 4),
                                            "p_b_given_b": round(m_b, 4), "p_b_given_b_ci95": round(ci_b, 4),
                                            "gap": round(gap, 4), "gap_ci95": round(ci_gap, 4)}
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
    with eval_mode(G):
        for c in range(G.num_classes):
            real_c = real_feats[real_labels == c]
            if real_c.shape[0] <= k:
                raise CourseError(f"class {c} has {real_c.shape[0]} real images; the k-NN manifold needs more than k={k}")
            fake_c = classifier.features_and_logits(generate(G, z, torch.full((per_class,), c)))[0]
            recall.append(_manifold_hits(real_c, fake_c, k).float().mean().item())
            precision.append(_manifold_hits(fake_c, real_c, k).float().mean().item())
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
