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
from .errors import MissingFile, run_cli
from .models import build_generator
from .checkpoints import (CheckpointError, load_checkpoint, load_state_strict, model_config_from, require_keys,
                          with_legacy_fields)
from .train import TrainConfig, load_generator_from_checkpoint

PRETRAINED_DIR = REPO_ROOT / "data" / "pretrained"
GENERATOR_FILE = PRETRAINED_DIR / "generator.pt"


class PretrainedMissing(MissingFile):
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
    require_keys(state, ("model", "state_dict"), path, "a pretrained-generator file")
    G = build_generator(model_config_from(state["model"], path))
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
    model_cfg = dataclasses.asdict(model_config_from(load_checkpoint(checkpoint)["config"]["model"], checkpoint))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save({"format": 1, "model": model_cfg, "classes": list(CLASSES),
                "state_dict": {k: (v.half() if v.is_floating_point() else v) for k, v in G.state_dict().items()}}, tmp)
    tmp.replace(out)
    full_card = {"file": out.name, "sha256": sha256(out), "model": model_cfg, **(card or {})}
    card_path(out).write_text(json.dumps(full_card, indent=2) + "\n")
    return out


# ----------------------------------------------------------------------------------------------
# Export with measured metrics: python -m cgan_course.pretrained export <checkpoint>


def training_command(config: dict, steps: int | None = None, out: str = "runs/pretrained") -> str:
    """The ``python -m cgan_course.train`` command line that reproduces a checkpoint's config.

    Run-management settings of the last segment (``--max-minutes``, ``--resume``, ``--out``) are
    left out; ``steps`` (the checkpoint's step) replaces the segment's step budget, so the command
    trains exactly as far as the checkpoint did in one go.
    """
    defaults = TrainConfig().to_dict()
    config = {**config, "steps": steps or config["steps"], "max_minutes": defaults["max_minutes"], "out": out,
              "model": with_legacy_fields(config["model"])}  # an older config spells out the old architecture
    args = []
    for values, base in ((config["model"], defaults["model"]), (config, defaults)):
        for k, v in values.items():
            if k in ("model", "resume", "progress") or v == base.get(k):
                continue
            flag = "--" + k.replace("_", "-")
            args.append((flag if v else "--no-" + k.replace("_", "-")) if isinstance(v, bool) else f"{flag} {v}")
    return "python -m cgan_course.train " + " ".join(args)


def _wall_time_s(log_csv: Path) -> float:
    """Total training wall time from a log whose ``time_s`` restarts at each resume."""
    import csv

    total, last = 0.0, 0.0
    with open(log_csv) as f:
        for row in csv.DictReader(f):
            t = float(row["time_s"])
            if t < last:  # a new process (resume) started its clock again
                total += last
            last = t
    return total + last


def _hardware() -> str:
    import os
    import platform

    model = platform.processor() or "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, no GPU" if not torch.cuda.is_available() else torch.cuda.get_device_name()


