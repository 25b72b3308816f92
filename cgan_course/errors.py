"""The one error type a user can act on, and the one way every command line reports it.

Every check in the package that a user can fix by changing an input raises a ``CourseError``
(or a subclass: ``DatasetError``, ``CheckpointError``...) whose message names the problem and the
fix. The CLIs wrap their body in ``run_cli``: such an error prints as one line on stderr and the
process exits with status 2 (argparse's status for a bad command line), never with a traceback.
Anything else is a bug and keeps its traceback.

This module imports nothing from the package, so every other module can import it.
"""
from __future__ import annotations

import sys
from typing import Callable, TypeVar

T = TypeVar("T")

EXIT_USAGE = 2  # the same status argparse uses for a bad argument


class CourseError(ValueError):
    """A problem with the user's input or files; the message says what is wrong and what to do."""


class MissingFile(CourseError, FileNotFoundError):
    """A file the course needs is not there; the message says where it should come from."""


def run_cli(body: Callable[[], T], prog: str | None = None) -> T:
    """Run a CLI body; a ``CourseError`` becomes one stderr line and exit status 2."""
    try:
        return body()
    except CourseError as err:
        message = " ".join(str(err).split("\n")).strip() or type(err).__name__
        print(f"{prog + ': ' if prog else ''}error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
