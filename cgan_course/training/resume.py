"""Checkpoints and exact resume: the checkpoint's layout and schema (checked before use), the RNG
state, the data fingerprint, which settings a resume may change; and the compact training
state (fp16 G, D, EMA) from which a fine-tune starts.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn

from ..checkpoints import (
    CheckpointError,
    check_model_config,
    load_checkpoint,
    load_state_strict,
    model_config_from,
    require_keys,
    save_checkpoint,
    with_legacy_fields,
)
from ..errors import CourseError
from ..models import build_generator
from ..validate import shown
from .config import MAX_STEPS, RESUME_MAY_CHANGE, TrainConfig
from .runfolder import TrainingDiverged, _kept, _resume_log
from .state import Placement, TrainState, unwrap
from .step import calibrated

CHECKPOINT_FORMAT = 1  # bumped when a checkpoint's layout changes; a newer file is refused by name


# ----------------------------------------------------------------------------------------------
# Checkpoints and resuming


TRAINING_KEYS = ("config", "step", "G", "D", "G_ema", "opt_g", "opt_d", "scaler_g", "scaler_d",
                 "batches", "history", "rng")


def _rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
    elif device.type == "mps" and "mps" in state:
        torch.mps.set_rng_state(state["mps"])


def _save(state: TrainState, cfg: TrainConfig, path: Path, place: Placement, sums: torch.Tensor,
          classes: list[str] | None, fingerprint: str | None = None) -> None:
    """Write the checkpoint (rank 0), with every rank's RNG so each continues its own noise stream."""
    if not torch.isfinite(sums).all():  # never overwrite the last good checkpoint with diverged weights
        raise TrainingDiverged(f"loss became NaN/inf before step {state.step}; not saving. {_kept(path)} "
                               "Try a lower learning rate or --precision fp32.")
    rng = [_rng_state(place.device)]
    if place.world > 1:
        rng = [None] * place.world
        dist.all_gather_object(rng, {k: v.cpu() for k, v in _rng_state(place.device).items()})
    if place.is_main:
        save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "config": cfg.to_dict(), **state.state_dict(), "rng": rng,
                               **({"classes": classes} if classes is not None else {}),  # label order, for samplers
                               **({"data_fingerprint": fingerprint} if fingerprint is not None else {}),
                               "versions": {"torch": str(torch.__version__)}})  # for a person reading the file


def _resume(state: TrainState, cfg: TrainConfig, path: Path, place: Placement, classes: list[str] | None,
            fingerprint: str | None) -> None:
    """Load ``path`` into ``state`` and this rank's RNG, after checking it is this run's checkpoint."""
    saved = load_checkpoint(path, "cpu")  # RNG states must stay CPU tensors; load_state_dict moves the rest
    require_keys(saved, TRAINING_KEYS, path, "a training checkpoint of this course")
    fmt = saved.get("format", 1)
    if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt > CHECKPOINT_FORMAT:  # before the schema, which may differ
        raise CheckpointError(f"{path} has checkpoint format {saved['format']}, newer than this version of the "
                              f"course reads ({CHECKPOINT_FORMAT}); update the course, or pass another --out")
    check_training_schema(saved, path)
    check_model_config(saved["config"]["model"], cfg.model, path)
    check_resume_config(saved["config"], cfg, path)
    if classes is not None and saved.get("classes", classes) != classes:
        reordered = sorted(saved["classes"]) == sorted(classes)
        raise CheckpointError(f"{path} was trained on the classes {saved['classes']}, but the data now has "
                              f"{classes}: the labels would change meaning. "
                              + ("(Numeric class folders are now ordered as numbers, 0, 1, 2, ..., 10; this run was "
                                 "made with string order: continue it with the course version that made it.) "
                                 if reordered else "") + "Pass another --out to start a new run.")
    if fingerprint is not None and saved.get("data_fingerprint", fingerprint) != fingerprint:
        raise CheckpointError(f"{path} was trained on other images than the data now loaded (its data fingerprint "
                              f"{saved['data_fingerprint']} vs {fingerprint}): resuming would silently change the "
                              "data. Point --data-root at the run's data, or start a new run with another --out.")
    try:
        state.load_state_dict(saved, path)
        _set_rng_state(saved["rng"][min(place.rank, len(saved["rng"]) - 1)], place.device)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as err:  # CheckpointError is a ValueError
        if isinstance(err, CourseError):
            raise
        raise CheckpointError(f"{path} holds training state this run cannot load ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:160] if str(err) else 'no detail'}). Was it edited, or "
                              "saved by another version? Resume from an intact checkpoint, or start a new run.") from None
    if place.is_main:
        _resume_log(Path(cfg.out) / "log.csv", state.step, state.history)
        print(f"resumed from {path} at step {state.step}")


