"""Run the whole course: every ``notebooks/NN_*.ipynb``, in numeric order, with papermill.

    python -m cgan_course.course --mode smoke                    # all notebooks -> runs/course-smoke/
    python -m cgan_course.course --mode classroom --only 02,05   # just these two
    python -m cgan_course.course --mode classroom --inplace      # regenerate the committed outputs

Each notebook runs in a fresh ``python3`` kernel, with ``notebooks/`` as working directory and
papermill's parameter ``MODE`` set to the chosen mode (``CGAN_COURSE_MODE`` is set too, for code
that reads the variable). A failure does not stop the run: the table at the end lists every
notebook with ok/FAILED, the last line of the error and the wall time, and the exit status is 1 if
any notebook failed. A notebook still running after ``--timeout`` seconds (default per mode, see
``TIMEOUTS``; 0: none) is stopped and counts as failed, so a hanging cell cannot hang CI. Ctrl-C
or SIGTERM stops the run: the table of what ran is printed and the status is 130 or 143.

Committed notebook outputs are regenerated in exactly one way: ``--inplace`` (normally in
``classroom`` mode). It writes a notebook back only if it ran without error, removes papermill's
injected-parameters cell (a committed ``MODE = "classroom"`` cell would override the reader's
``CGAN_COURSE_MODE`` and pytest's smoke mode), and strips volatile metadata -- per-cell timestamps
and durations, papermill's paths and timings -- so that re-running changes only real outputs.
Give classroom and full runs the real data -- the official batches in ``data/`` or
``CGAN_COURSE_CIFAR10=/path/to/cifar10-jpg.tar.gz`` -- or the notebooks fall back to the
1,000-image sample (a notebook that loads CIFAR-10 prints the source it used).

Without ``--inplace`` the executed notebooks (failed ones included, with papermill's error banner)
go to ``--out`` (default ``runs/course-<mode>/``) and the committed files are untouched.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .errors import CourseError, run_cli
from .paths import NOTEBOOKS_DIR, REPO_ROOT
from .validate import check_float

MODES = ("smoke", "classroom", "full")
KERNEL = "python3"
NOTEBOOK_NAME = re.compile(r"^(\d\d)_.+\.ipynb$")
# seconds a notebook may run, kernel start included: generous (smoke notebooks take under a
# minute, classroom ones a few minutes on a CPU; see benchmarks/results/course_runtime.json)
TIMEOUTS = {"smoke": 600, "classroom": 3600, "full": 24 * 3600}
MAX_TIMEOUT_S = 7 * 24 * 3600  # --timeout's bound (inf overflowed papermill's clock)


class CourseInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped ``run_course``; ``results`` lists the notebooks that ran, the
    interrupted one last (failed), and ``signum`` says which signal it was."""

    def __init__(self, results: list["NotebookResult"], signum: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.results, self.signum = results, signum


class _Terminated(KeyboardInterrupt):
    """Raised by the CLI's SIGTERM handler, so that cleanup runs as for Ctrl-C."""


@dataclass
class NotebookResult:
    notebook: str  # file name, e.g. "02_cifar10_preprocessing.ipynb"
    ok: bool
    seconds: float  # wall time of the execution, kernel start included
    error: str = ""  # last line of the error ("NameError: name 'x' is not defined"), "" if ok
    output: Path | None = None  # the executed notebook (None: inplace run that failed)

    @property
    def status(self) -> str:
        return "ok" if self.ok else "FAILED"


def find_notebooks(notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR,
                   only: Iterable[str | int] | None = None) -> list[Path]:
    """``NN_*.ipynb`` in ``notebooks_dir`` sorted by number; ``only`` keeps numbers like "02" or 2
    (or names starting with one, "02_cifar10_preprocessing.ipynb")."""
    found = sorted((p for p in Path(notebooks_dir).glob("*.ipynb") if NOTEBOOK_NAME.match(p.name)),
                   key=lambda p: (int(p.name[:2]), p.name))
    if only is None:
        return found
    available = ", ".join(p.name for p in found) or "none"
    items = [str(n).strip() for n in only if str(n).strip()]
    if not items:
        raise CourseError(f"--only names no notebook: pass comma-separated numbers such as 02,05 "
                          f"(available: {available})")
    wanted = set()
    for item in items:
        number = re.match(r"^(\d+)(_|\.ipynb$|$)", item)
        if not number:
            raise CourseError(f"--only {item!r} is not a notebook number: pass comma-separated numbers such as "
                              f"02,05 (available: {available})")
        wanted.add(int(number.group(1)))
    missing = wanted - {int(p.name[:2]) for p in found}
    if missing:
        raise CourseError(f"no notebook numbered {sorted(missing)} in {notebooks_dir}; available: {available}")
    return [p for p in found if int(p.name[:2]) in wanted]


def clean_notebook(path: str | os.PathLike, drop_injected: bool) -> None:
    """Strip volatile metadata in place: per-cell timings and papermill's run record (keeping the
    parameters), optionally the injected-parameters cell; renumber execution counts 1, 2, ..."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    parameters = nb.metadata.get("papermill", {}).get("parameters", {})
    nb.metadata.pop("papermill", None)
    if parameters and not drop_injected:
        nb.metadata["papermill"] = {"parameters": parameters}
    if drop_injected:
        nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    count = 0
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)  # start/end time, duration, status
        cell.metadata.pop("execution", None)  # nbclient's iopub/shell timestamps
        if cell.metadata.get("tags") == []:
            del cell.metadata["tags"]  # papermill adds empty tag lists
        if cell.cell_type != "code":
            continue
        if cell.execution_count is not None:
            count += 1
            cell.execution_count = count
        for output in cell.outputs:
            if output.get("output_type") == "execute_result":
                output["execution_count"] = cell.execution_count
    nbformat.write(nb, path)


def _error_line(err: BaseException) -> str:
    """``ename: last line of the message`` for a notebook cell error, else the exception's own."""
    name = getattr(err, "ename", None) or type(err).__name__
    message = str(getattr(err, "evalue", None) if getattr(err, "ename", None) else err)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return f"{name}: {lines[-1]}" if lines else name


def run_notebook(path: Path, output: Path, mode: str, notebooks_dir: Path,
                 timeout: float | None = None) -> tuple[bool, str]:
    """Execute one notebook with papermill; return (ok, error line). ``timeout``: seconds for all
    its cells together (each cell gets what is left), None for no limit."""
    import papermill

    deadline = time.monotonic() + timeout if timeout else None
    # nbclient asks for each cell's limit when the cell starts; a value <= 0 would mean "none"
    remaining = (lambda cell: max(deadline - time.monotonic(), 0.01)) if deadline else None
    try:
        # shutdown_kernel="immediate": the kernel is killed, not asked to quit, once the notebook is
        # done or stopped, so a timed-out or interrupted cell cannot keep it alive (or print noise)
        papermill.execute_notebook(str(path), str(output), parameters={"MODE": mode}, kernel_name=KERNEL,
                                   cwd=str(notebooks_dir), progress_bar=False, log_output=False,
                                   timeout_func=remaining, shutdown_kernel="immediate")
        return True, ""
    except TimeoutError:  # nbclient's CellTimeoutError; the kernel is shut down
        return False, f"timed out after {timeout:g} s (raise --timeout, or 0 for no limit)"
    except Exception as err:  # PapermillExecutionError for a failing cell; kernel deaths, bad JSON...
        return False, _error_line(err)


def _scratch_file(folder: Path, stem: str) -> Path:
    """An empty hidden file beside the target (same disk, so os.replace is atomic); not named
    *.ipynb so that pytest/nbval never collects a half-written notebook."""
    fd, name = tempfile.mkstemp(prefix=f".{stem}-", suffix=".part.json", dir=folder)
    os.close(fd)
    return Path(name)


def _copy_mode(original: Path, new: Path) -> None:
    """Give ``new`` the permissions of ``original`` (mkstemp makes files private, 0600)."""
    if original.exists():
        os.chmod(new, original.stat().st_mode & 0o777)
    else:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(new, 0o666 & ~umask)


def _run_one(path: Path, out_dir: Path, mode: str, notebooks_dir: Path, inplace: bool,
             timeout: float | None) -> NotebookResult:
    """Execute ``path`` into ``out_dir``. In place it runs into a scratch file that replaces the
    committed notebook only on success and is removed on any exit, Ctrl-C and SIGTERM included."""
    target = out_dir / path.name
    work = None
    start = time.perf_counter()
    try:
        work = _scratch_file(out_dir, path.stem) if inplace else target
        ok, error = run_notebook(path, work, mode, notebooks_dir, timeout)
        seconds = time.perf_counter() - start
        if work.is_file() and work.stat().st_size:
            try:
                clean_notebook(work, drop_injected=inplace)
            except Exception as err:  # an unreadable output must not stop the other notebooks
                ok, error = False, error or f"cleaning the executed notebook failed: {_error_line(err)}"
        if inplace and ok:
            _copy_mode(target, work)
            os.replace(work, target)
    finally:
        if inplace and work is not None and work.exists():
            work.unlink()
    return NotebookResult(path.name, ok, seconds, error, target if (ok or not inplace) and target.exists() else None)


def _check_writable_folder(folder: Path, what: str) -> None:
    """Refuse, before the first notebook runs, a folder the results cannot be written to."""
    if folder.exists() and not folder.is_dir():
        raise CourseError(f"{what} {folder} is a file, not a folder: pass a folder for the executed notebooks")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CourseError(f"{what} {folder} cannot be created ({err.strerror}): pass a folder you can write to") from None
    try:  # a real write: permission bits do not tell (root, ACLs, read-only mounts)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        raise CourseError(f"{what} {folder} is not writable ({err.strerror}): pass a folder you can write to") from None


def run_course(mode: str, out: str | os.PathLike | None = None, inplace: bool = False,
               only: Iterable[str | int] | None = None, notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR,
               log=print, timeout: float | None = None) -> list[NotebookResult]:
    """Run the course notebooks in ``mode``; see the module docstring. Keeps going after a failure.

    ``timeout``: seconds per notebook, None for ``TIMEOUTS[mode]``, 0 for no limit. Ctrl-C (or
    SIGTERM under ``main``) raises ``CourseInterrupted`` with the results so far."""
    if mode not in MODES:
        raise CourseError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    timeout = TIMEOUTS[mode] if timeout is None else check_float("timeout", timeout, 0, MAX_TIMEOUT_S,
                                                                 fix="seconds per notebook, 0 for no limit")
    if inplace and out is not None:
        raise CourseError("pass either out (a folder for the executed copies) or inplace=True, not both")
    notebooks_dir = Path(notebooks_dir).resolve()
    notebooks = find_notebooks(notebooks_dir, only)
    if not notebooks:
        raise CourseError(f"no NN_*.ipynb notebooks in {notebooks_dir}")
    out_dir = notebooks_dir if inplace else Path(out) if out is not None else REPO_ROOT / "runs" / f"course-{mode}"
    _check_writable_folder(out_dir, "the notebooks folder (--inplace)" if inplace else "--out")
    results = []
    running = None  # (name, start) of the notebook being executed
    previous_mode = os.environ.get("CGAN_COURSE_MODE")
    os.environ["CGAN_COURSE_MODE"] = mode  # the kernels inherit it
    try:
        for i, path in enumerate(notebooks, 1):
            log(f"[{i}/{len(notebooks)}] {path.name} ({mode}) ...")
            running = (path.name, time.perf_counter())
            result = _run_one(path, out_dir, mode, notebooks_dir, inplace, timeout or None)
            results.append(result)
            running = None
            log(f"    {result.status} in {result.seconds:.1f} s" + (f": {result.error}" if result.error else ""))
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM through main's handler
        signum = signal.SIGTERM if isinstance(err, _Terminated) else signal.SIGINT
        if running is not None and not (results and results[-1].notebook == running[0]):
            how = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted (Ctrl-C)"
            results.append(NotebookResult(running[0], False, time.perf_counter() - running[1], how))
        raise CourseInterrupted(results, signum) from None
    finally:
        if previous_mode is None:
            os.environ.pop("CGAN_COURSE_MODE", None)
        else:
            os.environ["CGAN_COURSE_MODE"] = previous_mode
    return results


def format_table(results: list[NotebookResult], width: int = 100) -> str:
    """A plain-text table: notebook, status (and error), seconds; then the total."""
    name_w = max([len("notebook")] + [len(r.notebook) for r in results])
    lines = [f"{'notebook':<{name_w}}  {'status':<6}  {'seconds':>8}  error", "-" * (name_w + 28)]
    for r in results:
        error = r.error if len(r.error) <= width else r.error[:width - 3] + "..."
        lines.append(f"{r.notebook:<{name_w}}  {r.status:<6}  {r.seconds:8.1f}  {error}".rstrip())
    failed = sum(not r.ok for r in results)
    lines.append("-" * (name_w + 28))
    summary = f"{len(results) - failed} ok, {failed} failed"
    lines.append(f"{'total':<{name_w}}  {summary}  {sum(r.seconds for r in results):.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cgan_course.course",
                                     description="Execute every course notebook in order with papermill.")
    parser.add_argument("--mode", choices=MODES, default="smoke",
                        help="smoke: seconds per notebook; classroom: minutes on a CPU; full: GPU-scale")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", help="folder for the executed notebooks (default: runs/course-<mode>/)")
    where.add_argument("--inplace", action="store_true",
                       help="write the outputs back into the notebooks (how committed outputs are made)")
    parser.add_argument("--only", help="comma-separated notebook numbers, e.g. 02,05")
    parser.add_argument("--notebooks", default=str(NOTEBOOKS_DIR), help="folder of NN_*.ipynb (default: notebooks/)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="stop a notebook after this long and count it as failed; 0: no limit "
                             f"(default per mode: {', '.join(f'{m} {s:,} s' for m, s in TIMEOUTS.items())})")
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)  # so that cleanup runs (no .part.json)
    try:
        results = run_cli(lambda: run_course(args.mode, out=args.out, inplace=args.inplace,
                                             only=args.only.split(",") if args.only is not None else None,
                                             notebooks_dir=args.notebooks, timeout=args.timeout), parser.prog)
    except KeyboardInterrupt as stop:  # CourseInterrupted, or a stop before the first notebook started
        results = stop.results if isinstance(stop, CourseInterrupted) else []
        signum = signal.SIGTERM if isinstance(stop, _Terminated) else getattr(stop, "signum", signal.SIGINT)
        print()
        print(format_table(results))
        print(f"{parser.prog}: stopped by {signal.Signals(signum).name}: the table lists what ran; "
              "no other notebook was started", file=sys.stderr)
        sys.exit(128 + signum)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print()
    print(format_table(results))
    if not all(r.ok for r in results):
        sys.exit(1)


def _raise_terminated(signum, frame) -> None:
    raise _Terminated()


if __name__ == "__main__":
    main()
