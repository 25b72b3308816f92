"""Why does the projection cGAN learn its class slowly? One factor at a time, at equal steps.

    python benchmarks/conditioning_ablation.py --variant baseline --steps 1000 --data-root $CGAN_COURSE_CIFAR10
    python benchmarks/conditioning_ablation.py --variant out_cbn --steps 1000 --data-root ...
    python benchmarks/conditioning_ablation.py --report --out benchmarks/results/conditioning_ablation.json

Every variant is one ``train()`` run of the same base recipe (projection cGAN, width 32, Adam
(2e-4, 0.0, 0.9), batch 64, hinge, EMA 0.999, fp32, seed 0 or ``--seed``) with the fields in
``VARIANTS`` changed. After ``--steps`` steps its EMA generator (BatchNorm recalibrated, as the
export does) is scored by the course classifier: label fidelity on ``--samples`` class-balanced
samples (sampling seed 0).

Two variants can run at once on a 2-core machine with ``--threads 1`` each (pin them with
``taskset -c 0`` / ``taskset -c 1``); each writes ``<runs-dir>/<variant>/result.json``, and
``--report`` gathers them into one table and JSON.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, hardware, table  # noqa: E402

from cgan_course import metrics  # noqa: E402
from cgan_course.checkpoints import load_checkpoint, with_legacy_fields  # noqa: E402
from cgan_course.data import load_cifar10  # noqa: E402
from cgan_course.training.recipes import recipe  # noqa: E402
from cgan_course.train import TrainConfig, load_generator_from_checkpoint, train  # noqa: E402
from cgan_course.sampling import recalibrate_batchnorm  # noqa: E402

# the pretrained recipe as it stood before the bisection (xavier init, no class-conditional last BN)
BASE = recipe("projection", model={"out_cbn": False, "g_init": "xavier"}, precision="fp32", fake_labels="uniform",
              reuse_fakes=False, seed=0)

# the fields that decide the training math; a --score-only checkpoint must match them
RECIPE_FIELDS = ("batch_size", "d_steps", "lr_g", "lr_d", "beta1", "beta2", "loss", "ema_decay", "ema_start",
                 "fake_labels", "reuse_fakes", "diffaug", "hflip", "seed", "precision")

# name -> (TrainConfig fields, ModelConfig fields) changed from BASE
VARIANTS: dict[str, tuple[dict, dict]] = {
    "baseline": ({}, {}),
    "out_cbn": ({}, {"out_cbn": True}),  # the last BatchNorm class-conditional too
    "real_labels": ({"fake_labels": "real"}, {}),  # fakes take the real batch's labels
    "real_labels_reuse": ({"fake_labels": "real", "reuse_fakes": True}, {}),  # ... and the G step reuses them
    "g_init_pytorch": ({}, {"g_init": "pytorch"}),  # G keeps PyTorch's default initialisation
    "g_init_pytorch_out_cbn": ({}, {"g_init": "pytorch", "out_cbn": True}),  # the yardstick's G
}


def config(variant: str, steps: int, threads: int, run_dir: Path, data_root: str | None, source: str,
           seed: int = 0) -> TrainConfig:
    train_kw, model_kw = VARIANTS[variant]
    return dataclasses.replace(BASE, model=dataclasses.replace(BASE.model, **model_kw), steps=steps, seed=seed,
                               threads=threads, out=str(run_dir), data_root=data_root, data_source=source,
                               log_every=100, sample_every=steps, ckpt_every=500, progress=False, **train_kw)


def run(args: argparse.Namespace) -> None:
    run_dir = Path(args.runs_dir) / args.variant
    if (run_dir / "checkpoint.pt").exists() and not (args.resume or args.score_only):
        raise SystemExit(f"error: {run_dir} already holds a run; pass --resume to continue it or choose --runs-dir")
    cfg = dataclasses.replace(config(args.variant, args.steps, args.threads, run_dir, args.data_root, args.source,
                                     args.seed), resume=args.resume)
    torch.set_num_threads(args.threads)
    if not args.score_only:
        train(cfg, load_cifar10(args.data_root, train=True, source=args.source))
    ckpt = run_dir / "checkpoint.pt"
    state = load_checkpoint(ckpt)
    # a config saved before fake_labels / reuse_fakes existed trained the way their defaults do
    saved, wanted = {"fake_labels": "uniform", "reuse_fakes": False, **state["config"]}, cfg.to_dict()
    differ = [k for k in RECIPE_FIELDS if saved.get(k) != wanted[k]]
    if with_legacy_fields(saved["model"]) != wanted["model"] or differ:  # e.g. a baseline run made with the CLI
        raise SystemExit(f"error: {ckpt} was not trained as variant {args.variant!r} (differs in: model or {differ})")
    G = recalibrate_batchnorm(load_generator_from_checkpoint(ckpt)).eval()
    score = metrics.label_fidelity(G, metrics.ClassifierFeatures(), num_samples=args.samples)
    row = {"variant": args.variant, "changed": VARIANTS[args.variant], "seed": args.seed, "steps": state["step"],
           "label_fidelity": score.value, "samples": score.num_samples, "per_class": score.details["per_class"],
           "minutes": round(state["history"][-1]["time_s"] / 60, 1), "threads": args.threads,
           "hardware": hardware()}
    (run_dir / "result.json").write_text(json.dumps(row, indent=2) + "\n")
    print(f"{args.variant}: label fidelity {score.value:.3f} after {state['step']} steps ({score.num_samples} samples)")


def report(args: argparse.Namespace) -> None:
    rows = [json.loads(p.read_text()) for p in sorted(Path(args.runs_dir).glob("**/result.json"))]
    if not rows:
        raise SystemExit(f"error: no results under {args.runs_dir}; run some --variant first")
    print(table([[r["variant"], r.get("seed", 0), r["steps"], 100 * r["label_fidelity"], r["samples"], r["minutes"]]
                 for r in rows], ["variant", "seed", "steps", "label fidelity %", "samples", "minutes"]))
    emit({"benchmark": "conditioning_ablation", "base": dataclasses.asdict(BASE), "results": rows}, args.out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", choices=list(VARIANTS))
    p.add_argument("--report", action="store_true", help="gather the finished variants into one table")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="training seed (model init, noise, data order)")
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--data-root", default=None, help="CIFAR-10 folder or .tar.gz (default: $CGAN_COURSE_CIFAR10)")
    p.add_argument("--source", default="auto")
    p.add_argument("--runs-dir", default="runs/conditioning_ablation")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--score-only", action="store_true", help="score <runs-dir>/<variant>/checkpoint.pt without training")
    p.add_argument("--out", default=None, help="JSON file for --report")
    args = p.parse_args()
    if args.report:
        report(args)
    elif args.variant:
        run(args)
    else:
        p.error("pass --variant NAME or --report")


if __name__ == "__main__":
    main()
