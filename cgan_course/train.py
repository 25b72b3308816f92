"""Training a conditional GAN: config, loop, EMA, checkpoints, command line, multi-GPU.

    python -m cgan_course.train --help
    python -m cgan_course.train --steps 2000 --out runs/demo             # CPU, GPU or MPS
    python -m cgan_course.train --resume --out runs/demo                 # continue exactly
    torchrun --nproc_per_node=4 -m cgan_course.train --out runs/ddp      # DistributedDataParallel

The same ``train(cfg)`` runs in notebooks, in the CLI and in the tests. One step is ``d_steps``
discriminator updates on (real, fake) batches, then one generator update, then the EMA update.
"""
from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import functools
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn

from .errors import CourseError, run_cli
from .checkpoints import (CheckpointError, check_model_config, load_checkpoint, load_state_strict,
                          model_config_from, require_keys, save_checkpoint)
from .data import DatasetError, DeviceBatches, load_cifar10
from .diffaugment import diff_augment
from .losses import LOSSES
from .models import ModelConfig, build_discriminator, build_generator
from .sampling import recalibrate_batchnorm, sample_grid, save_image_grid

CHECKPOINT_FORMAT = 1


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    # data
    data_source: str = "auto"  # auto | torchvision | folder | sample (see cgan_course.data)
    data_root: str | None = None  # folder or .tar.gz; None: the repository's data/ (or $CGAN_COURSE_CIFAR10)
    hflip: bool = True  # random horizontal flips of the real images
    # optimisation
    steps: int = 2000  # generator updates
    batch_size: int = 64
    d_steps: int = 1  # discriminator updates per generator update
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.0  # 0.0 for hinge/SN models (SNGAN, BigGAN), 0.5 for DCGAN
    beta2: float = 0.999
    loss: str = "auto"  # bce | hinge; auto: bce for classic, hinge for projection
    ema_decay: float = 0.999  # EMA of G's weights, used for sampling; 0 turns it off
    ema_start: int = 0  # step at which averaging starts (before: the EMA copies G)
    fake_labels: str = "uniform"  # labels of the D step's fakes: "uniform" random or "real" (the real batch's)
    reuse_fakes: bool = False  # the G step reuses the last D step's z and labels instead of drawing new ones
    diffaug: str = ""  # DiffAugment ops, e.g. "color,translation,cutout"; "" = off
    # run
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:1 | mps
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (auto: bf16 on CUDA if supported, else fp16; bf16 on CPUs with native bf16; else fp32)
    channels_last: str = "auto"  # auto | on | off (auto: on for CUDA and CPU, off for MPS)
    compile: bool = False  # torch.compile G and D (CUDA; slow to start)
    threads: int = 0  # CPU threads for torch; 0 = all cores
    max_minutes: float = 0.0  # stop (and checkpoint) after this wall time; 0 = no limit
    out: str = "runs/cgan"  # run folder: checkpoint.pt, log.csv, samples/
    log_every: int = 50
    sample_every: int = 500
    ckpt_every: int = 500
    progress: bool = True  # tqdm progress bar
    resume: bool = False  # continue from <out>/checkpoint.pt

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = ModelConfig(**self.model)
        if self.loss != "auto" and self.loss not in LOSSES:
            raise CourseError(f"loss must be 'auto' or one of {list(LOSSES)}, got {self.loss!r}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise CourseError(f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        if self.fake_labels not in ("uniform", "real"):
            raise CourseError(f"fake_labels must be 'uniform' or 'real', got {self.fake_labels!r}")
        if self.channels_last not in ("auto", "on", "off"):
            raise CourseError(f"channels_last must be auto, on or off, got {self.channels_last!r}")
        for name in ("steps", "batch_size", "d_steps", "log_every", "sample_every", "ckpt_every"):
            if getattr(self, name) < 1:
                raise CourseError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise CourseError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        diff_augment(torch.zeros(1, 3, 8, 8), self.diffaug)  # fails early on an unknown op

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------
# Devices and precision


def resolved_loss(cfg: TrainConfig) -> str:
    """``cfg.loss``, with "auto" read as each family's own loss (kept unresolved in the config so
    ``dataclasses.replace(cfg, model=...)`` switches the loss with the family)."""
    if cfg.loss != "auto":
        return cfg.loss
    return "bce" if cfg.model.arch == "classic" else "hinge"


def pick_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU."""
    if name != "auto":
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise CourseError(f"device {name!r} asked for, but CUDA is not available here; use --device cpu")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise CourseError(f"device {name!r} asked for, but MPS is not available here; use --device cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 dot-product instructions (AVX512-BF16 or AMX: recent Xeon, EPYC
    Zen 4+). There bf16 autocast trains faster than fp32 (1.4x measured on the course's 2-core
    EPYC); elsewhere bf16 is emulated and slower."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:  # not Linux: stay in fp32
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None means full fp32."""
    if precision == "auto":
        if device.type == "cpu":
            return torch.bfloat16 if cpu_has_native_bf16() else None
        if device.type != "cuda":
            return None  # MPS: fp32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def uses_channels_last(setting: str, device: torch.device) -> bool:
    """Whether ``channels_last`` ("auto" | "on" | "off") puts G and D in NHWC layout on ``device``.

    "auto" turns it on for CUDA (NVIDIA's advice for Tensor Cores; not measured by the course, no
    GPU was at hand) and for the CPU, where oneDNN's convolutions are NHWC-native and it was
    measured faster (benchmarks/train_throughput.py on a 2-core AVX2 EPYC: projection cGAN 1.15x
    to 1.17x, classic CGAN 1.04x, medians of three interleaved runs). Apple's MPS stays NCHW.
    """
    return setting == "on" or (setting == "auto" and device.type in ("cuda", "cpu"))


# ----------------------------------------------------------------------------------------------
# EMA


class EMA:
    """Exponential moving average of a model's weights: theta_ema <- d theta_ema + (1 - d) theta.

    Sampling from the average rather than the last iterate smooths out the oscillation of the
    GAN game; it is one of the cheapest quality gains there is. Buffers (BN statistics) are copied.
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
        return recalibrate_batchnorm(self.model, batches=4, batch_size=128, seed=seed).eval()


# ----------------------------------------------------------------------------------------------
# Checkpoints


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


# ----------------------------------------------------------------------------------------------
# The loop


class TrainingDiverged(CourseError, RuntimeError):
    """Raised when a loss becomes NaN/inf; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    G: nn.Module  # the raw generator (unwrapped from DDP/compile)
    G_ema: nn.Module  # the EMA generator, BatchNorm statistics recomputed, in eval mode; sample from this one
    D: nn.Module
    step: int
    history: list[dict]  # one row per log interval (also in <out>/log.csv)
    out: Path
    interrupted: bool = False


def _distributed_setup(device: torch.device) -> tuple[int, int, int]:
    """rank, world size, local rank; initialises the process group under torchrun
    (NCCL for CUDA tensors, gloo for CPU tensors, whatever the host has)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def _unwrap(m: nn.Module) -> nn.Module:
    m = getattr(m, "_orig_mod", m)  # torch.compile
    return m.module if isinstance(m, nn.parallel.DistributedDataParallel) else m


def train(cfg: TrainConfig, data: tuple[torch.Tensor, torch.Tensor] | None = None) -> TrainResult:
    """Train a conditional GAN as ``cfg`` says. ``data`` = (uint8 images, labels) skips loading.

    Writes ``<out>/checkpoint.pt`` every ``ckpt_every`` steps and at the end (also on Ctrl-C),
    ``<out>/log.csv`` and ``<out>/samples/step_XXXXXX.png``.
    """
    device = pick_device(cfg.device)
    rank, world, local_rank = _distributed_setup(device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if device.type == "cpu" and cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    ckpt_path = out / "checkpoint.pt"
    is_main = rank == 0

    amp_dtype = autocast_dtype(cfg.precision, device)
    channels_last = uses_channels_last(cfg.channels_last, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    if data is None:
        data = load_cifar10(cfg.data_root, train=True, source=cfg.data_source)
    images, labels = data
    num_classes = cfg.model.num_classes
    if num_classes and int(labels.max()) >= num_classes:
        raise DatasetError(f"the data has labels up to {int(labels.max())} but the model has "
                           f"num_classes={num_classes}; set --num-classes {int(labels.max()) + 1}")
    if images.shape[-1] != cfg.model.image_size:
        raise DatasetError(f"the data has {images.shape[-1]}px images but the model expects "
                           f"image_size={cfg.model.image_size}; set --image-size {images.shape[-1]}")

    torch.manual_seed(cfg.seed + rank)  # different noise per rank, same init (broadcast by DDP)
    G = build_generator(cfg.model).to(device)
    D = build_discriminator(cfg.model).to(device)
    if channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    ema = EMA(G, cfg.ema_decay, cfg.ema_start)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    scaler_g = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    scaler_d = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    batches = DeviceBatches(images, labels, cfg.batch_size, device, hflip=cfg.hflip, seed=cfg.seed,
                            rank=rank, world_size=world)
    step, history = 0, []

    if cfg.resume and ckpt_path.is_file():
        state = load_checkpoint(ckpt_path, "cpu")  # RNG states must stay CPU tensors; load_state_dict moves the rest
        require_keys(state, TRAINING_KEYS, ckpt_path, "a training checkpoint of this course")
        check_model_config(state["config"]["model"], cfg.model, ckpt_path)
        load_state_strict(G, state["G"], "generator", ckpt_path)
        load_state_strict(D, state["D"], "discriminator", ckpt_path)
        load_state_strict(ema.model, state["G_ema"], "EMA generator", ckpt_path)
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        scaler_g.load_state_dict(state["scaler_g"])
        scaler_d.load_state_dict(state["scaler_d"])
        batches.load_state_dict(state["batches"])
        step, history = state["step"], state["history"]
        _set_rng_state(state["rng"][min(rank, len(state["rng"]) - 1)], device)
        if is_main:
            print(f"resumed from {ckpt_path} at step {step}")
    elif cfg.resume and is_main:
        print(f"--resume: no checkpoint at {ckpt_path}, starting from scratch")

    G_raw, D_raw = G, D
    if world > 1:
        ddp_kw = {"device_ids": [device.index]} if device.type == "cuda" else {}
        G = nn.parallel.DistributedDataParallel(G, **ddp_kw)
        D = nn.parallel.DistributedDataParallel(D, **ddp_kw)
    if cfg.compile:
        G, D = torch.compile(G), torch.compile(D)

    d_loss_fn, g_loss_fn = LOSSES[resolved_loss(cfg)]
    d_has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D_raw.modules())
    autocast = torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None)

    def random_labels(n: int) -> torch.Tensor | None:
        return torch.randint(0, num_classes, (n,), device=device) if num_classes else None

    def augment(x: torch.Tensor) -> torch.Tensor:
        x = diff_augment(x, cfg.diffaug) if cfg.diffaug else x
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    def checkpoint() -> None:
        # never overwrite the last good checkpoint with diverged weights
        if not (torch.isfinite(sums).all() and torch.isfinite(loss_g.detach()) and torch.isfinite(loss_d.detach())):
            raise TrainingDiverged(
                f"loss became NaN/inf before step {step}; not saving. The last good checkpoint "
                f"({ckpt_path}) is kept. Try a lower learning rate or --precision fp32.")
        rng = [_rng_state(device)]
        if world > 1:  # every rank's RNG, so each continues its own noise stream
            rng_all = [None] * world
            dist.all_gather_object(rng_all, {k: v.cpu() for k, v in rng[0].items()})
            rng = rng_all
        if not is_main:
            return
        save_checkpoint(ckpt_path, {
            "format": CHECKPOINT_FORMAT, "config": cfg.to_dict(), "step": step,
            "G": G_raw.state_dict(), "D": D_raw.state_dict(), "G_ema": ema.model.state_dict(),
            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
            "scaler_g": scaler_g.state_dict(), "scaler_d": scaler_d.state_dict(),
            "batches": batches.state_dict(), "history": history, "rng": rng,
            "versions": {"torch": str(torch.__version__)},
        })

    def save_samples() -> None:
        if is_main:
            save_image_grid(sample_grid(ema.calibrated(), per_class=10, seed=1234), out / "samples" / f"step_{step:06d}.png", nrow=10)

    # Ctrl-C: finish the current step, then checkpoint and return (SIGINT handler sets a flag so
    # the checkpoint is never written half-way through an optimiser update)
    stop = {"flag": False}
    previous_handler = None
    if threading_main():
        previous_handler = signal.signal(signal.SIGINT, lambda *_: stop.update(flag=True))

    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        print(f"device {device}, precision {amp_dtype or torch.float32}, channels_last {channels_last}, "
              f"world {world}, G {sum(p.numel() for p in G_raw.parameters()):,} params, "
              f"D {sum(p.numel() for p in D_raw.parameters()):,} params")
    bar = None
    if is_main and cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc="train", dynamic_ncols=True)
    sums = torch.zeros(4, device=device)  # loss_d, loss_g, d_real, d_fake, summed on device (no sync per step)
    n_sum, t_log, t_start = 0, time.perf_counter(), time.perf_counter()
    interrupted = False
    loss_d = loss_g = torch.zeros((), device=device)  # defined even if no step runs (resume at the end)
    G.train()
    D.train()
    try:
        while step < cfg.steps:
            for _ in range(cfg.d_steps):
                x_real, y_real = next(batches)
                z = torch.randn(cfg.batch_size, cfg.model.z_dim, device=device)
                y_fake = y_real if cfg.fake_labels == "real" else random_labels(cfg.batch_size)
                with torch.no_grad(), autocast:
                    x_fake = G(z, y_fake)
                with autocast:
                    if d_has_batchnorm:
                        # BatchNorm must not mix the two: its batch statistics would tell D which
                        # half is fake, and the G step (fakes only) would see other statistics
                        d_real = D(augment(x_real), y_real).float()
                        d_fake = D(augment(x_fake.to(x_real.dtype)), y_fake).float()
                    else:  # one call on real and fake together: one pass instead of two
                        x_both = augment(torch.cat([x_real, x_fake.to(x_real.dtype)]))
                        y_both = torch.cat([y_real, y_fake]) if num_classes else None
                        d_real, d_fake = D(x_both, y_both).float().chunk(2)
                    loss_d = d_loss_fn(d_real, d_fake)
                opt_d.zero_grad(set_to_none=True)
                scaler_d.scale(loss_d).backward()
                scaler_d.step(opt_d)
                scaler_d.update()
            if not cfg.reuse_fakes:
                z = torch.randn(cfg.batch_size, cfg.model.z_dim, device=device)
                y_fake = random_labels(cfg.batch_size)
            with autocast:
                loss_g = g_loss_fn(D(augment(G(z, y_fake)), y_fake).float())
            opt_g.zero_grad(set_to_none=True)
            scaler_g.scale(loss_g).backward()
            scaler_g.step(opt_g)
            scaler_g.update()
            step += 1
            ema.update(G_raw, step)
            sums += torch.stack([loss_d.detach(), loss_g.detach(), d_real.detach().mean(), d_fake.detach().mean()])
            n_sum += 1

            if step % cfg.log_every == 0 or step == cfg.steps:
                if world > 1:  # log the mean over ranks, and let all ranks see a NaN on any one of them
                    dist.all_reduce(sums)
                    sums /= world
                means = (sums / n_sum).tolist()
                if not all(math.isfinite(v) for v in means):
                    raise TrainingDiverged(
                        f"loss became NaN/inf between steps {step - n_sum} and {step} "
                        f"(loss_d={means[0]}, loss_g={means[1]}). The last good checkpoint "
                        f"({ckpt_path}) is kept. Try a lower learning rate, --precision fp32, or "
                        "the projection model with spectral norm.")
                now = time.perf_counter()
                row = {"step": step, "time_s": round(now - t_start, 2), "loss_d": means[0], "loss_g": means[1],
                       "d_real": means[2], "d_fake": means[3],
                       "images_per_s": round(n_sum * cfg.d_steps * cfg.batch_size * world / (now - t_log), 1)}
                history.append(row)
                if is_main:
                    _append_csv(out / "log.csv", row)
                if bar is not None:
                    bar.set_postfix(loss_d=f"{means[0]:.3f}", loss_g=f"{means[1]:.3f}", img_s=row["images_per_s"])
                sums.zero_()
                n_sum, t_log = 0, now
            if bar is not None:
                bar.update(1)
            if step % cfg.sample_every == 0:
                save_samples()
            out_of_time = bool(cfg.max_minutes) and time.perf_counter() - t_start > 60 * cfg.max_minutes
            if world > 1:  # every rank must agree to stop (clocks and Ctrl-C differ), or the rest hang
                flags = torch.tensor([float(stop["flag"]), float(out_of_time)], device=device)
                dist.all_reduce(flags, op=dist.ReduceOp.MAX)
                stop["flag"], out_of_time = bool(flags[0]), bool(flags[1])
            if step % cfg.ckpt_every == 0 or out_of_time or stop["flag"]:
                checkpoint()
            if (out_of_time or stop["flag"]) and step % cfg.sample_every:
                save_samples()  # a run cut short by time or Ctrl-C still ends with a grid of its last step
            if out_of_time:
                if is_main:
                    print(f"\nstopping at step {step}: --max-minutes {cfg.max_minutes} reached")
                break
            if stop["flag"]:
                interrupted = True
                if is_main:
                    print(f"\ninterrupted: checkpoint saved at step {step}; continue with --resume")
                break
        else:
            checkpoint()
            if step % cfg.sample_every:  # else the loop has just drawn this step's grid
                save_samples()
    finally:
        if bar is not None:
            bar.close()
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
    if world > 1:
        # DDP syncs buffers (BN statistics, spectral-norm vectors) from rank 0 at the start of
        # each forward; the last forward left them rank-local, so sync once more at the end
        for buf in [*G_raw.buffers(), *D_raw.buffers(), *ema.model.buffers()]:
            dist.broadcast(buf, 0)
    return TrainResult(_unwrap(G), ema.calibrated(), _unwrap(D), step, history, out, interrupted)


def threading_main() -> bool:
    """Signal handlers can only be installed from the main thread (not in some notebook runners)."""
    import threading

    return threading.current_thread() is threading.main_thread()


def _append_csv(path: Path, row: dict) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def load_generator_from_checkpoint(path: str | Path, ema: bool = True, device: str | torch.device = "cpu") -> nn.Module:
    """The (EMA) generator of a training checkpoint, in eval mode."""
    state = load_checkpoint(path, device)
    require_keys(state, ("config", "G", "G_ema"), path, "a training checkpoint of this course")
    G = build_generator(model_config_from(state["config"]["model"], path)).to(device)
    load_state_strict(G, state["G_ema" if ema else "G"], "generator", path)
    return G.eval()


# ----------------------------------------------------------------------------------------------
# Command line


def _add_dataclass_args(parser: argparse.ArgumentParser, cls, prefix_skip: set[str]) -> None:
    comments = _field_comments(cls)
    for f in dataclasses.fields(cls):
        if f.name in prefix_skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        help_text = f"{comments.get(f.name, '')} (default: {default})"
        if f.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        else:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            parser.add_argument(flag, type=kind, default=default, help=help_text)


def _field_comments(cls) -> dict[str, str]:
    """The ``# comment`` after each dataclass field, so --help documents every option."""
    import inspect

    out = {}
    for line in inspect.getsource(cls).splitlines():
        line = line.strip()
        if ":" in line and "#" in line and not line.startswith(("#", "def", "class")):
            out[line.split(":")[0].strip()] = line.split("#", 1)[1].strip()
    return out


def config_from_args(argv: list[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(
        prog="python -m cgan_course.train",
        description="Train a conditional GAN on CIFAR-10 (or your own class folders). "
                    "Runs on CPU, CUDA or MPS; under torchrun it uses DistributedDataParallel.")
    model = parser.add_argument_group("model")
    _add_dataclass_args(model, ModelConfig, set())
    _add_dataclass_args(parser, TrainConfig, {"model"})
    args = vars(parser.parse_args(argv))
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    model_cfg = ModelConfig(**{k: v for k, v in args.items() if k in model_fields})
    return TrainConfig(model=model_cfg, **{k: v for k, v in args.items() if k not in model_fields})


def main(argv: list[str] | None = None) -> None:
    cfg = config_from_args(argv)
    try:
        result = run_cli(lambda: train(cfg), "python -m cgan_course.train")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done: step {result.step}, checkpoint {result.out / 'checkpoint.pt'}")
    if result.interrupted:
        sys.exit(130)


if __name__ == "__main__":
    main()
