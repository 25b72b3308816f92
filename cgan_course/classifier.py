"""A small CIFAR-10 classifier that trains on a laptop CPU: the judge behind label fidelity and
the feature space of the course's offline Fréchet distance.

The design follows airbench (Keller Jordan, 2024), scaled down for a CPU: a frozen 2x2
"whitening" convolution computed from the data, three conv-BN-GELU stages with max-pooling,
global max-pooling and a linear layer. Training keeps the whole split as one uint8 tensor (no
DataLoader), augments whole tensors (flip + small translations), uses label smoothing, SGD with
Nesterov momentum and a warm-up / linear-decay schedule, and bfloat16 autocast where the CPU
supports it. Evaluation averages the logits of each image and its mirror (flip TTA).

``load_classifier()`` returns the committed model (``data/pretrained/classifier.pt``, fp16
weights, checked against the sha256 in ``classifier.json``). Its forward takes images in [-1, 1]
(the generator's range) and returns logits; ``features(x)`` returns the penultimate layer.

Command line::

    python -m cgan_course.classifier train --data-root $CGAN_COURSE_CIFAR10 \\
        --source folder --epochs 10 --replace-committed
    python -m cgan_course.classifier evaluate --data-root ... --source folder
    python -m cgan_course.classifier calibrate --data-root ... --source folder --replace-committed

Label smoothing leaves the classifier *underconfident*: its softmax says "70%" where it is right
far more often. ``calibrate`` fits one temperature ``T`` on held-out images (temperature scaling,
Guo et al. 2017) and records it on the card; ``load_classifier`` sets ``model.temperature``, and
``probabilities(model, logits)`` is ``softmax(logits / T)``. Argmax decisions (accuracy, label
fidelity) do not depend on ``T``; probabilities (the class-morph curves) do.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoints import (
    CheckpointError,
    card_path,
    class_names_from,
    describe_hardware,
    load_checkpoint,
    load_state_strict,
    read_card,
    require_keys,
    save_checkpoint,
    staging_folder,
    verify_card,
    write_card,
)
from .data import CLASSES, describe_source, load_cifar10, resolve_source, to_unit_range
from .errors import CourseError, run_cli
from .models import count_parameters
from .pretrained import PRETRAINED_DIR, check_destination, require_files
from .runtime import cpu_has_native_bf16, eval_mode

CLASSIFIER_FILE = PRETRAINED_DIR / "classifier.pt"


@dataclass
class ClassifierConfig:
    widths: tuple[int, int, int] = (64, 128, 256)  # channels of the three conv stages
    stem_width: int = 24  # 2x2 whitening conv: 12 eigen-patches and their negatives
    num_classes: int = 10
    logit_scale: float = 0.125  # a small output scale keeps early logits (and the loss) tame


@dataclass
class TrainClassifierConfig:
    epochs: int = 10
    batch_size: int = 512
    lr: float = 0.4  # peak learning rate (mean loss); BN makes the net tolerant of a large one
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.2  # soft targets: less overfitting (and an underconfident softmax: see calibrate)
    warmup_epochs: float = 2.0  # linear warm-up, then linear decay to zero at the end
    translate: int = 2  # random shifts of up to this many pixels (reflect padding)
    whiten_bias_epochs: int = 3  # the stem's bias trains this long, its weights never
    bf16: bool = True  # bfloat16 autocast on CPUs with native bf16 (faster there; emulated elsewhere, so off)
    seed: int = 0

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise CourseError(f"{name} must be >= 1, got {getattr(self, name)}: pass a positive --{name.replace('_', '-')}")


# ----------------------------------------------------------------------------------------------
# Model


class ConvStage(nn.Module):
    """conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU; halves the resolution."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.bn1(self.pool(self.conv1(x))))  # (B, c_in, S, S) -> (B, c_out, S/2, S/2)
        return F.gelu(self.bn2(self.conv2(x)))


