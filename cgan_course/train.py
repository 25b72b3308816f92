"""Training a conditional GAN: config, the step, the loop, EMA, checkpoints, command line, multi-GPU.

    python -m cgan_course.train --help
    python -m cgan_course.train --steps 2000 --out runs/demo             # CPU, GPU or MPS
    python -m cgan_course.train --resume --out runs/demo                 # continue exactly
    torchrun --nproc_per_node=4 -m cgan_course.train --out runs/ddp      # DistributedDataParallel

The same ``train(cfg)`` runs in notebooks, in the CLI and in the tests. Its core is ``gan_step``:
``d_steps`` discriminator updates on (real, fake) batches, then one generator update, then the
EMA update. Everything the step changes lives in a ``TrainState``, which is what a checkpoint
saves and a resume loads.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import dataclasses
import functools
import hashlib
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .checkpoints import (CheckpointError, check_model_config, load_checkpoint, load_state_strict,
                          model_config_from, require_keys, save_checkpoint, with_legacy_fields)
from .config import MAX_STEPS, RESUME_MAY_CHANGE, TrainConfig, resolved_loss  # noqa: F401 (re-exported)
from .data import CLASSES, DatasetError, DeviceBatches, describe_source, load_cifar10, load_class_folders, resolve_source
from .diffaugment import diff_augment
from .errors import CourseError, run_cli
from .losses import LOSSES
from .models import ModelConfig, build_discriminator, build_generator
from .runlock import run_folder_lock
from .runtime import (autocast, autocast_dtype, pick_device, precision_name, tf32, uses_channels_last,
                      uses_grad_scaler)
from .recipes import RECIPES
from .sampling import MAX_GRID_SAMPLES, recalibrate_batchnorm, sample_grid, save_image_grid
from .validate import shown

CHECKPOINT_FORMAT = 1  # bumped when a checkpoint's layout changes; a newer file is refused by name
# ----------------------------------------------------------------------------------------------
# EMA


class EMA:
    """Exponential moving average of a model's weights: theta_ema <- d theta_ema + (1 - d) theta.

    Sampling from the average rather than the last iterate smooths out the oscillation of the
    GAN game; it is one of the cheapest quality gains there is. Buffers (BN statistics) are copied.
    Before step ``start`` the average is the model itself (d = 0), so early, fast-changing weights
    do not linger in it.
    """

    def __init__(self, model: nn.Module, decay: float, start: int = 0):
        self.decay, self.start = decay, start
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        # warm-up: early on average over ~step updates only, so the start point is forgotten
        d = 0.0 if step < self.start else min(self.decay, (1 + step - self.start) / (10 + step - self.start))
        for p_ema, p in zip(self.model.parameters(), model.parameters()):
            p_ema.lerp_(p.detach(), 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)

    def calibrated(self, seed: int = 0) -> nn.Module:
        """The EMA model with BatchNorm running statistics recomputed for its *own* weights.

        The buffers copied from G in ``update`` were collected for G's current weights, not for
        the average, so eval-mode samples of the EMA model with them are not what its weights
        draw (the test suite measures the gap); BigGAN's "standing statistics" fix this. Cheap
        (512 generated images) and seeded separately, so it never touches the training RNG;
        ``update`` overwrites the buffers again, so training is unaffected."""
        return calibrated(self.model, seed)


def calibrated(G: nn.Module, seed: int = 0) -> nn.Module:
    """``G`` in eval mode with its BatchNorm statistics recomputed from 512 of its own samples
    (``sampling.recalibrate_batchnorm``): what ``train()`` returns as ``G_ema``."""
    return recalibrate_batchnorm(G, batches=4, batch_size=128, seed=seed).eval()


# ----------------------------------------------------------------------------------------------
# The state a step changes, and the step


def unwrap(m: nn.Module) -> nn.Module:
    """The plain module inside torch.compile and DistributedDataParallel wrappers."""
    m = getattr(m, "_orig_mod", m)
    return m.module if isinstance(m, nn.parallel.DistributedDataParallel) else m


@dataclass
class Placement:
    """Where and how a run computes: its device and DDP rank, and what the "auto" settings became."""
    device: torch.device
    amp_dtype: torch.dtype | None = None  # autocast dtype; None: fp32
    channels_last: bool = False
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class TrainState:
    """Everything training changes; ``state_dict()`` is the checkpoint's content, ``load_state_dict``
    its exact inverse. ``G`` and ``D`` are the modules that compute (wrapped by DDP or
    torch.compile when those are on); the checkpoint holds the plain modules' weights."""
    G: nn.Module
    D: nn.Module
    ema: EMA
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler_g: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]]  # DeviceBatches, or any iterator of (x, y)
    step: int = 0
    history: list[dict] = field(default_factory=list)  # the log rows so far

    @classmethod
    def new(cls, cfg: TrainConfig, batches: Iterator, place: Placement) -> TrainState:
        """Fresh models and optimisers for ``cfg``, seeded by ``cfg.seed`` (+ rank, for the noise)."""
        torch.manual_seed(cfg.seed + place.rank)  # different noise per rank, same init (broadcast by DDP)
        G = build_generator(cfg.model).to(place.device)
        D = build_discriminator(cfg.model).to(place.device)
        if place.channels_last:
            G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        ema = EMA(G, cfg.ema_decay, cfg.ema_start)
        opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
        opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
        scaler = functools.partial(torch.amp.GradScaler, place.device.type, enabled=uses_grad_scaler(place.amp_dtype))
        return cls(G, D, ema, opt_g, opt_d, scaler(), scaler(), batches)

    def state_dict(self) -> dict:
        return {"step": self.step, "G": unwrap(self.G).state_dict(), "D": unwrap(self.D).state_dict(),
                "G_ema": self.ema.model.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "scaler_g": self.scaler_g.state_dict(),
                "scaler_d": self.scaler_d.state_dict(),
                "batches": self.batches.state_dict() if hasattr(self.batches, "state_dict") else {},
                "history": self.history}

    def load_state_dict(self, state: dict, path: str | Path = "checkpoint") -> None:
        load_state_strict(unwrap(self.G), state["G"], "generator", path)
        load_state_strict(unwrap(self.D), state["D"], "discriminator", path)
        load_state_strict(self.ema.model, state["G_ema"], "EMA generator", path)
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for scaler, saved in ((self.scaler_g, state["scaler_g"]), (self.scaler_d, state["scaler_d"])):
            if saved:  # {} from a disabled (bf16/fp32) scaler: an fp16 run then starts from the default scale
                scaler.load_state_dict(saved)
        if state["batches"] and hasattr(self.batches, "load_state_dict"):
            self.batches.load_state_dict(state["batches"])
        self.step, self.history = state["step"], state["history"]


