"""Build exercises: the learner writes a piece of the machine the chapter teaches, from a
signature and a docstring, and ``build`` checks it against the package's own implementation.

In a notebook::

    def d_loss(d_real, d_fake):
        '''D's loss from its logits [B] on real and fake samples -> a scalar.'''
        raise NotImplementedError  # your code here

    d_loss, = build("01.A", d_loss)

``build(key, *functions)`` runs the check and returns what the rest of the notebook should use:

- the learner's functions, when the check passes (it prints ``✓`` lines);
- the package's reference implementation, when they are unfinished (``NotImplementedError``) or
  wrong, with one visible line saying so and, for a wrong answer, what to fix. So a notebook with
  unfinished exercises still runs to the end (the student edition), and the class keeps going
  when one learner is stuck.

Every check compares the learner's function with the package's on random inputs of several
shapes, then *uses* it where that is the real test (the learner's conditional BatchNorm dropped
into a generator must give the package's output). The tests prove each check fails on the stub
and on plausible wrong answers. ``CGAN_COURSE_SOLUTIONS=1`` swaps in the reference solutions from
``solutions/exNN.py`` (``build_<letter>()``), which is how CI runs every notebook with its
exercises solved; ``RESULTS`` records each build's outcome for a grader.
"""
from __future__ import annotations

import copy
import functools
import importlib.util
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from . import data, losses, metrics, models, sampling, train
from .errors import CourseError
from .exercises import Feedback, NotYetRight, call_learner
from .paths import SOLUTIONS_DIR

SOLUTIONS_ENV = "CGAN_COURSE_SOLUTIONS"


@dataclass(frozen=True)
class Build:
    key: str  # "01.A": notebook 01, build exercise A
    title: str
    names: tuple[str, ...]  # what the learner writes, in order
    check: Callable[..., None]  # raises NotYetRight (wrong) or NotImplementedError (unfinished)
    reference: Callable[[], tuple]  # the package's implementations, same order

    @property
    def notebook(self) -> str:
        return self.key.split(".")[0]

    @property
    def letter(self) -> str:
        return self.key.split(".")[1]


BUILDS: dict[str, Build] = {}
RESULTS: dict[str, tuple[str, str]] = {}  # key -> (passed | failed | not finished, first problem)


def _build(key: str, title: str, names: tuple[str, ...], reference: Callable[[], tuple]):
    def register(check):
        BUILDS[key] = Build(key, title, names, check, reference)
        return check
    return register