_SCHEMA = {"format": int, "step": int, "config": dict, "G": dict, "D": dict, "G_ema": dict, "opt_g": dict,
           "opt_d": dict, "scaler_g": dict, "scaler_d": dict, "batches": dict, "history": list, "rng": list}


def check_training_schema(saved: dict, path: str | Path) -> None:
    """The types and ranges of a training checkpoint's fields, checked before any is used, so an
    edited or foreign file is one clear error, never a traceback deep in the optimiser."""
    def bad(field: str, what: str) -> CheckpointError:
        return CheckpointError(f"{path}: the field {field!r} must be {what}, got {shown(saved.get(field))}. The file "
                               "was edited or is not a training checkpoint of this course; resume from an intact "
                               "one, or start a new run.")
    for key, kind in _SCHEMA.items():
        value = saved.get(key, 1 if key == "format" else None)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise bad(key, {int: "an integer", dict: "a dict", list: "a list"}[kind])
    if not 0 <= saved["step"] <= MAX_STEPS:
        raise bad("step", f"in [0, {MAX_STEPS}]")
    if not isinstance(saved["config"].get("model"), dict):
        raise bad("config", "a dict with the model's config under 'model'")
    if not saved["rng"] or not all(isinstance(r, dict) and isinstance(r.get("cpu"), torch.Tensor) for r in saved["rng"]):
        raise bad("rng", "a non-empty list of RNG states")
    if not all(isinstance(row, dict) for row in saved["history"]):
        raise bad("history", "a list of log rows")
    for opt in ("opt_g", "opt_d"):
        if not isinstance(saved[opt].get("state"), dict) or not isinstance(saved[opt].get("param_groups"), list):
            raise bad(opt, "an optimiser state (state, param_groups)")


def data_fingerprint(images: torch.Tensor, labels: torch.Tensor) -> str:
    """A short hash of the training images and labels: a resume on other data is refused by it
    (the class names alone can match while the images differ). 0.2 s for CIFAR-10's 150 MB."""
    h = hashlib.blake2b(digest_size=8)
    h.update(images.detach().cpu().contiguous().numpy())  # the buffer itself, not a copy of it
    h.update(labels.detach().cpu().to(torch.int64).contiguous().numpy())
    return h.hexdigest()


def check_resume_config(saved: dict, cfg: TrainConfig, path: str | Path) -> None:
    """Refuse to resume with settings that change what the run computes (``RESUME_MAY_CHANGE``
    lists those that may change), naming each. The model is checked by ``check_model_config``;
    a field newer than the checkpoint must keep its default (what the run computed without it)."""
    wanted, defaults = cfg.to_dict(), TrainConfig().to_dict()
    was = lambda k: repr(saved[k]) if k in saved else f"{defaults[k]!r}, made before the option existed"  # noqa: E731
    changed = [f"--{k.replace('_', '-')} {v!r} (checkpoint: {was(k)})" for k, v in wanted.items()
               if k != "model" and k not in RESUME_MAY_CHANGE and saved.get(k, defaults[k]) != v]
    if changed:
        raise CheckpointError(f"{path} was trained with other settings: {', '.join(changed)}. A resumed run keeps its "
                              "checkpoint's settings: drop these options to continue it, or start a new run "
                              "with --overwrite or another --out")


# ----------------------------------------------------------------------------------------------
# The compact training state: where a fine-tune starts (committed beside the pretrained generator)

TRAIN_STATE_FORMAT = 1
TRAIN_STATE_KEYS = ("format", "kind", "config", "step", "G", "D", "G_ema")