def export_with_metrics(checkpoint: str | Path, data_root: str | None = None, source: str = "auto",
                        num_samples: int = 10_000, note: str = "") -> dict:
    """Export the EMA generator, then measure it the way the README reports it, and write the card,
    the sample grid and the training log beside the weights."""
    import shutil
    import sys

    import numpy as np
    import scipy
    import torchvision

    from . import metrics
    from .sampling import sample_grid, save_image_grid

    checkpoint = Path(checkpoint)
    state = load_checkpoint(checkpoint)
    require_keys(state, ("config", "step", "G_ema"), checkpoint, "a training checkpoint of this course")
    cfg = state["config"]
    log_csv = checkpoint.parent / "log.csv"
    export_generator(checkpoint)
    G = load_generator()

    clf = metrics.ClassifierFeatures()
    ref_train = metrics.reference_stats(clf, "train", source=source, root=data_root)
    ref_test = metrics.reference_stats(clf, "test", source=source, root=data_root)
    scores = metrics.evaluate_generator(G, ref_train, clf, num_samples=num_samples, seed=0)
    floor = metrics.fd_between(ref_test, ref_train)
    clf_card = json.loads((PRETRAINED_DIR / "classifier.json").read_text())
    save_image_grid(sample_grid(G, per_class=10, seed=0), PRETRAINED_DIR / "generator_grid.png", nrow=10)
    if log_csv.is_file():
        shutil.copyfile(log_csv, PRETRAINED_DIR / "train_log.csv")

    steps = state["step"]
    fid_line = ("not computed: the standard Inception weights are not available offline here; run "
                "notebook 05 with CGAN_COURSE_INCEPTION_WEIGHTS set to compute FID-10k")
    card = {
        "summary": (f"projection cGAN ({cfg['model']['backbone']}, g_width {cfg['model']['g_width']}), "
                    f"{steps:,} steps on CPU; label accuracy {scores['label_accuracy'].value:.1%}"),
        "training": {
            "config": cfg,
            "command": training_command(cfg, steps=state["step"]),
            "data_source": ref_train.data_source + " (train split, 50,000 images)",
            "steps": steps,
            "images_seen": steps * cfg["batch_size"] * cfg["d_steps"],
            "wall_time_min": round(_wall_time_s(log_csv) / 60, 1) if log_csv.is_file() else None,
            "hardware": _hardware(),
            "note": note,
        },
        "export": "EMA generator, BatchNorm statistics recomputed over 20 x 256 samples, fp16 weights",
        "versions": {"python": sys.version.split()[0], "torch": str(torch.__version__),
                     "torchvision": torchvision.__version__, "numpy": np.__version__, "scipy": scipy.__version__},
        "metrics": {
            "label_accuracy": {**scores["label_accuracy"].as_dict(), "text": str(scores["label_accuracy"]),
                               "per_class": dict(zip(CLASSES, np.round(scores["label_accuracy"].details["per_class"], 3).tolist()))},
            "classifier_test_accuracy": clf_card.get("test_accuracy"),
            "fd_classifier": {**scores["fd"].as_dict(), "text": str(scores["fd"])},
            "intra_fd_classifier": ({**scores["intra_fd"].as_dict(), "text": str(scores["intra_fd"])}
                                    if "intra_fd" in scores else None),
            "fd_classifier_floor_test_vs_train": {**floor.as_dict(), "text": str(floor)},
            "is_classifier": {**scores["is"].as_dict(), "text": str(scores["is"])} if "is" in scores else None,
            "fid_inception": fid_line,
            "how": (f"python -m cgan_course.pretrained export <checkpoint>: {num_samples:,} samples, "
                    f"{num_samples // 10:,} per class, seed 0, no truncation; features of the course "
                    "classifier (data/pretrained/classifier.pt); reference = all train images"),
        },
    }
    card_file = card_path(GENERATOR_FILE)
    full = {**json.loads(card_file.read_text()), **card}
    card_file.write_text(json.dumps(full, indent=2) + "\n")
    return full


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cgan_course.pretrained",
                                     description="Export a training checkpoint as the course's pretrained generator.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("export", help="write data/pretrained/generator.{pt,json}, the grid and the log")
    p.add_argument("checkpoint", help="a training checkpoint, e.g. runs/pretrained/checkpoint.pt")
    p.add_argument("--data-root", default=None, help="CIFAR-10 for the reference statistics (default: auto)")
    p.add_argument("--source", default="auto")
    p.add_argument("--num-samples", type=int, default=10_000)
    p.add_argument("--note", default="", help="free text for the card (e.g. machine load during training)")
    p = sub.add_parser("show", help="print the card")
    args = parser.parse_args(argv)
    run_cli(lambda: _run(args), parser.prog)


def _run(args) -> None:
    if args.command == "export":
        card = export_with_metrics(args.checkpoint, args.data_root, args.source, args.num_samples, args.note)
        for k, v in card["metrics"].items():
            print(f"{k}: {v['text'] if isinstance(v, dict) and 'text' in v else v}")
    else:
        print(json.dumps(read_card(), indent=2))


if __name__ == "__main__":
    main()
