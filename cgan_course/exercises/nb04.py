"""Notebook 04 (training): the checks of its exercises.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from .. import metrics
from .core import Feedback, _exercise, check_choice

# ----------------------------------------------------------------------------------------------
# 04: training runs compared, measured


def _run_config(fb: Feedback, name: str, result) -> dict | None:
    """The config a ``train()`` call ran with (``result.config``), as a dict."""
    cfg = getattr(result, "config", None)
    if cfg is None or not hasattr(result, "G_ema"):
        fb.wrong(f"{name} must be what train(cfg) returned, got {type(result).__name__}")
        return None
    return cfg.to_dict()


def fidelity_difference(baseline, variant, num_samples: int) -> tuple[float, float, float, str]:
    """Label fidelity of two runs' EMA generators (the same latents and labels, the course
    classifier): ``(baseline's, variant's, 95% half-width of their difference, verdict)``, the
    verdict being "better", "worse" or "no difference" (within the half-width) for the variant."""
    clf = metrics.ClassifierFeatures()
    a, b = (metrics.label_fidelity(r.G_ema, clf, num_samples=num_samples).value for r in (baseline, variant))
    half = 1.96 * math.sqrt((a * (1 - a) + b * (1 - b)) / num_samples)
    return a, b, half, "no difference" if abs(b - a) <= half else ("better" if b > a else "worse")


def _compare_runs(fb: Feedback, baseline, variant, answer: str, num_samples: int) -> None:
    a, b, half, truth = fidelity_difference(baseline, variant, num_samples)
    fb.expect(str(answer) == truth, f"{truth}: label fidelity {b:.1%} (variant) vs {a:.1%} (baseline), "
                                    f"difference {b - a:+.1%} ± {half:.1%} (n = {num_samples} each)",
              f"label fidelity is {b:.1%} (variant) vs {a:.1%} (baseline), a difference of {b - a:+.1%} ± "
              f"{half:.1%}: the answer is {truth!r}, not {answer!r}")


def _check_variant(key: str, baseline, variant, answer: str, wanted: dict, num_samples: int,
                   fb: Feedback | None = None) -> None:
    fb = fb or Feedback(key)
    before = len(fb.problems)  # a wrong prediction does not stop the runs from being compared
    base_cfg, var_cfg = _run_config(fb, "baseline", baseline), _run_config(fb, "variant", variant)
    if base_cfg is None or var_cfg is None:
        fb.done()
        return
    flat = {**var_cfg, **var_cfg["model"]}
    for field_name, (ok, hint) in wanted.items():
        fb.expect(ok(flat.get(field_name)), f"variant: {field_name} = {flat.get(field_name)!r}",
                  f"the variant was trained with {field_name} = {flat.get(field_name)!r}: {hint}")
    budget = lambda c: f"steps={c['steps']}, max_minutes={c['max_minutes']}"  # noqa: E731
    fb.expect(budget(var_cfg) == budget(base_cfg), f"the same budget as the baseline ({budget(base_cfg)})",
              f"the variant ran with {budget(var_cfg)}, the baseline with {budget(base_cfg)}: give both the same")
    if len(fb.problems) == before:
        _compare_runs(fb, baseline, variant, answer, num_samples)
    fb.done()


@_exercise("04.1", "the classic CGAN against the projection cGAN, measured")
def check_classic_vs_projection(baseline, variant, answer: str, num_samples: int = 1000) -> None:
    """``baseline``: the notebook's projection run (``result``); ``variant``: a classic CGAN run with
    the same budget; ``answer``: is the variant "better", "worse" or "no difference" in label fidelity."""
    _check_variant("04.1", baseline, variant, answer, {
        "arch": (lambda v: v == "classic", 'pass ModelConfig(arch="classic", ...)'),
        "loss": (lambda v: v in ("bce", "auto"), 'the classic CGAN trains with loss="bce"'),
        "beta1": (lambda v: v == 0.5, "DCGAN's Adam uses beta1=0.5")}, num_samples)


_SAFE_OPTIONS = {
    "a": (True, "D only ever compares augmented reals with augmented fakes, so G is pushed to make T(G(z)) "
                "look like T(x); for augmentations that do not leak (T(p) = T(q) only when p = q) that means "
                "p_g = p_data, and the augmentation never shows up in G's own samples"),
    "b": (False, "more varied reals do keep D from memorising them (why augment at all), but augmenting "
                 "reals alone would teach G to draw the augmentations; that is what augmenting both avoids"),
    "c": (False, "G does get the augmentation's gradient: DiffAugment is differentiable, and G's loss is "
                 "computed on D(T(G(z)))"),
    "d": (False, "the same ops are applied in G's phase too (D(T(G(z)))), or D and G would see different fakes"),
}


@_exercise("04.2", "DiffAugment on, measured")
def check_diffaug_effect(baseline, variant, answer: str, why: str, num_samples: int = 1000) -> None:
    """``variant``: the baseline's config with ``diffaug="color,translation,cutout"``; ``answer`` as in
    04.1; ``why``: one letter of exercise 2's options (why augmenting fakes as well as reals is safe)."""
    fb = Feedback("04.2")
    check_choice(fb, "why", why, _SAFE_OPTIONS)
    _check_variant("04.2", baseline, variant, answer, {
        "diffaug": (lambda v: bool(v), 'set diffaug="color,translation,cutout"'),
        "arch": (lambda v: v == "projection", "keep the baseline's projection model")}, num_samples, fb)


@_exercise("04.3", "the generator before its fix, measured")
def check_init_ablation(baseline, variant, answer: str, num_samples: int = 1000) -> None:
    """``variant``: the baseline's config with ``ModelConfig(g_init="xavier", out_cbn=False)``; ``answer`` as in 04.1."""
    _check_variant("04.3", baseline, variant, answer, {
        "g_init": (lambda v: v == "xavier", 'pass ModelConfig(g_init="xavier", ...)'),
        "out_cbn": (lambda v: v is False, "pass ModelConfig(out_cbn=False, ...)")}, num_samples)


@_exercise("04.4", "a run stopped and resumed")
def check_resumed_run(run_folder: str | Path) -> None:
    """``run_folder``: the ``--out`` of a run that was stopped (Ctrl-C) and continued with ``--resume``."""
    fb = Feedback("04.4")
    folder = Path(run_folder)
    log, ckpt = folder / "log.csv", folder / "checkpoint.pt"
    if not fb.expect(log.is_file() and ckpt.is_file(), f"{folder} holds log.csv and checkpoint.pt",
                     f"{folder} has no log.csv and checkpoint.pt: pass the --out folder of your run"):
        fb.done()
    with open(log) as f:
        rows = [(int(r["step"]), float(r["time_s"])) for r in csv.DictReader(f)]
    if not fb.expect(bool(rows), f"the log has {len(rows)} rows", "the log is empty: train with log_every > 0"):
        fb.done()
    steps = [s for s, _ in rows]
    restarts = sum(t1 < t0 for (_, t0), (_, t1) in zip(rows, rows[1:]))  # time_s starts again at a resume
    fb.expect(restarts >= 1, f"the log shows {restarts} resume(s): its clock starts again",
              "the log shows one uninterrupted run: stop it with Ctrl-C after its first log rows and start the "
              "same command with --resume")
    fb.expect(steps == sorted(set(steps)), "every logged step appears once, in order",
              "the log repeats or reorders steps: resume with --resume (not a fresh run into the same --out)")
    fb.done()