@dataclass(frozen=True)
class GANLoss:
    """What ``gan_step`` minimises (the pairs in ``cgan_course.losses``), on D's logits [B].

    ``penalty(D, x_real, y_real, x_fake, y_fake)`` is added to D's loss: R1 or a WGAN-GP gradient
    penalty is a new function passed here, not an edit of the step. It gets the images before
    DiffAugment and runs under the step's autocast.

    ``ac_weight`` > 0 adds AC-GAN's auxiliary classification (Odena et al. 2017) for a D with a
    class head: D's loss gains ``ac_weight * CE(head(real), y_real)`` and G's loss
    ``ac_weight * CE(head(fake), y_fake)``. The head learns the classes from real images only, so G
    is pushed towards what distinguishes real classes, not towards fakes D finds easy to label.
    """
    d: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (D(real), D(fake)) -> D's loss
    g: Callable[[torch.Tensor], torch.Tensor]  # D(fake) -> G's loss
    penalty: Callable[..., torch.Tensor] | None = None
    ac_weight: float = 0.0

    @classmethod
    def named(cls, name: str, ac_weight: float = 0.0) -> GANLoss:
        return cls(*LOSSES[name], ac_weight=ac_weight)

    def class_term(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``ac_weight * CE`` of the class head's logits [B, K] against the labels y [B]."""
        return self.ac_weight * F.cross_entropy(logits, y)

    def discriminator(self, D: nn.Module, x_real: torch.Tensor, y_real: torch.Tensor, x_fake: torch.Tensor,
                      y_fake: torch.Tensor | None, augment=lambda x: x) -> tuple[torch.Tensor, ...]:
        """D's loss on a real and a fake batch: (what D minimises, its adversarial part with the
        penalty, D(real) [B], D(fake) [B]). With a class head, D returns (B, 1 + K) in the same
        pass: realness, then the class logits; only the real images are classified."""
        d_real, d_fake = discriminate(D, x_real, y_real, x_fake, y_fake, augment, **self._head())
        if self.ac_weight:
            classes, d_real, d_fake = d_real[:, 1:], d_real[:, 0], d_fake[:, 0]
        loss_d = self.d(d_real, d_fake)
        if self.penalty is not None:
            loss_d = loss_d + self.penalty(D, x_real, y_real, x_fake, y_fake)
        total = loss_d + self.class_term(classes, y_real) if self.ac_weight else loss_d
        return total, loss_d, d_real, d_fake

    def generator(self, D: nn.Module, x_fake: torch.Tensor, y_fake: torch.Tensor | None,
                  augment=lambda x: x) -> tuple[torch.Tensor, torch.Tensor]:
        """G's loss on its samples x_fake [B, 3, H, W] (with their graph): (what G minimises, its
        adversarial part). With a class head, G is also scored on the labels it was asked for."""
        d_gen = D(augment(x_fake), y_fake, **self._head()).float()  # the gradient flows through D into G
        loss_g = self.g(d_gen[:, 0] if self.ac_weight else d_gen)
        total = loss_g + self.class_term(d_gen[:, 1:], y_fake) if self.ac_weight else loss_g
        return total, loss_g

    def _head(self) -> dict:
        return {"class_logits": True} if self.ac_weight else {}


def latents(model: ModelConfig, n: int, device: torch.device,
            y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What G draws from: noise z [n, z_dim] ~ N(0, I) and, unless ``y`` is given, uniformly random
    labels y [n] (None for an unconditional model)."""
    z = torch.randn(n, model.z_dim, device=device)
    if y is None and model.num_classes:
        y = torch.randint(0, model.num_classes, (n,), device=device)
    return z, y


def discriminate(D: nn.Module, x_real: torch.Tensor, y_real: torch.Tensor, x_fake: torch.Tensor,
                 y_fake: torch.Tensor | None, augment=lambda x: x, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """D's logits on the real and the fake batch, [B] each (or [B, 1 + K] with ``class_logits=True``
    in ``kwargs``, passed on to D), in fp32. ``augment`` is what D sees of every image (DiffAugment);
    it is applied to both sides alike, or D could tell them apart by it."""
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules()):
        # BatchNorm must not mix the two: its batch statistics would tell D which half is fake,
        # and the G step (fakes only) would see other statistics
        return D(augment(x_real), y_real, **kwargs).float(), D(augment(x_fake), y_fake, **kwargs).float()
    y_both = torch.cat([y_real, y_fake]) if y_fake is not None else None  # else: one pass instead of two
    return D(augment(torch.cat([x_real, x_fake])), y_both, **kwargs).float().chunk(2)


_NO_SCALER = torch.amp.GradScaler("cpu", enabled=False)  # fp32 and bf16: plain backward and step


def d_phase(G: nn.Module, D: nn.Module, opt_d: torch.optim.Optimizer, loss: GANLoss, x_real: torch.Tensor,
            y_real: torch.Tensor, z: torch.Tensor, y_fake: torch.Tensor | None, scaler=_NO_SCALER,
            amp=contextlib.nullcontext(), augment=lambda x: x) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One update of D on a real batch x_real [B, 3, H, W], y_real [B] and G's images of (z, y_fake).
    Returns (D's adversarial loss, D(real) [B], D(fake) [B]), detached."""
    with torch.no_grad(), amp:  # D's update needs G's images, not a graph through G
        x_fake = G(z, y_fake).to(x_real.dtype)  # [B, 3, H, W]
    with amp:
        total, loss_d, d_real, d_fake = loss.discriminator(D, x_real, y_real, x_fake, y_fake, augment)
    opt_d.zero_grad(set_to_none=True)
    scaler.scale(total).backward()  # fp16: the loss is scaled up so small gradients survive
    scaler.step(opt_d)  # unscales first, and skips the step if a gradient overflowed
    scaler.update()  # (bf16 and fp32 runs have a disabled scaler: plain backward and step)
    return loss_d.detach(), d_real.detach(), d_fake.detach()


def g_phase(G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer, loss: GANLoss, z: torch.Tensor,
            y_fake: torch.Tensor | None, scaler=_NO_SCALER, amp=contextlib.nullcontext(),
            augment=lambda x: x) -> torch.Tensor:
    """One update of G: its images of (z, y_fake), scored by D, with the gradient flowing through D
    into G. D is frozen meanwhile (no gradients for its weights: opt_g only steps G, and under DDP
    they would be all-reduced for nothing). Returns G's adversarial loss, detached."""
    with _frozen(D):
        with amp:
            total, loss_g = loss.generator(D, G(z, y_fake), y_fake, augment)
        opt_g.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.step(opt_g)
        scaler.update()
    return loss_g.detach()


@contextlib.contextmanager
def _frozen(D: nn.Module) -> Iterator[None]:
    """D's weights get no gradients inside; under DDP, D's gradient sync is off too (DDP would
    otherwise wait for gradients that never come)."""
    inner = getattr(D, "_orig_mod", D)
    no_sync = inner.no_sync() if isinstance(inner, nn.parallel.DistributedDataParallel) else contextlib.nullcontext()
    D.requires_grad_(False)
    try:
        with no_sync:
            yield
    finally:
        D.requires_grad_(True)


def gan_step(state: TrainState, loss: GANLoss, cfg: TrainConfig, amp=contextlib.nullcontext(),
             augment=lambda x: x) -> torch.Tensor:
    """One training step: ``cfg.d_steps`` updates of D, one update of G, then G's moving average.

    ``state.batches`` yields real images x [B, 3, H, W] in [-1, 1] with labels y [B]. ``amp`` is the
    autocast context (``runtime.autocast``): the forward passes run in bf16/fp16 there, the
    losses in fp32. Returns [loss_d, loss_g, mean D(real), mean D(fake)] as a tensor on the
    device: reading it would make the CPU wait for the GPU, so the loop reads once per log row.
    loss_d and loss_g are the adversarial losses (with the penalty), without the class head's
    terms, so they read on the same scale with or without one.
    """
    for _ in range(cfg.d_steps):
        x_real, y_real = next(state.batches)  # [B, 3, H, W], [B]
        z, y_fake = latents(cfg.model, cfg.batch_size, x_real.device, y_real if cfg.fake_labels == "real" else None)
        loss_d, d_real, d_fake = d_phase(state.G, state.D, state.opt_d, loss, x_real, y_real, z, y_fake,
                                         state.scaler_d, amp, augment)
    if not cfg.reuse_fakes:  # fresh (z, y): G is scored on samples D was not just trained against
        z, y_fake = latents(cfg.model, cfg.batch_size, x_real.device)
    loss_g = g_phase(state.G, state.D, state.opt_g, loss, z, y_fake, state.scaler_g, amp, augment)
    state.step += 1
    state.ema.update(state.G, state.step)
    return torch.stack([loss_d, loss_g, d_real.mean(), d_fake.mean()])


# ----------------------------------------------------------------------------------------------
# The loop


class TrainingDiverged(CourseError, RuntimeError):
    """Raised when a loss becomes NaN/inf; the last good checkpoint, if any, is kept."""


def _kept(ckpt: Path) -> str:
    return (f"The last good checkpoint ({ckpt}) is kept." if ckpt.is_file() else
            "No checkpoint was written yet (lower --ckpt-every to keep one sooner).")


@dataclass
class TrainResult:
    G: nn.Module  # the raw generator (unwrapped from DDP/compile)
    G_ema: nn.Module  # the EMA generator, BatchNorm statistics recomputed, in eval mode; sample from this one
    D: nn.Module
    step: int
    history: list[dict]  # one row per log interval (also in <out>/log.csv)
    out: Path
    interrupted: bool = False
    config: TrainConfig | None = None  # the config this call ran with (a later resume into out may save another)


def train(cfg: TrainConfig, data: tuple[torch.Tensor, torch.Tensor] | None = None,
          batches: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None,
          loss: GANLoss | None = None) -> TrainResult:
    """Train a conditional GAN as ``cfg`` says.

    ``data`` = (uint8 images [N, 3, H, W], labels [N]) skips loading; ``batches``, an iterator of
    (x [B, 3, H, W] in [-1, 1], y [B]) on the device as ``DeviceBatches`` yields them, replaces
    the input pipeline (benchmarks feed theirs); ``loss`` replaces ``cfg.loss`` (e.g. to add R1; its
    ``ac_weight`` is set to ``cfg.ac_weight``).
    Writes ``<out>/checkpoint.pt`` every ``ckpt_every`` steps and when the run ends or stops
    (Ctrl-C, ``max_minutes``), a ``<out>/log.csv`` row every ``log_every`` steps and a grid
    ``<out>/samples/step_XXXXXX.png`` every ``sample_every`` steps and at the end.
    """
    check_run_folder(cfg)
    place = _place(cfg)
    with contextlib.ExitStack() as stack:
        refused = None
        if place.is_main:
            try:
                stale = stack.enter_context(run_folder_lock(cfg.out))
            except CourseError as err:
                refused = err
            else:
                if stale:
                    print(f"note: {cfg.out} held the lock of a run that ended without releasing it ({stale}); "
                          "taking it over")
        _all_ranks_agree(place, refused is None, "rank 0 could not take the run folder (its error says why)")
        if refused is not None:
            raise refused
        return _train_locked(cfg, place, data, batches, loss)


def _all_ranks_agree(place: Placement, ok: bool, why: str) -> None:
    """Under DDP, a refusal on one rank stops every rank (the others would wait in the first
    collective until the timeout); a no-op for one process."""
    if place.world > 1:
        flag = torch.tensor([float(ok)], device=place.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        if ok and flag.item() < 1:  # another rank refused; the refusing rank raises its own error
            raise CourseError(why)


def _train_locked(cfg: TrainConfig, place: Placement, data, batches, loss) -> TrainResult:
    """``train`` once this process owns the run folder."""
    out, ckpt_path = Path(cfg.out), Path(cfg.out) / "checkpoint.pt"
    fingerprint = None  # of the data, when train() loads it (a caller's iterator has none)
    if batches is None:
        images, labels, classes = _training_data(cfg, data, place.is_main)
        fingerprint = data_fingerprint(images, labels)
        batches = DeviceBatches(images, labels, cfg.batch_size, place.device, hflip=cfg.hflip, seed=cfg.seed,
                                rank=place.rank, world_size=place.world)
    else:
        classes = None  # unknown: the caller's iterator
    state = TrainState.new(cfg, batches, place)
    if cfg.resume and ckpt_path.is_file():
        _resume(state, cfg, ckpt_path, place, classes, fingerprint)
    else:
        start = load_train_state(cfg.init_from) if cfg.init_from else None  # checked before --overwrite deletes
        if start is not None and cfg.steps <= start["step"]:
            raise CourseError(f"--steps {cfg.steps} is not beyond the training state's step {start['step']:,}: --steps "
                              f"counts from the first run, so pass more (e.g. --steps {start['step'] + 10_000})")
        if place.is_main:
            _start_over(cfg)
        if start is not None:
            init_from_train_state(state, cfg, classes, start)
    _wrap(state, cfg, place)
    # the config owns the class term's weight (it is what the checkpoint records), also for a custom loss
    loss = dataclasses.replace(loss, ac_weight=cfg.ac_weight) if loss else GANLoss.named(resolved_loss(cfg), cfg.ac_weight)
    amp = autocast(place.device, place.amp_dtype)
    augment = functools.partial(_augment, ops=cfg.diffaug, channels_last=place.channels_last)
    if place.is_main:
        print(f"device {place.device}, precision {precision_name(place.amp_dtype)}, tf32 {cfg.tf32}, "
              f"channels_last {place.channels_last}, world {place.world}, "
              f"G {sum(p.numel() for p in state.G.parameters()):,} params, "
              f"D {sum(p.numel() for p in state.D.parameters()):,} params")

    ctrl_c, stop = threading.Event(), None  # Ctrl-C sets the event; the step in flight finishes first
    with _on_sigint(ctrl_c.set), tf32(cfg.tf32), _Log(cfg, place, state.step) as log:
        while state.step < cfg.steps and stop is None:
            log.add(gan_step(state, loss, cfg, amp, augment))
            if cfg.log_every and (state.step % cfg.log_every == 0 or state.step == cfg.steps):
                state.history.append(log.row(state.step))
            stop = _stop_reason(ctrl_c.is_set(), log.t_start, cfg, place)
            last = stop is not None or state.step == cfg.steps
            if cfg.sample_every and (state.step % cfg.sample_every == 0 or last) and place.is_main:
                per_class = max(1, min(10, MAX_GRID_SAMPLES // max(1, cfg.model.num_classes)))  # 1,000+ classes
                save_image_grid(sample_grid(state.ema.calibrated(), per_class=per_class, seed=1234),
                                out / "samples" / f"step_{state.step:06d}.png", nrow=10)
            if (cfg.ckpt_every and state.step % cfg.ckpt_every == 0) or last:
                _save(state, cfg, ckpt_path, place, log.sums, classes, fingerprint)
    if place.is_main and stop == "out of time":
        print(f"\nstopping at step {state.step}: --max-minutes {cfg.max_minutes} reached")
    if place.is_main and stop == "interrupted":
        print(f"\ninterrupted: checkpoint saved at step {state.step}; continue with --resume")
    if place.world > 1:
        # DDP syncs buffers (BN statistics, spectral-norm vectors) from rank 0 at the start of
        # each forward; the last forward left them rank-local, so sync once more at the end
        for buf in [*state.G.buffers(), *state.D.buffers(), *state.ema.model.buffers()]:
            dist.broadcast(buf, 0)
    return TrainResult(unwrap(state.G), state.ema.calibrated(), unwrap(state.D), state.step, state.history, out,
                       interrupted=stop == "interrupted", config=cfg)


def check_run_folder(cfg: TrainConfig) -> None:
    """Refuse, before any work, an ``out`` that cannot hold a run, or that holds one that this run
    would silently replace."""
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise CourseError(f"--out {out} is a file, not a folder; pass a folder for the run, e.g. runs/demo")
    if (out / "checkpoint.pt").exists() and not (out / "checkpoint.pt").is_file():
        raise CourseError(f"{out / 'checkpoint.pt'} is not a file (a folder?); move it away or pass another --out")
    root = Path(cfg.data_root).resolve() if cfg.data_root else None
    if root is not None and root.is_dir() and out.resolve().is_relative_to(root):
        # its samples/ would be read as a new class (and its checkpoints as images) by the next load
        raise CourseError(f"--out {out} is inside the data root {cfg.data_root}; put the run folder outside the "
                          "data, e.g. runs/<name>")
    if not (cfg.resume or cfg.overwrite) and any((out / f).exists() for f in ("checkpoint.pt", "log.csv")):
        raise CourseError(f"{out} already holds a training run; continue it with --resume, start it over with "
                          "--overwrite (deletes its checkpoint, log and samples), or pass another --out")


def _place(cfg: TrainConfig) -> Placement:
    """The device (one GPU per process under torchrun), threads, and the "auto" settings resolved."""
    device = pick_device(cfg.device)
    rank, world, local_rank = _distributed_setup(device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if device.type == "cpu" and cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: time the convolution algorithms once, keep the fastest
    return Placement(device, autocast_dtype(cfg.precision, device), uses_channels_last(cfg.channels_last, device),
                     rank, world)


def _distributed_setup(device: torch.device) -> tuple[int, int, int]:
    """rank, world size, local rank; initialises the process group under torchrun
    (NCCL for CUDA tensors, gloo for CPU tensors, whatever the host has)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def _training_data(cfg: TrainConfig, data, verbose: bool) -> tuple[torch.Tensor, torch.Tensor, list[str] | None]:
    """(images, labels, class names) of ``data`` or of the training split ``cfg`` names (saying which
    source it is), checked against the model. Class names are None where the data has none."""
    if data is None and cfg.data_source == "folders":
        if cfg.data_root is None:
            raise DatasetError("--data-source folders needs --data-root: a folder (or .tar.gz) of <class>/ image folders")
        data = load_class_folders(cfg.data_root, "train", cfg.model.image_size, skip_unreadable=cfg.skip_unreadable,
                                  test_fraction=cfg.test_fraction, seed=cfg.seed)
        if verbose:
            print(f"data: {len(data.labels):,} images of {len(data.classes)} classes from {cfg.data_root} "
                  f"({', '.join(data.classes)}), {cfg.model.image_size}px")
    elif data is None:
        source, root = resolve_source(cfg.data_root) if cfg.data_source == "auto" else (cfg.data_source, cfg.data_root)
        data = (*load_cifar10(root, train=True, source=source), list(CLASSES))
        if verbose:
            print(f"data: {describe_source(source, root)}, {len(data[1]):,} images" + (f" ({root})" if root else ""))
    images, labels, classes = (*data, None) if isinstance(data, (tuple, list)) and len(data) == 2 else data
    num_classes = cfg.model.num_classes
    if classes is not None and num_classes and len(classes) != num_classes:
        raise DatasetError(f"the data has {len(classes)} classes ({', '.join(classes)}) but the model has "
                           f"num_classes={num_classes}; set --num-classes {len(classes)}")
    if num_classes and int(labels.max()) >= num_classes:
        raise DatasetError(f"the data has labels up to {int(labels.max())} but the model has "
                           f"num_classes={num_classes}; set --num-classes {int(labels.max()) + 1}")
    if images.shape[-1] != cfg.model.image_size:
        raise DatasetError(f"the data has {images.shape[-1]}px images but the model expects "
                           f"image_size={cfg.model.image_size}; set --image-size {images.shape[-1]}")
    return images, labels, classes


def _wrap(state: TrainState, cfg: TrainConfig, place: Placement) -> None:
    """DDP (gradients averaged over processes) and torch.compile around G and D, after loading."""
    if place.world > 1:
        kw = {"device_ids": [place.device.index]} if place.device.type == "cuda" else {}
        state.G = nn.parallel.DistributedDataParallel(state.G, **kw)
        state.D = nn.parallel.DistributedDataParallel(state.D, **kw)
    if cfg.compile:
        state.G, state.D = torch.compile(state.G), torch.compile(state.D)


def _augment(x: torch.Tensor, ops: str, channels_last: bool) -> torch.Tensor:
    x = diff_augment(x, ops) if ops else x
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@contextlib.contextmanager
def _on_sigint(handler: Callable[[], None]) -> Iterator[None]:
    """Call ``handler`` on Ctrl-C instead of raising KeyboardInterrupt in the middle of an
    optimiser update. Handlers can only be installed from the main thread (not in some notebook
    runners); elsewhere Ctrl-C keeps its usual meaning."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda *_: handler())
    try:
        yield
    finally:
        if previous is not None:  # None: a handler not installed from Python, which cannot be put back
            signal.signal(signal.SIGINT, previous)


def _stop_reason(interrupted: bool, t_start: float, cfg: TrainConfig, place: Placement) -> str | None:
    """"interrupted" (Ctrl-C), "out of time" (``max_minutes``) or None, agreed by every rank."""
    out_of_time = bool(cfg.max_minutes) and time.perf_counter() - t_start > 60 * cfg.max_minutes
    if place.world > 1:  # every rank must agree to stop (clocks and Ctrl-C differ), or the rest hang
        flags = torch.tensor([float(interrupted), float(out_of_time)], device=place.device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        interrupted, out_of_time = bool(flags[0]), bool(flags[1])
    return "interrupted" if interrupted else "out of time" if out_of_time else None


class _Log:
    """Sums the step statistics on the device (no sync per step) and turns them into log rows:
    ``history``, ``<out>/log.csv`` and the progress bar. A context manager that closes the bar."""

    def __init__(self, cfg: TrainConfig, place: Placement, step: int):
        self.cfg, self.place, self.csv = cfg, place, Path(cfg.out) / "log.csv"
        self.sums = torch.zeros(4, device=place.device)  # loss_d, loss_g, d_real, d_fake since the last row
        self.n, self.t_start = 0, time.perf_counter()
        self.t_row = self.t_start
        self.bar = tqdm(total=cfg.steps, initial=step, desc="train", dynamic_ncols=True) \
            if place.is_main and cfg.progress else None

    def __enter__(self) -> _Log:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def add(self, stats: torch.Tensor) -> None:
        self.sums += stats
        self.n += 1
        if self.bar is not None:
            self.bar.update(1)

    def row(self, step: int) -> dict:
        if self.place.world > 1:  # log the mean over ranks, and let all ranks see a NaN on any one of them
            dist.all_reduce(self.sums)
            self.sums /= self.place.world
        means = (self.sums / self.n).tolist()
        if not all(math.isfinite(v) for v in means):
            raise TrainingDiverged(
                f"loss became NaN/inf between steps {step - self.n} and {step} (loss_d={means[0]}, "
                f"loss_g={means[1]}). {_kept(self.csv.parent / 'checkpoint.pt')} "
                "Try a lower learning rate, --precision fp32, or the projection model with spectral norm.")
        now = time.perf_counter()
        images = self.n * self.cfg.d_steps * self.cfg.batch_size * self.place.world
        row = {"step": step, "time_s": round(now - self.t_start, 2), "loss_d": means[0], "loss_g": means[1],
               "d_real": means[2], "d_fake": means[3], "images_per_s": round(images / (now - self.t_row), 1)}
        if self.place.is_main:
            _append_csv(self.csv, row)
        if self.bar is not None:
            self.bar.set_postfix(loss_d=f"{means[0]:.3f}", loss_g=f"{means[1]:.3f}", img_s=row["images_per_s"])
        self.sums.zero_()
        self.n, self.t_row = 0, now
        return row


LOG_FIELDS = ("step", "time_s", "loss_d", "loss_g", "d_real", "d_fake", "images_per_s")


def _append_csv(path: Path, row: dict) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


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


def _resume_log(log_csv: Path, step: int, history: list[dict]) -> None:
    """Make ``log.csv`` continue at ``step``: rows a crashed run logged after its last checkpoint
    are dropped (the resumed run logs those steps again); a deleted log is rebuilt from the
    checkpoint's history; a log that is not this course's (another header, rows that are not
    steps, a folder) is refused rather than appended to."""
    if log_csv.exists() and not log_csv.is_file():
        raise CheckpointError(f"{log_csv} is not a file; move it away to resume (the log is rebuilt from the checkpoint)")
    if log_csv.is_file():
        with open(log_csv, newline="") as f:
            rows = list(csv.reader(f))
        if not rows or tuple(rows[0]) != LOG_FIELDS or not all(r and r[0].isdigit() for r in rows[1:] if r):
            raise CheckpointError(f"{log_csv} is not this run's training log (expected the header "
                                  f"{','.join(LOG_FIELDS)} and one row per logged step); move it away to resume, "
                                  "and the log is rebuilt from the checkpoint")
        kept = [r for r in rows[1:] if r and int(r[0]) <= step]
        if len(kept) == len(rows) - 1:
            return
    elif not history:  # a run that logs nothing (--log-every 0) has no log to rebuild
        return
    else:  # deleted: the checkpoint's history holds every row up to its step
        print(f"note: {log_csv} was missing; rebuilt from the checkpoint's {len(history)} logged rows")
        kept = [[row.get(k, "") for k in LOG_FIELDS] for row in history]
    tmp = log_csv.with_name(log_csv.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([list(LOG_FIELDS)] + kept)
    os.replace(tmp, log_csv)


def _start_over(cfg: TrainConfig) -> None:
    """A run from step 0: ``--overwrite`` clears the files of the run that was in ``out``, and the
    log of an attempt that never reached a checkpoint (``--resume`` with none) is dropped."""
    out = Path(cfg.out)
    if cfg.resume:  # (and no checkpoint: train() resumes when there is one)
        print(f"--resume: no checkpoint at {out / 'checkpoint.pt'}, starting from scratch")
    stale = [out / "log.csv"] + ([out / "checkpoint.pt", *out.glob("samples/step_*.png")] if cfg.overwrite else [])
    for path in stale:
        path.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


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
                        help="start from one of the course's recipes (cgan_course/recipes.py); the options given "
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


if __name__ == "__main__":
    main()
