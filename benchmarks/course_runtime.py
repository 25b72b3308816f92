"""Course runtime: every notebook in each mode (via the course runner) and the test suite, timed.

    python benchmarks/course_runtime.py                                # smoke + classroom + pytest
    python benchmarks/course_runtime.py --modes smoke --no-tests       # just the smoke pass
    python benchmarks/course_runtime.py --quick                        # one notebook in smoke mode, no tests
    python benchmarks/course_runtime.py --dry-run                      # print what would run

The notebooks run with ``cgan_course.course.run_course`` (what ``python -m cgan_course.course
--mode M --out DIR`` does: papermill, a fresh ``python3`` kernel per notebook, kernel start-up
included in each time) into ``--out-dir/<mode>/``, never over the committed notebooks. The test
suite is ``python -m pytest -q`` in a child process (notebooks included, through nbval, in smoke
mode). Give classroom mode the real data (``--data-root`` or ``$CGAN_COURSE_CIFAR10``), or the
notebooks fall back to the 1,000-image sample and run faster than a classroom would.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, emit, hardware, table  # noqa: E402

from cgan_course.course import MODES, find_notebooks, run_course  # noqa: E402
from cgan_course.data import ENV_VAR  # noqa: E402
from cgan_course.runtime import pick_device  # noqa: E402


def run_tests(pytest_args: list[str]) -> dict:
    """The test suite in a child process: wall time, exit status and pytest's summary line."""
    cmd = [sys.executable, "-m", "pytest", *pytest_args]
    print(f"$ {shlex.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    lines = proc.stdout.strip().splitlines()
    summary = next((ln.strip("= ") for ln in reversed(lines) if re.search(r"\d+ (passed|failed|error)", ln)), "")
    slowest = []
    if "slowest" in proc.stdout:  # --durations=N prints "1.23s call tests/test_x.py::test_y"
        block = proc.stdout.split("slowest", 1)[1].splitlines()[1:]
        slowest = [ln.strip() for ln in block if re.match(r"\s*\d+\.\d+s ", ln)][:10]
    return {"command": shlex.join(cmd), "seconds": seconds, "returncode": proc.returncode,
            "summary": summary, "slowest": slowest}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--modes", default="smoke,classroom", help=f"comma-separated subset of {','.join(MODES)}")
    p.add_argument("--only", help="comma-separated notebook numbers, e.g. 02,05 (default: all)")
    p.add_argument("--out-dir", default=str(REPO_ROOT / "runs" / "course-runtime"),
                   help="executed notebooks go to <out-dir>/<mode>/ (default runs/course-runtime, git-ignored)")
    p.add_argument("--data-root", default=None, help=f"sets ${ENV_VAR} for the notebooks (CIFAR-10 folder or .tar.gz)")
    p.add_argument("--no-tests", action="store_true", help="do not run the test suite")
    p.add_argument("--tests-only", action="store_true", help="only the test suite")
    p.add_argument("--pytest-args", default="-q -p no:cacheprovider --durations=10",
                   help="arguments for `python -m pytest` (default: %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="list the notebooks and commands, run nothing")
    p.add_argument("--quick", action="store_true", help="plumbing check: smoke mode, the first notebook, no tests")
    p.add_argument("--out", help="also save the JSON result to this file")
    args = p.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    only = args.only.split(",") if args.only else None
    if args.quick:
        modes, args.no_tests = ["smoke"], True
        only = only or [find_notebooks()[0].name[:2]]
    if set(modes) - set(MODES):
        raise SystemExit(f"error: unknown modes {sorted(set(modes) - set(MODES))}; choose from {', '.join(MODES)}")
    if args.tests_only:
        modes = []
    if args.data_root:
        os.environ[ENV_VAR] = str(Path(args.data_root).expanduser().resolve())
    try:
        notebooks = find_notebooks(only=only)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    pytest_args = shlex.split(args.pytest_args)
    data = os.environ.get(ENV_VAR) or "not set: notebooks use data/ or the 1,000-image sample"
    print(f"modes {', '.join(modes) or 'none'}; notebooks {', '.join(n.name[:2] for n in notebooks)}; "
          f"tests {'no' if args.no_tests else 'yes'}; ${ENV_VAR}: {data}")
    if args.dry_run:
        for m in modes:
            print(f"would run: python -m cgan_course.course --mode {m} --out {Path(args.out_dir) / m}"
                  + (f" --only {','.join(only)}" if only else ""))
        if not args.no_tests:
            print(f"would run: {shlex.join([sys.executable, '-m', 'pytest', *pytest_args])}")
        return

    per_mode, totals = {}, {}
    for m in modes:
        print(f"\n== {m} ==", flush=True)
        t0 = time.perf_counter()
        results = run_course(m, out=Path(args.out_dir) / m, only=only)
        totals[m] = time.perf_counter() - t0
        per_mode[m] = {r.notebook: {"seconds": r.seconds, "ok": r.ok, "error": r.error} for r in results}
    tests = None if args.no_tests else run_tests(pytest_args)

    if per_mode:
        names = sorted({n for res in per_mode.values() for n in res})
        rows = [[n] + [f"{per_mode[m][n]['seconds']:.1f}" + ("" if per_mode[m][n]["ok"] else " FAILED")
                       if n in per_mode[m] else "-" for m in modes] for n in names]
        rows.append(["total (runner wall time)"] + [f"{totals[m]:.1f}" for m in modes])
        print()
        print(table(rows, ["notebook"] + [f"{m} s" for m in modes]))
        for m in modes:
            for n, r in per_mode[m].items():
                if not r["ok"]:
                    print(f"  {m} {n}: {r['error']}")
    if tests:
        print(f"\npytest: {tests['seconds']:.1f} s, exit {tests['returncode']}: {tests['summary']}")
        for ln in tests["slowest"]:
            print(f"  {ln}")
    emit({"benchmark": "course_runtime", "quick": args.quick, "hardware": hardware(pick_device("auto")),
          "data": data, "modes": modes, "notebooks": per_mode, "mode_totals_s": totals, "tests": tests}, args.out)
    if any(not r["ok"] for res in per_mode.values() for r in res.values()) or (tests and tests["returncode"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
