"""Reference solutions to notebook 06's exercises (evaluation: FD extrapolated, a label shuffler, the
Inception Score).

``solve_k(fast)`` returns the keyword arguments of exercise k's check,
``cgan_course.exercises.EXERCISES["06.k"].check``. ``python solutions/ex06.py`` checks them all
with the committed generator and classifier.
"""
from __future__ import annotations

import sys

import numpy as np
import torch
import torch.nn as nn

from cgan_course import data, exercises, metrics, pretrained


def solve_1(fast: bool = False) -> dict:
    source = "sample" if fast else "auto"
    clf = metrics.ClassifierFeatures()
    reference = metrics.reference_stats(clf, "train", source=source)
    images, _ = data.load_cifar10(None, train=False, source=source)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    ns = [50, 100, 200, 400, 800] if fast else [100, 250, 500, 1000, 2500, 5000, 10_000]
    ns = [n for n in ns if n <= len(images)]
    feats = clf(data.to_unit_range(images[order[:max(ns)]]))  # (max N, 256)
    fds = [metrics.fid(metrics.stats_from_features(feats[:n], None, "classifier", "test", source), reference).value
           for n in ns]
    (fd_inf, c), *_ = np.linalg.lstsq(np.stack([np.ones(len(ns)), 1 / np.array(ns)], axis=1), fds, rcond=None)
    return dict(ns=ns, fds=fds, fd_inf=fd_inf, c=c)


class LabelShuffler(nn.Module):
    """G, but each latent gets another sample's label: the batch's mix of classes is kept."""

    def __init__(self, G: nn.Module):
        super().__init__()
        self.G, self.z_dim, self.num_classes = G, G.z_dim, G.num_classes

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.G(z, y[torch.randperm(len(y), device=y.device)])


def solve_2(fast: bool = False) -> dict:
    G = pretrained.load_generator("cpu")
    return dict(shuffler=LabelShuffler(G), G=G, why="a", num_samples=200 if fast else 2000)


def inception_score(logits: torch.Tensor) -> float:
    p = torch.softmax(logits.double(), dim=1)  # p(y|x), (N, K)
    p_y = p.mean(dim=0, keepdim=True)  # p(y), (1, K)
    kl = (p * (torch.log(p + 1e-12) - torch.log(p_y + 1e-12))).sum(dim=1)  # (N,)
    return kl.mean().exp().item()


def solve_3(fast: bool = False) -> dict:
    return dict(is_fn=inception_score)


# ----------------------------------------------------------------------------------------------
# Build exercise A (cgan_course.build, "06.A")


def build_A():
    from scipy import linalg

    def frechet_distance(feats_a, feats_b):  # [N, d], [M, d] -> float
        mu_a, mu_b = feats_a.mean(0), feats_b.mean(0)
        s_a, s_b = np.cov(feats_a, rowvar=False), np.cov(feats_b, rowvar=False)
        cross = linalg.sqrtm(s_a @ s_b).real  # the matrix square root of the product
        return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * cross))

    return (frechet_distance,)


if __name__ == "__main__":
    exercises.check_solutions(sys.modules[__name__], "06")
