"""The training recipes, declared once: every notebook, solution, benchmark and the CLI's
``--recipe`` start from these and change only what they study.

    from cgan_course.training.recipes import recipe
    cfg = recipe("classroom", steps=100_000, max_minutes=5)      # notebook 04's live run

``projection`` is the projection cGAN recipe (DCGAN body at width 32, hinge, Adam 2e-4 with SNGAN's
betas (0.0, 0.9), batch 64, EMA 0.999, flips). SNGAN paired beta2 = 0.9 with 5 D steps per G step;
the course's recipes take 1 D step per G step. ``pretrained`` is the committed generator's recipe:
``projection`` plus the AC-style class head on D at weight 1 (issue 24: the class head made the class
decide the picture; docs/RESULTS.md has the measurements, the card the run's history).
``classroom`` is notebook 04's five-minute run, the same with a stronger class term (3), because
five minutes on a CPU is a few hundred steps. ``classic`` is the DCGAN-style CGAN (concatenation,
BCE, Adam (2e-4, 0.5, 0.999)).
"""
from __future__ import annotations

import dataclasses

from ..errors import CourseError
from ..models import ModelConfig
from .config import TrainConfig

PRETRAINED_MODEL = ModelConfig(g_width=32, d_width=32)  # G of data/pretrained/generator.pt (its D adds a class head)

_PROJECTION = TrainConfig(model=PRETRAINED_MODEL, batch_size=64, beta1=0.0, beta2=0.9, ema_decay=0.999)
_HEAD = dataclasses.replace(PRETRAINED_MODEL, class_head=True)

RECIPES: dict[str, TrainConfig] = {
    "projection": _PROJECTION,
    "pretrained": dataclasses.replace(_PROJECTION, model=_HEAD, ac_weight=1.0),
    "classroom": dataclasses.replace(_PROJECTION, model=_HEAD, ac_weight=3.0),
    "classic": TrainConfig(model=ModelConfig(arch="classic", g_width=32, d_width=32), loss="bce", batch_size=64,
                           beta1=0.5, beta2=0.999, ema_decay=0.999),
}


def recipe(name: str, model: dict | None = None, **changes) -> TrainConfig:
    """The recipe ``name`` with ``changes`` to its TrainConfig fields and ``model`` to its
    ModelConfig fields (e.g. ``recipe("pretrained", model={"g_width": 8}, steps=4)``)."""
    if name not in RECIPES:
        raise CourseError(f"recipe must be one of {', '.join(RECIPES)}, got {name!r}")
    base = RECIPES[name]
    changes["model"] = dataclasses.replace(base.model, **(model or {}))  # a copy: editing it leaves RECIPES alone
    return dataclasses.replace(base, **changes)
