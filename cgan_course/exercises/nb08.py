"""Notebook 08 (your data and the service): the checks of its exercises.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from .. import metrics
from ..classifier import accuracy
from .core import Feedback, _exercise

# ----------------------------------------------------------------------------------------------
# 07: your data, your service


def _file_list(fb: Feedback, name: str, value) -> list[str] | None:
    if isinstance(value, (list, tuple)) and value and all(isinstance(f, str) for f in value):
        return list(value)
    fb.wrong(f"{name} must be the non-empty .files list of a load_class_folders(...) result, got "
             f"{type(value).__name__}")
    return None


@_exercise("08.1", "the recorded test split is reproducible")
def check_split_rule(files_a, files_b, files_other_seed) -> None:
    """Three ``.files`` lists of a test split: seed 0, seed 0 again, another seed."""
    from collections import Counter

    fb = Feedback("08.1")
    a, b, c = (_file_list(fb, n, v) for n, v in (("files_a", files_a), ("files_b", files_b),
                                                  ("files_other_seed", files_other_seed)))
    if None in (a, b, c):
        fb.done()
    fb.expect(a == b, f"the same seed draws the same {len(a)} test files",
              "files_a and files_b differ: load both with the same seed (and the same test_fraction)")
    fb.expect(set(a) != set(c), "another seed draws other test files",
              "files_other_seed is the same split: load it with another seed, e.g. seed=1 (a dataset with "
              "its own test/ folder has a fixed split that no seed changes: use the cut-out CIFAR-10 folder)")
    per_class = lambda files: Counter(Path(f).parent.name for f in files)  # noqa: E731
    fb.expect(per_class(a) == per_class(c), f"both seeds keep every class's share: {dict(per_class(a))}",
              f"the class counts differ ({dict(per_class(a))} vs {dict(per_class(c))}): pass test splits of "
              "the same folder and test_fraction")
    fb.done()


@_exercise("08.2", "label fidelity of real images is the judge's accuracy")
def check_judge_ceiling(score, judge: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
    """``score``: ``metrics.label_fidelity`` of the real ``images`` with their ``labels``, judged by ``judge``."""
    fb = Feedback("08.2")
    if not fb.expect(isinstance(score, metrics.Score) and score.metric == "label accuracy",
                     "a label-fidelity Score", "pass the Score that metrics.label_fidelity(...) returns"):
        fb.done()
    fb.expect(score.num_samples == len(labels), f"all {len(labels)} held-out images scored",
              f"{score.num_samples} images scored, expected all {len(labels)}: pass labels=test_set.labels")
    expected = accuracy(judge, images, labels, tta=False)
    # one image either way: channels-last and plain convolutions may round a near-tie differently
    if fb.expect(abs(score.value - expected) <= 1 / len(labels) + 1e-6, f"{score.value:.1%}: the judge's own accuracy on them",
                 f"{score.value:.1%} is not the judge's accuracy on these images ({expected:.1%}): score the "
                 "real test images with their true labels and metrics.ClassifierFeatures(judge)"):
        fb.note("Real images of the asked class score the judge's accuracy: a generator whose samples were as "
                "recognisable as real ones would score about that (one that draws only easy, prototypical "
                "examples can score more). Read a generator's label fidelity between 1/K and this.")
    fb.done()


@_exercise("08.3", "a client for the generator service")
def check_client(ask: Callable[[str, str, int], bytes], checkpoint: str | Path) -> None:
    """``ask(url, class_name, seed)``: PNG bytes of a 4-sample grid, an exception for a 4xx answer."""
    fb = Feedback("08.3")
    from .. import (
        serve,  # here, not at the top: the other chapters' checks need no FastAPI
    )

    with serve.ServerProcess(generator=checkpoint) as server:
        name = serve.call(server.url + "/classes").json()["classes"][0]
        expected = serve.call(server.url + "/generate", {"class": name, "n": 4, "seed": 3}).body
        try:
            got = ask(server.url, name, 3)
        except Exception as err:  # noqa: BLE001 - any failure of the learner's code is feedback
            got = err
        fb.expect(got == expected, f"ask(url, {name!r}, 3) returns the service's 4-sample PNG grid",
                  f"ask(url, {name!r}, 3) returned {type(got).__name__}, not the PNG bytes of POST /generate "
                  f"with {{'class': {name!r}, 'n': 4, 'seed': 3}}")
        try:
            answer = ask(server.url, "no-such-class", 0)
        except Exception as err:  # noqa: BLE001
            fb.expect("no-such-class" in str(err), f"an unknown class raises {type(err).__name__} with the "
                      "service's message", f"the exception says {str(err)!r}: include the service's "
                      "error message (reply.json()['error'])")
        else:
            fb.wrong(f"an unknown class returned {type(answer).__name__} instead of raising: check reply.status")
    fb.done()