def solution(key: str) -> tuple:
    """The reference solution's functions for build ``key`` (``solutions/exNN.py``, ``build_<letter>()``)."""
    b = _get(key)
    path = SOLUTIONS_DIR / f"ex{b.notebook}.py"
    spec = importlib.util.spec_from_file_location(f"solutions_ex{b.notebook}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(getattr(module, f"build_{b.letter}")())


def _get(key: str) -> Build:
    if key not in BUILDS:
        raise CourseError(f"no build exercise {key!r}; the build exercises are {', '.join(BUILDS)}")
    return BUILDS[key]


def build(key: str, *functions) -> tuple:
    """Check the learner's ``functions`` for build exercise ``key``; return the ones later cells
    should use (the learner's if right, else the reference, saying so). See the module docstring."""
    b = _get(key)
    if len(functions) != len(b.names):
        raise CourseError(f"build {key} takes {len(b.names)} function(s), {', '.join(b.names)}; got {len(functions)}")
    if os.environ.get(SOLUTIONS_ENV, "").lower() in ("1", "true", "yes"):
        functions = solution(key)
        print(f"{SOLUTIONS_ENV} is set: checking the reference solution of {key} (solutions/ex{b.notebook}.py)")
    try:
        b.check(*functions)
    except NotImplementedError:
        RESULTS[key] = ("not finished", "raises NotImplementedError")
        print(f"using the reference {' and '.join(b.names)}: yours {'is' if len(b.names) == 1 else 'are'} not "
              f"finished yet (build {key}: {b.title})")
        return b.reference()
    except NotYetRight as err:
        RESULTS[key] = ("failed", str(err))
        print(f"using the reference {' and '.join(b.names)} until yours pass{'es' if len(b.names) == 1 else ''} "
              f"the check above")
        return b.reference()
    RESULTS[key] = ("passed", "")
    return functions


def _call(fb: Feedback, name: str, fn, *args):
    """The learner's ``fn(*args)``; the stub's NotImplementedError goes through (build falls back)."""
    return call_learner(fb, name, fn, *args, reraise=(NotImplementedError,))


def _same(fb: Feedback, name: str, got, want: torch.Tensor, where: str, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    if not isinstance(got, torch.Tensor):
        fb.wrong(f"{name} must return a tensor, got {type(got).__name__} ({where})")
        return False
    if got.shape != want.shape:
        fb.wrong(f"{name} returned shape {list(got.shape)}, expected {list(want.shape)} ({where})")
        return False
    if not torch.isfinite(got).all():
        fb.wrong(f"{name} returned NaN or inf ({where}): compute with softplus / logsigmoid on logits, "
                 "not log(sigmoid(.)), which underflows")
        return False
    if not torch.allclose(got.float(), want.float(), atol=atol, rtol=rtol):
        err = (got.float() - want.float()).abs().max().item()
        fb.wrong(f"{name} differs from the reference by up to {err:.3g} ({where})")
        return False
    return True


# ----------------------------------------------------------------------------------------------
# 01 · the GAN losses


@_build("01.A", "the discriminator's loss and both generator losses, from logits",
        ("d_loss", "g_loss_minimax", "g_loss_nonsaturating"),
        lambda: (losses.d_loss_bce, losses.g_loss_minimax, losses.g_loss_nonsaturating))
def check_gan_losses(d_loss, g_loss_minimax, g_loss_nonsaturating) -> None:
    fb = Feedback("01.A")
    g = torch.Generator().manual_seed(0)
    cases = [(torch.randn(1, generator=g), torch.randn(1, generator=g), "one sample"),
             (2 * torch.randn(7, generator=g), 2 * torch.randn(7, generator=g), "7 samples"),
             (torch.tensor([200.0, -200.0, 0.0]), torch.tensor([-200.0, 200.0, 3.0]), "logits of +-200: a confident D")]
    ok = True
    for real, fake, where in cases:
        for name, fn, ref, args in (("d_loss", d_loss, losses.d_loss_bce, (real, fake)),
                                    ("g_loss_minimax", g_loss_minimax, losses.g_loss_minimax, (fake,)),
                                    ("g_loss_nonsaturating", g_loss_nonsaturating, losses.g_loss_nonsaturating, (fake,))):
            leaves = [a.clone().requires_grad_(True) for a in args]
            got = _call(fb, name, fn, *leaves)
            ok &= got is not None and _same(fb, name, got, ref(*args), where)
            if ok and got.requires_grad:  # the gradient is what training uses: it must match too
                grads = torch.autograd.grad(got.sum(), leaves, allow_unused=True)
                ref_leaves = [a.clone().requires_grad_(True) for a in args]
                ref_grads = torch.autograd.grad(ref(*ref_leaves), ref_leaves)
                ok &= all(_same(fb, f"the gradient of {name}", torch.zeros_like(b) if a is None else a, b, where)
                          for a, b in zip(grads, ref_grads))
            elif ok:
                fb.wrong(f"{name} returned a value without a gradient ({where}): build it from the logits with "
                         "torch operations (no .item(), no .detach())")
                ok = False
            if not ok:
                break
        if not ok:
            break
    if ok:
        fb.right("D's loss, the minimax and the non-saturating G losses match cgan_course.losses, "
                 "values and gradients, on 1 and 7 samples and on logits of +-200")
    fb.done()


# ----------------------------------------------------------------------------------------------
# 03 · conditional BatchNorm and the projection discriminator's output


@_build("03.A", "conditional BatchNorm: per-class scale and shift, train and eval behaviour",
        ("ConditionalBatchNorm2d",), lambda: (models.ConditionalBatchNorm2d,))
def check_conditional_batchnorm(cls) -> None:
    fb = Feedback("03.A")
    C, K = 6, 4
    try:
        mine = cls(C, K)
    except NotImplementedError:
        raise
    except Exception as err:  # noqa: BLE001
        fb.wrong(f"ConditionalBatchNorm2d({C}, {K}) raised {type(err).__name__}: {err}")
        return fb.done()
    if not isinstance(mine, nn.Module):
        fb.wrong(f"ConditionalBatchNorm2d({C}, {K}) must build an nn.Module, got {type(mine).__name__}")
        return fb.done()
    fresh = _call(fb, "forward", mine, torch.randn(8, C, 5, 5, generator=torch.Generator().manual_seed(1)),
                  torch.arange(8) % K)
    if fresh is None:
        return fb.done()
    plain = nn.BatchNorm2d(C, affine=False)(torch.randn(8, C, 5, 5, generator=torch.Generator().manual_seed(1)))
    fb.expect(isinstance(fresh, torch.Tensor) and fresh.shape == plain.shape and torch.allclose(fresh, plain, atol=1e-5),
              "a new layer is a plain BatchNorm (every gamma_y = 1, beta_y = 0): classes diverge as training goes",
              "a new layer must act as a plain BatchNorm: initialise every gamma_y to 1 and beta_y to 0")
    ref = models.ConditionalBatchNorm2d(C, K)
    with torch.no_grad():  # classes that differ, so a mix-up of y shows
        ref.gamma.weight.normal_(1.0, 0.5, generator=torch.Generator().manual_seed(2))
        ref.beta.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(3))
    try:
        mine.load_state_dict(ref.state_dict())
    except (RuntimeError, KeyError) as err:
        fb.wrong("its parameters must be named as the docstring says (bn = BatchNorm2d(channels, affine=False), "
                 f"gamma and beta = Embedding(num_classes, channels)): {str(err).splitlines()[0][:200]}")
        return fb.done()
    g = torch.Generator().manual_seed(4)
    ok = True
    for step, (B, H) in enumerate([(8, 5), (3, 1), (16, 4)]):  # train mode: batch statistics, running ones updated
        x, y = 3 * torch.randn(B, C, H, H, generator=g) + 1, torch.randint(0, K, (B,), generator=g)
        ok &= _same(fb, "train-mode output", _call(fb, "forward", mine.train(), x, y), ref.train()(x, y),
                    f"batch {B} x {C} x {H} x {H}")
        ok &= ok and _same(fb, "the running mean", mine.bn.running_mean, ref.bn.running_mean, f"after {step + 1} batches")
    x, y = torch.randn(5, C, 3, 3, generator=g), torch.randint(0, K, (5,), generator=g)
    ok &= ok and _same(fb, "eval-mode output", _call(fb, "forward", mine.eval(), x, y), ref.eval()(x, y),
                       "eval mode: the running statistics, not the batch's")
    if ok:  # the gradients reach the class tables (a detached lookup would train nothing)
        x, y = torch.randn(6, C, 4, 4, generator=g), torch.arange(6) % K
        out_mine, out_ref = mine.train()(x, y), ref.train()(x, y)
        weight = torch.randn(out_ref.shape, generator=g)
        for name in ("gamma", "beta"):
            mine_p, ref_p = getattr(mine, name).weight, getattr(ref, name).weight
            g_mine = torch.autograd.grad((out_mine * weight).sum(), mine_p, retain_graph=True, allow_unused=True)[0] \
                if out_mine.requires_grad else None
            g_ref = torch.autograd.grad((out_ref * weight).sum(), ref_p, retain_graph=True)[0]
            ok &= _same(fb, f"the gradient of {name}.weight", torch.zeros_like(g_ref) if g_mine is None else g_mine,
                        g_ref, "a training step must reach the per-class scale and shift")
    if ok:
        fb.right("train mode (batch statistics, running statistics updated), eval mode (running statistics) and "
                 "the gradients of gamma and beta match models.ConditionalBatchNorm2d on three batch shapes")
        G = models.build_generator(models.ModelConfig(g_width=8, z_dim=16)).train()
        z, yg = torch.randn(6, 16, generator=g), torch.randint(0, 10, (6,), generator=g)
        with torch.no_grad():
            for m in G.modules():
                if isinstance(m, models.ConditionalBatchNorm2d):
                    m.gamma.weight.normal_(1.0, 0.3, generator=g)
            want = G(z, yg)
            got = _call(fb, "the generator with your ConditionalBatchNorm2d", lambda: (_swap_cbn(G, cls), G(z, yg))[1])
        fb.expect(got is not None and torch.allclose(got, want, atol=1e-5),
                  "dropped into the course's generator in place of every conditional BatchNorm, it draws the same images",
                  "dropped into the course's generator, it draws other images than models.ConditionalBatchNorm2d")
    fb.done()


def _swap_cbn(module: nn.Module, cls) -> None:
    """Replace every ``models.ConditionalBatchNorm2d`` inside ``module`` by ``cls`` with the same state."""
    for name, child in module.named_children():
        if isinstance(child, models.ConditionalBatchNorm2d):
            new = cls(child.bn.num_features, child.num_classes)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new.train(child.training))
        else:
            _swap_cbn(child, cls)


