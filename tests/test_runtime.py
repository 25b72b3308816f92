"""Device, precision, TF32 and CPU-flag choices, tested on any machine by faking what torch and
/proc/cpuinfo report."""
from pathlib import Path

import pytest
import torch

from cgan_course import runtime
from cgan_course.errors import CourseError

REPO = Path(__file__).resolve().parent.parent
CUDA, CPU, MPS = torch.device("cuda"), torch.device("cpu"), torch.device("mps")

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16

processor\t: 1
model name\t: some other core
flags\t\t: fpu

"""


@pytest.fixture
def gpu(monkeypatch):
    """A CUDA machine whose bf16 is ``native`` or only emulated (as on a T4 or V100)."""
    calls = []

    def fake(native: bool):
        def is_bf16_supported(including_emulation: bool = True) -> bool:
            calls.append(including_emulation)
            return native or including_emulation  # torch's default counts emulation as support

        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
        return calls
    return fake


def test_auto_precision_on_a_gpu_with_native_bf16_is_bf16_without_scaler(gpu):
    calls = gpu(native=True)
    dtype = runtime.autocast_dtype("auto", CUDA)
    assert dtype == torch.bfloat16 and not runtime.uses_grad_scaler(dtype)
    assert calls == [False]  # asked about native support only


def test_auto_precision_on_a_gpu_that_emulates_bf16_is_fp16_with_scaler(gpu):
    gpu(native=False)
    dtype = runtime.autocast_dtype("auto", CUDA)
    assert dtype == torch.float16 and runtime.uses_grad_scaler(dtype)


def test_auto_precision_on_cpus_follows_the_bf16_flags(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert runtime.autocast_dtype("auto", CPU) == torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    assert runtime.autocast_dtype("auto", CPU) == torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert runtime.autocast_dtype("auto", CPU) is None  # emulated bf16 is slower than fp32
    assert runtime.autocast_dtype("auto", MPS) is None


def test_explicit_precision_is_obeyed_and_a_wrong_one_named(gpu):
    gpu(native=False)
    assert [runtime.autocast_dtype(p, d) for p in ("fp32", "bf16", "fp16") for d in (CPU, CUDA)] == \
        [None, None, torch.bfloat16, torch.bfloat16, torch.float16, torch.float16]
    with pytest.raises(CourseError, match="precision must be one of auto, fp32, bf16, fp16, got 'fp8'"):
        runtime.autocast_dtype("fp8", CPU)


def test_autocast_is_off_for_fp32_and_on_for_bf16():
    x = torch.randn(4, 4)
    with runtime.autocast(CPU, None):
        assert (x @ x).dtype == torch.float32
    with runtime.autocast(CPU, torch.bfloat16):
        assert (x @ x).dtype == torch.bfloat16


def test_tf32_sets_both_switches_and_puts_them_back():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    for enabled in (True, False):
        with pytest.raises(KeyError), runtime.tf32(enabled):
            assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (enabled, enabled)
            raise KeyError  # put back even when the block fails
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_cpuinfo_is_read_once_from_the_first_processor(tmp_path, monkeypatch):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    info = runtime.cpu_info(str(path))
    assert info["model name"] == "AMD EPYC 9R14 96-Core Processor"
    monkeypatch.setattr(runtime, "cpu_info", lambda: info)
    assert runtime.cpu_flags() == {"fpu", "sse2", "avx2", "avx512f", "avx512_bf16"}
    assert runtime.cpu_has_native_bf16() and runtime.cpu_model() == "AMD EPYC 9R14 96-Core Processor"
    monkeypatch.setattr(runtime, "cpu_info", lambda: {"Features": "fp asimd bf16"})  # Arm spells it Features
    assert runtime.cpu_flags() == {"fp", "asimd", "bf16"} and not runtime.cpu_has_native_bf16()


def test_no_cpuinfo_means_no_flags(tmp_path, monkeypatch):
    assert runtime.cpu_info(str(tmp_path / "missing")) == {}  # not Linux
    monkeypatch.setattr(runtime, "cpu_info", lambda: {})
    assert runtime.cpu_flags() == frozenset() and not runtime.cpu_has_native_bf16()
    assert runtime.cpu_model()  # what platform knows, never empty


def test_this_machines_flags_come_from_its_cpuinfo():
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    first = text.split("\n\n")[0]
    expected = any(f" {flag}" in first for flag in ("avx512_bf16", "amx_bf16"))
    assert runtime.cpu_has_native_bf16() == expected


def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert runtime.pick_device("auto") == CPU
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert runtime.pick_device("auto") == MPS
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.pick_device("auto") == CUDA


@pytest.mark.parametrize("name,cuda,match", [
    ("banana", True, r"device 'banana' is not a device name; use auto, cpu, cuda, cuda:N or mps"),
    ("cuda", False, r"device 'cuda' asked for, but CUDA is not available here; use --device cpu"),
    ("cuda:3", True, r"device 'cuda:3' asked for, but this machine has 1 CUDA device\(s\)"),
    ("mps", False, r"device 'mps' asked for, but MPS is not available here"),
    ("meta", True, r"device 'meta' is not supported by the course"),
])
def test_unusable_devices_are_named(monkeypatch, name, cuda, match):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: int(cuda))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(CourseError, match=match):
        runtime.pick_device(name)


