#!/usr/bin/env bash
# The prepared check for a lent GPU (issue 25): throughput of the pretrained recipe in fp32, TF32,
# bf16, fp16 and bf16 + torch.compile, host syncs per step, and a short full-mode run of notebook 04,
# into benchmarks/results/gpu_check.json, in at most 8 minutes (the whole script is bounded).
#   bash benchmarks/gpu_check.sh          # on the GPU machine, from the repository root
#   bash benchmarks/gpu_check.sh --cpu    # seconds on a CPU: checks the plumbing (numbers meaningless)
# Extra arguments go to benchmarks/gpu_check.py (e.g. --out FILE, --no-notebook).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .venv ]; then
  . .venv/bin/activate
elif ! python3 -c "import torch, cgan_course" 2>/dev/null; then  # the lent machine may be offline: try the system
  python3 -m venv .venv && . .venv/bin/activate && pip install -q -r requirements.txt -e .
fi
out=benchmarks/results/gpu_check.json
for arg in "$@"; do [ "$arg" = "--cpu" ] && out=runs/gpu_check-cpu.json; done
exec timeout 480 python benchmarks/gpu_check.py --out "$out" "$@"
