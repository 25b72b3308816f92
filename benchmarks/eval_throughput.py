"""Evaluation speed: feature extraction for the FD, and one 10,000-sample FD end to end.

    python benchmarks/eval_throughput.py                   # the real measurement (see README for time)
    python benchmarks/eval_throughput.py --quick           # seconds: checks the plumbing only

Measures, on the device at hand:

* the time of a 10,000-sample Fréchet distance in the course classifier's feature space, end to
  end as a user calls it (``metrics.fid(G, reference, extractor)``: generate + extract + running
  statistics + ``frechet_distance``), with the reference statistics of the train split already
  cached (their one-off computation is timed separately, in a child process), and this process's
  peak resident memory during it (``ru_maxrss``; measured before anything else runs, so nothing
  later can raise the high-water mark); then the same FD taken apart into its four stages;
* feature-extraction throughput (images/s) of the course classifier and of the FID Inception
  network. Inception runs with *random* weights (``InceptionFeatures(random_weights=True)``): the
  speed does not depend on the weights, and the real file is not available offline.

The generator is the committed pretrained one, or an untrained one of the same architecture when
it is missing (same speed; said in the output). A missing classifier is replaced the same way.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, hardware, peak_rss_mib, sync, table, usable_cores  # noqa: E402

from cgan_course import metrics  # noqa: E402
from cgan_course.data import ENV_VAR, DatasetError, resolve_source  # noqa: E402
from cgan_course.models import build_generator  # noqa: E402
from cgan_course.training.recipes import PRETRAINED_MODEL  # noqa: E402
from cgan_course.pretrained import PretrainedMissing, load_generator  # noqa: E402
from cgan_course.sampling import generate, sample_latents  # noqa: E402
from cgan_course.runtime import pick_device  # noqa: E402



def get_generator(device: torch.device) -> tuple[torch.nn.Module, str]:
    try:
        return load_generator(device), "pretrained generator (data/pretrained/generator.pt)"
    except PretrainedMissing:
        torch.manual_seed(0)
        G = build_generator(PRETRAINED_MODEL).to(device).eval()
        return G, "UNTRAINED generator of the pretrained architecture (generator.pt missing; same speed)"


def get_classifier(device: torch.device) -> tuple[metrics.ClassifierFeatures, bool]:
    """(extractor, is_real): the committed classifier, or an untrained one of the same shape."""
    from cgan_course.classifier import Classifier

    try:
        return metrics.ClassifierFeatures(device=device), True
    except PretrainedMissing:
        torch.manual_seed(0)
        return metrics.ClassifierFeatures(model=Classifier().to(device)), False


def cache_reference(source: str, root: str | None) -> float:
    """Compute (or find) the cached train-split reference statistics in a child process, so the
    50,000 decoded images never count towards this process's peak memory. Returns seconds."""
    code = ("import sys; from cgan_course import metrics; "
            "metrics.reference_stats(metrics.ClassifierFeatures(), 'train', source=sys.argv[1], "
            "root=None if sys.argv[2] == '-' else sys.argv[2])")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, source, root or "-"], check=True)
    return time.perf_counter() - t0


def throughput(extractor: metrics.FeatureExtractor, n: int, device: torch.device) -> float:
    """images/s of ``extractor`` on ``n`` random uint8 32x32 images (content does not change the cost)."""
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
    extractor(images[:extractor.batch_size])  # warm-up: allocator, cuDNN/oneDNN plans
    sync(device)
    t0 = time.perf_counter()
    extractor(images)  # features come back on the CPU, so this also waits for the device
    return n / (time.perf_counter() - t0)


