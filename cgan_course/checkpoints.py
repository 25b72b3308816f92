"""Checkpoint files: atomic writes, safe loads (no arbitrary unpickling) and clear errors.

Used by training, the classifier and the pretrained files alike; every failure is a
``CheckpointError`` whose message names the file, the problem and the fix.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
import torch.nn as nn

from .errors import CourseError
from .models import ModelConfig


class CheckpointError(CourseError):
    """A checkpoint that cannot be used here; the message says why and what to do."""


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write atomically: to a temporary file in the same folder, then rename over the old one.
    A crash or Ctrl-C mid-write leaves the previous checkpoint intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint safely: ``weights_only=True`` unpickles tensors and plain containers only."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}. Train first, or check the --out folder.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated file, not a torch file, or objects that need pickle
        lines = [ln for ln in str(err).splitlines() if ln.strip()] or [""]
        reason = next((ln for ln in lines if "Unsupported global" in ln), lines[0])[:200]
        raise CheckpointError(f"{path} is not a readable course checkpoint ({type(err).__name__}: "
                              f"{reason}). Delete it or retrain.") from None


def require_keys(state: dict, keys: tuple[str, ...], path: str | Path, what: str) -> None:
    """A loaded file must be the kind of file the caller expects; say which kind it is not."""
    missing = [k for k in keys if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"{path} is not {what} (it has no {', '.join(missing)}). "
                              "Pass the file the command expects, e.g. runs/<name>/checkpoint.pt for training.")


# Fields added to ModelConfig after checkpoints were published, with the value that builds the
# architecture those older files hold (a saved config without the field predates it).
LEGACY_MODEL_FIELDS = {"out_cbn": False, "g_init": "xavier"}


def with_legacy_fields(saved: dict) -> dict:
    """A saved model config with the fields it predates filled in as the old architecture had them."""
    return {**LEGACY_MODEL_FIELDS, **saved}


def model_config_from(saved: dict, path: str | Path) -> ModelConfig:
    """The ``ModelConfig`` stored in a checkpoint, or a clear error if this version cannot read it."""
    try:
        return ModelConfig(**with_legacy_fields(saved))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path} holds a model configuration this version of the course cannot build "
                              f"({err}). Was it saved by another version?") from None


def check_model_config(saved: dict, wanted: ModelConfig, path: str | Path) -> None:
    """Refuse a checkpoint whose architecture differs from the requested one, naming the fields.

    ``g_init`` only sets the starting weights, which a resume replaces, and ``out_cbn`` does
    nothing for the classic CGAN or an unconditional model: neither refuses a resume there."""
    wanted_d, saved = dataclasses.asdict(wanted), with_legacy_fields(saved)
    ignored = {"g_init"} | ({"out_cbn"} if wanted.arch == "classic" or wanted.num_classes == 0 else set())
    diff = {k: (saved.get(k), v) for k, v in wanted_d.items() if k not in ignored and saved.get(k) != v}
    if diff:
        desc = ", ".join(f"{k}: checkpoint {a!r} vs requested {b!r}" for k, (a, b) in diff.items())
        hint = " (a run from before out_cbn existed resumes with --no-out-cbn)" if "out_cbn" in diff else ""
        raise CheckpointError(f"{path} was trained with a different model ({desc}). Use the checkpoint's "
                              f"own settings{hint}, or a different --out folder for a new run.")


def load_state_strict(module: nn.Module, state: dict, what: str, path: str | Path) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: the {what} weights do not fit this model "
                              f"({str(err).splitlines()[0]}...). Was it saved by another version?") from None
