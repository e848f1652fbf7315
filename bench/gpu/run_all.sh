#!/usr/bin/env bash
# The whole GPU check in one script: build the addon against this machine's CUDA torch, run the
# GPU test suite, then the benchmarks, and print the table. For the lent GPU machine (called by
# scripts/device-run.sh after `source .device/env.sh`) or a GPU box with node_modules installed.
#
#   bash bench/gpu/run_all.sh                      (writes under $OUT, default /tmp/rpo-bench-gpu-out)
#
# Under $OUT (at most 8 files: the device tool brings back 8): run_all.log (everything), build.log,
# test_gpu.log, results.jsonl (one JSON line per benchmark), table.md, ncu-decode.csv (where ncu is).
#
# Time: RPO_DEADLINE (epoch seconds) bounds the whole run; each step has its own cap, is skipped
# when less time is left than it needs and is killed at the deadline (less RPO_RESERVE_SECONDS,
# 25, for the table), so the table is always printed and says which steps were skipped or cut.
# The steps run most wanted first: build, test:gpu, then the benches: 7B training on the length
# mix, 1.1B sampling, the 7B memory table against `rpo plan`, the profiles (torch.profiler of
# the anchors, Nsight Compute of rpo's decode step), 1B training, 7B sampling, TRL. Default deadline: one hour from now.
# RPO_GPU_DRY_RUN=cpu (with RPO_BENCH_TINY=1): a rehearsal on the CPU; the build is then skipped
# unless RPO_SKIP_BUILD=0. RPO_SKIP_BUILD=1 / RPO_SKIP_TESTS=1 skip those phases; RPO_BENCH="a b ..." picks
# benchmarks by name (default: all, in the order below); RPO_BENCH_TINY=1 runs them on their tiny
# CPU shapes (a smoke test of this script). Nothing here asserts on time.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/rpo-bench-gpu-out}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/rpo-bench.XXXXXX)
LOG="$OUT/run_all.log"
exec > >(tee -a "$LOG") 2>&1
exec 3>&1  # the steps' own lines, whatever their command's output is redirected to
DEADLINE=${RPO_DEADLINE:-$(( $(date +%s) + 3600 ))}
export PYTHONUNBUFFERED=1
PY=${RPO_GPU_PYTHON:-python3}
export RPO_GPU_PYTHON=$PY
status=0

left() { echo $(( DEADLINE - $(date +%s) )); }
phase() { echo; echo "=== $1 ($(date -u +%H:%M:%S), $(left) s left)"; }
# What the table needs after the last step: the summary, and the tee to flush.
RESERVE=${RPO_RESERVE_SECONDS:-25}
# step NAME NEEDS CAP CMD...: runs CMD for at most CAP seconds and never past the deadline (less
# RESERVE); skipped when less than NEEDS seconds are left. A skipped or timed-out step leaves a
# line in $WORK/steps.jsonl, so the table says which rows are missing and why.
step() {
  local name=$1 needs=$2 cap=$3; shift 3
  local budget=$(( $(left) - RESERVE ))
  (( budget > cap )) && budget=$cap
  if (( budget < needs )); then
    echo "--- $name: SKIPPED, ${budget} s left, it needs ~${needs} s" >&3
    echo "{\"bench\":\"step\",\"name\":\"$name\",\"status\":\"skipped: ${budget} s left before the deadline, needs ~${needs} s\"}" >> "$WORK/steps.jsonl"
    return 0
  fi
  local t0=$(date +%s)
  timeout --kill-after=10 "$budget" "$@"
  local rc=$?
  local took=$(( $(date +%s) - t0 ))
  echo "--- $name: exit $rc after $took s" >&3
  local what="exit $rc"
  (( rc == 124 || rc == 137 )) && { echo "--- $name: TIMED OUT after its ${budget} s" >&3; what="timed out after ${budget} s"; }
  echo "{\"bench\":\"step\",\"name\":\"$name\",\"status\":\"$what\",\"seconds\":$took}" >> "$WORK/steps.jsonl"
  return $rc
}
wanted() { [[ -z "${RPO_BENCH:-}" || " $RPO_BENCH " == *" $1 "* ]]; }

phase "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | head -3
echo "node $(node --version), $(nvcc --version 2>/dev/null | tail -1), cmake $(cmake --version 2>/dev/null | head -1)"
$PY -c 'import torch, transformers; print("python torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)' 2>&1
[[ "${RPO_GPU_DRY_RUN:-}" == cpu ]] && echo "DRY RUN (RPO_GPU_DRY_RUN=cpu): the GPU tests' logic on the CPU; RPO_BENCH_TINY=${RPO_BENCH_TINY:-0}"

