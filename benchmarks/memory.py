"""Peak resident memory of training and of the FD, each measured in a fresh process.

    python benchmarks/memory.py --data-root /path/to/cifar10-jpg.tar.gz     # the real measurement
    python benchmarks/memory.py --quick                                     # seconds: plumbing only

``ru_maxrss`` is a high-water mark for the whole life of a process, so each measurement runs in
its own child (``python benchmarks/memory.py --child KIND``) and reports back one line:

* ``baseline``: Python + torch + cgan_course imported, nothing else (the floor of every row);
* ``train``: load the CIFAR-10 train split and run ``--train-steps`` steps of the pretrained
  recipe with ``cgan_course.train.train`` (also CUDA's peak allocation on a GPU);
* ``reference``: the one-off classifier-feature statistics of the train split (computed even
  when cached; cached afterwards, so ``fd-classifier`` only loads them);
* ``fd-classifier``: a ``--fd-samples`` FD in classifier space with the cached reference, as
  ``metrics.fid(G, reference, extractor)`` runs it;
* ``fd-inception``: the same in Inception space (random weights: the memory does not depend on
  them) on ``--inception-samples`` samples, against statistics of as many real images.

A missing pretrained generator or classifier is replaced by an untrained network of the same
architecture (same memory), and the output says so.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, hardware, peak_rss_mib, table  # noqa: E402

KINDS = ("baseline", "train", "reference", "fd-classifier", "fd-inception")


# ----------------------------------------------------------------------------------------------
# Children: each does one thing and prints `RESULT: {...}`


def _generator(device):
    import torch

    from cgan_course.models import build_generator
    from cgan_course.pretrained import PretrainedMissing, load_generator
    from cgan_course.training.recipes import PRETRAINED_MODEL

    try:
        return load_generator(device), "pretrained"
    except PretrainedMissing:
        torch.manual_seed(0)
        return build_generator(PRETRAINED_MODEL).to(device).eval(), "untrained stand-in (generator.pt missing)"


def _classifier(device):
    import torch

    from cgan_course import metrics
    from cgan_course.classifier import Classifier
    from cgan_course.pretrained import PretrainedMissing

    try:
        return metrics.ClassifierFeatures(device=device), "course classifier"
    except PretrainedMissing:
        torch.manual_seed(0)
        return metrics.ClassifierFeatures(model=Classifier().to(device)), "untrained stand-in (classifier.pt missing)"


def child(kind: str, args) -> dict:
    import torch

    from cgan_course import metrics
    from cgan_course.data import load_cifar10
    from cgan_course.runtime import pick_device

    device = pick_device(args.device)
    source, root = args.source, args.data_root
    info: dict = {"rss_after_imports_mib": peak_rss_mib()}
    t0 = time.perf_counter()
    if kind == "baseline":
        import cgan_course.train  # noqa: F401  (everything the other children import)
    elif kind == "train":
        from cgan_course.train import train
        from cgan_course.training.recipes import recipe

        data = load_cifar10(root, train=True, source=source)
        info.update(images=int(data[1].numel()), rss_after_data_mib=peak_rss_mib())
        cfg = recipe("projection", steps=args.train_steps, device=str(device), progress=False,
                     sample_every=10**9, ckpt_every=10**9, log_every=50)
        with tempfile.TemporaryDirectory() as tmp:
            cfg.out = tmp
            train(cfg, data)
        info["steps"] = args.train_steps
        if device.type == "cuda":
            info["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    elif kind == "reference":
        extractor, desc = _classifier(device)
        if "stand-in" in desc:
            return {"skipped": "classifier.pt missing: no cacheable reference", **info}
        # computed and cached if missing (the later fd-classifier child then only loads it); if it
        # was already cached, compute it once more without the cache, so the row always measures
        # the one-off computation
        before = set(metrics.cache_dir().glob("*.npz"))
        ref = metrics.reference_stats(extractor, "train", source=source, root=root, verbose=False)
        if not set(metrics.cache_dir().glob("*.npz")) - before:
            t0 = time.perf_counter()
            ref = metrics.reference_stats(extractor, "train", source=source, root=root, verbose=False, cache=False)
        info.update(images=ref.count)
    elif kind == "fd-classifier":
        G, g_desc = _generator(device)
        extractor, c_desc = _classifier(device)
        if "stand-in" in c_desc:  # shapes are what matter for memory
            ref = metrics.image_stats(torch.randint(0, 256, (2000, 3, 32, 32), dtype=torch.uint8), extractor)
        else:
            ref = metrics.reference_stats(extractor, "train", source=source, root=root, verbose=False)
        info["rss_before_fd_mib"] = peak_rss_mib()
        t0 = time.perf_counter()
        metrics.fid(G, ref, extractor, num_samples=args.fd_samples, seed=0)
        info.update(samples=args.fd_samples, generator=g_desc, classifier=c_desc)
    elif kind == "fd-inception":
        G, g_desc = _generator(device)
        inception = metrics.InceptionFeatures(device=device, random_weights=True)
        real, _ = load_cifar10(None, train=True, source="sample")  # a small real set: shapes matter, not values
        n = args.inception_samples
        real = real[torch.arange(n) % real.shape[0]]
        ref = metrics.image_stats(real, inception, split="train", data_source="sample")
        info["rss_before_fd_mib"] = peak_rss_mib()
        t0 = time.perf_counter()
        metrics.fid(G, ref, inception, num_samples=n, seed=0)
        info.update(samples=n, generator=g_desc, weights="random (memory only)")
    else:
        raise SystemExit(f"error: unknown child kind {kind!r}")
    if device.type == "cuda" and "cuda_max_allocated_mib" not in info:
        info["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    info.update(kind=kind, seconds=None if kind == "baseline" else time.perf_counter() - t0, peak_rss_mib=peak_rss_mib(),
                torch_threads=torch.get_num_threads())
    return info


# ----------------------------------------------------------------------------------------------
# Parent


def run_child(kind: str, args) -> dict:
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--device", args.device,
            "--source", args.source, "--train-steps", str(args.train_steps), "--fd-samples", str(args.fd_samples),
            "--inception-samples", str(args.inception_samples)]
    if args.data_root:
        argv += ["--data-root", args.data_root]
    print(f"  {kind} ...", flush=True)
    proc = subprocess.run(argv, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT: ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"kind": kind, "failed": " | ".join(tail)[:300]}
    return json.loads(lines[-1][len("RESULT: "):])


def resolve_data(args) -> str:
    """Resolve --source auto to what load_cifar10 would load; returns a description."""
    from cgan_course.data import DatasetError, describe_source, resolve_source

    if args.source == "auto":
        try:
            source, root = resolve_source(args.data_root)
        except DatasetError as err:
            raise SystemExit(f"error: {err}") from None
        args.source, args.data_root = source, (None if source == "sample" else str(root))
    return describe_source(args.source, args.data_root)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    p.add_argument("--train-steps", type=int, default=300, help="training steps of the pretrained recipe (default 300)")
    p.add_argument("--fd-samples", type=int, default=10_000, help="samples of the classifier-space FD (default 10,000)")
    p.add_argument("--inception-samples", type=int, default=200,
                   help="samples of the Inception FD, and as many real images (default 200: the statistics stream "
                        "batch by batch, so the peak hardly depends on it, while the time does)")
    p.add_argument("--data-root", default=os.environ.get("CGAN_COURSE_CIFAR10"),
                   help="CIFAR-10 folder or .tar.gz (default: $CGAN_COURSE_CIFAR10, else data/)")
    p.add_argument("--source", default="auto", help="auto | folder | torchvision | sample")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds each) to check the plumbing")
    p.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    p.add_argument("--out", help="also save the JSON result to this file")
    args = p.parse_args(argv)
    if args.child:
        print("RESULT: " + json.dumps(child(args.child, args)), flush=True)
        return
    if args.quick:
        args.train_steps, args.fd_samples, args.inception_samples = 3, 500, 8
        print("QUICK: plumbing check, sizes tiny")
    data_desc = resolve_data(args)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    bad = sorted(set(kinds) - set(KINDS))
    if bad:
        raise SystemExit(f"error: unknown kinds {bad}; choose from {', '.join(KINDS)}")
    print(f"each measurement in a fresh process; data: {data_desc}")
    results = {k: run_child(k, args) for k in kinds}

    base = results.get("baseline", {}).get("peak_rss_mib")
    what = {"baseline": "import torch + cgan_course",
            "train": f"train(): data + {args.train_steps} steps, pretrained recipe",
            "reference": "reference statistics (classifier, train split)",
            "fd-classifier": f"FD, classifier space, {args.fd_samples:,} samples",
            "fd-inception": f"FD, Inception space, {args.inception_samples:,} samples"}
    rows = []
    for k, r in results.items():
        note = r.get("failed") and "FAILED: " + r["failed"] or r.get("skipped") or ", ".join(
            str(r[key]) for key in ("generator", "classifier", "note") if key in r and r[key] not in ("pretrained", "course classifier"))
        peak = r.get("peak_rss_mib")
        rows.append([what[k], peak, peak - base if peak is not None and base is not None and k != "baseline" else None,
                     r.get("cuda_max_allocated_mib"), r.get("seconds"), note or ""])
    print()
    print(table(rows, ["measurement", "peak RSS MiB", "over baseline", "CUDA peak MiB", "seconds", "note"]))
    if "train" in results and "rss_after_data_mib" in results["train"]:
        t = results["train"]
        print(f"train: {t['images']:,} images in memory; peak RSS after loading them {t['rss_after_data_mib']:.0f} MiB, "
              f"after training {t['peak_rss_mib']:.0f} MiB")
    emit({"benchmark": "memory", "quick": args.quick, "hardware": hardware(_device_name(args.device)),
          "data": data_desc, "settings": {"train_steps": args.train_steps, "fd_samples": args.fd_samples,
                                          "inception_samples": args.inception_samples},
          "results": results}, args.out)


def _device_name(name: str) -> str:
    from cgan_course.runtime import pick_device

    return str(pick_device(name))


if __name__ == "__main__":
    main()
