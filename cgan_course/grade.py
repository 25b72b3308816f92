"""Grade a class's notebooks: run each submission, read every exercise's verdict, write a table.

    python -m cgan_course.grade SUBMISSIONS_DIR --out grades.csv
    python -m cgan_course.grade SUBMISSIONS_DIR --out grades.csv --timeout 900 --mode classroom
    python -m cgan_course.grade SUBMISSIONS_DIR --out grades.csv --jobs 4     # four notebooks at once

Every ``*.ipynb`` under SUBMISSIONS_DIR is a submission: the learner is the folder it sits in
(``submissions/ada/03_conditional_architectures.ipynb`` is Ada's chapter 03), or the file's name when
it sits at the top. The chapter comes from the file name's ``NN_`` prefix. Each notebook runs in a
temporary copy (its saved outputs cleared), in a child process with its own kernel, its own HOME and
a minimal environment, in ``--mode`` (smoke by default: the small settings of every chapter); a
cell may run ``--timeout`` seconds (what ran before it is still graded), the whole notebook
``--timeout`` + 60. Every cell runs even after an error, so one broken cell does not hide the
exercises after it. ``--jobs N`` runs N submissions at once, each child limited to its share of the
CPU cores (the rows and the table keep the submissions' order). A submission that loops, raises, has a
syntax error, is not a notebook, or prints megabytes is reported on its row, and the next one runs.

The verdicts are the ones the learner saw: ``Exercise 03.A: right`` / ``not yet`` from the checks
(``cgan_course.exercises``, ``cgan_course.build``), and the build exercises' "not finished" line,
read only from the output of a cell that itself calls that check (the last call counts). Grades
are an honour system all the same: code in a kernel can imitate a check's output; read the
notebooks whose grades surprise you.
One CSV row per learner and exercise: ``passed``, ``failed``, ``not finished`` (a build left as a
stub), ``not attempted`` (a check never called) or ``error`` (the notebook did not run), with the
check's first message. A summary table goes to stdout.

**Grading runs the learners' code** with your permissions. Run it in a container without network
access, e.g. ``docker run --rm --network none -v "$PWD":/course -w /course <image with the course
installed> python -m cgan_course.grade submissions --out grades.csv``.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import faulthandler
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

from .build import BUILDS
from .course import MODES
from .errors import CourseError, run_cli
from .exercises import EXERCISES
from .files import atomic_write
from .run_notebook import start_time
from .runtime import usable_cores
from .validate import check_choice, check_float, check_int

MAX_OUTPUT_BYTES = 2_000_000  # of text read back from one executed notebook; a flood is cut, not parsed whole
VERDICT = re.compile(r"^Exercise (\d\d\.[0-9A-Z]+): (right|not yet)", re.M)
UNFINISHED = re.compile(r"not finished yet \(build (\d\d\.[A-Z]):")  # groups 1-2 and 3 in _events' pattern
FIELDS = ("learner", "notebook", "exercise", "status", "message")
# what a submission's child process inherits of the grader's environment (no tokens, no credentials)
ENV_KEPT = {"PATH", "LANG", "LC_ALL", "TZ", "VIRTUAL_ENV", "PYTHONPATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "MPLBACKEND", "TMPDIR"}


@dataclass
class Row:
    learner: str
    notebook: str
    exercise: str
    status: str
    message: str = ""


def exercises_of(chapter: str) -> list[str]:
    """Every graded exercise of chapter ``chapter`` ("03"): its build exercises, then its checks."""
    return [k for k in BUILDS if k.startswith(chapter + ".")] + [k for k in EXERCISES if k.startswith(chapter + ".")]


def _learner(path: Path, root: Path) -> str:
    rel = path.relative_to(root)
    return rel.parts[0] if len(rel.parts) > 1 else path.stem


class _Children:
    """The submissions' child processes now running, so that a stopped grader stops them too: each
    runs in a session of its own (a timeout kills it whole), which Ctrl-C at the terminal does not
    reach. Under the lock, no child starts once stopping has begun."""

    def __init__(self):
        self.lock, self.running, self.stopping = threading.Lock(), set(), False

    def start(self, cmd: list[str], **kwargs) -> subprocess.Popen | None:
        with self.lock:
            if self.stopping:
                return None
            proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
            self.running.add(proc)
            return proc

    def finished(self, proc: subprocess.Popen) -> None:
        with self.lock:
            self.running.discard(proc)

    def stop_all(self, grace: float = 5.0) -> None:
        with self.lock:
            self.stopping, procs = True, list(self.running)
        for proc in procs:
            _stop(proc, grace)


def _stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM to the child's process group (nbclient in the child then shuts its kernel down, the
    kernel's own process group included), and SIGKILL after ``grace`` seconds if it is still there."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
            return


def _sweep_kernel(stdout: str) -> None:
    """Kill what is left of a submission's kernel group once its child has gone (the child kills it
    itself unless it was killed first), from the ``kernel: PGID START`` line the child printed. A
    group id cannot be reused while any process of the group lives; if the id names a process again,
    it must be the kernel (the same start time), not a newcomer that took the number."""
    match = re.search(r"^kernel: (\d+) (\d+)$", stdout or "", re.M)
    if not match:  # no kernel started, or no /proc to tell one process from another
        return
    pgid = int(match[1])
    if pgid <= 1 or pgid == os.getpgrp() or start_time(pgid) not in (None, match[2]):
        return
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)


def _run_child(path: Path, out: Path, mode: str, timeout: float, children: _Children,
               threads: int | None = None) -> str:
    """Execute ``path`` into ``out`` in a child process; '' if it ran, else why not (one line)."""
    cmd = [sys.executable, "-m", "cgan_course.run_notebook", str(path), str(out), "--timeout", str(timeout)]
    home = path.parent / "home"  # the submission's own HOME: nothing it writes there reaches the next one
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k in ENV_KEPT or k.startswith("CGAN_COURSE_")}
    env.pop("CGAN_COURSE_SOLUTIONS", None)  # a grade is of the learner's code, never of the reference solutions
    env.update({"CGAN_COURSE_MODE": mode, "HOME": str(home), "IPYTHONDIR": str(home / ".ipython"),
                "JUPYTER_CONFIG_DIR": str(home / ".jupyter"), "JUPYTER_DATA_DIR": str(home / ".jupyter-data"),
                "JUPYTER_RUNTIME_DIR": str(home / ".jupyter-runtime"), "MPLCONFIGDIR": str(home / ".matplotlib"),
                "XDG_CACHE_HOME": str(home / ".cache"), "PYTHONNOUSERSITE": "1"})
    if threads:  # N notebooks at once share the cores instead of each spinning threads on all of them
        env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    proc = children.start(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=path.parent)
    if proc is None:
        return "not run: the grader was stopped"
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=timeout + 60)
    except subprocess.TimeoutExpired:
        _stop(proc)
        (stdout, stderr), timed_out = proc.communicate(), True
    finally:
        children.finished(proc)
    _sweep_kernel(stdout)
    if timed_out:
        return f"did not finish within {timeout + 60:g} s (a loop?)"
    if children.stopping and proc.returncode != 0:
        return "not finished: the grader was stopped"
    if proc.returncode != 0:
        said = stderr.strip() or re.sub(r"^kernel: .*$", "", stdout or "", flags=re.M).strip()
        return ([ln for ln in said.splitlines() if ln.strip()] or ["no message"])[-1][:300]
    return ""


def _events(executed: Path) -> tuple[dict[str, tuple[str, str]], list[str], str]:
    """Per exercise, its last verdict ``(status, first problem)``, read only from the output of a
    cell whose own source calls that exercise's check (``build("03.A"`` or ``check_<name>(``), so a
    printed imitation elsewhere counts for nothing; also the cells' error lines and why the run
    stopped early ('' if it did not). Output past MAX_OUTPUT_BYTES per notebook is not read."""
    nb = json.loads(executed.read_text(errors="replace"))
    checks = {e.key: e.check.__name__ for e in EXERCISES.values()}
    events, errors, size = {}, [], 0
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", ""))
        texts = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text = "".join(out.get("text", ""))
                texts.append(text[:max(0, MAX_OUTPUT_BYTES - size)])
                size += len(text)
            elif out.get("output_type") == "error":
                errors.append(f"{out.get('ename', '')}: {out.get('evalue', '')}".strip()[:300])
        text = "\n".join(texts)
        if "is set: checking the reference solution" in text:  # CGAN_COURSE_SOLUTIONS set from inside
            continue
        for match in re.finditer(rf"{VERDICT.pattern}|{UNFINISHED.pattern}", text, re.M):
            key = match.group(1) or match.group(3)
            called = f'build("{key}"' in source or (key in checks and f"{checks[key]}(" in source)
            if not called:
                continue
            if match.group(3):
                events[key] = ("not finished", "the build exercise still raises NotImplementedError")
            elif match.group(2) == "right":
                events[key] = ("passed", "")
            else:
                events[key] = ("failed", _first_problem(text[match.end():]))
    return events, errors, nb.get("metadata", {}).get("grade_stopped", "")


def grade_one(path: Path, root: Path, mode: str, timeout: float, children: _Children | None = None,
              threads: int | None = None) -> list[Row]:
    learner, name = _learner(path, root), path.name
    chapter = name[:2] if re.match(r"\d\d_", name) else None
    keys = exercises_of(chapter) if chapter else []
    if not keys:
        return [Row(learner, name, "*", "error", "cannot tell the chapter: name the file NN_<name>.ipynb "
                                                "after the course's notebook (e.g. 03_conditional_architectures.ipynb)")]
    with tempfile.TemporaryDirectory(prefix="cgan-grade-") as tmp:
        copy, executed = Path(tmp) / name, Path(tmp) / f"executed-{name}"
        copy.write_bytes(path.read_bytes())  # the learner's folder is never written to
        why = _run_child(copy, executed, mode, timeout, children or _Children(), threads)
        if why or not executed.is_file():
            return [Row(learner, name, key, "error", why or "the notebook did not run") for key in keys]
        events, errors, stopped = _events(executed)
    rows = []
    for key in keys:
        if key in events:
            rows.append(Row(learner, name, key, *events[key]))
        elif stopped:
            rows.append(Row(learner, name, key, "error", stopped))
        else:
            rows.append(Row(learner, name, key, "not attempted", errors[0] if errors and key in BUILDS else ""))
    return rows


def _first_problem(after: str) -> str:
    """The first ✗ line of a check's printout (``after``: the text after its verdict line)."""
    return next((ln.strip()[1:].strip() for ln in after.splitlines()[:40] if ln.strip().startswith("✗")), "")[:300]


