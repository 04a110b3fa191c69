#!/usr/bin/env bash
# The GPU figures of issue 12 in one go: one GPU, about ten minutes, run as is from anywhere.
#
#   benchmarks/gpu_check.sh             # on the GPU machine
#   benchmarks/gpu_check.sh --dry-run   # the same steps on the CPU with tiny sizes (--cpu too)
#
# (0) correctness on the GPU: gate-noise bits equal the CPU's (eager and compiled), a fused
#     member trained with the compiled (CUDA-graph) step equals its single run;
# (a) fused throughput, per-member gate noise, test evaluation included: MLP 300-100 at
#     K = 64, 256 and LeNet-5 at K = 32, 128 (fp32; then K = 256 / 128 in tf32), and the
#     LeNet-5 conv formulations at K = 128 (benchmarks/gpu_throughput.py, lenet_fused.py);
# (b) a real sweep through `l0sweep serve` (local Ray, SQLite): 4 packs x 4 members with
#     gpus_per_trial 0.25, each trial completed with its node and GPU recorded and its
#     downloaded model reproducing its accuracy (benchmarks/gpu_sweep.py; needs Ray);
# (c) one summary line per figure at the end. Logs in $OUT (default: a new temp directory).
# Environment: PYTHON (default python3), OUT, STEP_TIMEOUT (seconds per step, default 300),
# L0SWEEP_DATA_DIR (where the MNIST cache is; without it the steps use MNIST-shaped data).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
OUT="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/l0sweep-gpu-check.XXXXXX")}"
mkdir -p "$OUT"
DRY=()
case "${1:-}" in
  --dry-run | --cpu) DRY=(--dry-run) ;;
  "") ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac
status=0

run() {  # run NAME COMMAND...: log to $OUT/NAME.log, note a failure, go on
  local name=$1
  shift
  echo "== $name: $*"
  timeout "${STEP_TIMEOUT:-300}" "$@" 2>&1 | grep -v "^W[0-9]\{4\} " | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  if [[ $rc -ne 0 ]]; then
    echo "FIGURE $name: step failed (exit $rc; 124 = over ${STEP_TIMEOUT:-300} s), see $OUT/$name.log" |
      tee -a "$OUT/$name.log"
    status=1
  fi
}

start=$(date +%s)
"$PY" - <<'PYEOF' | tee "$OUT/machine.log"
import os, torch
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
try:
    import ray
    ray_version = ray.__version__
except ImportError:
    ray_version = "not installed"
print(f"machine: torch {torch.__version__}, GPU {gpu}, {os.cpu_count()} CPUs, Ray {ray_version}")
PYEOF

# correctness first: the GPU's noise bits = the CPU's, fused member = single run (compiled too)
run correctness "$PY" benchmarks/gpu_correctness.py "${DRY[@]}"

# (a) throughput
run throughput "$PY" benchmarks/gpu_throughput.py "${DRY[@]}"
if [[ ${#DRY[@]} -eq 0 ]]; then
  run throughput_tf32 "$PY" benchmarks/gpu_throughput.py --precision tf32 --mlp-ks 256 --lenet-ks 128
  run lenet_formulations "$PY" benchmarks/lenet_fused.py --ks 128 --rounds 1
else
  run lenet_formulations "$PY" benchmarks/lenet_fused.py --dry-run
fi

# (b) a sweep through l0sweep serve
if "$PY" -c "import ray" 2>/dev/null; then
  run sweep "$PY" benchmarks/gpu_sweep.py "${DRY[@]}" --workdir "$OUT/sweep"
else
  echo "FIGURE sweep: not run, Ray is not installed for $PY" | tee "$OUT/sweep.log"
  status=1
fi

# (c) one line per figure
echo
echo "== summary ($(($(date +%s) - start)) s; logs in $OUT)"
cat "$OUT/machine.log"
grep -h "^FIGURE" "$OUT"/correctness.log "$OUT"/throughput*.log "$OUT"/lenet_formulations.log "$OUT"/sweep.log 2>/dev/null |
  sed 's/^FIGURE //'
exit $status
