"""A run folder belongs to one run: an advisory lock held for as long as the run writes there.

Two ``train`` processes started into the same ``--out`` would otherwise both run to the end, their
``log.csv`` rows interleaved and ``checkpoint.pt`` holding whichever wrote last. The lock is an
OS file lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows) on ``<out>/.lock``: the OS drops it
when the process dies, however it dies, so a lock left by a killed run is never mistaken for a live
one; the file's text (pid, host, start time) only names the holder in the error.
"""
from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Iterator

from .errors import CourseError

LOCK_NAME = ".lock"


class RunFolderBusy(CourseError):
    """Another live process holds the run folder."""


LOCK_OFFSET = 2**20  # Windows locks bytes, and mandatorily: lock one far past the holder's text


def _try_lock(fd: int) -> bool | None:
    """True: locked; False: another process holds it; None: this filesystem cannot lock (some
    network and FUSE mounts), so the run goes on unlocked, with a warning."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt
        os.lseek(fd, LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
        finally:
            os.lseek(fd, 0, os.SEEK_SET)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as err:
        return False if err.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES) else None


@contextlib.contextmanager
def run_folder_lock(out: str | Path) -> Iterator[str | None]:
    """Hold ``<out>/.lock`` for the block (creating ``out``). Yields the text a stale lock held (a
    run that died without releasing it), or None. Refuses with ``RunFolderBusy``, naming the folder
    and the other process, when a live process holds it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise CourseError(f"cannot create the run lock {path} ({err.strerror}); pass an --out you can write to") from None
    locked = False
    try:
        previous = os.read(fd, 4096).decode(errors="replace").strip()  # empty unless a holder died
        locked = _try_lock(fd)
        if locked is None:
            warnings.warn(f"{path}: this filesystem does not support file locks, so nothing stops a second run from "
                          "writing into the same folder", RuntimeWarning, stacklevel=3)
        elif not locked:
            holder = previous or "another process"
            raise RunFolderBusy(f"{out} is in use by another training run ({holder}); wait for it to finish, stop "
                                "it (Ctrl-C checkpoints it), or pass another --out")
        os.ftruncate(fd, 0)  # (the Windows lock byte lies beyond the end: locking needs no data there)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}"
                     .encode())
        os.fsync(fd)
        yield previous or None
    finally:
        if locked:
            os.ftruncate(fd, 0)  # a clean exit leaves the file empty; text left there means a run died
        os.close(fd)  # closing the descriptor releases the lock