def fd_breakdown(G, extractor, reference, n: int, device: torch.device) -> dict:
    """The stages of ``metrics.fid(G, ...)`` timed one by one (seconds)."""
    t = {}
    t0 = time.perf_counter()
    y = torch.arange(n) % G.num_classes  # class-balanced, as generator_stats does
    x = generate(G, sample_latents(n, G.z_dim, seed=0), y)
    t["generate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    feats, logits = extractor.features_and_logits(x)
    t["extract"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    stats = metrics.stats_from_features(feats, y, extractor.name, "generated", "generator", logits=logits)
    t["statistics"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics.frechet_distance(stats.mean, stats.cov, reference.mean, reference.cov)
    t["frechet_distance"] = time.perf_counter() - t0
    return t


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--fd-samples", type=int, default=10_000, help="samples of the end-to-end FD (default 10,000)")
    p.add_argument("--classifier-images", type=int, default=10_000, help="images for the classifier's images/s")
    p.add_argument("--inception-images", type=int, default=None, help="images for Inception's images/s (default: 200 CPU, 5,000 GPU)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    p.add_argument("--threads", type=int, default=0, help="torch threads on the CPU (default: all usable cores)")
    p.add_argument("--data-root", default=None, help=f"CIFAR-10 for the reference statistics (default: ${ENV_VAR} or data/)")
    p.add_argument("--source", default="auto", help="auto | folder | torchvision | sample")
    p.add_argument("--no-breakdown", action="store_true", help="skip the stage-by-stage FD timing")
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds) to check the plumbing; numbers meaningless")
    p.add_argument("--out", help="also save the JSON result to this file")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads or usable_cores())
    n_fd = 500 if args.quick else args.fd_samples
    n_clf = 500 if args.quick else args.classifier_images
    n_inc = 8 if args.quick else args.inception_images or (5000 if device.type == "cuda" else 200)
    if args.quick:
        print("QUICK: plumbing check, numbers meaningless")

    G, g_desc = get_generator(device)
    extractor, real_clf = get_classifier(device)
    if real_clf:
        try:
            source, root = resolve_source(args.data_root) if args.source == "auto" else (args.source, args.data_root)
        except DatasetError as err:
            raise SystemExit(f"error: {err}") from None
        root = None if source == "sample" or root is None else str(root)
        ref_s = cache_reference(source, root)
        reference = metrics.reference_stats(extractor, "train", source=source, root=root, verbose=False)
        clf_desc = "course classifier (data/pretrained/classifier.pt)"
    else:  # only the shapes matter for timing; a stand-in reference from random images
        t0 = time.perf_counter()
        reference = metrics.image_stats(torch.randint(0, 256, (2000, 3, 32, 32), dtype=torch.uint8), extractor)
        ref_s = time.perf_counter() - t0
        clf_desc = "UNTRAINED classifier of the course architecture (classifier.pt missing; same speed)"
    print(f"generator: {g_desc}\nclassifier: {clf_desc}\nreference: {reference.count:,} images "
          f"({reference.data_source}), {ref_s:.1f} s to compute or load")

    # 1) the end-to-end FD, first, so that its peak memory is this process's high-water mark
    rss_before = peak_rss_mib()
    sync(device)
    t0 = time.perf_counter()
    score = metrics.fid(G, reference, extractor, num_samples=n_fd, seed=0)
    fd_s = time.perf_counter() - t0
    rss_fd = peak_rss_mib()
    print(f"FD end to end: {fd_s:.1f} s for {n_fd:,} samples ({score}); peak RSS {rss_fd:.0f} MiB "
          f"(before: {rss_before:.0f} MiB)")
    stages = None if args.no_breakdown else fd_breakdown(G, extractor, reference, n_fd, device)

    # 2) extraction throughput
    clf_ips = throughput(extractor, n_clf, device)
    t0 = time.perf_counter()
    inception = metrics.InceptionFeatures(device=device, random_weights=True)
    inc_build_s = time.perf_counter() - t0
    inc_ips = throughput(inception, n_inc, device)

    rows = [["classifier features (256-d)", n_clf, clf_ips, 1000 / clf_ips],
            ["Inception pool3 (2048-d), random weights", n_inc, inc_ips, 1000 / inc_ips],
            [f"FD end to end ({n_fd:,} samples, classifier space)", n_fd, n_fd / fd_s, 1000 * fd_s / n_fd]]
    print()
    print(table(rows, ["what", "images", "images/s", "s per 1000 images"]))
    if stages:
        print()
        total = sum(stages.values())
        print(table([[k, v, 100 * v / total] for k, v in stages.items()] + [["sum", total, 100.0]],
                    [f"FD stage ({n_fd:,} samples)", "seconds", "%"]))
    print(f"\nFD with {n_fd:,} samples end to end: {fd_s:.1f} s; peak resident memory {rss_fd:.0f} MiB (process total, "
          f"{rss_before:.0f} MiB before the FD: interpreter, torch, models, reference). Inception built in "
          f"{inc_build_s:.1f} s; at {inc_ips:.0f} images/s an Inception FID-50k would take ~{50_000 / inc_ips / 60:.0f} min "
          "for the samples alone.")
    emit({"benchmark": "eval_throughput", "quick": args.quick, "hardware": hardware(device),
          "generator": g_desc, "classifier": clf_desc,
          "reference": {"images": reference.count, "data_source": reference.data_source, "seconds": ref_s},
          "classifier_images_per_s": clf_ips, "inception_images_per_s": inc_ips,
          "inception_weights": "random (timing only)", "inception_build_s": inc_build_s,
          "fd": {"samples": n_fd, "seconds": fd_s, "value": score.value, "text": str(score),
                 "peak_rss_mib": rss_fd, "rss_before_mib": rss_before, "stages_s": stages}}, args.out)


if __name__ == "__main__":
    main()
