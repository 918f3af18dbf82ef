#!/usr/bin/env bash
# Every family's benchmark in one command (issue 14).
#
#   bash benchmarks/run_gpu.sh                 # on a machine with a CUDA GPU: < 8 min, tables in
#                                              # benchmarks/results/gpu/ (+ summary.md)
#   bash benchmarks/run_gpu.sh --smoke         # CPU, toy sizes, seconds: keeps the scripts alive in CI
#   bash benchmarks/run_gpu.sh --out DIR [--only NAME ...] [--budget SECONDS]
#   bash benchmarks/run_gpu.sh --only kinetics_finish   # deferred clip geometry's finish step on the GPU (no PyAV)
#
# GPU mode runs each script at its documented GPU setting in fp32, then (where the script does not
# pick its own precision) again under bf16 autocast; slowfast_speed.py adds its channels-last-3d and
# torch.compile rows. The sweep stops starting runs when --budget (450 s) is spent and says so in
# summary.md. Smoke mode writes to a temporary folder unless --out is given.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python; fi
fi
smoke=0
out=""
rest=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --out) out="$2"; shift ;;
    *) rest+=("$1") ;;
  esac
  shift
done
if [ "$smoke" = 1 ]; then
  if [ -z "$out" ]; then out="$(mktemp -d)"; fi
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" HF_HUB_OFFLINE=1
  exec "$PY" benchmarks/run_all.py --smoke --device cpu --out "$out" ${rest[@]+"${rest[@]}"}
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "run_gpu.sh: no CUDA device visible; run with --smoke on a CPU machine" >&2
  exit 2
fi
out="${out:-benchmarks/results/gpu}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > /dev/stderr || true
exec "$PY" benchmarks/run_all.py --device cuda --out "$out" ${rest[@]+"${rest[@]}"}