def _reference_projection(phi, y, linear, embed):
    return linear(phi).flatten() + (embed(y) * phi).sum(dim=1)


@_build("03.B", "the projection discriminator's output: psi(phi) + <embed(y), phi>",
        ("projection_logit",), lambda: (_reference_projection,))
def check_projection_logit(projection_logit) -> None:
    fb = Feedback("03.B")
    g = torch.Generator().manual_seed(0)
    ok = True
    for B, F_, K in [(1, 3, 2), (7, 16, 10), (32, 5, 4)]:
        linear, embed = nn.Linear(F_, 1), nn.Embedding(K, F_)
        phi, y = torch.randn(B, F_, generator=g), torch.randint(0, K, (B,), generator=g)
        got = _call(fb, "projection_logit", projection_logit, phi, y, linear, embed)
        ok &= got is not None and _same(fb, "projection_logit", got, _reference_projection(phi, y, linear, embed),
                                        f"B={B}, {F_} features, {K} classes")
        if not ok:
            break
    if ok:
        fb.right("psi(phi) + <embed(y), phi> per sample, shape [B], on three sizes")
        D = models.build_discriminator(models.ModelConfig(d_width=8, z_dim=16)).eval()
        x, y = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1, torch.randint(0, 10, (4,), generator=g)
        with torch.no_grad():
            want = D(x, y)
            head = D.head
            head.forward = lambda phi, y: projection_logit(phi, y, head.linear, head.embed)
            try:
                got = _call(fb, "the discriminator with your projection_logit", D, x, y)
            finally:
                del head.forward  # back to the class's method
        fb.expect(got is not None and got.shape == want.shape and torch.allclose(got, want, atol=1e-5), "as the course's discriminator's head, it gives the same logits",
                  "as the course's discriminator's head, it gives other logits")
    fb.done()


