"""Issue 22: the grader. A complete submission passes every exercise it answers, an untouched one
leaves every build unfinished, and each broken submission is reported on its row while the run
goes on."""
import contextlib
import csv
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from cgan_course import grade
from cgan_course.paths import REPO_ROOT

CH03 = REPO_ROOT / "notebooks" / "03_conditional_architectures.ipynb"


def _with_solutions(nb):
    """Chapter 03 as a learner who did everything: the build cell holds working code, and an
    answer cell calls one of the end-of-chapter checks (with a wrong answer, to see 'failed')."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))  # a copy
    cell = next(c for c in nb.cells if c.cell_type == "code" and 'build("03.A"' in c.source)
    solution = (REPO_ROOT / "solutions" / "ex03.py").read_text()
    start = solution.index("def build_A():")
    code = solution[start:solution.index('\n\nif __name__ == "__main__":')]
    cell.source = "import torch.nn as nn\n" + code + ('\n\nConditionalBatchNorm2d, = build("03.A", *build_A())'
                                                     '\nprojection_logit, = build("03.B", *build_B())')
    nb.cells.append(nbformat.v4.new_code_cell("from cgan_course import exercises\n\n"
                                              "exercises.check_ema_half_life(steps=100)  # wrong: 693 is right"))
    return nb


def _build_section(nb):
    """Chapter 03 up to the end of the section with its build exercise: a real chapter's build cells
    and what they print; the rest (the package's own code, which nbval runs, and the chapter's own
    exercise list, whose checks the test calls itself) would double the time of each submission."""
    last = max(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and 'build("' in c.source)
    nb.cells = nb.cells[:next(i for i, c in enumerate(nb.cells)
                              if i > last and c.cell_type == "markdown" and c.source.startswith("## "))]
    return nb


def _tiny(folder, name, source):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / name)


@pytest.mark.slow
def test_grader_reports_every_learner_and_goes_on(tmp_path, capsys):
    subs = tmp_path / "submissions"
    original = _build_section(nbformat.read(CH03, as_version=4))
    (subs / "ada").mkdir(parents=True)
    nbformat.write(_with_solutions(original), subs / "ada" / CH03.name)
    (subs / "bob").mkdir()
    nbformat.write(original, subs / "bob" / CH03.name)  # untouched: the stubs
    _tiny(subs / "dan", "03_raises.ipynb", 'raise RuntimeError("boom")')
    _tiny(subs / "eve", "03_syntax.ipynb", "def f(:\n    pass")
    _tiny(subs / "fay", "03_flood.ipynb", 'print("x" * 5_000_000)')
    (subs / "gus").mkdir()
    (subs / "gus" / "03_broken.ipynb").write_text("this is not a notebook")
    _tiny(subs / "hal", "chapter3.ipynb", "1 + 1")
    out = tmp_path / "grades.csv"
    rows = grade.grade(subs, out, timeout=300, log=print, jobs=2)  # two at a time: the rows keep the order
    table = {(r["learner"], r["exercise"]): r for r in csv.DictReader(out.open())}
    assert len(rows) == len(table)
    learners = [r.learner for r in rows]
    assert learners == sorted(learners) and len(set(learners)) == 7, learners

    assert table[("ada", "03.A")]["status"] == "passed" and table[("ada", "03.B")]["status"] == "passed"
    assert table[("ada", "03.5")]["status"] == "failed" and table[("ada", "03.5")]["message"]
    assert table[("ada", "03.1")]["status"] == "not attempted"
    assert table[("bob", "03.A")]["status"] == table[("bob", "03.B")]["status"] == "not finished"
    assert {table[("bob", k)]["status"] for k in grade.exercises_of("03") if k[3].isdigit()} == {"not attempted"}
    assert table[("dan", "03.A")]["status"] == "not attempted"  # it ran; the cell's error did not stop the grading
    assert table[("eve", "03.A")]["status"] == "not attempted"
    assert table[("fay", "03.A")]["status"] == "not attempted"
    assert "not a readable notebook" in table[("gus", "03.A")]["message"]
    assert "cannot tell the chapter" in table[("hal", "*")]["message"]
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("learner"))
    assert header.split() == ["learner", "notebook", "passed", "failed", "open", "error"]
    assert any(line.startswith("ada") and line.split()[2:4] == ["2", "1"] for line in printed.splitlines())


def test_a_submission_that_loops_is_stopped_and_reported(tmp_path):
    subs = tmp_path / "submissions"
    _tiny(subs / "cat", "03_loops.ipynb", "while True:\n    pass")
    rows = grade.grade(subs, tmp_path / "grades.csv", timeout=2, log=lambda *_: None)
    assert {r.status for r in rows} == {"error"} and "a loop?" in rows[0].message
    assert len(rows) == len(grade.exercises_of("03"))

def test_grader_refuses_bad_arguments(tmp_path, cli_error):
    cli_error(grade.main, [str(tmp_path / "nope")], r"nope is not a folder")
    cli_error(grade.main, [str(tmp_path), "--out", str(tmp_path / "g.csv")], r"--out .* is inside the submissions folder")
    cli_error(grade.main, [str(tmp_path), "--out", str(tmp_path.parent / "g.csv"), "--timeout", "inf"],
              r"timeout must be a finite number")
    cli_error(grade.main, [str(tmp_path), "--out", str(tmp_path.parent / "g.csv")], r"holds no .ipynb files")
    cli_error(grade.main, [str(tmp_path), "--out", str(tmp_path.parent / "g.csv"), "--jobs", "0"],
              r"jobs must be an integer in \[1, 64\]")


def test_a_forged_verdict_counts_for_nothing(tmp_path):
    """Saved outputs are cleared before the run, and a verdict counts only from a cell that calls
    the check: a printed 'Exercise 03.A: right' elsewhere, or a cell that sets the solutions switch,
    does not pass the exercise."""
    subs = tmp_path / "submissions" / "mal"
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("", outputs=[nbformat.v4.new_output("stream", text="Exercise 03.A: right\n")]),
        nbformat.v4.new_code_cell('print("Exercise 03.B: right")'),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    subs.mkdir(parents=True)
    nbformat.write(nb, subs / "03_forged.ipynb")
    rows = grade.grade(tmp_path / "submissions", tmp_path / "grades.csv", timeout=60, log=lambda *_: None)
    status = {r.exercise: r.status for r in rows}
    assert status["03.A"] == status["03.B"] == "not attempted"


def test_messages_that_look_like_formulas_are_quoted():
    assert grade._cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and grade._cell("ada") == "ada"


def test_ctrl_c_stops_every_running_submission(tmp_path):
    """Each submission runs in its own session (so a timeout kills it whole) and its kernel in
    another, which Ctrl-C at the terminal reaches neither: the grader stops them itself, the
    processes a submission started included, and leaves no half-written table."""
    subs, marks = tmp_path / "submissions", tmp_path / "marks"
    marks.mkdir()
    for learner in ("ann", "ben"):
        _tiny(subs / learner, "03_loops.ipynb", _looping(marks / learner))
    out = tmp_path / "grades.csv"
    out.write_text("the previous table\n")
    said = (tmp_path / "said.txt").open("w")
    # the default SIGINT handler, even if this test runs where SIGINT is ignored (a background job),
    # which the grader would inherit (as any program does)
    code = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "runpy.run_module('cgan_course.grade', run_name='__main__', alter_sys=True)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(subs), "--out", str(out), "--jobs", "2", "--timeout", "300"],
                            stdout=said, stderr=subprocess.STDOUT)
    pids = []
    try:
        deadline = time.monotonic() + 120
        while len(list(marks.glob("[ab]??"))) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        pids = [int(pid) for mark in marks.glob("[ab]??") for pid in mark.read_text().split()]
        assert len(pids) == 6, "both submissions should be running, each with processes of its own"
        # Ctrl-C, handed by the OS to the grader's other threads rather than its main thread (it may
        # be; a grader waiting on them without a timeout then never ran Python's handler, and hung),
        # once per thread: Ctrl-C pressed again while the grader stops must not cut the stopping short
        threads = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid]
        libc = ctypes.CDLL(None, use_errno=True)
        if hasattr(libc, "tgkill"):  # glibc 2.30 and later
            assert threads and all(libc.tgkill(proc.pid, t, signal.SIGINT) == 0 for t in threads)
        else:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # where the grader is stuck, for the failure's message
            proc.send_signal(signal.SIGUSR1)
            time.sleep(2)
            raise AssertionError("the grader did not stop:\n" + (tmp_path / "said.txt").read_text()[-6000:]) from None
        assert proc.returncode != 0 and out.read_text() == "the previous table\n"
        deadline = time.monotonic() + 10
        while any(map(_alive, pids)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(map(_alive, pids)), "a submission's kernel, or a process it started, outlived the grader"
    finally:
        proc.kill()
        said.close()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_child_killed_before_it_stops_its_kernel_leaves_nothing_behind(tmp_path):
    """The grace the grader gives a child can run out (a loaded machine): the kernel's group, which
    the killed child could not stop, is killed by the grader, and nothing it left holds the grader up."""
    subs, mark = tmp_path / "submissions", tmp_path / "mark"
    _tiny(subs / "cat", "03_loops.ipynb", _looping(mark))
    children, rows = grade._Children(), []
    worker = threading.Thread(target=lambda: rows.extend(
        grade.grade_one(subs / "cat" / "03_loops.ipynb", subs, "smoke", 300, children)), daemon=True)
    worker.start()
    pids = []
    try:
        deadline = time.monotonic() + 120
        while not mark.exists() and time.monotonic() < deadline and worker.is_alive():
            time.sleep(0.2)
        pids = [int(pid) for pid in mark.read_text().split()]
        children.stop_all(grace=0)  # SIGKILL right after SIGTERM: the child has no time to stop its kernel
        worker.join(timeout=30)
        assert not worker.is_alive(), "the grader waited on a process the submission left behind"
        assert rows and {r.status for r in rows} == {"error"} and "the grader was stopped" in rows[0].message
        deadline = time.monotonic() + 10
        while any(map(_alive, pids)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(map(_alive, pids)), "the kernel, or a process it started, outlived its killed child"
    finally:
        children.stop_all(grace=0)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _looping(mark: Path) -> str:
    """A submission that starts two processes, records its kernel's pid and theirs at ``mark``
    (atomically), then loops: one a new program, one a fork of the kernel, which keeps the kernel's
    open files (as a DataLoader's or multiprocessing's workers do), its stdout included."""
    return ("import os, subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
            "fork = os.fork()\n"
            "if fork == 0:\n    time.sleep(300)\n    os._exit(0)\n"
            f"open(r'{mark}.tmp', 'w').write(f'{{os.getpid()}} {{child.pid}} {{fork}}')\n"
            f"os.replace(r'{mark}.tmp', r'{mark}')\n"
            "while True:\n    time.sleep(0.1)")


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to read it counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
