"""Where the course computes and in what precision: the device, autocast, TF32 and the CPU's flags.

Training, the classifier and the benchmarks all ask these questions; the answers live here so
that none of them imports another to get them (this module imports only ``errors``).

    pick_device("auto")                   # CUDA, then Apple's MPS, then the CPU
    autocast_dtype("auto", device)        # bf16 where it is native, fp16 (+ GradScaler) on other GPUs
    with autocast(device, dtype): ...     # a no-op context for dtype None (full fp32)
"""
from __future__ import annotations

import contextlib
import functools
import os
import platform
from typing import Iterator

import torch

from .errors import CourseError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple's MPS, then the CPU; any other name must be usable here."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise CourseError(f"device {name!r} is not a device name; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CourseError(f"device {name!r} asked for, but CUDA is not available here; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise CourseError(f"device {name!r} asked for, but this machine has {torch.cuda.device_count()} "
                          "CUDA device(s); use cuda:0 or --device auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CourseError(f"device {name!r} asked for, but MPS is not available here; use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise CourseError(f"device {name!r} is not supported by the course; use auto, cpu, cuda, cuda:N or mps")
    return device


# ----------------------------------------------------------------------------------------------
# The CPU


@functools.lru_cache(maxsize=None)
def cpu_info(path: str = "/proc/cpuinfo") -> dict[str, str]:
    """The first processor's ``key: value`` lines of ``/proc/cpuinfo`` ({} where there is none:
    not Linux). The course's one reader of that file."""
    info: dict[str, str] = {}
    try:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    break  # the end of the first processor's block; the others repeat it
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
    except OSError:
        pass
    return info


def cpu_model() -> str:
    """The CPU's marketing name, e.g. "AMD EPYC 9R14 ..." (what ``platform`` knows off Linux)."""
    return cpu_info().get("model name") or platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (x86 ``flags``, Arm ``Features``), e.g. {"avx2", "avx512_bf16"}."""
    info = cpu_info()
    return frozenset((info.get("flags") or info.get("Features") or "").split())


def usable_cores() -> int:
    """Cores this process may run on (a container's CPU set can be smaller than os.cpu_count())."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 dot-product instructions (AVX512-BF16 or AMX: recent Xeon, EPYC
    Zen 4+). There bf16 autocast trains faster than fp32; elsewhere bf16 is emulated and slower
    (docs/RESULTS.md, benchmarks/train_throughput.py)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


# ----------------------------------------------------------------------------------------------
# Precision


def cuda_has_native_bf16() -> bool:
    """True on GPUs that compute bf16 in hardware (Ampere and newer). ``including_emulation=False``
    matters: by default torch also says yes on a T4 or V100, which only emulate bf16, slowly."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` (auto | fp32 | bf16 | fp16) on ``device``; None is full fp32.

    "auto": on CUDA bf16 where it is native, else fp16 (which needs a GradScaler: see
    ``uses_grad_scaler``); on the CPU bf16 where it is native, else fp32; on MPS fp32.
    """
    if precision not in PRECISIONS:
        raise CourseError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return _DTYPES[precision]
    if device.type == "cuda":
        return torch.bfloat16 if cuda_has_native_bf16() else torch.float16
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    return None


def uses_grad_scaler(dtype: torch.dtype | None) -> bool:
    """fp16 gradients underflow to zero without loss scaling; bf16 has fp32's range and needs none."""
    return dtype == torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """``torch.autocast`` for ``dtype`` on ``device``, switched off (plain fp32) for None."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def precision_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """Let (or forbid) CUDA run fp32 matmuls and convolutions as TF32 inside the block.

    TF32 keeps fp32's range with a 10-bit mantissa: up to ~8x faster fp32 math on Ampere and
    newer GPUs, at about fp16's precision. Both of torch's switches are set (cuDNN's is on by
    default in PyTorch, the matmul one off) and put back afterwards. No effect on CPU or MPS.
    """
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def uses_channels_last(setting: str, device: torch.device) -> bool:
    """Whether ``channels_last`` ("auto" | "on" | "off") puts G and D in NHWC layout on ``device``.

    "auto" turns it on for CUDA (NVIDIA's advice for Tensor Cores) and for the CPU, where oneDNN's
    convolutions are NHWC-native and it was measured faster (benchmarks/train_throughput.py;
    docs/RESULTS.md). Apple's MPS stays NCHW.
    """
    return setting == "on" or (setting == "auto" and device.type in ("cuda", "cpu"))


# ----------------------------------------------------------------------------------------------
# Modes


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run ``model`` in eval mode and restore its mode afterwards, also after an error. In train
    mode BatchNorm would use the statistics of the batch at hand (a picture would change with how
    many are drawn) and overwrite its running statistics; spectral norm would step its power
    iteration. Every measurement and every picture goes through here."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
