"""Files written so that nothing is lost, and fingerprints that say when a file changed.

    atomic_write(path, write)   write(tmp) beside path, then one rename: a crash leaves the old file
    cache_dir(beside)           where decoded data and feature statistics are cached
    stat_stamp(st)              size and both timestamps of a file: changes when the file does
    sha256(path)                the file's content hash (release cards, downloaded weights)

Every module that writes or caches asks here, so the rules exist once.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Callable

from .paths import CACHE_ENV_VAR


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    A crash or Ctrl-C mid-write leaves the previous file intact and (except after kill -9) no
    temporary file; the error itself is raised unchanged. The temporary name carries the process
    id, so two processes writing the same cache never share one."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # the same disk, so the rename is atomic
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return path


def cache_dir(beside: Path) -> Path:
    """``$CGAN_COURSE_CACHE`` when it is set; else ``.cgan_cache/`` beside ``beside`` (a data folder
    or archive) when that folder is writable; else ``~/.cache/cgan_course``."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR])
    folder = beside.parent if beside.is_file() else beside
    # mode bits, not os.access alone: root may write anywhere, but a folder marked read-only (a
    # shared data mount) should stay untouched
    if folder.is_dir() and folder.stat().st_mode & 0o222 and os.access(folder, os.W_OK):
        return folder / ".cgan_cache"
    return Path.home() / ".cache" / "cgan_course"


def stat_stamp(st: os.stat_result) -> str:
    """Size, mtime and ctime: ctime as well, because a copy that restores the old mtime (cp -p)
    still changes the ctime. One stat, no reading: cheap for 60,000 JPEGs."""
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def sha256(path: str | Path) -> str:
    """The hex sha256 of a file (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
