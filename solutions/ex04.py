"""Reference solutions to notebook 04's exercises (training).

``solve_k(fast)`` returns the keyword arguments of exercise k's check,
``cgan_course.exercises.EXERCISES["04.k"].check``. ``python solutions/ex04.py`` runs them all: the
real answers train for five minutes per run on the committed sample's 1,000 images or your copy of
CIFAR-10 (``$CGAN_COURSE_CIFAR10``); ``fast`` (the tests) trains tiny models for a few steps.
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import io
import shutil
import sys
import tempfile
from pathlib import Path

from cgan_course import exercises
from cgan_course.data import load_cifar10, resolve_source
from cgan_course.train import TrainConfig, train
from cgan_course.training.recipes import recipe


def _scratch(prefix: str) -> Path:
    """A temporary folder, deleted when Python exits."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, True)
    return path


def _config(fast: bool, out: Path) -> TrainConfig:
    """Notebook 04's classroom recipe (AC-GAN's class head on), or a tiny model for a few steps."""
    if fast:
        return recipe("classroom", model={"g_width": 8, "d_width": 8, "z_dim": 16}, batch_size=16, steps=4,
                      log_every=1, sample_every=0, progress=False, out=str(out))
    return recipe("classroom", steps=100_000, max_minutes=5, log_every=25, sample_every=0, progress=False,
                  out=str(out))


@functools.cache
def _data(fast: bool):
    source, root = ("sample", None) if fast else resolve_source()
    return load_cifar10(root, train=True, source=source)


def _run(cfg: TrainConfig, fast: bool):
    with contextlib.redirect_stdout(io.StringIO()):  # the runs' own log lines
        return train(cfg, _data(fast))


@functools.cache
def _baseline(fast: bool):
    return _run(_config(fast, _scratch("ex04-baseline-")), fast)


def _variant(fast: bool, change) -> dict:
    base = _baseline(fast)
    variant = _run(change(_config(fast, _scratch("ex04-variant-"))), fast)
    n = 200 if fast else 1000
    verdict = exercises.fidelity_difference(base, variant, n)[3]
    return dict(baseline=base, variant=variant, answer=verdict, num_samples=n)


def solve_1(fast: bool = False) -> dict:
    classic = recipe("classic")  # the classic CGAN's model family, loss and Adam betas, declared once
    return _variant(fast, lambda cfg: dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, arch=classic.model.arch, class_head=False), ac_weight=0.0,
        loss=classic.loss, beta1=classic.beta1, beta2=classic.beta2))


def solve_2(fast: bool = False) -> dict:
    # (a): D compares augmented reals with augmented fakes only, so G matches the originals
    return {**_variant(fast, lambda cfg: dataclasses.replace(cfg, diffaug="color,translation,cutout")), "why": "a"}


def solve_3(fast: bool = False) -> dict:
    return _variant(fast, lambda cfg: dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, g_init="xavier", out_cbn=False)))


def solve_4(fast: bool = False) -> dict:
    """Stop after half the steps (as Ctrl-C or --max-minutes would), then continue with resume."""
    out = _scratch("ex04-resume-")
    cfg = dataclasses.replace(_config(True, out), steps=8, max_minutes=0)  # small either way: it is about the log
    _run(dataclasses.replace(cfg, steps=4), fast=True)
    _run(dataclasses.replace(cfg, resume=True), fast=True)
    return dict(run_folder=out)



# ----------------------------------------------------------------------------------------------
# Build exercise A (cgan_course.build, "04.A")


def build_A():
    import torch

    def ema_update(ema_params, params, decay):  # in place: the EMA model keeps its tensors
        with torch.no_grad():
            for p_ema, p in zip(ema_params, params):
                p_ema.mul_(decay).add_(p, alpha=1 - decay)

    return (ema_update,)


def build_B():
    import torch

    from cgan_course import losses
    from cgan_course.train import discriminate

    def train_step(G, D, opt_g, opt_d, x_real, y_real, z_d, y_d, z_g, y_g):
        # D phase: G's images as plain data (no graph through G), real and fake in one pass of D
        with torch.no_grad():
            x_fake = G(z_d, y_d)
        d_real, d_fake = discriminate(D, x_real, y_real, x_fake, y_d)
        loss_d = losses.d_loss_hinge(d_real, d_fake)
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        # G phase: fresh latents, and the gradient flows through D into G
        loss_g = losses.g_loss_hinge(D(G(z_g, y_g), y_g))
        opt_g.zero_grad()  # D's weights get gradients here too; opt_d.zero_grad() above clears them next step
        loss_g.backward()
        opt_g.step()
        return loss_d, loss_g

    return (train_step,)

if __name__ == "__main__":
    exercises.check_solutions(sys.modules[__name__], "04")
