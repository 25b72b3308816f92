"""Grade a class's notebooks: run each submission, read every exercise's verdict, write a table.

    python -m cgan_course.grade SUBMISSIONS_DIR --out grades.csv
    python -m cgan_course.grade SUBMISSIONS_DIR --out grades.csv --timeout 900 --mode classroom

Every ``*.ipynb`` under SUBMISSIONS_DIR is a submission: the learner is the folder it sits in
(``submissions/ada/03_conditional_architectures.ipynb`` is Ada's chapter 03), or the file's name when
it sits at the top. The chapter comes from the file name's ``NN_`` prefix. Each notebook runs in a
temporary copy, in a child process with its own kernel, in ``--mode`` (smoke by default: the small
settings of every chapter), for at most ``--timeout`` seconds; every cell runs even after an error,
so one broken cell does not hide the exercises after it. A submission that loops, raises, has a
syntax error, is not a notebook, or prints megabytes is reported on its row, and the next one runs.

The verdicts are the ones the learner saw: ``Exercise 03.A: right`` / ``not yet`` from the checks
(``cgan_course.exercises``, ``cgan_course.build``), and the build exercises' "not finished" line.
One CSV row per learner and exercise: ``passed``, ``failed``, ``not finished`` (a build left as a
stub), ``not attempted`` (a check never called) or ``error`` (the notebook did not run), with the
check's first message. A summary table goes to stdout.

**Grading runs the learners' code** with your permissions. Run it in a container without network
access, e.g. ``docker run --rm --network none -v "$PWD":/course -w /course <image with the course
installed> python -m cgan_course.grade submissions --out grades.csv``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .build import BUILDS
from .course import MODES
from .errors import CourseError, run_cli
from .exercises import EXERCISES
from .validate import check_choice, check_float

MAX_OUTPUT_BYTES = 2_000_000  # of text read back from one executed notebook; a flood is cut, not parsed whole
VERDICT = re.compile(r"^Exercise (\d\d\.[0-9A-Z]+): (right|not yet)", re.M)
UNFINISHED = re.compile(r"not finished yet \(build (\d\d\.[A-Z]):")
FIELDS = ("learner", "notebook", "exercise", "status", "message")


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


def _run_child(path: Path, out: Path, mode: str, timeout: float) -> str:
    """Execute ``path`` into ``out`` in a child process; '' if it ran, else why not (one line)."""
    cmd = [sys.executable, "-m", "cgan_course.grade", "--run-one", str(path), str(out), "--mode", mode,
           "--timeout", str(timeout)]
    env = {**os.environ, "CGAN_COURSE_MODE": mode}
    env.pop("CGAN_COURSE_SOLUTIONS", None)  # a grade is of the learner's code, never of the reference solutions
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60, env=env,
                              cwd=path.parent)
    except subprocess.TimeoutExpired:
        return f"did not finish within {timeout:g} s (a loop?)"
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()] or ["no message"]
        return lines[-1][:300]
    return ""


def _execute(path: Path, out: Path, timeout: float) -> None:
    """In the child: run every cell of ``path`` (errors included) and write the result to ``out``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # noqa: BLE001 - not JSON, not a notebook, a wrong nbformat
        raise CourseError(f"not a readable notebook ({type(err).__name__}: {str(err).splitlines()[0][:160]})") from None
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellTimeoutError:
        raise CourseError(f"a cell ran longer than {timeout:g} s (a loop?)") from None
    except DeadKernelError:
        raise CourseError("the kernel died (out of memory, or the code exited the process)") from None
    nbformat.write(nb, out)


def _text_of(executed: Path) -> tuple[str, list[str]]:
    """The stream text of every cell (cut at MAX_OUTPUT_BYTES) and the error lines, ``Name: value``."""
    nb = json.loads(executed.read_text(errors="replace"))
    parts, errors, size = [], [], 0
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text = "".join(out.get("text", ""))
                parts.append(text[:max(0, MAX_OUTPUT_BYTES - size)])
                size += len(text)
            elif out.get("output_type") == "error":
                errors.append(f"{out.get('ename', '')}: {out.get('evalue', '')}".strip()[:300])
    return "".join(parts), errors


