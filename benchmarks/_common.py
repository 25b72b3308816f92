"""Shared helpers of the benchmark scripts: hardware description, tables, the JSON line, timing.

Not a benchmark itself. Every script ends with exactly one line ``JSON: {...}`` built by ``emit``.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import sys
from pathlib import Path

import torch

from cgan_course import runtime
from cgan_course.paths import REPO_ROOT
from cgan_course.runtime import usable_cores  # noqa: F401 - the benchmarks import it from here


def cpu_flags() -> list[str]:
    """The CPU features that decide whether bf16 pays off on a CPU (AVX-512 BF16, AMX)."""
    have = runtime.cpu_flags()
    return [w for w in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if w in have]


def hardware(device: torch.device | str = "cpu") -> dict:
    """What the numbers were measured on; part of every JSON line."""
    device = torch.device(device)
    info = {
        "cpu": runtime.cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "torch_threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    cuda=torch.version.cuda, capability=f"{props.major}.{props.minor}")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    if load is not None:  # a busy machine gives slow numbers; the load says whether it was idle
        info["load_avg_1min_at_end"] = round(load[0], 2)
    return info


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a wall-clock reading covers it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def table(rows: list[list], headers: list[str]) -> str:
    """A plain-text table; numbers right-aligned, text left-aligned."""
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) for i in range(len(headers))]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in cells])


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}" if abs(v) < 1 else f"{v:.1f}"
    return str(v)


def emit(result: dict, out: str | None) -> None:
    """Print the one machine-readable line (last line of the output) and optionally save it."""
    line = json.dumps(result, default=_json_default)
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2, default=_json_default) + "\n")
        print(f"saved {path}")
    print("JSON: " + line, flush=True)


def _json_default(obj):
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
