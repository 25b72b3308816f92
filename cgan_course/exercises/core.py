"""What every check shares: ``Feedback`` (one line per criterion, ✓ or ✗ with a hint), the
``NotYetRight`` error an answer cell raises, the registry of exercises (``EXERCISES``, filled by
the ``_exercise`` decorator in each ``nbNN.py``), ``show`` and ``check_solutions``.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import CourseError
from ..paths import SOLUTIONS_DIR


class NotYetRight(CourseError, AssertionError):
    """An exercise answer is not right yet; the message names the first thing to fix."""


class Feedback:
    """Collects the verdicts on one answer, prints them, and raises if any is wrong."""

    def __init__(self, key: str):
        self.key, self.lines, self.problems = key, [], []

    def right(self, text: str) -> None:
        self.lines.append(f"  ✓ {text}")

    def wrong(self, text: str) -> None:
        self.lines.append(f"  ✗ {text}")
        self.problems.append(text)

    def note(self, text: str) -> None:
        self.lines.append(f"    {text}")

    def expect(self, ok: bool, right: str, wrong: str) -> bool:
        (self.right if ok else self.wrong)(right if ok else wrong)
        return ok

    def done(self) -> None:
        verdict = "right" if not self.problems else f"not yet ({len(self.problems)} to fix)"
        print(f"Exercise {self.key}: {verdict}")
        print("\n".join(self.lines))
        if self.problems:
            raise NotYetRight(f"exercise {self.key}: {self.problems[0]}")


def _number(fb: Feedback, name: str, value) -> float | None:
    """``value`` as a float, or a verdict saying it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        fb.wrong(f"{name} must be a number (a float or a 1-element tensor), got {type(value).__name__}")
        return None


def _close(a: float, b: float, rel: float = 1e-3, abs_: float = 1e-6) -> bool:
    return abs(a - b) <= max(abs_, rel * abs(b))


# ----------------------------------------------------------------------------------------------
# The registry: which check belongs to which exercise


@dataclass(frozen=True)
class Exercise:
    key: str  # "01.3": notebook 01, exercise 3
    title: str
    check: Callable[..., None]

    @property
    def notebook(self) -> str:
        return self.key.split(".")[0]

    @property
    def number(self) -> int:
        return int(self.key.split(".")[1])

    @property
    def solution(self) -> Path:
        return SOLUTIONS_DIR / f"ex{self.notebook}.py"


EXERCISES: dict[str, Exercise] = {}


def _exercise(key: str, title: str):
    def register(check: Callable[..., None]) -> Callable[..., None]:
        EXERCISES[key] = Exercise(key, title, check)
        return check
    return register


def show(notebook: str) -> None:
    """Print the exercises of ``notebook`` ("01".."08"), each with its check and solution."""
    found = [e for e in EXERCISES.values() if e.notebook == notebook]
    if not found:
        raise CourseError(f"no exercises for notebook {notebook!r}; choose one of "
                          f"{sorted({e.notebook for e in EXERCISES.values()})}")
    for e in found:
        params = ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}"
                           for p in inspect.signature(e.check).parameters.values())
        print(f"{e.key}  {e.title}\n      check:    exercises.{e.check.__name__}({params})\n"
              f"      solution: solutions/{e.solution.name}, solve_{e.number}()")


def check_solutions(module, notebook: str, fast: bool = False) -> None:
    """Feed every ``module.solve_<k>(fast)`` of ``notebook`` to its check (``python solutions/exNN.py``)."""
    for e in (e for e in EXERCISES.values() if e.notebook == notebook):
        e.check(**getattr(module, f"solve_{e.number}")(fast=fast))


def check_choice(fb: Feedback, name: str, answer, options: dict[str, tuple[bool, str]]) -> None:
    """A prediction answered with one letter of ``options`` (letter -> (right?, why)). A right
    letter prints why it is right; a wrong one prints why it is wrong; anything else asks for a
    letter. So a learner who guesses learns the reason either way."""
    key = str(answer).strip().lower()[:1] if isinstance(answer, str) else None
    if key not in options:
        fb.wrong(f"{name}: answer with one letter of {', '.join(sorted(options))}, got {answer!r}")
        return
    ok, why = options[key]
    fb.expect(ok, f"{name} ({key}): {why}", f"{name}: not ({key}): {why}")


def call_learner(fb: Feedback, name: str, fn, *args, reraise: tuple[type[BaseException], ...] = ()):
    """``fn(*args)`` for a learner's ``fn``: an exception becomes a verdict on ``fb`` (and None),
    not a crash of the check; those in ``reraise`` (the build exercises' NotImplementedError: the
    stub, not a mistake) go through."""
    try:
        return fn(*args)
    except reraise:
        raise
    except Exception as err:  # noqa: BLE001 - the learner's code: any failure is feedback
        fb.wrong(f"{name} raised {type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}")
        return None


# ----------------------------------------------------------------------------------------------
# 02 · CIFAR-10


def _as_vector(fb: Feedback, name: str, value, size: int) -> torch.Tensor | None:
    try:
        v = torch.as_tensor(value, dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError):
        fb.wrong(f"{name} must be {size} numbers (a tensor or a list), got {type(value).__name__}")
        return None
    if v.numel() != size:
        fb.wrong(f"{name} must hold {size} values, one per channel (average over dims 0, 2, 3), got {v.numel()}")
        return None
    return v
