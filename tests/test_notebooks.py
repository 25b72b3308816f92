"""The notebooks: each follows the course skeleton and is committed clean; plus the whole-course
runner (cgan_course.course) on tiny generated notebooks.

The course notebooks themselves are executed once per pytest run, by nbval (``pytest
notebooks/...``, configured in pyproject.toml, in smoke mode via conftest.py). papermill's
parameter injection, which the course runner uses, is covered here on the tiny notebooks.
Select one notebook with ``-k 02``.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from cgan_course import course

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
MAX_NOTEBOOK_BYTES = 600_000
MAX_IMAGE_BYTES = 150_000
by_notebook = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


# ----------------------------------------------------------------------------------------------
# Every notebook follows the skeleton


@by_notebook
def test_kernel_is_python3(path):
    kernelspec = _read(path).metadata.get("kernelspec", {})
    assert kernelspec.get("name") == "python3", f"{path.name}: kernelspec {kernelspec}"
    assert kernelspec.get("language", "python") == "python"


@by_notebook
def test_title_and_what_you_will_learn(path):
    first = _read(path).cells[0]
    assert first.cell_type == "markdown", f"{path.name}: the first cell must be markdown"
    assert first.source.lstrip().startswith("# "), f"{path.name}: the first cell must start with a '# ' title"
    assert "What you will learn" in first.source, f"{path.name}: the first cell needs 'What you will learn'"


@by_notebook
def test_one_parameters_cell_reading_the_mode(path):
    cells = [c for c in _read(path).cells if "parameters" in _tags(c)]
    assert len(cells) == 1, f"{path.name}: {len(cells)} cells tagged 'parameters', expected exactly one"
    assert cells[0].cell_type == "code" and "CGAN_COURSE_MODE" in cells[0].source
    assert "MODE" in cells[0].source.replace("CGAN_COURSE_MODE", "")


@by_notebook
def test_ends_with_exercises(path):
    markdown = [c for c in _read(path).cells if c.cell_type == "markdown"]
    assert "Exercises" in markdown[-1].source, f"{path.name}: the last markdown cell must hold the Exercises"


@by_notebook
def test_the_chapter_knows_its_own_number(path):
    """Title, exercise list and solutions file name the chapter's file number (a renumbering that
    misses one would list another chapter's exercises)."""
    nb, number = _read(path), path.name[:2]
    assert nb.cells[0].source.startswith(f"# {number} "), f"{path.name}: the title must start with '# {number} '"
    assert f'exercises.show("{number}")' in nb.cells[-1].source, f"{path.name}: the last cell must be exercises.show({number!r})"
    solutions = {m for c in nb.cells if c.cell_type == "markdown" for m in re.findall(r"solutions/ex(\d\d)\.py", c.source)}
    assert solutions <= {number}, f"{path.name}: names solutions of chapter(s) {sorted(solutions - {number})}"


@by_notebook
def test_committed_outputs_are_clean(path):
    """Committed as the runner writes them: executed, no errors, no injected MODE cell (it would
    override CGAN_COURSE_MODE, including pytest's smoke mode)."""
    nb = _read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [c for c in nb.cells if "injected-parameters" in _tags(c)], \
        f"{path.name}: remove papermill's injected-parameters cell (run python -m cgan_course.course --inplace)"
    assert all(c.execution_count is not None for c in code if c.source.strip()), \
        f"{path.name}: commit it executed (python -m cgan_course.course --mode classroom --inplace --only {path.name[:2]})"
    errors = [o.get("ename") for c in code for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: committed with errors {errors}"


@by_notebook
def test_size_limits(path):
    size = path.stat().st_size
    assert size < MAX_NOTEBOOK_BYTES, f"{path.name} is {size / 1e6:.1f} MB, limit {MAX_NOTEBOOK_BYTES / 1e6:.1f} MB: smaller figures or fewer outputs"
    for i, cell in enumerate(_read(path).cells):
        for output in cell.get("outputs", []):
            for mime, payload in output.get("data", {}).items():
                if mime.startswith("image/") and mime != "image/svg+xml":
                    nbytes = len(base64.b64decode("".join(payload)))
                    assert nbytes < MAX_IMAGE_BYTES, \
                        f"{path.name} cell {i}: {mime} of {nbytes / 1e3:.0f} KB (limit {MAX_IMAGE_BYTES / 1e3:.0f} KB): lower figsize/dpi, or JPEG figures"


def test_notebooks_exist_and_are_numbered_uniquely():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOKS_DIR}"
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert len(numbers) == len(set(numbers)), f"two notebooks share a number: {numbers}"
    assert [p.name for p in course.find_notebooks()] == [p.name for p in NOTEBOOKS]


# ----------------------------------------------------------------------------------------------
# The whole-course runner, on generated notebooks


