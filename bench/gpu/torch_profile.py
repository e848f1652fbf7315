#!/usr/bin/env python3
"""torch.profiler summaries of the two steps the GPU goals are about, on the PyTorch side of each
comparison (rpo's engine runs in Node and LibTorch's profiler is not reachable from there):

  --what decode   transformers' decode step: --batch rows (35), a KV cache after a --prompt-token
                  prompt, one new token per step, --steps steps profiled after a warm-up
  --what train    one RDPO micro-step of pytorch_train_step.py (forward of the response and the
                  rationale rows, backward) at --micro-pairs pairs of --seq tokens, checkpointing on

Prints the top kernels and ops by self device time (key_averages), the device time per step
and the share of the step the GPU was busy (device time ÷ wall time: what launch gaps and
Python cost), and one JSON line with the same numbers (--out writes it).

    python3 bench/gpu/torch_profile.py --what decode --model llama-1b [--out f.json]
    python3 bench/gpu/torch_profile.py --what train --model mistral-7b [--out f.json]
    python3 bench/gpu/torch_profile.py --what decode --tiny        (CPU smoke test)

Not named profile.py: on sys.path beside the other benches it would shadow the standard library's
profile module, which torch._dynamo imports.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402
from transformers import AutoModelForCausalLM, DynamicCache  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_train_step import emit, full_rows, hf_config, row_logps  # noqa: E402

TOP = 15


def summarize(prof, steps: int, wall: float, cuda: bool) -> dict:
    events = prof.key_averages()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    rows = sorted(events, key=lambda e: getattr(e, key, 0), reverse=True)
    total = sum(getattr(e, key, 0) for e in events)
    top = [{"name": e.key[:90], "calls": e.count, "selfMs": getattr(e, key, 0) / 1e3, "share": getattr(e, key, 0) / total if total else None}
           for e in rows[:TOP]]
    print(events.table(sort_by=key, row_limit=TOP, max_name_column_width=70), file=sys.stderr)
    device_ms = total / 1e3 / steps
    return {"deviceMsPerStep": device_ms, "wallMsPerStep": 1e3 * wall / steps, "busy": device_ms / (1e3 * wall / steps) if wall else None, "top": top}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--what", choices=["decode", "train"], required=True)
    ap.add_argument("--model", default="llama-1b")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--batch", type=int, default=35)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--micro-pairs", type=int, default=4)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--out")
    args = ap.parse_args()
    name = "tiny" if args.tiny else args.model
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    config = hf_config(name)
    torch.manual_seed(1)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=torch.bfloat16)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    base = {"bench": "profile", "what": args.what, "model": name, "device": str(device), "gpu": torch.cuda.get_device_name() if cuda else None,
            "impl": "transformers" if args.what == "decode" else "pytorch", "torch": torch.__version__}

    if args.what == "decode":
        model.eval()
        batch = 4 if args.tiny else args.batch
        steps = 4 if args.tiny else args.steps
        prompt = 16 if args.tiny else args.prompt_tokens
        ids = torch.randint(3, config.vocab_size, (batch, prompt), device=device)
        with torch.no_grad():
            cache = DynamicCache()
            out = model(input_ids=ids, past_key_values=cache, use_cache=True)
            nxt = out.logits[:, -1:].argmax(-1)

            def step(tok):
                o = model(input_ids=tok, past_key_values=cache, use_cache=True)
                return o.logits[:, -1:].argmax(-1)

            for _ in range(3):  # warm-up
                nxt = step(nxt)
            sync()
            with profile(activities=activities) as prof:
                t = time.perf_counter()
                for _ in range(steps):
                    nxt = step(nxt)
                sync()
                wall = time.perf_counter() - t
        result = {**base, "batch": batch, "promptTokens": prompt, "steps": steps, **summarize(prof, steps, wall, cuda)}
    else:
        mp = 1 if args.tiny else args.micro_pairs
        seq = 64 if args.tiny else args.seq
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
        model.train()
        ids, mask = full_rows(1000, 3 * mp, seq, config.vocab_size, seq // 4, device)

        def micro_step():
            pi = row_logps(model, ids[: 2 * mp], mask[: 2 * mp])
            pi_r = row_logps(model, ids[2 * mp:], mask[2 * mp:])
            loss = (-F.logsigmoid(0.1 * (pi[:mp] - pi[mp:])) - F.logsigmoid(0.001 * pi_r)).mean()
            loss.backward()

        micro_step()  # warm-up
        model.zero_grad(set_to_none=True)
        sync()
        with profile(activities=activities) as prof:
            t = time.perf_counter()
            micro_step()
            sync()
            wall = time.perf_counter() - t
        result = {**base, "microPairs": mp, "seq": seq, "rows": 3 * mp, "steps": 1, **summarize(prof, 1, wall, cuda)}
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
