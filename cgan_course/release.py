"""Releasing a trained generator: the files ``load_generator()`` reads, and how they were made.

``python -m cgan_course.release export <checkpoint>`` turns a training checkpoint into the
course's pretrained files: the EMA generator in half precision (``generator.pt``), its card
(``generator.json``: config, the command that reproduces it, hardware, versions, measured
metrics), a 10x10 sample grid and the training log. Everything is built in a staging folder and
moved in only once every step succeeded. The destination is a new folder (``--out``, default
``runs/export-<date>-<time>``); replacing the committed ``data/pretrained`` files takes
``--replace-committed``.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import scipy
import torch
import torch.nn as nn

from .checkpoints import (
    describe_hardware,
    load_checkpoint,
    model_config_from,
    read_card,
    require_keys,
    save_checkpoint,
    sha256,
    staging_folder,
    with_legacy_fields,
    write_card,
)
from .classifier import CLASSIFIER_FILE
from .data import CLASSES, load_cifar10
from .errors import CourseError, run_cli
from .metrics import (
    ClassifierFeatures,
    class_control,
    class_morph_curve,
    class_recall,
    evaluate_generator,
    fd_between,
    reference_stats,
)
from .paths import CIFAR10_ENV_VAR
from .pretrained import (
    GENERATOR_FILE,
    PRETRAINED_DIR,
    check_destination,
    load_generator,
)
from .pretrained import read_card as read_committed_card
from .sampling import recalibrate_batchnorm, sample_grid, save_image_grid
from .training import TrainConfig, load_generator_from_checkpoint, save_train_state

GRID_FILE, LOG_FILE, STATE_FILE = "generator_grid.png", "train_log.csv", "train_state.pt"
RELEASE_FILES = (GENERATOR_FILE.name, GENERATOR_FILE.with_suffix(".json").name, GRID_FILE, LOG_FILE, STATE_FILE)


def export_generator(checkpoint: str | Path, out: str | Path, card: dict | None = None,
                     recalibrate: bool = True) -> Path:
    """Write the EMA generator of a training checkpoint as half-precision weights plus a card.

    ``recalibrate`` recomputes BatchNorm statistics for the averaged weights first (see
    ``sampling.recalibrate_batchnorm``). ``card`` entries (metrics, hardware...) are merged in.
    """
    G = load_generator_from_checkpoint(checkpoint, ema=True)
    if recalibrate:
        recalibrate_batchnorm(G)
    model_cfg = model_config_from(load_checkpoint(checkpoint)["config"]["model"], checkpoint)
    classes = G.classes or (list(CLASSES) if model_cfg.num_classes == len(CLASSES)
                            else [f"class {i}" for i in range(model_cfg.num_classes)])
    weights = {k: (v.half() if v.is_floating_point() else v) for k, v in G.state_dict().items()}
    save_checkpoint(out, {"model": dataclasses.asdict(model_cfg), "classes": classes, "state_dict": weights})
    write_card(out, {"model": dataclasses.asdict(model_cfg), **(card or {})})
    return Path(out)


def training_command(config: dict, steps: int | None = None, out: str = "runs/pretrained") -> str:
    """The ``python -m cgan_course.train`` command line that reproduces a checkpoint's config.

    Run-management settings of the last segment (``--max-minutes``, ``--resume``, ``--out``) are
    left out; ``steps`` (the checkpoint's step) replaces the segment's step budget, so the command
    trains exactly as far as the checkpoint did in one go. A CIFAR-10 folder's path on the training
    machine is written ``$CGAN_COURSE_CIFAR10``: the reader's copy lives elsewhere.
    """
    defaults = TrainConfig().to_dict()
    config = {**config, "steps": steps or config["steps"], "max_minutes": defaults["max_minutes"], "out": out,
              "model": with_legacy_fields(config["model"])}  # an older config spells out the old architecture
    if config.get("data_source") == "folder" and config.get("data_root"):
        config["data_root"] = f"${CIFAR10_ENV_VAR}"
    args = []
    for values, base in ((config["model"], defaults["model"]), (config, defaults)):
        for k, v in values.items():
            if k in ("model", "resume", "overwrite", "progress") or v == base.get(k):
                continue
            flag = "--" + k.replace("_", "-")
            args.append((flag if v else "--no-" + k.replace("_", "-")) if isinstance(v, bool) else f"{flag} {v}")
    return "python -m cgan_course.train " + " ".join(args)


def wall_time_s(log_csv: Path) -> float:
    """Total training wall time from a log whose ``time_s`` restarts at each resume."""
    total, last = 0.0, 0.0
    with open(log_csv) as f:
        for row in csv.DictReader(f):
            t = float(row["time_s"])
            if t < last:  # a new process (resume) started its clock again
                total += last
            last = t
    return total + last


def _metric(score) -> dict:
    return {**score.as_dict(), "text": str(score)}


MORPH_ROUTES = (("airplane", "frog"), ("horse", "ship"), ("cat", "dog"))  # distant, distant, near (notebook 05)


def class_morphs(G: nn.Module, clf: ClassifierFeatures, num_latents: int = 100) -> dict:
    """Notebook 05's class morphs, summarised for the card: the classifier's calibrated probability of
    the target class at t = 0 and t = 1 (mean over ``num_latents`` latents, 95% half-width)."""
    out = {}
    for a, b in MORPH_ROUTES:
        c = class_morph_curve(G, clf, CLASSES.index(a), CLASSES.index(b), num_latents=num_latents)
        out[f"{a} -> {b}"] = {"start": round(c["p_end"][0], 3), "end": round(c["p_end"][-1], 3),
                              "end_ci95": round(c["ci95"][-1], 3)}
    return {**out, "num_latents": num_latents, "temperature": c["temperature"]}


def export_with_metrics(checkpoint: str | Path, out: str | Path, replace_committed: bool = False,
                        data_root: str | None = None, source: str = "auto", num_samples: int = 10_000,
                        note: str = "", history: list[dict] | None = None) -> dict:
    """Export the EMA generator into the folder ``out``, measure it the way the README reports it,
    and write its card, sample grid and training log beside it. Returns the card.

    Nothing reaches ``out`` unless every step succeeded; ``out`` must be a new folder, or the
    committed ``data/pretrained`` with ``replace_committed``. ``history``: the runs that made the
    checkpoint (steps, machine, recipe changes), recorded on the card as given.
    """
    import torchvision  # optional; only its version is recorded

    checkpoint, out = Path(checkpoint), Path(out)
    check_destination(out, RELEASE_FILES, replace_committed)
    state = load_checkpoint(checkpoint)
    require_keys(state, ("config", "step", "G_ema"), checkpoint, "a training checkpoint of this course")
    cfg, steps = state["config"], state["step"]
    model, classes = cfg.get("model", {}) if isinstance(cfg, dict) else {}, state.get("classes")
    if model.get("num_classes") != len(CLASSES) or model.get("image_size") != 32 or (classes and classes != list(CLASSES)):
        raise CourseError(f"{checkpoint} is not a CIFAR-10 generator ({model.get('num_classes')} classes"
                          f"{': ' + ', '.join(classes[:5]) if classes else ''}, {model.get('image_size')} px); "
                          "release export measures against CIFAR-10 with the course classifier. Sample your own "
                          "generator with python -m cgan_course.serve --generator <checkpoint>, or judge it with a "
                          "classifier of its classes (notebook 08)")
    log_csv = checkpoint.parent / "log.csv"
    # the references first: a wrong --data-root fails here, before any work
    clf = ClassifierFeatures()
    ref_train = reference_stats(clf, "train", source=source, root=data_root)
    ref_test = reference_stats(clf, "test", source=source, root=data_root)
    test_images = load_cifar10(data_root, train=False, source=source)  # real images of each class, for recall
    with staging_folder(out, replaces=RELEASE_FILES) as staging:
        weights = export_generator(checkpoint, staging / GENERATOR_FILE.name)
        G = load_generator(path=weights)  # measured as users will load it: fp16 weights, card checked
        scores = evaluate_generator(G, ref_train, clf, num_samples=num_samples, seed=0)
        save_image_grid(sample_grid(G, per_class=10, seed=0), staging / GRID_FILE, nrow=10)
        if log_csv.is_file():
            shutil.copyfile(log_csv, staging / LOG_FILE)
        state_file = save_train_state(checkpoint, staging / STATE_FILE)  # where a fine-tune starts
        accuracy = scores["label_accuracy"]
        card = {
            "summary": (f"projection cGAN ({cfg['model']['backbone']}, g_width {cfg['model']['g_width']}), "
                        f"{steps:,} steps; label accuracy {accuracy.value:.1%}"),
            "training": {
                "config": cfg,
                "command": training_command(cfg, steps=steps),
                "data_source": ref_train.data_source + f" (train split, {ref_train.count:,} images)",
                "steps": steps,
                "images_seen": steps * cfg["batch_size"] * cfg["d_steps"],
                "wall_time_min": round(wall_time_s(log_csv) / 60, 1) if log_csv.is_file() else None,
                "hardware": describe_hardware("cuda" if torch.cuda.is_available() else "cpu"),
                "note": note,
                "history": history or [],
                "train_state": {"file": STATE_FILE, "sha256": sha256(state_file),
                                "megabytes": round(state_file.stat().st_size / 2**20, 2),
                                "use": "python -m cgan_course.train --init-from data/pretrained/train_state.pt "
                                       "(with the recipe's options) starts a fine-tune from these G, D and EMA "
                                       "weights at this step"},
            },
            "export": "EMA generator, BatchNorm statistics recomputed over 20 x 256 samples, fp16 weights",
            "versions": {"python": sys.version.split()[0], "torch": str(torch.__version__),
                         "torchvision": torchvision.__version__, "numpy": np.__version__, "scipy": scipy.__version__},
            "metrics": {
                "label_accuracy": {**_metric(accuracy), "per_class": dict(zip(
                    CLASSES, np.round(accuracy.details["per_class"], 3).tolist()))},
                "classifier_test_accuracy": read_card(CLASSIFIER_FILE).get("test_accuracy"),
                "fd_classifier": _metric(scores["fd"]),
                "intra_fd_classifier": _metric(scores["intra_fd"]) if "intra_fd" in scores else None,
                "fd_classifier_floor_test_vs_train": _metric(fd_between(ref_test, ref_train)),
                "is_classifier": _metric(scores["is"]) if "is" in scores else None,
                "class_morphs": class_morphs(G, clf, num_latents=max(2, min(100, num_samples // 100))),
                "class_control": class_control(G, clf, num_latents=max(2, min(100, num_samples // 100))),
                "class_recall": {**class_recall(G, clf, *test_images, per_class=max(10, min(1000, num_samples // 10))),
                                 "reference": "the test split, every image of each class"},
                "fid_inception": ("not computed: the standard Inception weights are not available offline here; "
                                  "run notebook 06 with CGAN_COURSE_INCEPTION_WEIGHTS set to compute FID-10k"),
                "how": (f"python -m cgan_course.release export <checkpoint>: {num_samples:,} samples, "
                        f"{num_samples // 10:,} per class, seed 0, no truncation; features of the course "
                        "classifier (data/pretrained/classifier.pt); reference = all train images"),
            },
        }
        full = {**read_card(weights), **card}
        write_card(weights, full)
    return full


# ----------------------------------------------------------------------------------------------
# Command line: python -m cgan_course.release {export,show}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cgan_course.release",
                                     description="Export a training checkpoint as a pretrained generator, "
                                                 "or show the committed one's card.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("export", help="write generator.{pt,json}, its sample grid and its training log")
    p.add_argument("checkpoint", help="a training checkpoint, e.g. runs/pretrained/checkpoint.pt")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", default=None, help="a new folder (default: runs/export-<date>-<time>)")
    where.add_argument("--replace-committed", action="store_true",
                       help="replace the committed data/pretrained files, which load_generator() reads")
    p.add_argument("--data-root", default=None, help="CIFAR-10 for the reference statistics (default: auto)")
    p.add_argument("--source", default="auto")
    p.add_argument("--num-samples", type=int, default=10_000)
    p.add_argument("--note", default="", help="free text for the card (e.g. machine load during training)")
    p.add_argument("--history", default=None, help="a JSON file: a list of the runs that made the checkpoint "
                                                   "(steps, machine, recipe changes), recorded on the card")
    sub.add_parser("show", help="print the committed generator's card")
    args = parser.parse_args(argv)
    run_cli(lambda: _run(args), parser.prog)


def _run(args: argparse.Namespace) -> None:
    if args.command == "show":
        print(json.dumps(read_committed_card(), indent=2))
        return
    out = PRETRAINED_DIR if args.replace_committed else Path(args.out or time.strftime("runs/export-%Y%m%d-%H%M%S"))
    history = None
    if args.history is not None:
        try:
            history = json.loads(Path(args.history).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CourseError(f"--history {args.history}: cannot read it as JSON ({err})") from None
        if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
            raise CourseError(f"--history {args.history} must hold a JSON list of objects, one per run")
    card = export_with_metrics(args.checkpoint, out, args.replace_committed, args.data_root, args.source,
                               args.num_samples, args.note, history)
    for k, v in card["metrics"].items():
        print(f"{k}: {v['text'] if isinstance(v, dict) and 'text' in v else v}")
    print(f"wrote {', '.join(RELEASE_FILES)} to {out}")


if __name__ == "__main__":
    main()
