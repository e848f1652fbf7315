#!/usr/bin/env python3
"""The bf16 matmul peak of this GPU, measured: an N x N x N bf16 matmul through PyTorch on random
data (METHOD.md: never zeros), CUDA-event timed, 5 warm-ups, median of 20. Prints one JSON line
{"tflops": ..., "n": N, "device": name}. The MFU of the train-step benchmarks is over this.

    python3 bench/gpu/peak_matmul.py [--n 8192] [--out peak.json]
"""
import argparse
import json
import statistics

import torch


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--out", help="also write the JSON line here")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("peak_matmul.py: no CUDA device")
    n = args.n
    g = torch.Generator(device="cuda").manual_seed(0)
    # Rotate three input pairs so the timings are not of an L2-resident operand.
    ins = [(torch.randn(n, n, device="cuda", dtype=torch.bfloat16, generator=g),
            torch.randn(n, n, device="cuda", dtype=torch.bfloat16, generator=g)) for _ in range(3)]
    out = torch.empty(n, n, device="cuda", dtype=torch.bfloat16)
    for i in range(5):
        torch.matmul(*ins[i % 3], out=out)
    torch.cuda.synchronize()
    times = []
    for i in range(args.reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.matmul(*ins[i % 3], out=out)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    t = statistics.median(times)
    line = json.dumps({"bench": "peak_matmul", "tflops": 2 * n**3 / t / 1e12, "n": n, "seconds": t,
                       "device": torch.cuda.get_device_name()})
    print(line)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