def save_train_state(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the compact training state of a training checkpoint: G, D and EMA weights in fp16,
    the config, the step, the class names, the data fingerprint and the log history; no optimiser
    moments or RNG (a fine-tune starts those afresh). About 7.5 MB for the pretrained recipe,
    against 35 MB for the full checkpoint. Written atomically."""
    saved = load_checkpoint(checkpoint, "cpu")
    require_keys(saved, TRAINING_KEYS, checkpoint, "a training checkpoint of this course")
    check_training_schema(saved, checkpoint)
    half = lambda sd: {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}  # noqa: E731
    state = {"format": TRAIN_STATE_FORMAT, "kind": "train-state", "config": saved["config"], "step": saved["step"],
             "G": half(saved["G"]), "D": half(saved["D"]), "G_ema": half(saved["G_ema"]),
             "history": saved["history"],
             **{k: saved[k] for k in ("classes", "data_fingerprint") if k in saved}}
    save_checkpoint(out, state)
    return Path(out)


def load_train_state(path: str | Path) -> dict:
    """A compact training state, checked: the right kind of file, a readable model config, a step."""
    saved = load_checkpoint(path, "cpu")
    require_keys(saved, TRAIN_STATE_KEYS, path, "a compact training state (train_state.pt)")
    if saved["kind"] != "train-state" or saved["format"] != TRAIN_STATE_FORMAT:
        raise CheckpointError(f"{path} is a {saved['kind']!r} file of format {saved['format']!r}, not a training state "
                              f"of format {TRAIN_STATE_FORMAT}; export it again with python -m cgan_course.release export")
    if isinstance(saved["step"], bool) or not isinstance(saved["step"], int) or not 0 <= saved["step"] <= MAX_STEPS:
        raise CheckpointError(f"{path}: the field 'step' must be an integer in [0, {MAX_STEPS}], got {shown(saved['step'])}")
    if not isinstance(saved["config"], dict) or not isinstance(saved["config"].get("model"), dict):
        raise CheckpointError(f"{path}: the field 'config' must be a dict with the model's config under 'model'")
    for key in ("G", "D", "G_ema"):
        weights = saved[key]
        if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
            raise CheckpointError(f"{path}: the field {key!r} must map parameter names to tensors")
        if not all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point()):
            raise CheckpointError(f"{path}: the {key} weights hold NaN or inf (beyond fp16's range?); export it again")
    return saved


def init_from_train_state(state: TrainState, cfg: TrainConfig, classes: list[str] | None,
                          saved: dict | None = None) -> None:
    """Start ``state`` from the training state ``cfg.init_from``: G, D and EMA weights and the step
    count (so ``--steps`` still counts from the first run, and the EMA keeps its full decay). The
    model must be the same, except that a D class head the state lacks may be added: it starts
    from its initial weights (fine-tuning a generator with an AC-style head)."""
    path = Path(cfg.init_from)
    saved = saved if saved is not None else load_train_state(path)
    old_model = with_legacy_fields(saved["config"]["model"])
    adds_head = cfg.model.class_head and not old_model.get("class_head", False)
    check_model_config({**old_model, "class_head": cfg.model.class_head} if adds_head else old_model, cfg.model, path)
    if classes is not None and saved.get("classes", classes) != classes:
        raise CheckpointError(f"{path} was trained on the classes {saved['classes']}, but the data now has {classes}: "
                              "the labels would change meaning. Start from a state trained on these classes.")
    as_float = lambda sd: {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}  # noqa: E731
    load_state_strict(unwrap(state.G), as_float(saved["G"]), "generator", path)
    load_state_strict(state.ema.model, as_float(saved["G_ema"]), "EMA generator", path)
    D = unwrap(state.D)
    if adds_head:  # every weight but the new head's must come from the state
        fresh = {k: v for k, v in D.state_dict().items() if k.startswith("class_head.")}
        load_state_strict(D, {**as_float(saved["D"]), **fresh}, "discriminator", path)
    else:
        load_state_strict(D, as_float(saved["D"]), "discriminator", path)
    state.step = saved["step"]
    print(f"initialised from {path} (step {state.step}{', a fresh D class head' if adds_head else ''})")


def load_generator_from_checkpoint(path: str | Path, ema: bool = True, device: str | torch.device = "cpu",
                                   calibrate: bool = False) -> nn.Module:
    """The (EMA) generator of a training checkpoint, in eval mode. ``calibrate`` recomputes its
    BatchNorm statistics as ``train()`` does for ``G_ema`` (``calibrated``), so it samples the same
    pictures as the run's ``result.G_ema``; without it the statistics are those saved for the raw G."""
    state = load_checkpoint(path, device)
    require_keys(state, ("config", "G", "G_ema"), path, "a training checkpoint of this course")
    G = build_generator(model_config_from(state["config"]["model"], path)).to(device)
    load_state_strict(G, state["G_ema" if ema else "G"], "generator", path)
    G.classes = state.get("classes")  # None for checkpoints made before class names were saved
    return calibrated(G) if calibrate else G.eval()
