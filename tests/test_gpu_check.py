"""Issue 25: the prepared GPU check runs end to end on the CPU (its numbers mean nothing here), so a
short GPU lease is not spent finding a typo. The notebook stage is the course runner's, tested in
test_notebooks.py; it is left out here to keep this test to seconds."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_gpu_check_runs_on_the_cpu_and_writes_its_json(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--cpu", "--no-notebook", "--steps", "1",
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == "gpu_check" and result["quick"] is True
    assert result["throughput"]["fp32"]["images_per_s"] > 0
    assert result["throughput"]["tf32"] == {"skipped": "CUDA only"}
    assert "skipped" in result["host_syncs"] and "notebook_04" not in result
    assert proc.stdout.strip().splitlines()[-1].startswith("JSON: ") and result["complete"] is True


def test_the_shell_wrapper_is_bounded_and_passes_its_arguments():
    text = (REPO / "benchmarks" / "gpu_check.sh").read_text()
    assert "timeout 480 python benchmarks/gpu_check.py" in text and '"$@"' in text
