"""One validation layer: every CLI option, config field, request field and public argument a user
passes is checked here, before any work, with one message format::

    <name> must be <what>, got <value!r>[: <fix>]

Types are checked strictly (a bool is not a number, a string is not a float, 64.0 is not an int),
floats must be finite unless a range says otherwise, and every size has an upper bound (a named
constant), so a typo cannot ask for gigabytes. Config dataclasses declare their ranges once, in
``config_field(..., lo=, hi=, choices=)``; ``check_fields`` reads them in ``__post_init__``.

This module imports only ``errors``, so every layer above can use it.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import operator
from dataclasses import field
from typing import Any, Iterable

from .errors import CourseError

MAX_SEED = 2**31 - 1  # every seed a user passes (training, sampling, widgets, the service)


def shown(value: Any) -> str:
    """``value`` as the messages show it: its repr, cut at 60 characters (a tensor: its shape)."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"a {type(value).__name__} of shape {list(value.shape)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def fail(name: str, what: str, value: Any, fix: str = "", error: type[CourseError] = CourseError) -> CourseError:
    """The layer's one message format, as an exception to raise (``error``: a subclass such as
    ``DatasetError`` where callers catch that)."""
    return error(f"{name} must be {what}, got {shown(value)}" + (f": {fix}" if fix else ""))


def _range_text(lo, hi, lo_open: bool = False, hi_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo}"
    return f"{'<' if hi_open else '<='} {hi}" if hi is not None else ""


def check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None, fix: str = "",
              error: type[CourseError] = CourseError) -> int:
    """An integer in [lo, hi]: an int, a NumPy integer or a 0-d integer tensor; not a bool, not a
    float (64.0 is refused: a float where an int is meant is usually a mistake upstream)."""
    what = f"an integer {_range_text(lo, hi)}".rstrip()
    if isinstance(value, (bool, float)) or type(value).__name__ == "bool_":
        raise fail(name, what, value, fix, error)
    try:
        value = operator.index(value)
    except (TypeError, RuntimeError, ValueError):
        raise fail(name, what, value, fix, error) from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise fail(name, what, value, fix, error)
    return value


def check_float(name: str, value: Any, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False, hi_open: bool = False, fix: str = "",
                error: type[CourseError] = CourseError) -> float:
    """A finite real number (an int is fine; a bool or a string is not) in [lo, hi]; ``lo_open``
    and ``hi_open`` leave out the ends."""
    what = f"a finite number {_range_text(lo, hi, lo_open, hi_open)}".rstrip()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise fail(name, what, value, fix, error)
    value = float(value)
    if not math.isfinite(value) or (lo is not None and (value <= lo if lo_open else value < lo)) or (
            hi is not None and (value >= hi if hi_open else value > hi)):
        raise fail(name, what, value, fix, error)
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise fail(name, "True or False", value)
    return value


def check_choice(name: str, value: Any, choices: Iterable[Any], error: type[CourseError] = CourseError) -> Any:
    choices = tuple(choices)
    if all(type(c) is int for c in choices) and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = int(value)  # np.int64(64) is 64; 64.0 is not
    if isinstance(value, bool) or type(value) not in {type(c) for c in choices} or value not in choices:
        raise fail(name, "one of " + ", ".join(repr(c) for c in choices), value, error=error)
    return value


def check_str(name: str, value: Any, nonempty: bool = True, fix: str = "",
              error: type[CourseError] = CourseError) -> str:
    if not isinstance(value, str) or (nonempty and not value.strip()):
        raise fail(name, "a non-empty string" if nonempty else "a string", value, fix, error)
    return value


# ----------------------------------------------------------------------------------------------
# Config dataclasses: ranges declared once, on the field


def config_field(default, help: str, *, lo=None, hi=None, lo_open: bool = False, hi_open: bool = False, choices=None,
                 nonempty: bool = False):
    """A config dataclass field with its ``--help`` text (the training CLI reads it) and its valid
    values (``check_fields`` enforces them): a range for numbers, ``choices`` for options,
    ``nonempty`` for paths where "" would silently mean the current folder."""
    return field(default=default, metadata={"help": help, "lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open,
                                            "choices": choices, "nonempty": nonempty})


def check_fields(obj: Any) -> None:
    """Check every field of the config dataclass ``obj`` against its annotation (``int``,
    ``float``, ``bool``, ``str``, optionally ``| None``) and the range ``config_field`` declared."""
    for f in dataclasses.fields(obj):
        value, kind, meta = getattr(obj, f.name), str(f.type).replace(" ", ""), f.metadata
        if kind.endswith("|None"):
            if value is None:
                continue
            kind = kind[:-len("|None")]
        if meta.get("choices") is not None:
            check_choice(f.name, value, meta["choices"])
        elif kind == "int":
            check_int(f.name, value, meta.get("lo"), meta.get("hi"))
        elif kind == "float":
            check_float(f.name, value, meta.get("lo"), meta.get("hi"), meta.get("lo_open", False),
                        meta.get("hi_open", False))
        elif kind == "bool":
            check_bool(f.name, value)
        elif kind == "str":
            check_str(f.name, value, nonempty=meta.get("nonempty", False))
        elif "help" in meta:  # a config_field of a type this layer does not know: a bug, not user input
            raise TypeError(f"check_fields cannot check {type(obj).__name__}.{f.name} of type {f.type}")
