"""``python -m cgan_course.train``: the command line, generated from ``TrainConfig``'s fields.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import torch.distributed as dist

from ..checkpoints import CheckpointError, load_checkpoint, with_legacy_fields
from ..errors import run_cli
from ..models import ModelConfig
from .config import RESUME_MAY_CHANGE, TrainConfig
from .loop import train
from .recipes import RECIPES

# ----------------------------------------------------------------------------------------------
# Command line


def _add_dataclass_args(parser: argparse.ArgumentParser, cls, skip: set[str]) -> None:
    """One ``--flag`` per dataclass field, its help text from the field's ``metadata["help"]``."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata.get('help', '')} (default: {f.default})".lstrip()
        if f.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=help_text)
        else:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            parser.add_argument(flag, type=kind, default=f.default, help=help_text)


def config_from_args(argv: list[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(
        prog="python -m cgan_course.train",
        description="Train a conditional GAN on CIFAR-10 (the official batches, the JPEG mirror's class-folder "
                    "tree or .tar.gz, or the committed 1,000-image sample), or on your own class folders: "
                    "--data-source folders --data-root PATH --num-classes N --image-size 64 (images resized and "
                    "centre-cropped; class names saved with the model). Runs on CPU, CUDA or MPS; under torchrun "
                    "it uses DistributedDataParallel.")
    parser.add_argument("--recipe", choices=list(RECIPES), default=None,
                        help="start from one of the course's recipes (cgan_course/training/recipes.py); the options given "
                             "beside it change only themselves. Without it, the defaults below")
    model = parser.add_argument_group("model")
    _add_dataclass_args(model, ModelConfig, set())
    _add_dataclass_args(parser, TrainConfig, {"model"})
    model_names = {f.name for f in dataclasses.fields(ModelConfig)}
    train_names = {f.name for f in dataclasses.fields(TrainConfig)} - {"model"}
    known = parser.parse_known_args(argv)[0]
    if known.recipe is not None:  # the recipe's values become the defaults, so explicit flags still win
        base = RECIPES[known.recipe]
        parser.set_defaults(**dataclasses.asdict(base.model), **{k: v for k, v in base.to_dict().items() if k != "model"})
    saved = _resumable_config(Path(known.out) / "checkpoint.pt") if known.resume else None
    if saved is not None:  # --resume continues with the run's own settings; only options given explicitly differ
        parser.set_defaults(**{k: v for k, v in saved.pop("model").items() if k in model_names},
                            **{k: v for k, v in saved.items() if k in train_names and k not in RESUME_MAY_CHANGE})
    args = vars(parser.parse_args(argv))
    args.pop("recipe")
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    model_cfg = ModelConfig(**{k: v for k, v in args.items() if k in model_fields})
    return TrainConfig(model=model_cfg, **{k: v for k, v in args.items() if k not in model_fields})


def _resumable_config(path: Path) -> dict | None:
    """The saved config of the checkpoint a ``--resume`` will continue, or None (no such file, or
    one ``train`` itself will refuse with the full message)."""
    if not path.is_file():
        return None
    try:
        saved = load_checkpoint(path)
    except CheckpointError:
        return None
    config = saved.get("config") if isinstance(saved, dict) else None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        return None
    return {**config, "model": with_legacy_fields(config["model"])}


def main(argv: list[str] | None = None) -> None:
    try:
        result = run_cli(lambda: train(config_from_args(argv)), "python -m cgan_course.train")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done: step {result.step}, checkpoint {result.out / 'checkpoint.pt'}")
    if result.interrupted:
        sys.exit(130)