# On a dry run the build is this machine's own (already built): skipped unless RPO_SKIP_BUILD=0.
SKIP_BUILD=${RPO_SKIP_BUILD:-$([[ "${RPO_GPU_DRY_RUN:-}" == cpu ]] && echo 1 || echo 0)}
if [[ "$SKIP_BUILD" != 1 ]]; then
  phase "build the addon against the torch of this machine (CMake finds nvcc; TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-unset: the visible GPU}; gloo headers: ${RPO_GLOO_INCLUDE:-system ones})"
  step build 40 200 node scripts/build-native.mjs > "$OUT/build.log" 2>&1 || status=1
  grep -E '^rpo:|-- rpo:|error|Error' "$OUT/build.log" | head -20
fi
node --import tsx -e "import('./lib/native.ts').then((n) => console.log('cudaInfo', JSON.stringify(n.cudaInfo()), 'tf32', n.allowTF32()))" 2>&1 || status=1
node --import tsx -e "import('./lib/parallel/native.ts').then((n) => console.log('distInfo', JSON.stringify(n.distInfo())))" 2>&1 || true

if [[ "${RPO_SKIP_TESTS:-0}" != 1 ]]; then
  phase "npm run test:gpu"
  step test:gpu 60 180 npx vitest run --project gpu > "$OUT/test_gpu.log" 2>&1 || status=1
  grep -E '\[[a-z0-9-]+\]|✓|✗|×|FAIL|Test Files|Tests |skipped' "$OUT/test_gpu.log" | sed 's/\x1b\[[0-9;]*m//g' | tail -90
fi

