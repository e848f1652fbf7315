#!/usr/bin/env bash
# The whole GPU check in one script: build the addon against this machine's CUDA torch, run the
# GPU test suite, then the benchmarks, and print the table. For the lent GPU machine (called by
# scripts/device-run.sh after `source .device/env.sh`) or a GPU box with node_modules installed.
#
#   bash bench/gpu/run_all.sh                      (writes under $OUT, default /tmp/rpo-bench-gpu-out)
#
# Under $OUT (at most 8 files: the device tool brings back 8): run_all.log (everything), build.log,
# test_gpu.log, results.jsonl (one JSON line per benchmark), table.md.
#
# Time: RPO_DEADLINE (epoch seconds) bounds the whole run; each step is skipped when less time is
# left than it needs and is killed at the deadline, so the table is always printed. Default: one
# hour from now. RPO_SKIP_BUILD=1 / RPO_SKIP_TESTS=1 skip those phases; RPO_BENCH="a b ..." picks
# benchmarks by name (default: all, in the order below); RPO_BENCH_TINY=1 runs them on their tiny
# CPU shapes (a smoke test of this script). Nothing here asserts on time.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/rpo-bench-gpu-out}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/rpo-bench.XXXXXX)
LOG="$OUT/run_all.log"
exec > >(tee -a "$LOG") 2>&1
DEADLINE=${RPO_DEADLINE:-$(( $(date +%s) + 3600 ))}
export PYTHONUNBUFFERED=1
PY=${RPO_GPU_PYTHON:-python3}
export RPO_GPU_PYTHON=$PY
status=0

left() { echo $(( DEADLINE - $(date +%s) )); }
phase() { echo; echo "=== $1 ($(date -u +%H:%M:%S), $(left) s left)"; }
# step NAME NEEDS_SECONDS CMD...: runs CMD under the deadline (keeping 20 s for the summary).
step() {
  local name=$1 needs=$2; shift 2
  local budget=$(( $(left) - 20 ))
  if (( budget < needs )); then echo "--- $name: SKIPPED, ${budget} s left, it needs ~${needs} s"; return 0; fi
  local t0=$(date +%s)
  timeout --kill-after=10 "$budget" "$@"
  local rc=$?
  echo "--- $name: exit $rc after $(( $(date +%s) - t0 )) s"
  (( rc == 124 )) && echo "--- $name: TIMED OUT at the deadline"
  return $rc
}
wanted() { [[ -z "${RPO_BENCH:-}" || " $RPO_BENCH " == *" $1 "* ]]; }

phase "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | head -3
echo "node $(node --version), $(nvcc --version 2>/dev/null | tail -1), cmake $(cmake --version 2>/dev/null | head -1)"
$PY -c 'import torch, transformers; print("python torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)' 2>&1

if [[ "${RPO_SKIP_BUILD:-0}" != 1 ]]; then
  phase "build the addon against the torch of this machine (CMake finds nvcc; TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-unset: the visible GPU})"
  step build 60 node scripts/build-native.mjs > "$OUT/build.log" 2>&1 || status=1
  grep -E '^rpo:|-- rpo:|error|Error' "$OUT/build.log" | head -20
fi
node --import tsx -e "import('./lib/native.ts').then((n) => console.log('cudaInfo', JSON.stringify(n.cudaInfo()), 'tf32', n.allowTF32()))" 2>&1 || status=1

if [[ "${RPO_SKIP_TESTS:-0}" != 1 ]]; then
  phase "npm run test:gpu"
  step test:gpu 60 npx vitest run --project gpu > "$OUT/test_gpu.log" 2>&1 || status=1
  grep -E '\[(cuda-vs-cpu|kernel|bf16|hf-gpu)\]|✓|✗|×|FAIL|Test Files|Tests |skipped' "$OUT/test_gpu.log" | sed 's/\x1b\[[0-9;]*m//g' | tail -80
fi

phase "benchmarks"
T=bench/gpu
# RPO_BENCH_TINY=1: every benchmark on its tiny CPU shape (a smoke test of this script without a GPU).
TINY=(); [[ "${RPO_BENCH_TINY:-0}" == 1 ]] && TINY=(--tiny)
bench() { # bench NAME NEEDS CMD...: a benchmark writing $WORK/NAME.json
  local name=$1; shift
  wanted "$name" || return 0
  step "$name" "$@" || true
}
bench peak 20 $PY $T/peak_matmul.py --out "$WORK/peak.json"
PEAK=$($PY -c "import json; print(json.load(open('$WORK/peak.json'))['tflops'])" 2>/dev/null || echo "")
PEAKARG=(); [[ -n "$PEAK" ]] && PEAKARG=(--peak-tflops "$PEAK")
bench train-1b-rpo 45 node --import tsx $T/train_step.ts --model llama-1b "${PEAKARG[@]}" "${TINY[@]}" --out "$WORK/train-1b-rpo.json"
bench train-1b-pytorch 60 $PY $T/pytorch_train_step.py --model llama-1b "${TINY[@]}" --out "$WORK/train-1b-pytorch.json"
bench train-7b-rpo 150 node --import tsx $T/train_step.ts --model mistral-7b "${PEAKARG[@]}" "${TINY[@]}" --out "$WORK/train-7b-rpo.json"
bench train-7b-pytorch 90 $PY $T/pytorch_train_step.py --model mistral-7b "${TINY[@]}" --out "$WORK/train-7b-pytorch.json"
# Sampling: rpo (slots 35 and auto) vs transformers generate (dynamic cache; static cache + compile),
# greedy and sampling, forced spread stop points (a sample of AlpacaEval's 805 prompts: the
# minutes for all 805 are extrapolated; RPO_GEN_PROMPTS=805 for all of them).
bench gen-1b 240 env RPO_GPU_PYTHON="$PY" node --import tsx $T/generate.ts --model llama-1b --prompts "${RPO_GEN_PROMPTS:-140}" "${TINY[@]}" --out "$WORK/gen-1b.json"
bench train-1b-live-rpo 45 node --import tsx $T/train_step.ts --model llama-1b --reference live "${PEAKARG[@]}" "${TINY[@]}" --out "$WORK/train-1b-live-rpo.json"
bench train-1b-live-pytorch 60 $PY $T/pytorch_train_step.py --model llama-1b --reference live "${TINY[@]}" --out "$WORK/train-1b-live-pytorch.json"
# The fused head's CUDA kernel against the chunked LibTorch head, in the whole step.
bench train-1b-chunked-rpo 45 env RPO_CUDA_LOGPROB_KERNEL=0 node --import tsx $T/train_step.ts --model llama-1b "${PEAKARG[@]}" "${TINY[@]}" --out "$WORK/train-1b-chunked-rpo.json"

phase "table"
cat "$WORK"/*.json > "$OUT/results.jsonl" 2>/dev/null || true
node --import tsx $T/summary.ts "$OUT/results.jsonl" "$OUT/table.md" || status=1
rm -rf "$WORK"
echo; echo "run_all: exit $status ($(left) s before the deadline)"
exit $status
