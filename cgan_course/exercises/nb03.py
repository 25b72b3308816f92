"""Notebook 03 (conditional architectures): the checks of its exercises.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .. import losses, models
from .core import Feedback, _close, _exercise, _number, call_learner, check_choice

# ----------------------------------------------------------------------------------------------
# 03 · Conditional architectures


@_exercise("03.1", "a 64-pixel generator: its blocks and where the extra parameters go")
def check_upsampling_blocks(n_blocks, extra_params) -> None:
    """``n_blocks``: up-sampling blocks of ``build_generator(ModelConfig(image_size=64))``;
    ``extra_params``: its parameter count minus the 32-pixel ``ModelConfig()`` generator's."""
    fb = Feedback("03.1")
    g64, g32 = models.build_generator(models.ModelConfig(image_size=64)), models.build_generator(models.ModelConfig())
    blocks, extra = len(g64.blocks.blocks), models.count_parameters(g64) - models.count_parameters(g32)
    hint = {3: "that is the 32-pixel generator's count (4 -> 8 -> 16 -> 32)",
            blocks + 1: "count only the blocks that double the resolution: len(G.blocks.blocks)"}
    fb.expect(n_blocks == blocks, f"{blocks} blocks: 4 -> 8 -> 16 -> 32 -> 64",
              hint.get(n_blocks, f"the 64-pixel generator has {blocks} up-sampling blocks, not {n_blocks}"))
    fb.expect(extra_params == extra, f"{extra:,} extra parameters",
              f"expected {extra:,} extra parameters, got {extra_params}: count_parameters(G64) - count_parameters(G32)")
    parts = {name: models.count_parameters(m) for name, m in g64.named_children()}
    parts32 = {name: models.count_parameters(m) for name, m in g32.named_children()}
    fb.note("where they go: " + ", ".join(f"{n} {parts[n] - parts32[n]:+,}" for n in parts)
            + " (the widest layers keep 8w channels for one more doubling)")
    fb.done()


_BIAS_OPTIONS = {
    "a": (True, "it can make D stricter or more lenient for a class as a whole, but it cannot tell whether this "
                "image matches its class: b_y adds the same amount to every image's score"),
    "b": (False, "matching an image to its class needs the class to interact with the image's features, as "
                 "<embed(y), phi(x)> does; b_y never sees the image"),
    "c": (False, "from one image's score it cannot name a class: b_y shifts all images of a class alike"),
    "d": (False, "the projection's class term <embed(y), phi(x)> varies with the image; b_y does not, so "
                 "label_sensitivity gives the same answer on copies of one image as on varied images (and G's "
                 "gradient through w^T phi does not depend on y: this head gives G no push towards its class)"),
}


@_exercise("03.2", "a per-class bias instead of the projection")
def check_bias_head(head_cls: type, detects: str, features: int = 16, num_classes: int = 10) -> None:
    """``head_cls(features, num_classes)``: a module whose ``forward(phi [B, F], y [B])`` returns
    ``[B]`` logits ``w^T phi + b_y``; ``detects``: one letter of exercise 2's options."""
    fb = Feedback("03.2")
    check_choice(fb, "detects", detects, _BIAS_OPTIONS)
    try:
        head = head_cls(features, num_classes)
    except Exception as err:  # the learner's constructor: report whatever it raised
        fb.wrong(f"head_cls({features}, {num_classes}) raised {type(err).__name__}: {err}")
        fb.done()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in head.parameters():  # random values, so a zero initialisation cannot hide the class term
            p.copy_(torch.randn(p.shape, generator=gen))
        phi = torch.randn(32, features, generator=gen)
        out_a, out_b = head(phi, torch.full((32,), 3)), head(phi, torch.full((32,), 8))
    if not fb.expect(out_a.shape == (32,), "one logit per image, [B]",
                     f"the head must return [B] = [32] logits, got {list(out_a.shape)}: flatten the (B, 1) output"):
        fb.done()
    gap = out_a - out_b  # (B,): how much the class changes each image's score
    fb.expect(gap.abs().max() > 1e-6, "the score depends on y", "the score does not change with y: add b_y, "
                                                                  "e.g. nn.Embedding(num_classes, 1)(y).flatten()")
    fb.expect(gap.std() < 1e-5, "the class changes every image's score by the same amount",
              "the class term depends on phi, so it is not a per-class bias: return linear(phi) + bias(y) only")
    proj = models.ProjectionHead(features, num_classes).eval()
    with torch.no_grad():
        proj_gap = proj(phi, torch.full((32,), 3)) - proj(phi, torch.full((32,), 8))
    fb.note(f"spread over images of D(x, cat) - D(x, ship): bias head {gap.std():.1e}, projection head "
            f"{proj_gap.std():.2f}. A bias can make D stricter for a class, but cannot check whether this image "
            "matches this class")
    fb.done()


