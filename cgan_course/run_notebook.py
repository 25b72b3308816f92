"""Run one notebook in a kernel of its own, every cell even after an error, into a file:
the grader's child process (``grade.py`` starts one per submission).

    python -m cgan_course.run_notebook NOTEBOOK OUT --timeout SECONDS

A module of its own so the child imports only nbclient, not the course's registries and PyTorch
(about 1.5 s per submission); the kernel imports what the notebook imports. The kernel runs in a
session of its own (jupyter_client starts it so), which a signal to this process's group does not
reach; on SIGTERM nbclient kills it at once, with its process group (the processes the submission
started included), before this process exits: so the grader stops a child with SIGTERM first.
When the kernel is up this process prints ``kernel: PGID START`` (its process group and start
time) on its stdout: should this process be killed before it could stop the kernel, the grader
kills that group itself. The kernel's own stdout and stderr are /dev/null (what its cells print
reaches this process as messages), so a process the submission forked cannot hold this process's
pipes open, which would keep the grader waiting on a child that is gone.
"""
from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from .errors import CourseError, run_cli


def start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks after boot, /proc/PID/stat's field 22; a zombie
    keeps it), or None if there is no such process or no /proc. With the pid it names one process:
    a pid reused later has another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # fields 3... after "pid (name)"; the name may hold spaces


def execute(path: Path, out: Path, timeout: float) -> None:
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

    def announce(**_) -> None:
        pgid = client.km.provisioner.pgid or client.km.provisioner.pid
        print(f"kernel: {pgid} {start_time(pgid) or '-'}", flush=True)

    client.on_notebook_start = announce
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
    args = parser.parse_args(argv)
    run_cli(lambda: execute(Path(args.notebook), Path(args.out), args.timeout), parser.prog)


if __name__ == "__main__":
    main()
