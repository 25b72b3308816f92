"""Branch a training run with the class head's weight changed: a single-factor A/B arm.

    python benchmarks/branch_run.py RUN/checkpoint.pt --out BRANCH --ac-weight 3
    python -m cgan_course.train <the run's own options> --ac-weight 3 --out BRANCH --resume

A resume refuses a changed ``--ac-weight`` (it would change what the run computes). An A/B arm
wants exactly that change and nothing else, so this copies the checkpoint into a new run folder
with only the recorded ``ac_weight`` changed: the weights, both optimisers' moments, the data order
and the RNG are the parent's, so the two arms differ in one factor from the branch point on. It
never writes into an existing folder, and never touches the parent.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402

from cgan_course.checkpoints import load_checkpoint, save_checkpoint  # noqa: E402
from cgan_course.errors import CourseError, run_cli  # noqa: E402
from cgan_course.training.resume import check_training_schema  # noqa: E402
from cgan_course.validate import check_float  # noqa: E402


def branch(parent: str | Path, out: str | Path, ac_weight: float) -> dict:
    """Write ``out/checkpoint.pt``: ``parent`` with the class head's weight set to ``ac_weight``."""
    parent, out = Path(parent), Path(out)
    ac_weight = check_float("--ac-weight", ac_weight, 0, 100, lo_open=True, fix="the class head's loss weight, e.g. 3")
    if out.exists():
        raise CourseError(f"--out {out} already exists; a branch starts in a new run folder (pass another --out)")
    saved = load_checkpoint(parent)
    check_training_schema(saved, parent)
    if not saved["config"]["model"].get("class_head"):
        raise CourseError(f"{parent} has no class head (trained without --class-head): there is no weight to change")
    old = saved["config"]["ac_weight"]
    saved["config"]["ac_weight"] = ac_weight
    out.mkdir(parents=True)
    save_checkpoint(out / "checkpoint.pt", saved)
    return {"benchmark": "branch_run", "parent": str(parent), "out": str(out), "step": saved["step"],
            "ac_weight": {"parent": old, "branch": ac_weight}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/branch_run.py", description=__doc__.split("\n")[0])
    parser.add_argument("parent", help="the parent run's checkpoint.pt")
    parser.add_argument("--out", required=True, help="the branch's run folder (must not exist)")
    parser.add_argument("--ac-weight", type=float, required=True, help="the class head's weight from here on")
    args = parser.parse_args(argv)

    def body() -> None:
        result = branch(args.parent, args.out, args.ac_weight)
        print(f"branched {args.parent} at step {result['step']} into {args.out} with ac_weight "
              f"{result['ac_weight']['parent']:g} -> {result['ac_weight']['branch']:g}; continue it with the parent's "
              f"command plus --ac-weight {result['ac_weight']['branch']:g} --out {args.out} --resume")
        emit(result, None)

    run_cli(body, parser.prog)


if __name__ == "__main__":
    main()