@_exercise("03.3", "sigma(W) by power iteration")
def check_power_iteration(sigma_fn: Callable[[torch.Tensor, int], float]) -> None:
    """``sigma_fn(W, iterations)`` for a 2-D ``W [m, n]``: its largest singular value, by that many
    steps of power iteration. The check makes sure it iterates: on a matrix whose two largest
    singular values are close, one step must still be short of sigma and 300 steps close to it
    (an exact SVD, ``torch.linalg.svdvals``, is right at once and fails the first test)."""
    fb = Feedback("03.3")
    gen = torch.Generator().manual_seed(0)
    conv = models.build_discriminator(models.ModelConfig(d_width=8)).body[2]
    cases = {"a random 64 x 27 matrix": torch.randn(64, 27, generator=gen),
             "a nearly rank-1 matrix": torch.outer(torch.randn(40, generator=gen), torch.randn(30, generator=gen))
             + 0.01 * torch.randn(40, 30, generator=gen),
             "a D conv weight, (out, in * k * k)": conv.parametrizations.weight.original.detach().flatten(1)}
    for name, W in cases.items():
        true = torch.linalg.matrix_norm(W, 2).item()
        got = _number(fb, f"sigma_fn on {name}", call_learner(fb, "sigma_fn(W, 100)", sigma_fn, W.clone(), 100))
        if got is None:
            continue
        if _close(got, torch.linalg.matrix_norm(W, "fro").item(), 1e-3) and not _close(got, true, 1e-3):
            fb.wrong(f"{name}: that is the Frobenius norm; sigma(W) = ||W v|| for the top right-singular vector v")
        elif _close(got, true ** 2, 1e-3):
            fb.wrong(f"{name}: you returned sigma squared (v^T W^T W v); sigma is its square root, u^T W v")
        else:
            fb.expect(_close(got, true, 1e-3), f"{name}: sigma = {true:.4f}",
                      f"{name}: sigma should be {true:.4f}, got {got:.4f}: iterate v <- W^T u / ||.||, "
                      "u <- W v / ||.|| (50 times), then sigma = u^T W v")
    q1, _ = torch.linalg.qr(torch.randn(30, 30, generator=gen))
    q2, _ = torch.linalg.qr(torch.randn(20, 20, generator=gen))
    close = q1[:, :20] @ torch.diag(torch.linspace(1.0, 0.5, 20)) @ q2.T  # sigma 1.0, then 0.97, 0.95, ...
    few, many = (_number(fb, f"sigma_fn(W, {k})", call_learner(fb, f"sigma_fn(W, {k})", sigma_fn, close.clone(), k)) for k in (1, 300))
    if few is not None and many is not None:
        fb.expect(few < 0.995 and abs(many - 1.0) < 0.02,
                  f"it iterates: one step gives {few:.3f}, 300 steps {many:.3f} (sigma = 1, the next 0.97)",
                  f"one step gave {few:.4f} and 300 steps {many:.4f}, for sigma = 1 with the next singular value "
                  "0.97: power iteration approaches sigma from below, step by step (no SVD, no matrix_norm)")
    fb.done()


@_exercise("03.4", "what conditioning costs for 100 classes")
def check_conditioning_params(answer, num_classes: int = 100) -> None:
    """``answer``: parameters of the projection ``ModelConfig(num_classes=100)`` generator minus
    those of the same generator with ``num_classes=0``."""
    fb = Feedback("03.4")
    cond = models.build_generator(models.ModelConfig(num_classes=num_classes))
    plain = models.build_generator(models.ModelConfig(num_classes=0))
    true = models.count_parameters(cond) - models.count_parameters(plain)
    ten = models.count_parameters(models.build_generator(models.ModelConfig(num_classes=10)))
    channels = sum(m.bn.num_features for m in cond.modules() if isinstance(m, models.ConditionalBatchNorm2d))
    hints = {2 * num_classes * channels: "that is all the class tables; the unconditional BatchNorms have their own "
                                         "gamma and beta (2 per channel), which conditioning replaces",
             ten - models.count_parameters(plain): "that is for 10 classes: build it with num_classes=100"}
    fb.expect(answer == true, f"{true:,} parameters: 2 x (100 - 1) per BN channel, {channels:,} channels",
              hints.get(answer, f"expected {true:,}, got {answer}: count_parameters(conditional) - "
                                "count_parameters(num_classes=0)"))
    fb.done()


@_exercise("03.5", "the EMA's half-life")
def check_ema_half_life(steps, decay: float = 0.999) -> None:
    """``steps``: after how many updates a weight's share in the EMA has fallen to half (d^k = 1/2)."""
    fb = Feedback("03.5")
    k = math.log(0.5) / math.log(decay)
    value = _number(fb, "steps", steps)
    if value is not None:
        if _close(value, 1 / (1 - decay), 1e-3):
            fb.wrong(f"1 / (1 - d) = {1 / (1 - decay):.0f} is the average's time constant (where the weight falls "
                     "to 1/e); solve d^k = 1/2 for k")
        else:
            fb.expect(math.floor(k) <= value <= math.ceil(k), f"about {k:.1f} steps: ln 2 / -ln d",
                      f"d^k = 1/2 gives k = ln 0.5 / ln d = {k:.1f} for d = {decay}, not {value:g}")
    fb.done()


@_exercise("03.6", "where the hinge loss stops pushing")
def check_hinge_zero_gradient(real, fake) -> None:
    """For ``d_real = [2.0, 0.5, -1.0]`` and ``d_fake = [-3.0, 0.0, 1.0]``: the indices of the real and
    of the fake samples whose hinge D-loss gradient is zero."""
    fb = Feedback("03.6")
    d_real = torch.tensor([2.0, 0.5, -1.0], requires_grad=True)
    d_fake = torch.tensor([-3.0, 0.0, 1.0], requires_grad=True)
    losses.d_loss_hinge(d_real, d_fake).backward()
    truth = {"real": [i for i, g in enumerate(d_real.grad) if g == 0],
             "fake": [i for i, g in enumerate(d_fake.grad) if g == 0]}
    for name, given, rule in (("real", real, "D(x) >= 1"), ("fake", fake, "D(G(z)) <= -1")):
        try:
            given = sorted(int(i) for i in given)
        except (TypeError, ValueError):
            fb.wrong(f"{name} must be a list of indices, got {given!r}")
            continue
        fb.expect(given == truth[name], f"{name}: {truth[name]} ({rule}: beyond the margin, no push)",
                  f"{name}: the zero-gradient samples are those with {rule}; got {given}" +
                  (" (the BCE loss never has a zero gradient; the hinge does)" if not given else ""))
    fb.done()