def _cell(text: str) -> str:
    """CSV text that a spreadsheet will not run as a formula (learners control the messages)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def grade(root: str | Path, out: str | Path, mode: str = "smoke", timeout: float = 600, log=print,
          jobs: int = 1) -> list[Row]:
    """Grade every notebook under ``root`` into the CSV ``out``, ``jobs`` at a time; returns the rows
    in the submissions' order (see the module docstring)."""
    root, out = Path(root), Path(out)
    check_choice("mode", mode, MODES)
    timeout = check_float("timeout", timeout, 1, 24 * 3600, fix="seconds per notebook")
    jobs = check_int("jobs", jobs, 1, 64, fix="how many notebooks run at once, e.g. the number of CPU cores")
    if not root.is_dir():
        raise CourseError(f"{root} is not a folder: pass the folder that holds the submitted notebooks")
    if out.exists() and not out.is_file():
        raise CourseError(f"--out {out} is not a file: pass a CSV file name, e.g. grades.csv")
    if out.resolve().is_relative_to(root.resolve()):
        raise CourseError(f"--out {out} is inside the submissions folder; write the grades elsewhere")
    paths = sorted(p for p in root.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if not paths:
        raise CourseError(f"{root} holds no .ipynb files")
    # N at once share the cores this process may use (a share of them already, under pytest-xdist)
    omp = os.environ.get("OMP_NUM_THREADS", "")
    cores = min(usable_cores(), int(omp)) if omp.isdigit() and int(omp) > 0 else usable_cores()
    threads = max(1, cores // jobs) if jobs > 1 else None
    children = _Children()

    def one(numbered: tuple[int, Path]) -> list[Row]:
        i, path = numbered
        log(f"[{i}/{len(paths)}] {path.relative_to(root)} ...")
        return grade_one(path, root, mode, timeout, children, threads)

    # threads suffice: each submission runs in its own child process, and the grader only waits on it
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        rows = [row for rows_of_one in _in_order(pool.submit(one, item) for item in enumerate(paths, 1))
                for row in rows_of_one]
    except BaseException:  # Ctrl-C or SIGTERM: no submission left running behind the grader's back
        pool.shutdown(wait=False, cancel_futures=True)
        with _signals_ignored():  # a second Ctrl-C must not cut the stopping short
            children.stop_all()
        raise
    pool.shutdown()

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(FIELDS)
            writer.writerows([_cell(r.learner), _cell(r.notebook), r.exercise, r.status, _cell(r.message)]
                             for r in rows)
    atomic_write(out, write)  # a stopped grader leaves the previous table whole
    log(summary(rows))
    return rows


@contextlib.contextmanager
def _signals_ignored():
    """Ctrl-C and SIGTERM ignored inside (in the main thread; elsewhere Python cannot change them)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _in_order(futures) -> list:
    """The futures' results in order. The main thread waits in short slices: the OS may hand Ctrl-C
    or SIGTERM to a worker thread, and Python runs its handler only in the main thread, which a
    wait with no timeout would never wake to do (the grader would hang instead of stopping)."""
    results = []
    for future in list(futures):
        while True:
            try:
                results.append(future.result(timeout=0.25))
                break
            except FutureTimeout:
                continue
    return results


def summary(rows: list[Row]) -> str:
    by = {}
    for r in rows:
        by.setdefault((r.learner, r.notebook), []).append(r.status)
    lines = [f"{'learner':16s} {'notebook':36s} {'passed':>6s} {'failed':>6s} {'open':>5s} {'error':>5s}"]
    for (learner, notebook), s in by.items():
        opened = s.count("not finished") + s.count("not attempted")
        lines.append(f"{learner[:16]:16s} {notebook[:36]:36s} {s.count('passed'):6d} {s.count('failed'):6d} "
                     f"{opened:5d} {s.count('error'):5d}")
    return "\n".join(lines)


def _interrupted(*_) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cgan_course.grade", description=__doc__.split("\n")[0])
    parser.add_argument("submissions", nargs="?", help="folder of submitted notebooks (one subfolder per learner)")
    parser.add_argument("--out", default="grades.csv", help="the CSV to write (default: grades.csv)")
    parser.add_argument("--mode", default="smoke", help="the notebooks' mode: smoke (default), classroom or full")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per notebook (default: 600)")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at once (default: 1)")
    args = parser.parse_args(argv)

    def body() -> None:
        signal.signal(signal.SIGTERM, _interrupted)  # stopped by a scheduler or `kill`: as Ctrl-C
        if not args.submissions:
            raise CourseError("pass the folder of submitted notebooks: python -m cgan_course.grade SUBMISSIONS --out grades.csv")
        grade(args.submissions, args.out, args.mode, args.timeout, jobs=args.jobs)

    run_cli(body, parser.prog)


if __name__ == "__main__":
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 PID`: where every thread is, on stderr (a grader that seems stuck)
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    main()
