"""What a training step changes, in one object (``TrainState``: G, D, EMA, optimisers, scalers,
step, history), and where it runs (``Placement``: device, precision, rank and world size).
A checkpoint saves a ``TrainState``; a resume loads one.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
import torch.nn as nn

from ..checkpoints import load_state_strict
from ..models import build_discriminator, build_generator
from ..runtime import uses_grad_scaler
from .config import TrainConfig
from .step import EMA

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
