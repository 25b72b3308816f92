"""Run one notebook in a kernel of its own, every cell even after an error, into a file:
the grader's child process (``grade.py`` starts one per submission).

    python -m cgan_course.run_notebook NOTEBOOK OUT --timeout SECONDS [--kernel-pid FILE]

A module of its own so the child imports only nbclient, not the course's registries and PyTorch
(about 1.5 s per submission); the kernel imports what the notebook imports. The kernel runs in a
session of its own (jupyter_client starts it so), which a signal to this process's group does not
reach; on SIGTERM nbclient kills it at once, with its process group (the processes the submission
started included), before this process exits: so the grader stops a child with SIGTERM first. The
kernel's process group is written to ``--kernel-pid`` for the grader to sweep should this process be
killed before it could; the kernel's own output goes to /dev/null, so no process the submission
leaves behind holds this process's pipes open.
"""
from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from .errors import CourseError, run_cli


def execute(path: Path, out: Path, timeout: float, kernel_pid: Path | None = None) -> None:
    """Run every cell of ``path`` (errors included) and write the result to ``out``; a stop (a cell
    past ``timeout``, a dead kernel) is recorded in the notebook's ``grade_stopped`` metadata."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # noqa: BLE001 - not JSON, not a notebook, a wrong nbformat
        raise CourseError(f"not a readable notebook ({type(err).__name__}: {str(err).splitlines()[0][:160]})") from None
    for cell in nb.cells:  # the verdicts must come from this run, not from outputs saved in the file
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("tags", None)  # no cell skipped by a tag
    # "immediate": a stopped or finished run kills the kernel's group at once; a graceful shutdown
    # waits seconds for a kernel busy in a learner's loop, longer than the grader's grace
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True, shutdown_kernel="immediate",
                            resources={"metadata": {"path": str(path.parent)}})
    if kernel_pid is not None:
        def record(**_) -> None:
            kernel_pid.write_text(str(client.km.provisioner.pgid or client.km.provisioner.pid))
        client.on_notebook_start = record
    stopped = ""
    try:
        client.execute(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except CellTimeoutError:
        stopped = f"a cell ran longer than {timeout:g} s (a loop?)"
    except DeadKernelError:
        stopped = "the kernel died (out of memory, or the code exited the process)"
    nb.metadata["grade_stopped"] = stopped  # what ran before the stop is still graded
    nbformat.write(nb, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cgan_course.run_notebook", description=__doc__.split("\n")[0])
    parser.add_argument("notebook")
    parser.add_argument("out")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per cell (default: 600)")
    parser.add_argument("--kernel-pid", help="file to write the kernel's process group to")
    args = parser.parse_args(argv)
    kernel_pid = Path(args.kernel_pid) if args.kernel_pid else None
    run_cli(lambda: execute(Path(args.notebook), Path(args.out), args.timeout, kernel_pid), parser.prog)


if __name__ == "__main__":
    main()