class Classifier(nn.Module):
    """``x [B, 3, 32, 32]`` in [-1, 1] -> logits ``[B, num_classes]``."""

    def __init__(self, cfg: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.cfg = cfg
        w1, w2, w3 = cfg.widths
        self.stem = nn.Conv2d(3, cfg.stem_width, 2, bias=True)  # (B, 3, 32, 32) -> (B, 24, 31, 31)
        self.stem.weight.requires_grad_(False)  # set once from the data by init_whitening
        self.stages = nn.Sequential(ConvStage(cfg.stem_width, w1),  # -> (B, w1, 15, 15)
                                    ConvStage(w1, w2),  # -> (B, w2, 7, 7)
                                    ConvStage(w2, w3))  # -> (B, w3, 3, 3)
        self.head = nn.Linear(w3, cfg.num_classes, bias=False)
        self.classes = list(CLASSES) if cfg.num_classes == len(CLASSES) else [f"class {i}" for i in range(cfg.num_classes)]
        self.temperature = 1.0  # softmax temperature; load_classifier sets the card's calibrated value

    @property
    def feature_dim(self) -> int:
        return self.cfg.widths[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate layer: ``x [B, 3, 32, 32]`` in [-1, 1] -> ``[B, widths[-1]]``."""
        _check_images(x)
        h = self.stages(F.gelu(self.stem(x)))
        return h.amax(dim=(2, 3))  # global max-pool: (B, w3, 3, 3) -> (B, w3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)) * self.cfg.logit_scale

    @torch.no_grad()
    def init_whitening(self, x: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the stem to whiten 2x2 patches of ``x [N, 3, H, W]`` in [-1, 1]: its filters are
        the patch covariance's eigenvectors scaled by 1/sqrt(eigenvalue), so the first layer sees
        decorrelated, unit-variance inputs from step one (airbench's main trick)."""
        patches = F.unfold(x.float(), kernel_size=2).transpose(1, 2).reshape(-1, 12).double()  # (N*31*31, 12)
        mean = patches.mean(0)
        cov = torch.cov(patches.T)
        eigval, eigvec = torch.linalg.eigh(cov)  # ascending
        filters = (eigvec / (eigval + eps).sqrt()).T.flip(0)  # (12, 12), strongest component first
        filters = torch.cat([filters, -filters])[: self.cfg.stem_width]  # +/- pairs survive a GELU
        self.stem.weight.copy_(filters.reshape(-1, 3, 2, 2).float())  # (24, 12) -> (24, 3, 2, 2)
        self.stem.bias.copy_(-(filters @ mean).float())  # centre the whitened patches


def _check_images(x: torch.Tensor) -> None:
    if not x.is_floating_point() or x.ndim != 4 or x.shape[1] != 3:
        raise CourseError(f"the classifier takes float images [B, 3, H, W] in [-1, 1], got "
                         f"{x.dtype} {list(x.shape)}; convert uint8 images with data.to_unit_range first.")


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, tta: bool = True, batch_size: int = 500) -> torch.Tensor:
    """Logits ``[N, num_classes]`` (float32, CPU) for uint8 images or floats in [-1, 1].
    ``tta`` averages each image with its mirror image: a little more accuracy (the card records
    both) for twice the work."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, images.shape[0], batch_size):
        x = images[i:i + batch_size]
        x = (to_unit_range(x) if x.dtype == torch.uint8 else x.float()).to(device)
        logits = model(x)
        if tta:
            logits = 0.5 * (logits + model(x.flip(3)))
        out.append(logits.float().cpu())
    return torch.cat(out) if out else torch.zeros(0, model.cfg.num_classes)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, tta: bool = True) -> float:
    """Top-1 accuracy of ``model`` on uint8 ``images [N, 3, 32, 32]`` with ``labels [N]``."""
    with eval_mode(model):
        return (predict_logits(model, images, tta).argmax(1) == labels).float().mean().item()


# ----------------------------------------------------------------------------------------------
# Calibration: what the classifier's probabilities are worth


def probabilities(model: nn.Module, logits: torch.Tensor) -> torch.Tensor:
    """Calibrated class probabilities ``softmax(logits / T)`` ``[N, K]`` with the model's temperature."""
    return torch.softmax(logits.float() / getattr(model, "temperature", 1.0), dim=1)


def calibration_error(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0, bins: int = 15) -> float:
    """Expected calibration error: bin the images by their top probability and average, weighted by
    bin size, the gap between that confidence and the bin's accuracy (0 = perfectly calibrated)."""
    conf, pred = torch.softmax(logits.double() / temperature, dim=1).max(1)  # (N,), (N,)
    right = (pred == labels).double()
    which = (conf * bins).ceil().clamp(1, bins).long() - 1  # bin (i/bins, (i+1)/bins]
    gap = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, conf - right)
    return float(gap.abs().sum() / max(len(labels), 1))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature ``T`` that minimises the cross-entropy of ``softmax(logits / T)`` on these
    labelled images (one parameter, fitted on log T so T stays positive)."""
    if len(labels) < 100:
        raise CourseError(f"fitting a temperature needs at least 100 labelled images, got {len(labels)}: "
                          "fit it on the test split (or the 1,000-image sample)")
    logits, log_t = logits.double(), torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def calibrate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """Fit the temperature on the even-indexed images, report it on the odd-indexed ones, so the
    reported improvement is measured on images the fit never saw. Plain forward (no flip TTA):
    the logits the metrics use."""
    logits = predict_logits(model, images, tta=False)  # (N, K)
    fit, held = slice(0, None, 2), slice(1, None, 2)
    t = fit_temperature(logits[fit], labels[fit])
    lg, y = logits[held], labels[held]
    return {"temperature": round(t, 4), "fitted_on": f"{len(labels[fit])} images (even indices)",
            "checked_on": f"{len(y)} images (odd indices)",
            "ece": {"T=1": round(calibration_error(lg, y), 4), "calibrated": round(calibration_error(lg, y, t), 4)},
            "nll": {"T=1": round(F.cross_entropy(lg, y).item(), 4), "calibrated": round(F.cross_entropy(lg / t, y).item(), 4)},
            "mean_top_probability": {"T=1": round(torch.softmax(lg, 1).max(1)[0].mean().item(), 4),
                                     "calibrated": round(torch.softmax(lg / t, 1).max(1)[0].mean().item(), 4)},
            "accuracy": round((lg.argmax(1) == y).float().mean().item(), 4)}


def _card_temperature(card: dict, path: Path) -> float:
    """The card's calibrated temperature; 1.0 (the raw softmax) for a card that was never calibrated."""
    if "calibration" not in card:
        return 1.0
    cal = card["calibration"]
    t = cal.get("temperature") if isinstance(cal, dict) else None
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not (0.01 <= t <= 100):
        what = f"temperature {t!r}" if isinstance(cal, dict) else f"block {type(cal).__name__} (not an object)"
        raise CheckpointError(f"{card_path(path)} has an invalid calibration {what}: fit it again with `python -m "
                              f"cgan_course.classifier calibrate --weights {path}` (plus --replace-committed for the "
                              "committed file), or restore the card with `git checkout -- data/pretrained`.")
    return float(t)


