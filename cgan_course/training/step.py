"""The step a learner reads: ``gan_step`` = ``d_steps`` discriminator phases, one generator phase,
then the EMA update. ``GANLoss`` owns the loss terms (adversarial, the class head's, the
penalty), so the step has no branch for them; D is frozen while G learns through it.
"""
from __future__ import annotations

import contextlib
import copy
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..losses import LOSSES, has_batchnorm
from ..models import ModelConfig
from ..sampling import recalibrate_batchnorm
from .config import TrainConfig

if TYPE_CHECKING:  # annotations only: state.py builds the EMA defined here
    from .state import TrainState

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
        self._params, self._buffers = list(self.model.parameters()), list(self.model.buffers())

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        # warm-up: early on average over ~step updates only, so the start point is forgotten
        d = 0.0 if step < self.start else min(self.decay, (1 + step - self.start) / (10 + step - self.start))
        # one fused kernel for all tensors instead of one launch per parameter (matters on a GPU)
        if self._params:
            torch._foreach_lerp_(self._params, [p.detach() for p in model.parameters()], 1.0 - d)
        if self._buffers:  # (the foreach kernels refuse an empty list)
            torch._foreach_copy_(self._buffers, list(model.buffers()))

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


_HAS_BN: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()


def _has_batchnorm(D: nn.Module) -> bool:
    """Whether D has a BatchNorm anywhere; looked up once per D, not at every step."""
    if D not in _HAS_BN:
        _HAS_BN[D] = has_batchnorm(D)
    return _HAS_BN[D]


def discriminate(D: nn.Module, x_real: torch.Tensor, y_real: torch.Tensor, x_fake: torch.Tensor,
                 y_fake: torch.Tensor | None, augment=lambda x: x, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """D's logits on the real and the fake batch, [B] each (or [B, 1 + K] with ``class_logits=True``
    in ``kwargs``, passed on to D), in fp32. ``augment`` is what D sees of every image (DiffAugment);
    it is applied to both sides alike, or D could tell them apart by it."""
    if _has_batchnorm(D):
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
