"""Reference solutions to notebook 08's exercises (your data, your service).

``solve_k(fast)`` returns the keyword arguments of exercise k's check,
``cgan_course.exercises.EXERCISES["08.k"].check``. ``python solutions/ex08.py`` checks them all on
a small class-folder dataset cut from the committed CIFAR-10 sample (in a temporary folder).
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import io
import shutil
import sys
import tempfile
from pathlib import Path

from cgan_course import exercises, metrics, serve
from cgan_course.classifier import (
    ClassifierConfig,
    TrainClassifierConfig,
    train_classifier,
)
from cgan_course.data import SAMPLE_ROOT, load_class_folders, make_subset
from cgan_course.models import ModelConfig
from cgan_course.train import TrainConfig, train

CLASSES = ["automobile", "frog", "ship"]


def _scratch(prefix: str) -> Path:
    """A temporary folder, deleted when Python exits."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.cache
def dataset() -> Path:
    """A 3-class, 32 px class-folder dataset of 60 images per class (kept for this process)."""
    root = _scratch("ex08-") / "three"
    make_subset(SAMPLE_ROOT, root, per_class=60, classes=CLASSES, image_size=32)
    return root


def solve_1(fast: bool = False) -> dict:
    files = [load_class_folders(dataset(), "test", 32, seed=s).files for s in (0, 0, 1)]
    return dict(files_a=files[0], files_b=files[1], files_other_seed=files[2])


def solve_2(fast: bool = False) -> dict:
    train_set, test_set = (load_class_folders(dataset(), split, 32) for split in ("train", "test"))
    judge, _ = train_classifier((train_set.images, train_set.labels),
                                TrainClassifierConfig(epochs=1 if fast else 5, batch_size=32),
                                ClassifierConfig(widths=(16, 32, 64), num_classes=len(CLASSES)), log=lambda _: None)
    score = metrics.label_fidelity(test_set.images, metrics.ClassifierFeatures(judge), labels=test_set.labels)
    return dict(score=score, judge=judge, images=test_set.images, labels=test_set.labels)


def ask(url: str, class_name: str, seed: int) -> bytes:
    reply = serve.call(url + "/generate", {"class": class_name, "n": 4, "seed": seed})
    if reply.status != 200:
        raise RuntimeError(f"the service answered {reply.status}: {reply.json()['error']}")
    return reply.body


def solve_3(fast: bool = False) -> dict:
    out = _scratch("ex08-run-")
    cfg = TrainConfig(model=ModelConfig(num_classes=len(CLASSES), g_width=8, d_width=8), data_source="folders",
                      data_root=str(dataset()), steps=2, batch_size=8, out=str(out), progress=False, log_every=0,
                      sample_every=0)
    with contextlib.redirect_stdout(io.StringIO()):  # the run's own log lines
        train(cfg)
    return dict(ask=ask, checkpoint=out / "checkpoint.pt")


if __name__ == "__main__":
    exercises.check_solutions(sys.modules[__name__], "08")
