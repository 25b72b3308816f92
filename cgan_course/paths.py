"""Where the course's files are: the repository's folders and the environment variables that
move them. Every module asks here, so a folder is named once.

    REPO_ROOT / "data"           committed data: the CIFAR-10 sample, pretrained weights, caches
    $CGAN_COURSE_CIFAR10         your copy of CIFAR-10 (a class-folder tree or a .tar.gz)
    $CGAN_COURSE_CACHE           where decoded arrays and feature statistics go when data/ is read-only
"""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"  # load_cifar10's default root
SAMPLE_ROOT = DATA_DIR / "cifar10-sample"  # 100 train + 100 test images per class, committed
PRETRAINED_DIR = DATA_DIR / "pretrained"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
SOLUTIONS_DIR = REPO_ROOT / "solutions"

CIFAR10_ENV_VAR = "CGAN_COURSE_CIFAR10"  # a class-folder tree or .tar.gz used by source="auto"/"folder"
CACHE_ENV_VAR = "CGAN_COURSE_CACHE"  # where decoded arrays go when the data folder is read-only
