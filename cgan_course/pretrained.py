"""The committed pretrained files: later chapters run from them on any CPU, offline.

``data/pretrained/generator.pt`` holds the EMA generator's weights in half precision plus its
``ModelConfig`` and class names; ``generator.json`` beside it is the card (config, data, steps,
metrics) with the file's sha256, checked on every load. This module reads them and guards them
(``check_destination``), so loading the generator imports neither the training loop nor the
metrics; ``cgan_course.release`` writes them (``python -m cgan_course.release export``), and only
when asked to replace them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch
import torch.nn as nn

from . import checkpoints
from .checkpoints import (
    CheckpointError,
    card_path,
    class_names_from,
    load_checkpoint,
    load_state_strict,
    model_config_from,
    require_keys,
    verify_card,
)
from .errors import CourseError, MissingFile
from .models import build_generator
from .paths import PRETRAINED_DIR

GENERATOR_FILE = PRETRAINED_DIR / "generator.pt"


class PretrainedMissing(MissingFile):
    """The pretrained file is not there (e.g. a partial checkout)."""


def read_card(path: str | Path = GENERATOR_FILE) -> dict:
    """The JSON card beside a weights file."""
    card = card_path(path)
    if not card.is_file():
        raise PretrainedMissing(f"{card} is missing; it comes with the repository (git checkout -- data/pretrained).")
    return checkpoints.read_card(path)


def require_files(path: Path, how_to_make: str) -> None:
    """Released weights and their card must both be there; say how to get them back."""
    for f in (path, card_path(path)):
        if not f.is_file():
            raise PretrainedMissing(f"no {f.name} at {f.parent}. The course's files are committed to the repository; "
                                    f"restore them with `git checkout -- data/pretrained`, or {how_to_make}.")


def check_destination(folder: str | Path, names: Iterable[str], replace_committed: bool) -> None:
    """Refuse to write ``names`` into ``folder`` where that would lose files: the committed
    ``data/pretrained`` needs ``replace_committed``, and an earlier run's files are never replaced."""
    folder = Path(folder)
    if folder.resolve() == PRETRAINED_DIR.resolve():
        if not replace_committed:
            raise CourseError(f"{folder} holds the committed files that load_generator() and load_classifier() read: "
                              "pass --replace-committed (instead of --out) to replace them on purpose, or another --out.")
        return
    if folder.exists() and not folder.is_dir():
        raise CourseError(f"--out {folder} is a file, not a folder: pass a new folder.")
    clash = [folder / n for n in names if (folder / n).exists()]
    if clash:
        raise CourseError(f"{clash[0]} exists (an earlier run?) and would be replaced: pass a new --out, or delete it first.")


def load_generator(device: str | torch.device = "cpu", path: str | Path | None = None) -> nn.Module:
    """The pretrained EMA generator in ``eval()`` mode, float32 on ``device``.

    ``G(z, y)`` maps ``z [B, G.z_dim]`` and ``y [B]`` to images ``[B, 3, 32, 32]`` in [-1, 1];
    ``G.classes`` holds the class names. Loading never unpickles code (``weights_only=True``)
    and checks the file's hash against its card.
    """
    path = Path(path) if path is not None else GENERATOR_FILE
    require_files(path, "train your own (README: 'Reproduce the pretrained generator')")
    verify_card(path)
    state = load_checkpoint(path, "cpu")
    require_keys(state, ("model", "state_dict"), path, "a pretrained-generator file")
    weights = state["state_dict"]
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise CheckpointError(f"{path}: 'state_dict' must map parameter names to tensors; the file was edited or is "
                              "not an exported generator. Export it again with python -m cgan_course.release export")
    cfg = model_config_from(state["model"], path)  # bounded sizes: a huge config is refused before anything is built
    G = build_generator(cfg)
    load_state_strict(G, {k: v.float() for k, v in weights.items()}, "generator", path)
    G.classes = class_names_from(state, cfg.num_classes, path) or None  # None: unconditional
    return G.to(device).eval()
