"""Training throughput: the seed tutorials' input pipeline vs the course's, and the speed options.

    python benchmarks/train_throughput.py                  # the real measurement (see README for time)
    python benchmarks/train_throughput.py --quick          # seconds: checks the plumbing only
    python benchmarks/train_throughput.py --compile        # CUDA: also try torch.compile

Three configurations, one process, same images (a class-folder tree, default the committed
1,000-image sample), images/s = real images consumed per second (as ``train()`` logs it):

  (a) the seed tutorials' way: a Dataset that decodes each JPEG/PNG with PIL on every access,
      ToTensor + Normalize(0.5, 0.5), a DataLoader with worker processes, feeding the classic
      CGAN (BCE, Adam(2e-4, (0.5, 0.999)), EMA) through ``train(cfg, batches=...)``;
  (b) the same classic model and ``train()`` fed by the course's in-memory ``DeviceBatches``;
  (c) the course's best configuration (projection cGAN, the pretrained recipe) with the speed
      options ``train()`` turns on for this device by default.

(a) and (b) run the same ``gan_step``; only the batches differ. For both it also reports the
data-wait share: time from asking for the next batch until it is on the device, over the total
step time. Then an ablation of each speed option (threads,
channels_last, precision, compile) on the (c) model, and FLOPs per G+D step
(``torch.utils.flop_counter``) with the achieved fraction of the device's peak on CUDA.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, emit, hardware, sync, table, usable_cores  # noqa: E402

from cgan_course.data import IMAGE_SUFFIXES, DeviceBatches, load_image_folder  # noqa: E402
from cgan_course.models import ModelConfig  # noqa: E402
from cgan_course.runtime import autocast_dtype, pick_device, precision_name, uses_channels_last  # noqa: E402
from cgan_course.train import GANLoss, Placement, TrainConfig, TrainState, gan_step, resolved_loss, train  # noqa: E402

# dense (no sparsity) peak TFLOP/s from NVIDIA's datasheets: (name substring, bf16/fp16, tf32).
# Checked in order, so the more specific names come first. Pass --peak-tflops for anything else.
PEAK_TFLOPS = [
    ("H200", 989.4, 494.7),
    ("H100 PCIe", 756.5, 378.0),
    ("H100", 989.4, 494.7),  # SXM5 ("NVIDIA H100 80GB HBM3")
    ("A100", 312.0, 156.0),
    ("L40S", 362.1, 183.0),
    ("L4", 121.0, 60.0),
]


def classic_config(num_classes: int) -> ModelConfig:
    """The classic CGAN of the classroom comparison (and of the seed tutorials)."""
    return ModelConfig(arch="classic", g_width=64, d_width=64, num_classes=num_classes)


def best_config(num_classes: int) -> ModelConfig:
    """The projection cGAN this benchmark has always measured (G at width 48, D at 32: wider than
    the committed generator's 32/32 in ``training/recipes.py``), kept so its results stay comparable."""
    return ModelConfig(arch="projection", backbone="dcgan", g_width=48, d_width=32, num_classes=num_classes)


# ----------------------------------------------------------------------------------------------
# (a) The seed tutorials' pipeline


class DecodingFolder(Dataset):
    """``<folder>/<class>/*.jpg|png``, decoded with PIL on every access, as the tutorials do."""

    def __init__(self, folder: Path, transform):
        self.classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        self.items = [(f, c) for c, name in enumerate(self.classes)
                      for f in sorted((folder / name).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
        if not self.items:
            raise SystemExit(f"error: {folder} holds no class folders with images "
                             f"(expected {folder}/<class>/*.jpg|png); pass --folder.")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        from PIL import Image

        path, label = self.items[i]
        with Image.open(path) as im:
            return self.transform(im.convert("RGB")), label


def tutorial_batches(loader: DataLoader, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The tutorials' loop over a DataLoader: a new pass (and, without persistent workers, new
    worker processes) every epoch, each batch copied to the device."""
    while True:
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def run_tutorial(folder: Path, cfg: TrainConfig, device: torch.device, num_workers: int, persistent: bool,
                 warmup: int, steps: int) -> dict:
    """(a): decode-per-access Dataset + DataLoader feeding ``train()``. The data wait is timed
    around each batch, which synchronises the device once per step, as tutorial loops do with
    ``loss.item()``."""
    from torchvision import transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)])
    ds = DecodingFolder(folder, tf)
    if len(ds) < cfg.batch_size:
        raise SystemExit(f"error: {folder} has {len(ds)} images, fewer than one batch of {cfg.batch_size}; "
                         "lower --batch-size.")
    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, num_workers=num_workers, drop_last=True,
                        pin_memory=device.type == "cuda", persistent_workers=persistent and num_workers > 0)
    res = run_train(cfg, lambda: tutorial_batches(loader, device), warmup, steps, time_data=True)
    return {**res, "images": len(ds), "batches_per_epoch": len(ds) // cfg.batch_size}


# ----------------------------------------------------------------------------------------------
# (b), (c) and the ablation: the course's train()


class TimedBatches:
    """Wraps a batch iterator and records how long each ``next()`` takes (device synchronised on both sides)."""

    def __init__(self, batches: Iterator, device: torch.device):
        self.batches, self.device, self.waits = batches, device, []

    def __iter__(self):
        return self

    def __next__(self):
        sync(self.device)
        t0 = time.perf_counter()
        batch = next(self.batches)
        sync(self.device)
        self.waits.append(time.perf_counter() - t0)
        return batch


def course_batches(cfg: TrainConfig, data: tuple[torch.Tensor, torch.Tensor], device: torch.device) -> DeviceBatches:
    """The input pipeline ``train(cfg, data)`` builds for itself."""
    return DeviceBatches(*data, cfg.batch_size, device, hflip=cfg.hflip, seed=cfg.seed)


def run_train(cfg: TrainConfig, make_batches: Callable[[], Iterator], warmup: int, steps: int,
              time_data: bool = False) -> dict:
    """Throughput of ``train(cfg, batches=make_batches())`` over ``steps`` steps after ``warmup``
    (from its own log rows). ``time_data`` wraps the batches in ``TimedBatches`` to measure the data wait."""
    batches = TimedBatches(make_batches(), pick_device(cfg.device)) if time_data else make_batches()
    with tempfile.TemporaryDirectory(prefix="cgan-bench-") as tmp:
        cfg = dataclasses.replace(cfg, steps=warmup + steps, log_every=warmup, sample_every=0, ckpt_every=0,
                                  progress=False, resume=False, max_minutes=0.0, out=tmp)
        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            result = train(cfg, batches=batches)
    first, last = result.history[0], result.history[-1]  # rows at step `warmup` and at the end
    seconds = last["time_s"] - first["time_s"]
    measured = last["step"] - first["step"]
    out = {"images_per_s": measured * cfg.d_steps * cfg.batch_size / seconds, "ms_per_step": 1000 * seconds / measured,
           "log": log.getvalue().strip().splitlines()[0] if log.getvalue().strip() else ""}
    if time_data:
        out["data_wait_share"] = sum(batches.waits[first["step"] * cfg.d_steps:last["step"] * cfg.d_steps]) / seconds
    return out


def measure(cfg: TrainConfig, make_batches: Callable[[], Iterator], warmup: int, steps: int, device: torch.device,
            time_data: bool = False) -> dict:
    """``run_train``; on a GPU the throughput comes from a separate, untimed run, because timing the
    data wait adds two synchronisations per step (on the CPU it costs nothing)."""
    if not time_data or device.type == "cpu":
        return run_train(cfg, make_batches, warmup, steps, time_data)
    res = run_train(cfg, make_batches, warmup, steps)
    res["data_wait_share"] = run_train(cfg, make_batches, warmup, steps, time_data=True)["data_wait_share"]
    return res


def resolved_options(cfg: TrainConfig, device: torch.device) -> dict:
    """What train() will actually use for cfg's 'auto' settings on this device."""
    return {"precision": precision_name(autocast_dtype(cfg.precision, device)),
            "channels_last": uses_channels_last(cfg.channels_last, device), "compile": cfg.compile,
            "threads": (cfg.threads or usable_cores()) if device.type == "cpu" else None}


def ablation_variants(base: TrainConfig, device: torch.device, opts: dict, cores: int, try_compile: bool) -> list:
    """One-factor-at-a-time variants of the (c) configuration: (option, value, config)."""
    flip = {"fp32": "bf16", "bf16": "fp32", "fp16": "fp32"}
    rows = []
    if device.type == "cpu" and cores > 1:
        rows.append(("threads", "1", dataclasses.replace(base, threads=1)))
    rows.append(("channels_last", "off" if opts["channels_last"] else "on",
                 dataclasses.replace(base, channels_last="off" if opts["channels_last"] else "on")))
    rows.append(("precision", flip[opts["precision"]], dataclasses.replace(base, precision=flip[opts["precision"]])))
    if try_compile:
        rows.append(("compile", "off" if opts["compile"] else "on", dataclasses.replace(base, compile=not opts["compile"])))
    return rows


# ----------------------------------------------------------------------------------------------
# FLOPs


def step_flops(cfg: TrainConfig, device: torch.device) -> int:
    """FLOPs of one ``gan_step`` in fp32 (forward and backward; a multiply-add counts 2), counted
    by ``torch.utils.flop_counter.FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    S, B = cfg.model.image_size, cfg.batch_size
    x_real = torch.rand(B, 3, S, S, device=device) * 2 - 1
    y_real = torch.randint(0, cfg.model.num_classes, (B,), device=device)
    state = TrainState.new(cfg, iter(lambda: (x_real, y_real), None), Placement(device))  # the same batch forever
    with FlopCounterMode(display=False) as counter:
        gan_step(state, GANLoss.named(resolved_loss(cfg), cfg.ac_weight), cfg)
    return int(counter.get_total_flops())


def peak_tflops(device: torch.device, precision: str, override: float | None) -> tuple[float | None, str]:
    if override:
        return override, f"{override} TFLOP/s (--peak-tflops)"
    if device.type != "cuda":
        return None, "no peak for CPUs (pass --peak-tflops)"
    name = torch.cuda.get_device_name(device)
    for key, bf16, tf32 in PEAK_TFLOPS:
        if key in name:
            value = tf32 if precision == "fp32" else bf16
            kind = "TF32" if precision == "fp32" else "BF16/FP16"
            return value, f"{value} TFLOP/s dense {kind} ({key} datasheet, matched {name!r})"
    return None, f"unknown GPU {name!r}: pass --peak-tflops"


# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--folder", default=str(REPO_ROOT / "data" / "cifar10-sample" / "train"),
                   help="a folder of class folders of 32x32 images (default: the committed 1,000-image sample)")
    p.add_argument("--num-workers", type=int, default=2, help="DataLoader workers for (a) (default 2)")
    p.add_argument("--persistent-workers", action=argparse.BooleanOptionalAction, default=True,
                   help="keep (a)'s workers across epochs: the steady state of a large dataset, where "
                        "worker start-up is amortised over many batches (default: on)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=None, help="measured steps per configuration (default: 30 CPU, 300 GPU)")
    p.add_argument("--warmup", type=int, default=None, help="steps not measured (default: 5 CPU, 50 GPU)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    p.add_argument("--compile", action="store_true", help="include torch.compile in (c) and the ablation (CUDA)")
    p.add_argument("--no-ablation", action="store_true", help="skip the speed-option ablation")
    p.add_argument("--repeats", type=int, default=3,
                   help="ablation: interleaved runs per option, median reported (default 3; a single 30-step run "
                        "varies by ~10%% on a shared CPU)")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak for the fraction-of-peak line")
    p.add_argument("--quick", action="store_true", help="tiny run (seconds) that checks the plumbing; numbers meaningless")
    p.add_argument("--out", help="also save the JSON result to this file")
    args = p.parse_args(argv)

    device = pick_device(args.device)
    gpu = device.type == "cuda"
    steps = args.steps or (2 if args.quick else 300 if gpu else 30)
    warmup = args.warmup or (1 if args.quick else 50 if gpu else 5)
    batch = 16 if args.quick and args.batch_size == 64 else args.batch_size
    cores = usable_cores()
    if device.type == "cpu":
        torch.set_num_threads(cores)
    folder = Path(args.folder).expanduser().resolve()
    if not folder.is_dir():
        raise SystemExit(f"error: --folder {folder} is not a folder (expected <folder>/<class>/*.jpg|png).")
    print(f"device {device}, {cores} usable cores, batch {batch}, {warmup} warm-up + {steps} measured steps"
          f"{' (QUICK: plumbing check, numbers meaningless)' if args.quick else ''}")

    images, labels, classes = load_image_folder(folder.parent, folder.name, cache=False)
    data = (images, labels)
    n_cls = len(classes)
    classic = TrainConfig(model=classic_config(n_cls), loss="bce", beta1=0.5, batch_size=batch, ema_decay=0.999,
                          device=str(device), threads=cores if device.type == "cpu" else 0, hflip=True)
    best = TrainConfig(model=best_config(n_cls), loss="hinge", beta1=0.5, batch_size=batch, ema_decay=0.999,
                       device=str(device), threads=cores if device.type == "cpu" else 0, compile=args.compile and gpu)
    # (b) is the like-for-like of (a): fp32, no channels_last, on every device, so that (b)/(a)
    # isolates the input pipeline; (c) and the ablation start from train()'s "auto" defaults
    classic = dataclasses.replace(classic, precision="fp32", channels_last="off")

    print(f"(a) tutorial pipeline: {args.num_workers} workers ...", flush=True)
    res_a = run_tutorial(folder, classic, device, args.num_workers, args.persistent_workers, warmup, steps)
    print("(b) course pipeline, classic CGAN ...", flush=True)
    res_b = measure(classic, lambda: course_batches(classic, data, device), warmup, steps, device, time_data=True)
    print("(c) course best configuration ...", flush=True)
    opts_c = resolved_options(best, device)
    res_c = measure(best, lambda: course_batches(best, data, device), warmup, steps, device)

    rows = [["(a) tutorial: PIL decode + ToTensor/Normalize + DataLoader + train()", "classic g64/d64, fp32",
             res_a["images_per_s"], res_a["ms_per_step"], 100 * res_a["data_wait_share"]],
            ["(b) course: DeviceBatches + train()", "classic g64/d64, fp32",
             res_b["images_per_s"], res_b["ms_per_step"], 100 * res_b["data_wait_share"]],
            ["(c) course best: DeviceBatches + train()",
             f"projection g48/d32, {opts_c['precision']}, channels_last {'on' if opts_c['channels_last'] else 'off'}"
             f"{', compile' if opts_c['compile'] else ''}", res_c["images_per_s"], res_c["ms_per_step"], None]]
    print()
    print(table(rows, ["pipeline", "model / options", "images/s", "ms/step", "data wait %"]))
    ratios = {"b_over_a": res_b["images_per_s"] / res_a["images_per_s"],
              "c_over_a": res_c["images_per_s"] / res_a["images_per_s"],
              "c_over_b": res_c["images_per_s"] / res_b["images_per_s"]}
    print(f"\nspeed-up: (b)/(a) {ratios['b_over_a']:.2f}x (same model: the input pipeline alone), "
          f"(c)/(a) {ratios['c_over_a']:.2f}x, (c)/(b) {ratios['c_over_b']:.2f}x")
    print(f"(a): {res_a['images']} images, {res_a['batches_per_epoch']} batches per epoch, "
          f"persistent workers {'on' if args.persistent_workers else 'off'}")

    ablation = []
    if not args.no_ablation:
        print(f"\nablation on the (c) model, one option changed at a time, median of {args.repeats} interleaved "
              "runs ...", flush=True)
        variants = [("(c) as above", "auto", best), *ablation_variants(best, device, opts_c, cores, args.compile and gpu)]
        speeds: list[list[float]] = [[res_c["images_per_s"]]] + [[] for _ in variants[1:]]
        for rep in range(args.repeats):
            for i, (option, value, cfg) in enumerate(variants):
                if rep == 0 and i == 0:
                    continue  # (c)'s first run is the one above
                if rep and (not speeds[i] or statistics.median(speeds[i]) < 0.5 * statistics.median(speeds[0])):
                    continue  # failed (not retried), or under half (c)'s speed: one run settles it (emulated bf16)
                try:
                    speeds[i].append(measure(cfg, lambda: course_batches(cfg, data, device), warmup, steps,
                                             device)["images_per_s"])
                except Exception as err:  # e.g. compile without a working compiler; report, keep going
                    print(f"  {option}={value}: failed ({type(err).__name__}: {str(err).splitlines()[0][:120]})")
        base_speed = statistics.median(speeds[0])
        for (option, value, cfg), runs in zip(variants, speeds):
            if runs:
                speed = statistics.median(runs)
                ablation.append({"option": option, "value": value, **resolved_options(cfg, device),
                                 "images_per_s": speed, "ms_per_step": 1000 * batch * cfg.d_steps / speed,
                                 "runs_images_per_s": runs, "vs_c": speed / base_speed})
        if device.type == "cpu":
            torch.set_num_threads(cores)  # train(threads=1) changed the process-wide setting
        print(table([[r["option"], r["value"], r["images_per_s"], r["ms_per_step"], r["vs_c"]] for r in ablation],
                    ["changed option", "to", "images/s", "ms/step", "x vs (c)"]))
        faster = [r for r in ablation[1:] if r["vs_c"] > 1.03]
        print("verdict: " + ("the defaults train() uses on this device are the fastest measured (within 3%)"
                             if not faster else "faster than the defaults here: " +
                             ", ".join(f"{r['option']}={r['value']} ({r['vs_c']:.2f}x)" for r in faster)))

    print("\ncounting FLOPs of one G+D step ...", flush=True)
    flops = {"classic": step_flops(classic, device), "best": step_flops(best, device)}
    # (b) runs fp32 (TF32 matmuls on CUDA), (c) its own precision: each against its own peak
    peaks = {"classic": peak_tflops(device, "fp32", args.peak_tflops),
             "best": peak_tflops(device, opts_c["precision"], args.peak_tflops)}
    achieved = {"classic": flops["classic"] / (res_b["ms_per_step"] / 1000) / 1e12,
                "best": flops["best"] / (res_c["ms_per_step"] / 1000) / 1e12}
    fraction = {k: achieved[k] / peaks[k][0] if peaks[k][0] else None for k in achieved}
    frows = [["classic g64/d64 (b)", flops["classic"] / 1e9, 1000 * achieved["classic"],
              100 * fraction["classic"] if fraction["classic"] else None, peaks["classic"][1]],
             ["projection g48/d32 (c)", flops["best"] / 1e9, 1000 * achieved["best"],
              100 * fraction["best"] if fraction["best"] else None, peaks["best"][1]]]
    print(table(frows, ["model", "GFLOP/step", "achieved GFLOP/s", "% of peak", "peak used"]))
    print("FLOPs: torch.utils.flop_counter over one G+D step (forward + backward, multiply-add = 2 FLOPs)")

    emit({"benchmark": "train_throughput", "quick": args.quick, "hardware": hardware(device),
          "settings": {"batch_size": batch, "warmup_steps": warmup, "measured_steps": steps, "folder": str(folder),
                       "images": res_a["images"], "num_workers": args.num_workers,
                       "persistent_workers": args.persistent_workers},
          "tutorial_dataloader": {k: v for k, v in res_a.items() if k != "log"}, "course_classic": {k: v for k, v in res_b.items() if k != "log"},
          "course_best": {**{k: v for k, v in res_c.items() if k != "log"}, "options": opts_c},
          "ratios": ratios, "ablation": ablation,
          "flops_per_step": flops, "achieved_tflops": achieved,
          "peak_tflops": {k: v[0] for k, v in peaks.items()}, "peak_note": {k: v[1] for k, v in peaks.items()},
          "fraction_of_peak": fraction}, args.out)


if __name__ == "__main__":
    main()
