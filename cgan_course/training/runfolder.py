"""The run folder: one run's checkpoint, ``log.csv`` and samples. The checks before a run starts
(nothing overwritten by accident), the training log, and the log's repair on resume.
"""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..checkpoints import CheckpointError
from ..errors import CourseError
from ..files import atomic_write
from .config import TrainConfig
from .state import Placement


class TrainingDiverged(CourseError, RuntimeError):
    """Raised when a loss becomes NaN/inf; the last good checkpoint, if any, is kept."""


def _kept(ckpt: Path) -> str:
    return (f"The last good checkpoint ({ckpt}) is kept." if ckpt.is_file() else
            "No checkpoint was written yet (lower --ckpt-every to keep one sooner).")


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
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows([list(LOG_FIELDS)] + kept)
    atomic_write(log_csv, write)


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
