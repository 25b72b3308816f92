"""The prepared GPU check: what a few lent minutes on an accelerator should measure.

    bash benchmarks/gpu_check.sh                 # on a GPU: <= 8 minutes, writes benchmarks/results/gpu_check.json
    bash benchmarks/gpu_check.sh --cpu           # seconds on the CPU: checks the plumbing (numbers meaningless)

1. Training throughput of the pretrained recipe (``recipes.recipe("pretrained")``) through the
   package's own ``gan_step``, one row per way of computing: fp32, TF32, bf16 and fp16 autocast,
   and bf16 with ``torch.compile``; images/s over timed steps after a warm-up, synced.
2. Host syncs per step: the same steps under ``torch.cuda.set_sync_debug_mode("warn")``, counting
   the warnings (each is a blocking device-to-host or host-to-device copy); issue 25 lists the
   known ones, and the count is the number to drive to zero.
3. A short full-mode run of notebook 04 through the course runner (``--timeout`` bounded), its
   status and wall time.

Everything is in one JSON object (``emit``); a stage that fails is recorded with its error and the
rest still runs, so one short lease always brings back a result.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, emit, hardware, sync  # noqa: E402

from cgan_course.data import DeviceBatches, load_cifar10  # noqa: E402
from cgan_course.training.recipes import recipe  # noqa: E402
from cgan_course.runtime import autocast, autocast_dtype, pick_device, precision_name, tf32  # noqa: E402
from cgan_course.train import GANLoss, Placement, TrainState, gan_step, resolved_loss  # noqa: E402

WAYS = [("fp32", "fp32", False, False), ("tf32", "fp32", True, False), ("bf16", "bf16", False, False),
        ("fp16", "fp16", False, False), ("bf16+compile", "bf16", False, True)]


def _state(cfg, images, labels, device):
    place = Placement(device, autocast_dtype(cfg.precision, device), channels_last=device.type == "cuda")
    batches = DeviceBatches(images, labels, cfg.batch_size, device, seed=0)
    state = TrainState.new(cfg, batches, place)
    if cfg.compile:
        state.G, state.D = torch.compile(state.G), torch.compile(state.D)
    return state, place


def throughput(cfg, images, labels, device, warmup: int, steps: int) -> dict:
    state, place = _state(cfg, images, labels, device)
    loss, amp = GANLoss.named(resolved_loss(cfg), cfg.ac_weight), autocast(device, place.amp_dtype)
    with tf32(cfg.tf32):
        for _ in range(warmup):
            gan_step(state, loss, cfg, amp)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            gan_step(state, loss, cfg, amp)
        sync(device)
    seconds = time.perf_counter() - t0
    return {"precision": precision_name(place.amp_dtype), "images_per_s": round(steps * cfg.batch_size / seconds, 1),
            "ms_per_step": round(1000 * seconds / steps, 2)}


def host_syncs(cfg, images, labels, device, steps: int) -> dict:
    if device.type != "cuda":
        return {"skipped": "CUDA only (torch.cuda.set_sync_debug_mode)"}
    state, place = _state(cfg, images, labels, device)
    loss, amp = GANLoss.named(resolved_loss(cfg), cfg.ac_weight), autocast(device, place.amp_dtype)
    gan_step(state, loss, cfg, amp)  # warm: first-call allocations are not the loop's syncs
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(steps):
                gan_step(state, loss, cfg, amp)
            sync(device)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    where = sorted({str(w.message).splitlines()[0][:160] for w in caught})
    return {"syncs_per_step": round(len(caught) / steps, 2), "kinds": where[:10]}


def notebook_04(mode: str, timeout: int) -> dict:
    from cgan_course.course import run_course

    out = Path(REPO_ROOT / "runs" / "gpu_check-course")
    with contextlib.redirect_stdout(io.StringIO()):
        results = run_course(mode, out=out, only=["04"], timeout=timeout)
    r = results[0]
    return {"mode": mode, "status": r.status, "seconds": round(r.seconds, 1), "error": r.error}


def stage(result: dict, name: str, fn, *args, save=None) -> None:
    """Run one stage; a failure is recorded, not raised, so the rest of the lease is not lost; the
    result so far is saved after every stage (``save``), so a run killed at the time limit still
    brings back what it measured."""
    t0 = time.perf_counter()
    try:
        result[name] = fn(*args)
    except Exception as err:  # noqa: BLE001 - recorded in the JSON
        result[name] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}"}
    print(f"{name}: {result[name]} ({time.perf_counter() - t0:.1f} s)", flush=True)
    if save is not None:
        save()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpu", action="store_true", help="seconds on the CPU, tiny model: checks the plumbing only")
    p.add_argument("--steps", type=int, default=None, help="timed steps per row (default: 200 GPU, 2 CPU)")
    p.add_argument("--notebook-timeout", type=int, default=240, help="seconds for notebook 04's full-mode run")
    p.add_argument("--no-notebook", action="store_true", help="skip notebook 04")
    p.add_argument("--out", default=None, help="also save the JSON here")
    args = p.parse_args(argv)
    device = torch.device("cpu") if args.cpu else pick_device("auto")
    quick = args.cpu or device.type == "cpu"
    steps, warmup = (args.steps or 2, 1) if quick else (args.steps or 200, 30)
    if quick:
        images, labels = load_cifar10(train=True, source="sample")
        base = recipe("pretrained", model={"g_width": 8, "d_width": 8, "z_dim": 16}, batch_size=16)
    else:
        images, labels = load_cifar10(train=True)  # $CGAN_COURSE_CIFAR10, the official batches, or the sample
        base = recipe("pretrained")
    result = {"benchmark": "gpu_check", "hardware": hardware(device), "quick": quick, "steps": steps,
              "recipe": "pretrained" + (" (tiny model)" if quick else ""), "throughput": {}, "complete": False}

    def save() -> None:
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    for name, precision, use_tf32, compiled in WAYS:
        if device.type == "cpu" and (use_tf32 or compiled or precision == "fp16"):
            result["throughput"][name] = {"skipped": "CUDA only"}
            continue
        cfg = dataclasses.replace(base, precision=precision, tf32=use_tf32, compile=compiled)
        stage(result["throughput"], name, throughput, cfg, images, labels, device, warmup, steps, save=save)
    stage(result, "host_syncs", host_syncs, dataclasses.replace(base, precision="bf16"), images, labels, device,
          min(steps, 20), save=save)
    if not args.no_notebook:
        stage(result, "notebook_04", notebook_04, "smoke" if quick else "full", args.notebook_timeout, save=save)
    result["complete"] = True
    emit(result, args.out)


if __name__ == "__main__":
    main()