def _tiny_notebook(path: Path, body: str) -> None:
    """A notebook in the course skeleton whose last code cell is ``body``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('import os\nMODE = os.environ.get("CGAN_COURSE_MODE", "classroom")')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Tiny\n\n## What you will learn\n- nothing"), params,
                nbformat.v4.new_markdown_cell("Run it."), nbformat.v4.new_code_cell(body),
                nbformat.v4.new_markdown_cell("## Exercises\n1. None.")]
    nbformat.write(nb, path)


@pytest.fixture
def tiny_course(tmp_path) -> Path:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _tiny_notebook(folder / "01_ok.ipynb", 'import pathlib\nprint(MODE, pathlib.Path.cwd().name)\nMODE * 2')
    _tiny_notebook(folder / "02_fail.ipynb", 'raise ValueError("a long message\\nwhose last line is: boom")')
    (folder / "scratch.ipynb").write_text("not a course notebook, never run")
    return folder


@pytest.mark.slow
def test_course_runner_table_and_exit_status(tiny_course, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        course.main(["--mode", "smoke", "--notebooks", str(tiny_course), "--out", str(tmp_path / "out")])
    assert exit_.value.code == 1  # one notebook failed
    table = capsys.readouterr().out.split("\n\n")[-1]
    lines = table.splitlines()
    assert lines[0].split() == ["notebook", "status", "seconds", "error"]
    assert lines[2].split()[:2] == ["01_ok.ipynb", "ok"]
    assert lines[3].split()[:2] == ["02_fail.ipynb", "FAILED"]  # listed after it ran
    assert lines[3].endswith("ValueError: whose last line is: boom")
    assert lines[-1].startswith("total") and "1 ok, 1 failed" in lines[-1]
    # both executed copies are written; the committed ones are untouched
    ok = _read(tmp_path / "out" / "01_ok.ipynb")
    result = ok.cells[-2]
    assert result.outputs[0]["text"] == "smoke notebooks\n"  # MODE injected, cwd = notebooks dir
    assert result.outputs[1]["data"]["text/plain"] == "'smokesmoke'"
    assert "injected-parameters" in _tags(ok.cells[2])  # kept in copies: it records the run
    assert set(ok.metadata["papermill"]) == {"parameters"}  # no paths, no timestamps
    assert all("papermill" not in c.metadata and "execution" not in c.metadata for c in ok.cells)
    assert (tmp_path / "out" / "02_fail.ipynb").is_file()
    assert _read(tiny_course / "01_ok.ipynb").cells[3].outputs == []


@pytest.mark.slow
def test_course_runner_inplace(tiny_course):
    failing = (tiny_course / "02_fail.ipynb").read_bytes()
    (tiny_course / "01_ok.ipynb").chmod(0o640)
    results = course.run_course("classroom", inplace=True, notebooks_dir=tiny_course, log=lambda *_: None)
    assert [(r.notebook, r.ok) for r in results] == [("01_ok.ipynb", True), ("02_fail.ipynb", False)]
    assert results[1].error == "ValueError: whose last line is: boom" and results[1].output is None
    nb = _read(tiny_course / "01_ok.ipynb")
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "markdown", "code", "markdown"]  # no injected cell
    assert [c.execution_count for c in nb.cells if c.cell_type == "code"] == [1, 2]
    assert nb.cells[3].outputs[0]["text"] == "classroom notebooks\n"
    assert "papermill" not in nb.metadata
    assert (tiny_course / "02_fail.ipynb").read_bytes() == failing  # a failed run never overwrites
    assert (tiny_course / "01_ok.ipynb").stat().st_mode & 0o777 == 0o640  # permissions kept
    assert sorted(p.name for p in tiny_course.iterdir()) == ["01_ok.ipynb", "02_fail.ipynb", "scratch.ipynb"]


def test_course_runner_selection_and_bad_arguments(tiny_course, cli_error):
    assert [p.name for p in course.find_notebooks(tiny_course)] == ["01_ok.ipynb", "02_fail.ipynb"]
    assert [p.name for p in course.find_notebooks(tiny_course, only=["2"])] == ["02_fail.ipynb"]
    with pytest.raises(ValueError, match=r"no notebook numbered \[7\].*available: 01_ok.ipynb, 02_fail.ipynb"):
        course.find_notebooks(tiny_course, only=["07"])
    with pytest.raises(ValueError, match="mode must be one of smoke, classroom, full"):
        course.run_course("fast", notebooks_dir=tiny_course)
    with pytest.raises(ValueError, match="either out .* or inplace"):
        course.run_course("smoke", out="x", inplace=True, notebooks_dir=tiny_course)
    cli_error(course.main, ["--only", "09", "--notebooks", str(tiny_course)], "error: no notebook numbered")
    cli_error(course.main, ["--only", "abc", "--notebooks", str(tiny_course)],
              r"error: --only 'abc' is not a notebook number: pass comma-separated numbers such as 02,05 "
              r"\(available: 01_ok.ipynb, 02_fail.ipynb\)$")
    for empty in (",", " , ", ""):
        cli_error(course.main, ["--only", empty, "--notebooks", str(tiny_course)],
                  r"error: --only names no notebook: pass comma-separated numbers such as 02,05 \(available: ")
    assert [p.name for p in course.find_notebooks(tiny_course, only=["01_ok.ipynb", " 2 "])] == \
        ["01_ok.ipynb", "02_fail.ipynb"]
    for bad in ("-3", "inf", "nan", "1e12"):  # inf used to fail every notebook with OverflowError
        cli_error(course.main, ["--timeout", bad, "--notebooks", str(tiny_course)],
                  r"error: timeout must be a finite number in \[0, 604800\], got .*: seconds per notebook, 0 for no limit")
    out_file = tiny_course.parent / "a-file"
    out_file.write_text("")
    cli_error(course.main, ["--out", str(out_file), "--notebooks", str(tiny_course)],
              r"error: --out .*a-file is a file, not a folder")


def _sleepy_course(folder: Path, marker: Path) -> None:
    """01 prints, 02 touches ``marker`` and sleeps a minute (a hanging cell), 03 prints."""
    folder.mkdir()
    _tiny_notebook(folder / "01_ok.ipynb", "print(1)")
    _tiny_notebook(folder / "02_hang.ipynb", f"import pathlib, time\npathlib.Path(r'{marker}').touch()\ntime.sleep(60)")
    _tiny_notebook(folder / "03_ok.ipynb", "print(3)")


@pytest.mark.slow
def test_course_runner_timeout_fails_the_notebook_and_runs_the_rest(tmp_path):
    _sleepy_course(tmp_path / "notebooks", tmp_path / "started")
    start = time.perf_counter()
    results = course.run_course("smoke", out=tmp_path / "out", notebooks_dir=tmp_path / "notebooks",
                                only=["2", "3"], timeout=4, log=lambda *_: None)
    assert time.perf_counter() - start < 40  # not the cell's 60 s
    assert [(r.notebook, r.ok) for r in results] == [("02_hang.ipynb", False), ("03_ok.ipynb", True)]
    assert results[0].error == "timed out after 4 s (raise --timeout, or 0 for no limit)"
    assert 4 <= results[0].seconds < 20
    assert course.TIMEOUTS["smoke"] > 0  # the CLI's default is a limit too


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_course_runner_stopped_by_a_signal_prints_the_table_and_leaves_no_scratch_file(tmp_path, signum):
    """Ctrl-C or SIGTERM while an --inplace run executes notebook 02: the table of what ran, exit
    128 + signal, no traceback from the runner, no hidden .02_hang-*.part.json, 02 untouched."""
    folder, marker = tmp_path / "notebooks", tmp_path / "started"
    _sleepy_course(folder, marker)
    hang_sha = hashlib.sha256((folder / "02_hang.ipynb").read_bytes()).hexdigest()
    # the default SIGINT handler, even if this test runs where SIGINT is ignored (a background job)
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from cgan_course.course import main; main(sys.argv[1:])")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code, "--inplace", "--notebooks", str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), "notebook 02 never started"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signum, err
    lines = out.split("\n\n")[-1].splitlines()
    assert lines[2].split()[:2] == ["01_ok.ipynb", "ok"]
    how = "interrupted (Ctrl-C)" if signum == signal.SIGINT else "terminated (SIGTERM)"
    assert lines[3].split()[:2] == ["02_hang.ipynb", "FAILED"] and lines[3].endswith(how)
    assert lines[5].startswith("total") and "1 ok, 1 failed" in lines[5]
    assert err.strip().splitlines()[-1] == (f"python -m cgan_course.course: stopped by {signal.Signals(signum).name}: "
                                            "the table lists what ran; no other notebook was started")
    assert "KeyboardInterrupt" not in err and "course.py" not in err  # (the kernel may log on its own)
    assert sorted(p.name for p in folder.iterdir()) == ["01_ok.ipynb", "02_hang.ipynb", "03_ok.ipynb"]
    assert hashlib.sha256((folder / "02_hang.ipynb").read_bytes()).hexdigest() == hang_sha
    assert _read(folder / "03_ok.ipynb").cells[-2].outputs == []  # never started


def test_format_table():
    results = [course.NotebookResult("01_a.ipynb", True, 1.5),
               course.NotebookResult("02_b.ipynb", False, 2.0, "KeyError: 'x'" + "y" * 200)]
    table = course.format_table(results, width=40)
    assert "01_a.ipynb  ok" in table and "02_b.ipynb  FAILED" in table
    assert max(len(line) for line in table.splitlines()) < 100  # long errors are cut
    assert table.splitlines()[-1].split() == ["total", "1", "ok,", "1", "failed", "3.5", "s"]


def test_course_runner_refuses_a_folder_it_cannot_write_before_running_anything(tiny_course, cli_error, monkeypatch):
    """A read-only notebooks folder with --inplace used to fail notebook by notebook, with no status
    table. Root may write anywhere, so the write failure is simulated where the runner probes."""
    import tempfile

    real = tempfile.TemporaryFile

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == tiny_course.resolve():
            raise PermissionError(13, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(course.tempfile, "TemporaryFile", read_only)
    cli_error(course.main, ["--inplace", "--notebooks", str(tiny_course)],
              r"error: the notebooks folder \(--inplace\) .* is not writable \(Permission denied\): pass a folder you "
              r"can write to")
