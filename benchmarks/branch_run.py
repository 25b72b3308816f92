"""Branch a training run with one factor changed: a single-factor A/B arm from the same start.

    python benchmarks/branch_run.py RUN/checkpoint.pt --out BRANCH --ac-weight 3
    python benchmarks/branch_run.py RUN/checkpoint.pt --out BRANCH --class-input
    python -m cgan_course.train <the run's own options> <the changed option> --out BRANCH --resume

A resume refuses a changed ``--ac-weight`` or model (it would change what the run computes). An
A/B arm wants exactly one such change and nothing else, so this copies the checkpoint into a new
run folder with that change: the weights, both optimisers' moments, the data order and the RNG are
the parent's, so the arms differ in one factor from the branch point on.

- ``--ac-weight W``: the class head's loss weight from here on.
- ``--class-input``: G also gets the class at its input (``ModelConfig.class_input``: an embedding
  concatenated to z). The new input columns of G's first layer start at zero, so the branch starts
  as exactly the parent's function. Adam keeps one step count per tensor, and the grown weight's is
  the parent's (bias correction ~1): zero second moments would make the new columns' first steps
  ~30x too large (1/sqrt(1 - beta2)), so each new column starts with its row's mean second moment
  of the old columns (a step of about the learning rate) and zero first moment. The embedding
  (drawn with seed 0) gets a fresh Adam entry. The model grows itself (``add_class_input``), as a
  new ``class_input`` model does at initialisation.

It never writes into an existing folder, and never touches the parent.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402

from cgan_course.checkpoints import load_checkpoint, model_config_from, save_checkpoint  # noqa: E402
from cgan_course.errors import CourseError, run_cli  # noqa: E402
from cgan_course.models import build_generator  # noqa: E402
from cgan_course.training.resume import check_training_schema  # noqa: E402
from cgan_course.validate import check_float  # noqa: E402


def _add_class_input(saved: dict) -> None:
    """Give G (and its EMA) the class at its input, as the function it was: the model's own
    ``add_class_input`` (zero new columns), then the optimiser's entries to match."""
    old = model_config_from(saved["config"]["model"], "the parent")
    if old.arch != "projection" or old.num_classes == 0 or old.class_input:
        raise CourseError("--class-input needs a conditional projection G that does not have it yet")
    new = dataclasses.replace(old, class_input=True)
    names = [n for n, _ in build_generator(old).named_parameters()]
    for key in ("G", "G_ema"):
        G = build_generator(old)
        G.load_state_dict(saved[key])
        torch.manual_seed(0)  # the same embedding in G and its EMA (drawn without advancing the RNG)
        G.add_class_input(new.embed_dim)
        assert [n for n, _ in G.named_parameters()] == names + ["class_input.weight"]  # appended, nothing moved
        saved[key] = G.state_dict()
    moments = saved["opt_g"]["state"].get(names.index("linear.weight"))
    if not moments:
        raise CourseError("the parent checkpoint has no optimiser state for G's first layer (saved before its first "
                          "step?): train it a step or more first")
    rows = moments["exp_avg"].shape[0]
    moments["exp_avg"] = torch.cat([moments["exp_avg"], moments["exp_avg"].new_zeros(rows, new.embed_dim)], dim=1)
    typical = moments["exp_avg_sq"].mean(dim=1, keepdim=True).expand(rows, new.embed_dim)  # (rows, embed_dim)
    moments["exp_avg_sq"] = torch.cat([moments["exp_avg_sq"], typical], dim=1)
    saved["opt_g"]["param_groups"][0]["params"].append(len(names))  # Adam starts its state on first use
    saved["config"]["model"] = dataclasses.asdict(new)


def branch(parent: str | Path, out: str | Path, ac_weight: float | None = None, class_input: bool = False) -> dict:
    """Write ``out/checkpoint.pt``: ``parent`` with the class head's weight set to ``ac_weight``,
    or with G's class input added."""
    parent, out = Path(parent), Path(out)
    if (ac_weight is None) == (not class_input):
        raise CourseError("change exactly one factor: pass --ac-weight W or --class-input")
    if ac_weight is not None:
        ac_weight = check_float("--ac-weight", ac_weight, 0, 100, lo_open=True, fix="the class head's loss weight, e.g. 3")
    if out.exists():
        raise CourseError(f"--out {out} already exists; a branch starts in a new run folder (pass another --out)")
    saved = load_checkpoint(parent)
    check_training_schema(saved, parent)
    change = {}
    if ac_weight is not None:
        if not saved["config"]["model"].get("class_head"):
            raise CourseError(f"{parent} has no class head (trained without --class-head): there is no weight to change")
        change = {"ac_weight": [saved["config"]["ac_weight"], ac_weight]}
        saved["config"]["ac_weight"] = ac_weight
    else:
        _add_class_input(saved)
        change = {"class_input": [False, True]}
    out.mkdir(parents=True)
    save_checkpoint(out / "checkpoint.pt", saved)
    return {"benchmark": "branch_run", "parent": str(parent), "out": str(out), "step": saved["step"], "change": change}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/branch_run.py", description=__doc__.split("\n")[0])
    parser.add_argument("parent", help="the parent run's checkpoint.pt")
    parser.add_argument("--out", required=True, help="the branch's run folder (must not exist)")
    parser.add_argument("--ac-weight", type=float, help="the class head's weight from here on")
    parser.add_argument("--class-input", action="store_true", help="G also gets the class at its input")
    args = parser.parse_args(argv)

    def body() -> None:
        result = branch(args.parent, args.out, args.ac_weight, args.class_input)
        option = f"--ac-weight {args.ac_weight:g}" if args.ac_weight is not None else "--class-input"
        print(f"branched {args.parent} at step {result['step']} into {args.out} ({option}); continue it with the "
              f"parent's command plus {option} --out {args.out} --resume")
        emit(result, None)

    run_cli(body, parser.prog)


if __name__ == "__main__":
    main()