phase "benchmarks, most wanted first (each bounded; what the deadline leaves out is listed in the table)"
T=bench/gpu
# RPO_BENCH_TINY=1: every benchmark on its tiny CPU shape (a rehearsal of this script without a GPU).
TINY=(); [[ "${RPO_BENCH_TINY:-0}" == 1 ]] && TINY=(--tiny)
bench() { # bench NAME NEEDS CAP CMD...: a benchmark writing $WORK/NAME.json(l)
  local name=$1; shift
  wanted "$name" || return 0
  step "$name" "$@" || true
}
bench peak 10 40 $PY $T/peak_matmul.py --out "$WORK/peak.json"
PEAK=$($PY -c "import json; print(json.load(open('$WORK/peak.json'))['tflops'])" 2>/dev/null || echo "")
PEAKARG=(); [[ -n "$PEAK" ]] && PEAKARG=(--peak-tflops "$PEAK")
# Training on the length mix (issue 24): rpo packed, rpo padded, PyTorch eager padded, on the
# same rows (drawn once into $WORK/mix.lengths: not a *.json, so not a result line).
if [[ ${#TINY[@]} -gt 0 ]]; then MIX=(--pairs 4 --max-length 64 --micro-pairs 2); else MIX=(--pairs 32 --max-length 1024 --micro-pairs 4); fi
node --import tsx $T/length_mix.ts "${MIX[@]}" --out "$WORK/mix.lengths" > /dev/null || status=1
ON_MIX=(--length-mix "$WORK/mix.lengths")
bench train-7b-packed 40 75 node --import tsx $T/train_step.ts --model mistral-7b "${ON_MIX[@]}" --padding-free true "${PEAKARG[@]}" "${TINY[@]}" --out "$WORK/train-7b-packed.json"
bench train-7b-padded 40 75 node --import tsx $T/train_step.ts --model mistral-7b "${ON_MIX[@]}" --padding-free false "${PEAKARG[@]}" "${TINY[@]}" --out "$WORK/train-7b-padded.json"
bench train-7b-pytorch 40 90 $PY $T/pytorch_train_step.py --model mistral-7b "${ON_MIX[@]}" "${TINY[@]}" --out "$WORK/train-7b-pytorch.json"
# Sampling (issue 23): rpo (slots 35 and auto) vs transformers generate (dynamic cache; static
# cache + torch.compile), answers forced to spread stop points; a sample of AlpacaEval's 805
# prompts, the minutes for 805 extrapolated (RPO_GEN_PROMPTS=805 for all of them).
bench gen-1b 60 150 env RPO_GPU_PYTHON="$PY" node --import tsx $T/generate.ts --model llama-1b --prompts "${RPO_GEN_PROMPTS:-140}" --decode greedy --slots 35,auto --batch 35 --hf dynamic,static-compile "${TINY[@]}" --out "$WORK/gen-1b.jsonl"
# The 7B memory table against `rpo plan` (full rows of 1024, micro-batches of 4 pairs, one device):
# each precision where the plan says it fits the card (--if-plan-fits: else the row says so, not run).
for precision in bf16-pure bf16-mixed fp32; do
  bench mem-7b-$precision 30 60 node --import tsx $T/train_step.ts --model mistral-7b --precision $precision --if-plan-fits --pairs 8 --micro-pairs 4 --steps 1 "${PEAKARG[@]}" "${TINY[@]}" --out "$WORK/mem-7b-$precision.json"
done
# torch.profiler: where the anchors' time goes, for the decode step and the 7B micro-step.
bench profile-decode 15 45 $PY $T/torch_profile.py --what decode --model llama-1b "${TINY[@]}" --out "$WORK/profile-decode.json"
bench profile-train-7b 20 60 $PY $T/torch_profile.py --what train --model mistral-7b "${TINY[@]}" --out "$WORK/profile-train-7b.json"
# rpo's own decode step, kernel by kernel (LibTorch's profiler is not reachable from Node):
# Nsight Compute's per-kernel summary of 300 kernels after the first 1000, where ncu is
# installed (ncu-decode.csv comes back beside the table; ncu's replay makes this run slow, so it
# writes no result line).
if command -v ncu > /dev/null && [[ ${#TINY[@]} -eq 0 ]]; then
  bench profile-rpo-decode 20 60 ncu --clock-control none --launch-skip 1000 --launch-count 300 --metrics gpu__time_duration.sum \
    --print-summary per-kernel --csv --log-file "$OUT/ncu-decode.csv" \
    node --import tsx $T/generate.ts --model llama-1b --prompts 35 --slots 35 --decode greedy --hf none --max-new 64 --out "$WORK/ncu-run.ignored"
  [[ -s "$OUT/ncu-decode.csv" ]] && head -45 "$OUT/ncu-decode.csv"
fi
bench train-1b-packed 20 45 node --import tsx $T/train_step.ts --model llama-1b "${ON_MIX[@]}" --padding-free true "${PEAKARG[@]}" "${TINY[@]}" --out "$WORK/train-1b-packed.json"
bench train-1b-padded 20 45 node --import tsx $T/train_step.ts --model llama-1b "${ON_MIX[@]}" --padding-free false "${PEAKARG[@]}" "${TINY[@]}" --out "$WORK/train-1b-padded.json"
bench train-1b-pytorch 20 50 $PY $T/pytorch_train_step.py --model llama-1b "${ON_MIX[@]}" "${TINY[@]}" --out "$WORK/train-1b-pytorch.json"
bench gen-7b 45 100 env RPO_GPU_PYTHON="$PY" node --import tsx $T/generate.ts --model mistral-7b --prompts "${RPO_GEN_PROMPTS_7B:-70}" --decode greedy --slots 35,auto --batch 35 --hf dynamic "${TINY[@]}" --out "$WORK/gen-7b.jsonl"
# TRL's DPOTrainer (Liger on and off) on the same length mix, where its wheels were carried
# (.device/wheels, scripts/device-run.sh --prepare) or are installed: last, the least wanted.
TRL_SITE=/tmp/rpo-trl-site
if compgen -G ".device/wheels/*.whl" > /dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$TRL_SITE" .device/wheels/*.whl || echo "TRL wheels: install failed"
fi
TRL_ENV=(env PYTHONPATH="$TRL_SITE${PYTHONPATH:+:$PYTHONPATH}")
bench trl-7b 60 120 "${TRL_ENV[@]}" $PY $T/trl_dpo.py --model mistral-7b "${ON_MIX[@]}" ${PEAK:+--peak-tflops $PEAK} "${TINY[@]}" --out "$WORK/trl-7b.json"
[[ ${#TINY[@]} -eq 0 ]] && bench trl-7b-liger 60 120 "${TRL_ENV[@]}" $PY $T/trl_dpo.py --model mistral-7b "${ON_MIX[@]}" --liger ${PEAK:+--peak-tflops $PEAK} --out "$WORK/trl-7b-liger.json"

phase "table"
cat "$WORK"/*.json "$WORK"/*.jsonl > "$OUT/results.jsonl" 2>/dev/null || true
node --import tsx $T/summary.ts "$OUT/results.jsonl" "$OUT/table.md" || status=1
rm -rf "$WORK"
echo; echo "run_all: exit $status ($(left) s before the deadline)"
exit $status