# ----------------------------------------------------------------------------------------------
# 06 · the Fréchet distance (notebook 06), and 05 · slerp (notebook 05)


def _reference_fd(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    return metrics.frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


@_build("06.A", "the Fréchet distance of two feature sets, matrix square root included",
        ("frechet_distance",), lambda: (_reference_fd,))
def check_frechet_distance(frechet_distance) -> None:
    fb = Feedback("06.A")
    rng = np.random.default_rng(0)
    ok = True
    for n, d in [(50, 2), (400, 8), (300, 32)]:
        mix_a, mix_b = rng.normal(size=(d, d)), rng.normal(size=(d, d))  # correlated features, unlike covariances
        a = rng.normal(size=(n, d)) @ mix_a
        b = rng.normal(size=(n + 17, d)) @ mix_b + rng.normal(size=d)
        got = _call(fb, "frechet_distance", frechet_distance, a, b)
        if got is None:
            ok = False
            break
        try:
            value = float(got)
        except (TypeError, ValueError):
            fb.wrong(f"frechet_distance must return a number, got {type(got).__name__}")
            ok = False
            break
        want = _reference_fd(a, b)
        if not np.isfinite(value) or abs(value - want) > 1e-4 * max(1.0, abs(want)):
            fb.wrong(f"frechet_distance gives {value:.6g} where the reference gives {want:.6g} ({n} and {n + 17} "
                     f"samples of {d} correlated features): the cross term is 2 Tr sqrtm(S1 S2), a matrix square "
                     "root of the product, with unbiased covariances (np.cov)")
            ok = False
            break
        same = _call(fb, "frechet_distance", frechet_distance, a, a.copy())
        if same is None or abs(float(same)) > 1e-6 * max(1.0, abs(want)):
            fb.wrong(f"frechet_distance of a set with itself must be 0, got {same}")
            ok = False
            break
    if ok:
        fb.right("matches metrics.frechet_distance on correlated features of 2, 8 and 32 dimensions, and is 0 "
                 "between a set and itself")
    fb.done()


@_build("05.A", "slerp: the direction along the great circle, the norm linearly",
        ("slerp",), lambda: (sampling.slerp,))
def check_slerp(slerp) -> None:
    fb = Feedback("05.A")
    g = torch.Generator().manual_seed(0)
    ok = True
    for d, T in [(2, 3), (16, 5), (128, 9)]:
        z0, z1 = torch.randn(d, generator=g), 1.5 * torch.randn(d, generator=g)
        t = torch.linspace(0, 1, T)
        got = _call(fb, "slerp", slerp, z0, z1, t)
        ok &= got is not None and _same(fb, "slerp", got, sampling.slerp(z0, z1, t), f"{d} dimensions, {T} points",
                                        atol=1e-4, rtol=1e-4)
        if not ok:
            break
    if ok:  # the ends where the angle is 0: sin(0) / sin(0) must not become NaN
        z = torch.randn(8, generator=g)
        t = torch.linspace(0, 1, 5)
        for z1, where in ((2 * z, "parallel ends, z1 = 2 z0: the straight line"), (z.clone(), "equal ends: z0 itself")):
            got = _call(fb, "slerp", slerp, z, z1, t)
            ok &= got is not None and _same(fb, "slerp", got, sampling.slerp(z, z1, t), where, atol=1e-4, rtol=1e-4)
            if not ok:
                fb.note("when the two directions coincide, the great circle is a point: interpolate the norm alone")
                break
    if ok:
        fb.right("matches sampling.slerp in 2, 16 and 128 dimensions, and for parallel and equal ends (the "
                 "direction fixed, the norm linear)")
    fb.done()


# ----------------------------------------------------------------------------------------------
# 04 · the EMA of the generator's weights


def _reference_ema_update(ema_params, params, decay):
    with torch.no_grad():
        for p_ema, p in zip(ema_params, params):
            p_ema.lerp_(p, 1.0 - decay)  # p_ema <- decay * p_ema + (1 - decay) * p


@_build("04.A", "the EMA update: theta_ema <- d theta_ema + (1 - d) theta, in place",
        ("ema_update",), lambda: (_reference_ema_update,))
def check_ema_update(ema_update) -> None:
    fb = Feedback("04.A")
    g = torch.Generator().manual_seed(0)
    ok = True
    for decay, shapes in [(0.9, [(3,), (2, 5)]), (0.999, [(4, 4, 3, 3)]), (0.0, [(6,)]), (0.5, [(1,), (7, 2)])]:
        mine = [torch.randn(s, generator=g) for s in shapes]
        params = [torch.randn(s, generator=g) for s in shapes]
        want = [m.clone() for m in mine]
        _reference_ema_update(want, params, decay)
        before = [m.data_ptr() for m in mine]
        if _call(fb, "ema_update", ema_update, mine, [p.clone() for p in params], decay) is None and fb.problems:
            ok = False
            break
        if [m.data_ptr() for m in mine] != before:
            fb.wrong("ema_update must change the EMA tensors in place (p_ema.mul_(...).add_(...) or lerp_), "
                     "not make new ones: the EMA model holds the tensors it was given")
            ok = False
            break
        for m, w in zip(mine, want):
            ok &= _same(fb, "the EMA after one update", m, w, f"decay {decay}, shapes {shapes}")
        if not ok:
            fb.note("theta_ema <- d theta_ema + (1 - d) theta: the old average keeps the weight d (close to 1)")
            break
    if ok:
        fb.right("in place, theta_ema <- d theta_ema + (1 - d) theta, for d = 0, 0.5, 0.9 and 0.999")
        G = models.build_generator(models.ModelConfig(g_width=8, z_dim=16))
        ema_mine, ema_ref = (copy.deepcopy(G).requires_grad_(False) for _ in range(2))
        with torch.no_grad():
            for _ in range(5):  # G moves; both averages follow it
                for p in G.parameters():
                    p.add_(0.1 * torch.randn(p.shape, generator=g))
                _call(fb, "ema_update", ema_update, list(ema_mine.parameters()), list(G.parameters()), 0.8)
                _reference_ema_update(list(ema_ref.parameters()), list(G.parameters()), 0.8)
            z, y = torch.randn(4, 16, generator=g), torch.arange(4)
            same = torch.allclose(ema_mine.eval()(z, y), ema_ref.eval()(z, y), atol=1e-5)
        fb.expect(same, "averaging a generator's weights over five updates, it draws the same images as the course's EMA",
                  "averaging a generator over five updates, it draws other images than the course's EMA")
    fb.done()


# ----------------------------------------------------------------------------------------------
# 04 · the training step


_HINGE = train.GANLoss.named("hinge")
_STEP_MODEL = models.ModelConfig(g_width=8, d_width=8, z_dim=16)  # tiny: four steps take a second
_STEP_CHECKED = 4  # steps trained both ways; a missing zero_grad shows from the second on


def _reference_train_step(G, D, opt_g, opt_d, x_real, y_real, z_d, y_d, z_g, y_g):
    """The package's two phases (``train.d_phase``, ``train.g_phase``) with the hinge loss, fp32."""
    loss_d, _, _ = train.d_phase(G, D, opt_d, _HINGE, x_real, y_real, z_d, y_d)
    return loss_d, train.g_phase(G, D, opt_g, _HINGE, z_g, y_g)


@functools.cache
def _step_batches() -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    images, labels = data.load_cifar10(source="sample")  # the committed 1,000 images
    batches = data.DeviceBatches(images, labels, 16, torch.device("cpu"), seed=0)
    return tuple(next(batches) for _ in range(_STEP_CHECKED))


def _step_state(cfg: train.TrainConfig) -> train.TrainState:
    return train.TrainState.new(cfg, iter(_step_batches()), train.Placement(torch.device("cpu")))


def _relative_gap(mine: nn.Module, ref: nn.Module, start: nn.Module) -> float:
    """||theta_mine - theta_ref|| / ||theta_ref - theta_start|| over weights and buffers: how far
    the learner's training went from the package's, in units of how far the package's moved."""
    def flat(m: nn.Module) -> torch.Tensor:
        return torch.cat([v.detach().float().flatten() for v in m.state_dict().values()])
    moved = (flat(ref) - flat(start)).norm().item()
    return (flat(mine) - flat(ref)).norm().item() / max(moved, 1e-12)


@_build("04.B", "the training step: D's update on real and detached fake images, then G's through D (hinge)",
        ("train_step",), lambda: (_reference_train_step,))
def check_train_step(train_step) -> None:
    fb = Feedback("04.B")
    cfg = train.TrainConfig(model=_STEP_MODEL, batch_size=16, steps=_STEP_CHECKED, loss="hinge", d_steps=1,
                            fake_labels="uniform", reuse_fakes=False, progress=False)
    ref = _step_state(cfg)  # seeded by cfg.seed: the same weights and random numbers both ways
    G0, D0 = copy.deepcopy(ref.G), copy.deepcopy(ref.D)
    ref_losses = [train.gan_step(ref, _HINGE, cfg)[:2] for _ in range(_STEP_CHECKED)]  # the package's step

    mine = _step_state(cfg)  # the same start; latents drawn in gan_step's order
    for i, (x_real, y_real) in enumerate(_step_batches()):
        z_d, y_d = train.latents(cfg.model, cfg.batch_size, x_real.device)
        z_g, y_g = train.latents(cfg.model, cfg.batch_size, x_real.device)
        out = _call(fb, "train_step", train_step, mine.G, mine.D, mine.opt_g, mine.opt_d,
                    x_real, y_real, z_d, y_d, z_g, y_g)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            fb.wrong(f"train_step must return (loss_d, loss_g), got {type(out).__name__}")
            fb.done()
        if not all(_same(fb, name, got, want, f"step {i + 1}", atol=1e-4)
                   for name, got, want in zip(("loss_d", "loss_g"), out, ref_losses[i])):
            fb.note("loss_d = mean(relu(1 - D(x_real, y_real))) + mean(relu(1 + D(G(z_d, y_d), y_d))), "
                    "loss_g = -mean(D(G(z_g, y_g), y_g)): losses.d_loss_hinge / g_loss_hinge")
            break
    else:
        fb.right(f"the same losses as the package's step for {_STEP_CHECKED} steps on the committed sample")
    gap_g, gap_d = _relative_gap(mine.G, ref.G, G0), _relative_gap(mine.D, ref.D, D0)
    same = gap_g < 1e-3 and gap_d < 1e-3
    fb.expect(same, f"after {_STEP_CHECKED} steps your G and D hold the package's weights (relative gaps "
                    f"{gap_g:.1e}, {gap_d:.1e})",
              f"after {_STEP_CHECKED} steps your G and D are not the package's (relative gaps: G {gap_g:.2g}, "
              f"D {gap_d:.2g}; 0 is right)")
    if not same:
        fb.note("the usual suspects: D's fakes must come from (z_d, y_d) under torch.no_grad(); G's from "
                "(z_g, y_g) *with* their graph; zero each optimiser's gradients before its backward (the "
                "G phase leaves gradients in D); D first, then G; D scores real and fake in one pass "
                "(train.discriminate), as a spectrally normalised D updates its estimate at every pass")
    fb.done()

