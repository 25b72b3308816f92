"""What every data file shares: CIFAR-10's class names, the image sizes the models are built
for, the error and warning types, and the check that labels fit the classes.
"""
from __future__ import annotations

import torch

from ..errors import CourseError

CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
IMAGE_SIZES = (32, 64, 128)  # the sizes the models are built for


class DatasetError(CourseError):
    """Bad or missing data; the message names the path and the fix."""


class SkippedFilesWarning(UserWarning):
    """``skip_unreadable=True`` left unreadable image files out; the message counts and names them."""


def _check_labels(images: torch.Tensor, labels: torch.Tensor, num_classes: int, where: str) -> None:
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(f"{where}: {images.shape[0]} images but {labels.shape[0]} labels.")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(f"{where}: labels range over [{int(labels.min())}, {int(labels.max())}], "
                           f"expected [0, {num_classes - 1}]. The files are corrupt or not CIFAR-10.")