def grade_one(path: Path, root: Path, mode: str, timeout: float) -> list[Row]:
    learner, name = _learner(path, root), path.name
    chapter = name[:2] if re.match(r"\d\d_", name) else None
    keys = exercises_of(chapter) if chapter else []
    if not keys:
        return [Row(learner, name, "*", "error", "cannot tell the chapter: name the file NN_<name>.ipynb "
                                                "after the course's notebook (e.g. 03_conditional_architectures.ipynb)")]
    with tempfile.TemporaryDirectory(prefix="cgan-grade-") as tmp:
        copy, executed = Path(tmp) / name, Path(tmp) / f"executed-{name}"
        copy.write_bytes(path.read_bytes())  # the learner's folder is never written to
        why = _run_child(copy, executed, mode, timeout)
        if why or not executed.is_file():
            return [Row(learner, name, key, "error", why or "the notebook did not run") for key in keys]
        text, errors = _text_of(executed)
    verdicts = {key: ("passed" if v == "right" else "failed") for key, v in VERDICT.findall(text)}
    unfinished = set(UNFINISHED.findall(text))
    rows = []
    for key in keys:
        if key in verdicts:
            message = "" if verdicts[key] == "passed" else _first_problem(text, key)
            rows.append(Row(learner, name, key, verdicts[key], message))
        elif key in unfinished:
            rows.append(Row(learner, name, key, "not finished", "the build exercise still raises NotImplementedError"))
        else:
            rows.append(Row(learner, name, key, "not attempted", errors[0] if errors and key in BUILDS else ""))
    return rows


def _first_problem(text: str, key: str) -> str:
    block = text.split(f"Exercise {key}: not yet", 1)[1]
    return next((ln.strip()[2:].strip() for ln in block.splitlines() if ln.strip().startswith("✗")), "")[:300]


def grade(root: str | Path, out: str | Path, mode: str = "smoke", timeout: float = 600, log=print) -> list[Row]:
    """Grade every notebook under ``root`` into the CSV ``out``; returns the rows (see the module docstring)."""
    root, out = Path(root), Path(out)
    check_choice("mode", mode, MODES)
    timeout = check_float("timeout", timeout, 1, 24 * 3600, fix="seconds per notebook")
    if not root.is_dir():
        raise CourseError(f"{root} is not a folder: pass the folder that holds the submitted notebooks")
    if out.exists() and not out.is_file():
        raise CourseError(f"--out {out} is not a file: pass a CSV file name, e.g. grades.csv")
    if out.resolve().is_relative_to(root.resolve()):
        raise CourseError(f"--out {out} is inside the submissions folder; write the grades elsewhere")
    paths = sorted(p for p in root.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if not paths:
        raise CourseError(f"{root} holds no .ipynb files")
    rows = []
    for i, path in enumerate(paths, 1):
        log(f"[{i}/{len(paths)}] {path.relative_to(root)} ...")
        rows += grade_one(path, root, mode, timeout)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FIELDS)
        writer.writerows([r.learner, r.notebook, r.exercise, r.status, r.message] for r in rows)
    log(summary(rows))
    return rows


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cgan_course.grade", description=__doc__.split("\n")[0])
    parser.add_argument("submissions", nargs="?", help="folder of submitted notebooks (one subfolder per learner)")
    parser.add_argument("--out", default="grades.csv", help="the CSV to write (default: grades.csv)")
    parser.add_argument("--mode", default="smoke", help="the notebooks' mode: smoke (default), classroom or full")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per notebook (default: 600)")
    parser.add_argument("--run-one", nargs=2, metavar=("NOTEBOOK", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    def body() -> None:
        if args.run_one:
            _execute(Path(args.run_one[0]), Path(args.run_one[1]), args.timeout)
            return
        if not args.submissions:
            raise CourseError("pass the folder of submitted notebooks: python -m cgan_course.grade SUBMISSIONS --out grades.csv")
        grade(args.submissions, args.out, args.mode, args.timeout)

    run_cli(body, parser.prog)


if __name__ == "__main__":
    main()
