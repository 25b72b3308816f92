"""Time to quality: label fidelity and Fréchet distance against CPU minutes, classic CGAN vs
projection cGAN (with and without AC-GAN's class head), each trained for the same wall-clock budget.

    python benchmarks/time_to_quality.py --data-root /path/to/cifar10-jpg.tar.gz         # 3 x 20 min + scoring
    python benchmarks/time_to_quality.py --data-root ... --parallel                      # all at once (20 min)
    python benchmarks/time_to_quality.py --quick --standin-classifier                     # plumbing check, seconds
    python benchmarks/time_to_quality.py --score-only --data-root ...                     # re-score saved snapshots

Each family is trained by ``cgan_course.train.train`` in chunks of ``--every`` minutes: every chunk
resumes the previous one's checkpoint (resumption is exact, so the chunks add up to one run) and
the EMA generator is saved after it. Then every snapshot is scored with the course classifier on
``--samples`` class-balanced samples: label fidelity (is the image the class that was asked for?)
and the Fréchet distance in classifier feature space to the whole train split (cached statistics).

Writes into ``--out-dir``: ``time_to_quality.png`` (both curves), ``ttq_grid_<family>.png`` (the
final 10x10 grids: one row per class); checkpoints and snapshots go to ``--runs-dir/<family>/``
(default ``runs/time_to_quality/``, git-ignored).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, emit, hardware, table  # noqa: E402

from cgan_course import metrics  # noqa: E402
from cgan_course.data import ENV_VAR, DatasetError, describe_source, load_cifar10, resolve_source  # noqa: E402
from cgan_course.models import build_generator  # noqa: E402
from cgan_course.sampling import sample_grid, save_image_grid  # noqa: E402
from cgan_course.checkpoints import load_checkpoint, model_config_from, save_checkpoint  # noqa: E402
from cgan_course.training.recipes import recipe as course_recipe  # noqa: E402
from cgan_course.train import TrainConfig, train  # noqa: E402

FAMILIES = ("classic", "projection", "projection_ac")
RECIPE_FIELDS = ("model", "loss", "batch_size", "lr_g", "lr_d", "beta1", "beta2", "ema_decay", "hflip", "d_steps",
                 "ac_weight")


def recipe(family: str) -> TrainConfig:
    """The recipe compared for each family, from ``cgan_course.training.recipes``: batch 64, EMA 0.999, each
    family's own loss and Adam betas.

    classic: the DCGAN-style CGAN (BCE, Adam (2e-4, 0.5, 0.999)) at width 64; projection: the
    projection recipe (hinge, width 32, Adam (2e-4, 0.0, 0.9) as in SNGAN);
    projection_ac: notebook 04's classroom recipe, the same with AC-GAN's class head on D (weight 3,
    chosen by 5-minute trials on machine B: docs/RESULTS.md, "Notebook 04's classroom run").
    """
    if family == "classic":
        return course_recipe("classic", model={"g_width": 64, "d_width": 64})
    if family == "projection":
        return course_recipe("projection")
    if family == "projection_ac":
        return course_recipe("classroom")
    raise SystemExit(f"error: unknown family {family!r}; choose from {', '.join(FAMILIES)}")


def resolve_data(args) -> tuple[str, str | None, str]:
    """(source, root, description) for load_cifar10; refuses the 1,000-image sample unless --quick."""
    root = args.data_root or os.environ.get(ENV_VAR) or None
    source = args.source
    if source == "auto":
        try:
            source, resolved = resolve_source(root)
        except DatasetError as err:
            raise SystemExit(f"error: {err}") from None
        root = str(resolved) if source != "sample" else None
    if source == "sample" and not args.quick:
        raise SystemExit("error: only the committed 1,000-image sample was found, and a time-to-quality curve on it "
                         f"measures memorisation. Pass --data-root (a CIFAR-10 class-folder tree or .tar.gz, e.g. "
                         f"/path/to/cifar10-jpg.tar.gz) or set ${ENV_VAR}; --quick allows the sample.")
    return source, root, describe_source(source, root)


# ----------------------------------------------------------------------------------------------
# Training in chunks


def run_dir(runs_dir: str | Path, family: str) -> Path:
    return Path(runs_dir) / family


def train_family(family: str, args, data: tuple[torch.Tensor, torch.Tensor]) -> list[dict]:
    """Train ``family`` for ``args.minutes`` in chunks of ``args.every``, saving the EMA G after each."""
    folder = run_dir(args.runs_dir, family)
    (folder / "snapshots").mkdir(parents=True, exist_ok=True)
    for stale in [folder / "checkpoint.pt", folder / "log.csv", *folder.glob("snapshots/*.pt")]:
        stale.unlink(missing_ok=True)  # a fresh run: resume must not pick up an older one
    chunks = max(1, round(args.minutes / args.every))
    # max_minutes is per train() call (its clock starts when its loop starts), so every chunk gets
    # `every` minutes; model building and loading the checkpoint are outside that clock
    cfg = dataclasses.replace(recipe(family), steps=10**9, max_minutes=args.every, resume=True, out=str(folder),
                              threads=args.threads, device="cpu", progress=False, log_every=100,
                              sample_every=10**9, ckpt_every=10**9, seed=args.seed)
    manifest, train_s = [], 0.0
    for k in range(1, chunks + 1):
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # train()'s own lines; the manifest has the facts
            result = train(cfg, data)
        train_s += time.perf_counter() - t0  # includes the chunk's start-up and checkpoint (~1 s)
        snap = folder / "snapshots" / f"snap_{k:03d}.pt"
        save_checkpoint(snap, {"model": dataclasses.asdict(cfg.model), "step": result.step, "minutes": train_s / 60,
                               "G_ema": {n: t.detach().cpu().clone() for n, t in result.G_ema.state_dict().items()}})
        manifest.append({"family": family, "chunk": k, "minutes": train_s / 60, "steps": result.step, "file": str(snap)})
        print(f"  {family}: {train_s / 60:5.1f} min, step {result.step:,}", flush=True)
    (folder / "manifest.json").write_text(json.dumps({"threads": args.threads, "snapshots": manifest}, indent=2) + "\n")
    return manifest


def child_argv(args, family: str) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--train-only", "--families", family,
            "--minutes", str(args.minutes), "--every", str(args.every), "--threads", str(args.threads),
            "--runs-dir", str(args.runs_dir), "--seed", str(args.seed), "--source", args.source]
    if args.data_root:
        argv += ["--data-root", args.data_root]
    return argv + (["--quick"] if args.quick else [])


def train_parallel(args, families: list[str]) -> None:
    """One process per family, each with ``--threads`` threads, started together."""
    procs = [(f, subprocess.Popen(child_argv(args, f))) for f in families]
    failed = [f for f, proc in procs if proc.wait() != 0]
    if failed:
        raise SystemExit(f"error: training failed for {', '.join(failed)} (see the messages above)")


# ----------------------------------------------------------------------------------------------
# Scoring


def load_snapshot(path: Path) -> tuple[torch.nn.Module, dict]:
    state = load_checkpoint(path)  # weights_only=True
    G = build_generator(model_config_from(state["model"], path))
    G.load_state_dict(state["G_ema"])
    return G.eval(), state


def make_judge(args, source: str, root: str | None):
    """The course classifier's features and the train-split reference statistics.

    ``--standin-classifier`` replaces a missing classifier by an *untrained* one so the plumbing
    can be tested; its numbers mean nothing and are labelled so everywhere.
    """
    from cgan_course.classifier import Classifier
    from cgan_course.pretrained import PretrainedMissing

    try:
        extractor, judge = metrics.ClassifierFeatures(), "course classifier (data/pretrained/classifier.pt)"
    except PretrainedMissing as err:
        if not args.standin_classifier:
            raise SystemExit(f"error: {err}\n(For a plumbing test only: --standin-classifier uses an untrained "
                             "classifier; its scores are meaningless.)") from None
        torch.manual_seed(0)
        extractor, judge = metrics.ClassifierFeatures(model=Classifier()), "UNTRAINED STAND-IN classifier (numbers meaningless)"
        print("WARNING: data/pretrained/classifier.pt is missing; scoring with an UNTRAINED stand-in classifier.")
    standin = "STAND-IN" in judge
    # a stand-in's fingerprint changes per process, so its statistics are not cached (and subsampled)
    ref = metrics.reference_stats(extractor, "train", source=source, root=root, cache=not standin,
                                  num_images=2000 if standin else None)
    return extractor, ref, judge


def score(manifest: list[dict], extractor, ref, num_samples: int) -> list[dict]:
    rows = []
    for snap in manifest:
        G, _ = load_snapshot(Path(snap["file"]))
        stats = metrics.generator_stats(G, extractor, num_samples, seed=0)  # class-balanced, fixed latents
        rows.append({**snap, "label_fidelity": metrics.label_fidelity(stats).value,
                     "fd_classifier": metrics.fid(stats, ref).value})
        print(f"  scored {snap['family']} at {snap['minutes']:.1f} min: label fidelity "
              f"{rows[-1]['label_fidelity']:.1%}, FD {rows[-1]['fd_classifier']:.3g}", flush=True)
    return rows


def equal_budget(rows: list[dict], families: list[str], every: float) -> list[dict]:
    """Pivot: one row per snapshot index (the same nominal training budget for every family)."""
    out = []
    for k in sorted({r["chunk"] for r in rows}):
        at = {r["family"]: r for r in rows if r["chunk"] == k}
        if all(f in at for f in families):
            out.append({"budget_min": k * every, **{f: {key: at[f][key] for key in ("minutes", "steps", "label_fidelity",
                                                                                   "fd_classifier")} for f in families}})
    return out


def plot(rows: list[dict], path: Path, judge: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=80)
    for family in FAMILIES:
        pts = [r for r in rows if r["family"] == family]
        if pts:
            mins = [r["minutes"] for r in pts]
            ax1.plot(mins, [100 * r["label_fidelity"] for r in pts], "o-", label=family)
            ax2.plot(mins, [r["fd_classifier"] for r in pts], "o-", label=family)
    ax1.axhline(10, color="grey", lw=0.8, ls=":", label="chance (10%)")
    ax1.set(xlabel="CPU minutes (wall clock)", ylabel="label fidelity (%)", title="does G draw the asked class?")
    ax2.set(xlabel="CPU minutes (wall clock)", ylabel="FD (classifier features)", title="Fréchet distance, lower is better")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.suptitle(f"judged by the {judge}", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--minutes", type=float, default=20.0, help="training budget per family (default 20)")
    p.add_argument("--every", type=float, default=2.5, help="snapshot interval in minutes (default 2.5)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per family (default 1)")
    p.add_argument("--parallel", action="store_true", help="train the families at once, one process each")
    p.add_argument("--families", default=",".join(FAMILIES), help="comma-separated subset of " + ",".join(FAMILIES))
    p.add_argument("--data-root", default=None, help=f"CIFAR-10 folder or .tar.gz (default: ${ENV_VAR})")
    p.add_argument("--source", default="auto", help="auto | folder | torchvision (sample only with --quick)")
    p.add_argument("--samples", type=int, default=2000, help="class-balanced samples per snapshot score (default 2,000)")
    p.add_argument("--out-dir", default=str(REPO_ROOT / "benchmarks" / "results"))
    p.add_argument("--runs-dir", default=str(REPO_ROOT / "runs" / "time_to_quality"),
                   help="training checkpoints and snapshots, one folder per family (default: runs/time_to_quality, git-ignored)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--standin-classifier", action="store_true",
                   help="if the course classifier is missing, score with an untrained one (plumbing tests only)")
    p.add_argument("--train-only", action="store_true", help="train and snapshot, do not score (used by --parallel)")
    p.add_argument("--score-only", action="store_true", help="score the snapshots already in --out-dir")
    p.add_argument("--quick", action="store_true", help="seconds-long plumbing check: 0.1 min per family, 200 samples")
    p.add_argument("--out", help="also save the JSON result to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.minutes = min(args.minutes, 0.1)
        args.every = min(args.every, 0.05)
        args.samples = min(args.samples, 200)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    for f in families:
        recipe(f)  # validates the name
    if args.every <= 0 or args.minutes < args.every:
        raise SystemExit(f"error: need 0 < --every <= --minutes, got --every {args.every} --minutes {args.minutes}")
    source, root, data_desc = resolve_data(args)
    args.source, args.data_root = source, root  # children and the scorer use the resolved data
    out_dir = Path(args.out_dir)

    if not args.score_only:
        how = ("as a child process" if args.train_only else
               "in parallel, one process each" if args.parallel and len(families) > 1 else "one after the other")
        print(f"training {', '.join(families)} for {args.minutes:g} min each on {args.threads} thread(s), snapshot "
              f"every {args.every:g} min, {how}; data: {data_desc}",
              flush=True)
        if args.parallel and len(families) > 1:
            train_parallel(args, families)
        else:
            data = load_cifar10(root, train=True, source=source)
            for f in families:
                train_family(f, args, data)
        if args.train_only:
            return

    manifest = []
    for f in families:
        man = run_dir(args.runs_dir, f) / "manifest.json"
        if not man.is_file():
            raise SystemExit(f"error: no snapshots for {f} in {man.parent}; train first (drop --score-only) "
                             "or pass the --runs-dir of the training run.")
        manifest += json.loads(man.read_text())["snapshots"]
    torch.set_num_threads(max(1, os.cpu_count() or 1))  # scoring uses the whole machine
    extractor, ref, judge = make_judge(args, source, root)
    print(f"scoring {len(manifest)} snapshots on {args.samples:,} samples each ({judge}) ...", flush=True)
    rows = score(manifest, extractor, ref, args.samples)

    print()
    print(table([[r["family"], r["minutes"], r["steps"], 100 * r["label_fidelity"], r["fd_classifier"]] for r in rows],
                ["family", "minutes", "steps", "label fidelity %", "FD (classifier)"]))
    print(f"label fidelity and FD: {args.samples:,} class-balanced samples of the EMA generator (seed 0), judged by "
          f"the {judge}; FD vs the train split ({ref.count:,} images, {ref.data_source}). Chance fidelity is 10%.")
    budget = equal_budget(rows, families, args.every)
    if len(families) > 1:
        print("\nequal budget (same chunk of training time for each family):")
        print(table([[b["budget_min"]] + [v for f in families for v in (b[f]["steps"], 100 * b[f]["label_fidelity"],
                                                                         b[f]["fd_classifier"])] for b in budget],
                    ["budget min"] + [f"{f} {c}" for f in families for c in ("steps", "fidelity %", "FD")]))
    finals = {}
    for f in families:
        last = [r for r in rows if r["family"] == f][-1]
        G, _ = load_snapshot(Path(last["file"]))
        grid = save_image_grid(sample_grid(G, per_class=10, seed=0), out_dir / f"ttq_grid_{f}.png", nrow=10)
        finals[f] = {k: last[k] for k in ("minutes", "steps", "label_fidelity", "fd_classifier")} | {"grid": str(grid)}
    fig = plot(rows, out_dir / "time_to_quality.png", judge)
    print(f"wrote {fig} and {', '.join(v['grid'] for v in finals.values())}")
    threads = {f: json.loads((run_dir(args.runs_dir, f) / "manifest.json").read_text()).get("threads") for f in families}
    emit({"benchmark": "time_to_quality", "quick": args.quick, "hardware": hardware("cpu"),
          "settings": {"minutes": args.minutes, "every": args.every, "threads_per_family": threads,
                       "parallel": args.parallel, "samples": args.samples, "data": data_desc,
                       "recipes": {f: {k: v for k, v in recipe(f).to_dict().items() if k in RECIPE_FIELDS} for f in families}},
          "judge": judge, "reference": {"split": ref.split, "images": ref.count, "data_source": ref.data_source},
          "points": [{k: r[k] for k in ("family", "minutes", "steps", "label_fidelity", "fd_classifier")} for r in rows],
          "equal_budget": budget, "final": finals, "plot": str(fig)}, args.out)


if __name__ == "__main__":
    main()
