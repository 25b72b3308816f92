"""Latency of the generator service under load, for each way of running the generator.

For every option set it starts `python -m cgan_course.serve` (the committed generator) on a free
127.0.0.1 port, sends a bounded load of `POST /generate` requests (n=16 samples each) from 1, 4 and
16 concurrent clients, and prints p50/p95 latency and requests/s. Quality: the same latents are
rendered in-process with each option and compared with fp32 (largest pixel difference) and scored
by the course classifier (label fidelity, 1,000 samples, the same for every option).

    python benchmarks/serve_latency.py --out benchmarks/results/serve_latency.json

Client and server share the machine: on a 2-core CPU the numbers include the clients' own cost.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from cgan_course import metrics, serve
from cgan_course.paths import REPO_ROOT
from cgan_course.pretrained import load_generator
from cgan_course.runtime import cpu_has_native_bf16

VARIANTS = {  # name: (CLI flags, ServeOptions); each row adds one change to the row above
    "fp32, no_grad": (["--no-inference-mode", "--no-channels-last"],
                      serve.ServeOptions(inference_mode=False, channels_last=False)),
    "fp32, inference_mode": (["--no-channels-last"], serve.ServeOptions(channels_last=False)),
    "fp32, inference_mode, channels-last (default)": ([], serve.ServeOptions()),
    "+ dynamic int8 Linear": (["--quantize", "dynamic-int8"], serve.ServeOptions(quantize="dynamic-int8")),
    "+ bf16 autocast (instead of int8)": (["--precision", "bf16"], serve.ServeOptions(precision="bf16")),
}


def request(url: str, i: int) -> float:
    t0 = time.perf_counter()
    reply = serve.call(url + "/generate", {"class": i % 10, "n": 16, "seed": i}, timeout=120)
    if reply.status != 200:
        raise RuntimeError(f"request {i}: {reply.status} {reply.body[:200]!r}")
    return time.perf_counter() - t0


def load_test(url: str, clients: int, per_client: int) -> dict:
    for i in range(3):  # warm-up
        request(url, i)
    total = clients * per_client
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        latencies = sorted(pool.map(lambda i: request(url, i), range(total)))
    wall = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=20)  # 5% steps: q[9] is p50, q[18] is p95
    return {"clients": clients, "requests": total, "p50_ms": round(1000 * q[9], 1),
            "p95_ms": round(1000 * q[18], 1), "requests_per_s": round(total / wall, 2)}


def quality(options: serve.ServeOptions, reference: torch.Tensor | None, per_class: int) -> dict:
    service = serve.GeneratorService(load_generator(), options)
    images = torch.cat([service.images(serve.GenerateRequest(**{"class": c, "n": per_class, "seed": 1000 + c}))
                        for c in range(10)])  # (10 * per_class, 3, 32, 32)
    labels = torch.arange(10).repeat_interleave(per_class)
    score = metrics.label_fidelity(images, labels=labels)
    out = {"label_fidelity": round(score.value, 4), "ci95": [round(v, 4) for v in score.details["ci95"]],
           "samples": int(labels.numel())}
    if reference is not None:
        out["max_abs_pixel_diff_vs_fp32"] = round(float((images - reference).abs().max()), 4)
    return out, images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-client", type=int, default=10, help="requests per client per load level")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--quality-per-class", type=int, default=64, help="samples per class for label fidelity (<= 64)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    native_bf16 = cpu_has_native_bf16()
    results, reference = [], None
    for name, (flags, options) in VARIANTS.items():
        if options.precision == "bf16" and not native_bf16:
            print(f"{name}: skipped, this CPU has no native bf16 (emulated bf16 is several times slower)")
            results.append({"variant": name, "skipped": "no native bf16 on this CPU"})
            continue
        q, images = quality(options, reference, args.quality_per_class)
        if reference is None:
            reference = images
        with serve.ServerProcess(flags=flags, cwd=REPO_ROOT) as server:
            loads = [load_test(server.url, int(c), args.per_client) for c in args.clients.split(",")]
        results.append({"variant": name, "flags": flags, **q, "load": loads})
        print(f"{name}: label fidelity {q['label_fidelity']:.3f} (CI {q['ci95'][0]:.3f}-{q['ci95'][1]:.3f}), "
              f"max pixel diff vs fp32 {q.get('max_abs_pixel_diff_vs_fp32', 0.0)}")
        for r in loads:
            print(f"    {r['clients']:>2} clients: p50 {r['p50_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms  "
                  f"{r['requests_per_s']:6.2f} req/s ({r['requests']} requests)")
    if args.out:
        report = {"command": "python " + " ".join(sys.argv), "cpu": platform.processor() or platform.machine(),
                  "cpu_flags_bf16": native_bf16, "cores": os.cpu_count(), "torch": torch.__version__,
                  "request": {"n": 16, "generator": "data/pretrained/generator.pt"}, "results": results}
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
