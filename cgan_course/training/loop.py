"""``train(cfg)``: the loop around the step. Data on the device, the state built or resumed, steps
until done or interrupted, logs, samples and checkpoints on schedule, divergence caught, and
DistributedDataParallel when launched with torchrun.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.distributed as dist
import torch.nn as nn

from ..data import (
    CLASSES,
    DatasetError,
    DeviceBatches,
    describe_source,
    load_cifar10,
    load_class_folders,
    resolve_source,
)
from ..diffaugment import diff_augment
from ..errors import CourseError
from ..runlock import run_folder_lock
from ..runtime import (
    autocast,
    autocast_dtype,
    pick_device,
    precision_name,
    tf32,
    uses_channels_last,
)
from ..sampling import MAX_GRID_SAMPLES, sample_grid, save_image_grid
from .config import TrainConfig, resolved_loss
from .resume import (
    _resume,
    _save,
    data_fingerprint,
    init_from_train_state,
    load_train_state,
)
from .runfolder import _Log, _start_over, check_run_folder
from .state import Placement, TrainState, unwrap
from .step import GANLoss, gan_step

# ----------------------------------------------------------------------------------------------
# The loop


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
            stop = _stop_reason(ctrl_c.is_set(), log.t_start, cfg, place, state.step)
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


def _stop_reason(interrupted: bool, t_start: float, cfg: TrainConfig, place: Placement, step: int) -> str | None:
    """"interrupted" (Ctrl-C), "out of time" (``max_minutes``) or None, agreed by every rank."""
    if place.world > 1 and step % (cfg.log_every or cfg.ckpt_every or 100) and step != cfg.steps:
        return None  # ranks agree at log rows only: an all-reduce that the CPU waits for at every step would stall the GPU
    out_of_time = bool(cfg.max_minutes) and time.perf_counter() - t_start > 60 * cfg.max_minutes
    if place.world > 1:  # every rank must agree to stop (clocks and Ctrl-C differ), or the rest hang
        flags = torch.tensor([float(interrupted), float(out_of_time)], device=place.device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        interrupted, out_of_time = bool(flags[0]), bool(flags[1])
    return "interrupted" if interrupted else "out of time" if out_of_time else None