# ----------------------------------------------------------------------------------------------
# Training


def augment(images: torch.Tensor, translate: int, generator: torch.Generator) -> torch.Tensor:
    """Random mirror + shift of every image of uint8 ``[N, 3, H, W]``, on the whole tensor at once.

    Shifts use reflect padding; each of the (2t+1)^2 offsets is one slicing op over the images
    that drew it, so the cost grows with the number of offsets, not with the number of images.
    """
    n, _, h, w = images.shape
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), images.flip(3), images)
    if translate == 0:
        return x
    t = translate
    padded = F.pad(x.float(), (t, t, t, t), mode="reflect").to(torch.uint8)  # (N, 3, H+2t, W+2t)
    dx = torch.randint(0, 2 * t + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * t + 1, (n,), generator=generator)
    out = torch.empty_like(x)
    for i in range(2 * t + 1):
        for j in range(2 * t + 1):
            idx = ((dy == i) & (dx == j)).nonzero().squeeze(1)
            out[idx] = padded[idx, :, i:i + h, j:j + w]  # crop back to (H, W)
    return out


def lr_at(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Linear warm-up to ``peak`` then linear decay to zero."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    return peak * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def train_classifier(train_data: tuple[torch.Tensor, torch.Tensor], cfg: TrainClassifierConfig = TrainClassifierConfig(),
                     model_cfg: ClassifierConfig = ClassifierConfig(), checkpoint: str | Path | None = None,
                     test_data: tuple[torch.Tensor, torch.Tensor] | None = None,
                     log: Callable[[str], None] = print) -> tuple[Classifier, dict]:
    """Train on uint8 ``train_data`` (images [N, 3, 32, 32], labels [N]); resumable per epoch.

    Returns the model (eval mode, float32) and a summary dict (epochs, seconds, accuracies).
    With ``checkpoint``, the state is saved after every epoch and training resumes from it.
    """
    images, labels = train_data
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = Classifier(model_cfg)
    model.init_whitening(to_unit_range(images[torch.randperm(len(images), generator=gen)[:5000]]))
    model = model.to(memory_format=torch.channels_last)
    decay = [p for n, p in model.named_parameters() if p.requires_grad and n != "stem.bias"]
    opt = torch.optim.SGD([{"params": decay}, {"params": [model.stem.bias], "weight_decay": 0.0}], lr=cfg.lr,
                          momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(images) // cfg.batch_size  # the ragged tail of each shuffle is dropped
    if steps_per_epoch == 0:
        raise CourseError(f"{len(images)} training images are fewer than one batch of {cfg.batch_size}: "
                          "use more images or a smaller batch_size")
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = int(cfg.warmup_epochs * steps_per_epoch)
    use_bf16 = cfg.bf16 and cpu_has_native_bf16()  # emulated bf16 is slower than fp32
    start_epoch, seconds, history = 0, 0.0, []
    if checkpoint is not None and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint)
        if state.get("train_cfg") != dataclasses.asdict(cfg) or state.get("model_cfg") != _cfg_dict(model_cfg):
            raise CheckpointError(f"{checkpoint} was made with a different configuration; delete it to start over.")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["rng"])
        start_epoch, seconds, history = state["epoch"], state["seconds"], state["history"]
        log(f"resumed from {checkpoint} after epoch {start_epoch} ({seconds:.0f} s so far)")
    log(f"classifier {model_cfg.widths}, {count_parameters(model):,} params, {len(images)} train images, "
        f"{cfg.epochs} epochs x {steps_per_epoch} steps, bf16 autocast {use_bf16}, threads {torch.get_num_threads()}")
    # test folders are sorted by class: a random (not the first) 2,000 covers all ten classes
    quick = torch.randperm(len(test_data[1]), generator=torch.Generator().manual_seed(0))[:2000] \
        if test_data is not None else None
    model.train()
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        model.stem.bias.requires_grad_(epoch < cfg.whiten_bias_epochs)
        x_all = augment(images, cfg.translate, gen)
        order = torch.randperm(len(images), generator=gen)
        loss_sum, correct, seen = 0.0, 0, 0
        for i in range(steps_per_epoch):
            step = epoch * steps_per_epoch + i
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total_steps, warmup_steps, cfg.lr)
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            x = to_unit_range(x_all[idx]).contiguous(memory_format=torch.channels_last)
            y = labels[idx]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            if epoch == start_epoch and i == 19:
                per_step = (time.time() - t0) / 20
                log(f"  {per_step:.2f} s/step -> about {per_step * steps_per_epoch:.0f} s/epoch, "
                    f"{per_step * steps_per_epoch * (cfg.epochs - epoch) / 60:.0f} min to go")
        seconds += time.time() - t0
        entry = {"epoch": epoch + 1, "loss": loss_sum / seen, "train_acc": correct / seen, "seconds": round(seconds, 1)}
        if test_data is not None:  # a quick look: 2,000 test images of all classes, no TTA
            entry["test_acc_2k"] = accuracy(model, test_data[0][quick], test_data[1][quick], tta=False)
        history.append(entry)
        if checkpoint is not None:
            save_checkpoint(checkpoint, {"model": model.state_dict(), "opt": opt.state_dict(), "rng": gen.get_state(),
                                         "epoch": epoch + 1, "seconds": seconds, "history": history,
                                         "train_cfg": dataclasses.asdict(cfg), "model_cfg": _cfg_dict(model_cfg)})
        log(" ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()))
    model = model.to(memory_format=torch.contiguous_format).float().eval()
    return model, {"epochs": cfg.epochs, "train_seconds": round(seconds, 1), "history": history,
                   "bf16_autocast": use_bf16}


def _cfg_dict(cfg: ClassifierConfig) -> dict:
    d = dataclasses.asdict(cfg)
    d["widths"] = list(d["widths"])
    return d


# ----------------------------------------------------------------------------------------------
# The committed weights


def export_classifier(model: Classifier, out: str | Path, card: dict | None = None) -> Path:
    """Write fp16 weights plus a JSON card (with the file's sha256) beside them."""
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    save_checkpoint(out, {"model": _cfg_dict(model.cfg), "classes": list(model.classes), "state_dict": state})
    write_card(out, {"architecture": _cfg_dict(model.cfg), "parameters": count_parameters(model), **(card or {})})
    return Path(out)


def load_classifier(device: str | torch.device = "cpu", path: str | Path | None = None,
                    calibrated: bool = True) -> Classifier:
    """The committed classifier in ``eval()`` mode, float32 on ``device``.

    ``model(x)`` maps images ``[B, 3, 32, 32]`` in [-1, 1] to logits ``[B, 10]``;
    ``model.features(x)`` gives the penultimate ``[B, 256]`` features. The file is loaded with
    ``weights_only=True`` and checked against the sha256 in its card ``classifier.json``.
    ``model.temperature`` is the card's calibrated temperature (1.0 without one, or with
    ``calibrated=False``).
    """
    path = Path(path) if path is not None else CLASSIFIER_FILE
    require_files(path, "train one: `python -m cgan_course.classifier train --data-root <cifar10 folder or .tar.gz> "
                        "--source folder --replace-committed`")
    card = verify_card(path)
    temperature = _card_temperature(card, path) if calibrated else 1.0  # calibrate() refits it from scratch
    state = load_checkpoint(path)
    require_keys(state, ("model", "state_dict"), path, "a course classifier file")
    try:
        model = Classifier(ClassifierConfig(**{**state["model"], "widths": tuple(state["model"]["widths"])}))
    except (TypeError, KeyError) as err:
        raise CheckpointError(f"{path} holds a classifier configuration this version cannot build ({err}).") from None
    load_state_strict(model, {k: v.float() if v.is_floating_point() else v for k, v in state["state_dict"].items()},
                      "classifier", path)
    model.classes = class_names_from(state, model.cfg.num_classes, path)
    model.temperature = temperature
    model = model.to(device).eval()
    # channels-last weights make CPU convolutions faster (inputs may stay NCHW)
    return model.to(memory_format=torch.channels_last) if model.stem.weight.device.type == "cpu" else model


# ----------------------------------------------------------------------------------------------
# Command line: python -m cgan_course.classifier {train,evaluate}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cgan_course.classifier",
                                     description="Train or evaluate the course's CIFAR-10 classifier (CPU friendly).")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("train", "evaluate", "calibrate"):
        p = sub.add_parser(name)
        p.add_argument("--data-root", default=None, help="CIFAR-10 folder/.tar.gz (default: data/)")
        p.add_argument("--source", default="auto", help="auto | torchvision | folder | sample")
        p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p = sub.choices["train"]
    p.add_argument("--epochs", type=int, default=TrainClassifierConfig.epochs)
    p.add_argument("--widths", default="64,128,256", help="channels of the three stages")
    p.add_argument("--no-bf16", action="store_true", help="train in float32 (slower on CPUs with bf16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", default="runs/classifier/checkpoint.pt", help="per-epoch state; if the file exists the run resumes from it (delete it to start over)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", default=None, help="the weights file, its card goes beside it; never replaces a file "
                                                   "(default: classifier.pt beside --checkpoint)")
    where.add_argument("--replace-committed", action="store_true",
                       help="write data/pretrained/classifier.pt, replacing the classifier every metric uses")
    for name in ("evaluate", "calibrate"):
        sub.choices[name].add_argument("--weights", default=None, help="default: data/pretrained/classifier.pt")
    sub.choices["calibrate"].add_argument("--replace-committed", action="store_true",
                                          help="needed to rewrite the card of data/pretrained/classifier.pt")
    args = parser.parse_args(argv)
    run_cli(lambda: _run(args, argv), parser.prog)


