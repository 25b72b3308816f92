"""Checkpoint and release files: atomic writes, safe loads (no arbitrary unpickling), cards and
clear errors.

Used by training, the classifier and the pretrained files alike; every failure is a
``CheckpointError`` whose message names the file, the problem and the fix.

Released weights (``x.pt``) come with a JSON *card* beside them (``x.json``) that holds the
weights' sha256; ``verify_card`` checks it before a load. Every file is written by
``atomic_write`` (a temporary file in the same folder, then ``os.replace``), and files that belong
together (weights, card, grid) are built in a ``staging_folder`` and moved in only when all of
them were made.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
import torch.nn as nn

from . import files
from .data import CLASSES
from .errors import CourseError, MissingFile
from .files import sha256  # noqa: F401 (release cards and tests read it here)
from .models import ModelConfig
from .runtime import cpu_model


class CheckpointError(CourseError):
    """A checkpoint that cannot be used here; the message says why and what to do."""


# ----------------------------------------------------------------------------------------------
# Writing: one atomic path for weights, checkpoints and cards


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """``files.atomic_write`` for weights, checkpoints and cards: a failed write, an ``OSError`` or
    the ``RuntimeError`` ("unexpected pos ...") that ``torch.save`` raises on a short write, becomes
    a ``CheckpointError`` naming the file; the previous file stays intact."""
    try:
        return files.atomic_write(path, write)
    except (OSError, RuntimeError) as err:
        if isinstance(err, CourseError):
            raise
        raise _write_error(Path(path), err) from None


def _write_error(path: Path, err: BaseException) -> CheckpointError:
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:,.0f} MiB free there"
    except OSError:
        free = "free space unknown"
    if getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        cause = "the disk is full"
    else:  # torch.save reports a short write as a RuntimeError ("unexpected pos ...")
        cause = "the write failed" + (", most likely because the disk is full" if isinstance(err, RuntimeError) else "")
    reason = (str(err).strip().splitlines() or [""])[0][:200]
    return CheckpointError(f"could not write {path}: {cause} ({type(err).__name__}: {reason}; {free}). Free some space "
                           "or write elsewhere; the previous file, if there was one, is unchanged.")


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write ``state`` with ``torch.save`` atomically: a crash, Ctrl-C or full disk mid-write
    leaves the previous checkpoint intact."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


@contextlib.contextmanager
def staging_folder(dest: str | Path, replaces: Iterable[str] = ()) -> Iterator[Path]:
    """A temporary folder beside ``dest`` in which to build files that belong together.

    When the ``with`` block succeeds, its files are renamed into ``dest`` (created if needed), and
    the files named in ``replaces`` that the block did not make are removed from ``dest``, so no
    stale file describes the new ones. When it fails, ``dest`` is untouched and the staging
    folder is deleted.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{dest.name}.staging-", dir=dest.parent))
    except OSError as err:
        raise _write_error(dest, err) from None
    try:
        yield staging
        made = sorted(p.name for p in staging.iterdir())
        try:
            dest.mkdir(exist_ok=True)
            for name in made:
                os.replace(staging / name, dest / name)
            for name in set(replaces) - set(made):
                (dest / name).unlink(missing_ok=True)
        except OSError as err:
            raise _write_error(dest, err) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# Cards: the JSON beside released weights



def card_path(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".json")


def write_card(weights: str | Path, card: dict) -> Path:
    """Write ``card`` beside ``weights``, headed by the weights' file name and sha256."""
    weights = Path(weights)
    full = {"file": weights.name, "sha256": sha256(weights),
            **{k: v for k, v in card.items() if k not in ("file", "sha256")}}
    text = json.dumps(full, indent=2) + "\n"
    return atomic_write(card_path(weights), lambda tmp: tmp.write_text(text))


def read_card(weights: str | Path) -> dict:
    """The card beside ``weights``; a missing or unreadable card is a one-line error naming it."""
    card = card_path(weights)
    if not card.is_file():
        raise MissingFile(f"{card} is missing: it comes with {Path(weights).name}; restore both, or export them again.")
    try:
        data = json.loads(card.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{card} is not valid JSON ({err}): restore it (`git checkout -- data/pretrained` "
                              "for the committed files) or export the weights again.") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{card} holds a JSON {type(data).__name__}, not a card (an object with a sha256): "
                              "restore it or export the weights again.")
    return data


def verify_card(weights: str | Path) -> dict:
    """Check ``weights`` against the sha256 in its card and return the card. A card without a
    sha256 cannot vouch for the file, so it is refused like a mismatch."""
    weights = Path(weights)
    card = read_card(weights)
    expected = card.get("sha256")
    if not isinstance(expected, str) or not expected:
        raise CheckpointError(f"{card_path(weights)} has no sha256, so {weights.name} cannot be checked: restore both "
                              "with `git checkout -- data/pretrained` (committed files) or export them again.")
    actual = sha256(weights)
    if actual != expected:
        raise CheckpointError(f"{weights} does not match its card (sha256 {actual[:12]}... vs {expected[:12]}...): "
                              "the file is corrupt or was replaced. Restore it with `git checkout -- data/pretrained` "
                              "(committed files) or export it again.")
    return card


def class_names_from(state: dict, num_classes: int, path: str | Path) -> list[str]:
    """The class names saved with released weights: one string per class of the model. An
    unconditional model has none (older exports saved CIFAR-10's beside it anyway); files from
    before names were saved hold CIFAR-10 models."""
    if num_classes == 0:
        return []
    names = state.get("classes", list(CLASSES))
    if not isinstance(names, (list, tuple)) or len(names) != num_classes or not all(isinstance(n, str) for n in names):
        count = len(names) if isinstance(names, (list, tuple)) else type(names).__name__
        raise CheckpointError(f"{path} names {count} classes but its model has {num_classes}: the file was edited or "
                              "broken. Restore it with `git checkout -- data/pretrained` or export it again.")
    return list(names)


def describe_hardware(device: str | torch.device = "cpu") -> str:
    """The machine a card records: the GPU's name, or the CPU's model and core count."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {os.cpu_count()} cores"


# ----------------------------------------------------------------------------------------------
# Reading


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
LEGACY_MODEL_FIELDS = {"out_cbn": False, "g_init": "xavier", "class_head": False, "class_input": False}


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
