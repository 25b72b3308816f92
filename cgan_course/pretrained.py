"""The committed pretrained generator: later chapters run from it on any CPU, offline.

``data/pretrained/generator.pt`` holds the EMA generator's weights in half precision plus its
``ModelConfig``; ``generator.json`` beside it is the card (config, data, steps, metrics) with the
file's sha256, checked on load. ``export_generator`` writes both from a training checkpoint.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch
import torch.nn as nn

from .data import CLASSES, REPO_ROOT
from .models import ModelConfig, build_generator
from .train import CheckpointError, load_checkpoint, load_generator_from_checkpoint, load_state_strict

PRETRAINED_DIR = REPO_ROOT / "data" / "pretrained"
GENERATOR_FILE = PRETRAINED_DIR / "generator.pt"


class PretrainedMissing(FileNotFoundError):
    """The pretrained file is not there (e.g. a partial checkout)."""


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def card_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def read_card(path: str | Path = GENERATOR_FILE) -> dict:
    """The JSON card beside a weights file."""
    card = card_path(Path(path))
    if not card.is_file():
        raise PretrainedMissing(f"{card} is missing; it comes with the repository (git checkout data/pretrained).")
    return json.loads(card.read_text())


def verify(path: Path) -> None:
    """Check the weights file against the sha256 in its card, with a fix in the message."""
    if not path.is_file():
        raise PretrainedMissing(
            f"no pretrained weights at {path}. They are committed to the repository; restore them with "
            "`git checkout -- data/pretrained`, or train your own (README: 'Reproduce the pretrained generator').")
    expected = read_card(path).get("sha256")
    actual = sha256(path)
    if expected and actual != expected:
        raise CheckpointError(f"{path} does not match its card (sha256 {actual[:12]}... vs {expected[:12]}...): "
                              "the file is corrupt or was replaced. Restore it with `git checkout -- data/pretrained`.")


def load_generator(device: str | torch.device = "cpu", path: str | Path | None = None) -> nn.Module:
    """The pretrained EMA generator in ``eval()`` mode, float32 on ``device``.

    ``G(z, y)`` maps ``z [B, G.z_dim]`` and ``y [B]`` to images ``[B, 3, 32, 32]`` in [-1, 1];
    ``G.classes`` holds the class names. Loading never unpickles code (``weights_only=True``)
    and checks the file's hash against its card.
    """
    path = Path(path) if path is not None else GENERATOR_FILE
    verify(path)
    state = load_checkpoint(path, "cpu")
    if "model" not in state or "state_dict" not in state:
        raise CheckpointError(f"{path} is not a pretrained-generator file (missing model/state_dict).")
    G = build_generator(ModelConfig(**state["model"]))
    load_state_strict(G, {k: v.float() for k, v in state["state_dict"].items()}, "generator", path)
    G.classes = list(state.get("classes", CLASSES))
    return G.to(device).eval()


def export_generator(checkpoint: str | Path, out: str | Path = GENERATOR_FILE, card: dict | None = None,
                     recalibrate: bool = True) -> Path:
    """Write the EMA generator of a training checkpoint as half-precision weights plus a card.

    ``recalibrate`` recomputes BatchNorm statistics for the averaged weights first (see
    ``sampling.recalibrate_batchnorm``). ``card`` entries (metrics, hardware...) are merged in.
    """
    from .sampling import recalibrate_batchnorm

    out = Path(out)
    G = load_generator_from_checkpoint(checkpoint, ema=True)
    if recalibrate:
        recalibrate_batchnorm(G)
    model_cfg = dataclasses.asdict(ModelConfig(**load_checkpoint(checkpoint)["config"]["model"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save({"format": 1, "model": model_cfg, "classes": list(CLASSES),
                "state_dict": {k: (v.half() if v.is_floating_point() else v) for k, v in G.state_dict().items()}}, tmp)
    tmp.replace(out)
    full_card = {"file": out.name, "sha256": sha256(out), "model": model_cfg, **(card or {})}
    card_path(out).write_text(json.dumps(full_card, indent=2) + "\n")
    return out