def _parse_widths(text: str) -> tuple[int, int, int]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        widths = ()
    if len(widths) != 3 or min(widths) < 1:
        raise CourseError(f"--widths takes three positive channel counts such as 64,128,256, got {text!r}")
    return widths


def _run(args: argparse.Namespace, argv: list[str] | None) -> None:
    if args.threads is not None and args.threads < 1:
        raise CourseError(f"--threads must be >= 1, got {args.threads}: leave it out for torch's choice")
    if args.command == "train":  # every check before any data is loaded
        cfg = TrainClassifierConfig(epochs=args.epochs, bf16=not args.no_bf16, seed=args.seed)
        model_cfg = ClassifierConfig(widths=_parse_widths(args.widths))
        out = CLASSIFIER_FILE if args.replace_committed else Path(args.out or Path(args.checkpoint).parent / CLASSIFIER_FILE.name)
        check_destination(out.parent, (out.name, card_path(out).name), args.replace_committed)
    if args.command == "calibrate":
        weights = Path(args.weights) if args.weights else CLASSIFIER_FILE
        if weights.resolve() == CLASSIFIER_FILE.resolve() and not args.replace_committed:
            raise CourseError(f"calibrate rewrites the card of {weights.name}, the committed classifier every metric "
                              "uses: pass --replace-committed to do that, or --weights <your copy>")
    if args.threads:
        torch.set_num_threads(args.threads)
    source, root = (args.source, args.data_root) if args.source != "auto" else resolve_source(args.data_root, train=False)
    source_name = describe_source(source, root)
    test = load_cifar10(root, train=False, source=source)
    if args.command == "evaluate":
        model = load_classifier(path=args.weights)
        t0 = time.time()
        acc, acc_plain = accuracy(model, *test, tta=True), accuracy(model, *test, tta=False)
        print(f"test accuracy {acc:.4f} (flip TTA), {acc_plain:.4f} (plain) on {len(test[1])} images "
              f"({source_name}), {time.time() - t0:.1f} s")
        return
    if args.command == "calibrate":
        model = load_classifier(path=weights, calibrated=False)
        report = {**calibrate(model, *test), "data": f"test split ({source_name})",
                  "command": "python -m cgan_course.classifier " + " ".join(argv if argv is not None else sys.argv[1:])}
        write_card(weights, {**read_card(weights), "calibration": report})
        print(f"temperature {report['temperature']} (fitted on {report['fitted_on']}); on the other "
              f"{report['checked_on']}: ECE {report['ece']['T=1']} -> {report['ece']['calibrated']}, "
              f"NLL {report['nll']['T=1']} -> {report['nll']['calibrated']}; wrote the card {card_path(weights)}")
        return
    train = load_cifar10(args.data_root, train=True, source=args.source)
    model, summary = train_classifier(train, cfg, model_cfg, checkpoint=args.checkpoint, test_data=test,
                                      log=lambda s: print(s, flush=True))
    card = {"data": {"source": source_name, "root": os.path.basename(str(args.data_root)), "train_split": "train",
                     "train_images": len(train[1]), "test_images": len(test[1])},
            "training": {**dataclasses.asdict(cfg), "train_seconds": summary["train_seconds"],
                         "train_minutes": round(summary["train_seconds"] / 60, 1),
                         "bf16_autocast": summary["bf16_autocast"], "threads": torch.get_num_threads(),
                         "hardware": describe_hardware(), "torch": torch.__version__, "history": summary["history"],
                         "command": "python -m cgan_course.classifier " + " ".join(argv if argv is not None else sys.argv[1:])}}
    t0 = time.time()
    with staging_folder(out.parent) as staging:  # weights and card reach --out together, or not at all
        staged = export_classifier(model, staging / out.name, card)
        # the accuracies on the card are those of the fp16 weights, reloaded as users will
        reloaded = load_classifier(path=staged)
        acc, acc_plain = accuracy(reloaded, *test, tta=True), accuracy(reloaded, *test, tta=False)
        write_card(staged, {**read_card(staged), "test_accuracy_tta": round(acc, 4), "test_accuracy": round(acc_plain, 4),
                            "test_split": f"test ({len(test[1])} images, {source_name})",
                            "calibration": {**calibrate(reloaded, *test), "data": f"test split ({source_name})"}})
    print(f"final test accuracy {acc:.4f} (flip TTA), {acc_plain:.4f} (plain) on {len(test[1])} images, "
          f"eval {time.time() - t0:.0f} s; wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {card_path(out).name}",
          flush=True)


if __name__ == "__main__":
    main()
