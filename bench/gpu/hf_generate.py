#!/usr/bin/env python3
"""transformers' side of bench/gpu/generate.ts: the prompts of its spec file, in consecutive batches
of `batch` (left-padded, each batch until its longest row ends: the seed's eval_batch_size way),
model.generate with the weights generate.ts saved, each answer forced to end at its stop point
(EOS forced at that step and masked before it, so the work is the one rpo does).

  --mode dynamic          generate's default (dynamic) KV cache, eager
  --mode static-compile   cache_implementation="static" with one cache length for every batch, and
                          the forward compiled (torch.compile, mode="reduce-overhead": CUDA graphs
                          on CUDA), transformers' own fast path

    python3 bench/gpu/hf_generate.py --model-dir DIR --spec spec.json --mode dynamic|static-compile
        --decode greedy|sample

Prints one JSON line: seconds (all batches, after a warm-up batch), decode steps (summed over
batches), ms per step, output tokens/s, peak memory.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, LogitsProcessor, LogitsProcessorList  # noqa: E402

EOS = 2  # any id: it is forced at each row's stop point and masked everywhere else


class ForceStopAt(LogitsProcessor):
    """Row r chooses EOS at its step stops[r] (0-based: after stops[r] tokens) and never before."""

    def __init__(self, stops: torch.Tensor, prompt_length: int):
        self.stops = stops
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.prompt_length
        at_stop = (self.stops == step).unsqueeze(-1)
        is_eos = torch.arange(scores.shape[-1], device=scores.device) == EOS
        # No boolean indexing: nothing here waits for the device.
        forced = torch.where(is_eos, 0.0, float("-inf")).to(scores.dtype)
        scores = scores.masked_fill(is_eos & ~at_stop, float("-inf"))
        return torch.where(at_stop, forced, scores)


def left_padded(prompts: list[list[int]], device: torch.device):
    rows, longest = len(prompts), max(len(p) for p in prompts)
    ids = torch.zeros(rows, longest, dtype=torch.long)
    mask = torch.zeros(rows, longest, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, longest - len(p):] = torch.tensor(p)
        mask[i, longest - len(p):] = 1
    return ids.to(device), mask.to(device)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--mode", choices=["dynamic", "static-compile"], default="dynamic")
    ap.add_argument("--decode", choices=["greedy", "sample"], default="greedy")
    args = ap.parse_args()
    with open(args.spec, encoding="utf-8") as f:
        spec = json.load(f)
    prompts, stops, batch = spec["prompts"], spec["stops"], spec["batch"]
    device = torch.device(spec["device"])
    dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}[spec["dtype"]]
    cuda = device.type == "cuda"

    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=dtype, attn_implementation="sdpa").to(device)
    model.eval()
    model.generation_config.eos_token_id = EOS
    model.generation_config.pad_token_id = 0
    kw = dict(do_sample=args.decode == "sample", pad_token_id=0, eos_token_id=EOS)
    if args.decode == "sample":
        kw.update(top_p=spec["topP"], temperature=spec["temperature"], top_k=0)
    else:
        kw.update(top_p=None, top_k=None, temperature=None)
    # One length for every batch's cache (the longest prompt + the longest answer + its EOS), so
    # that the static cache has one shape and the compiled forward compiles once.
    max_length = max(len(p) for p in prompts) + max(stops) + 1
    if args.mode == "static-compile":
        kw.update(cache_implementation="static")
        model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
    torch.manual_seed(spec["seed"])

    batches = [(prompts[i:i + batch], stops[i:i + batch]) for i in range(0, len(prompts), batch)]

    def run(ps, ss):
        ids, mask = left_padded(ps, device)
        force = LogitsProcessorList([ForceStopAt(torch.tensor(ss, device=device), ids.shape[1])])
        out = model.generate(ids, attention_mask=mask, max_length=max_length, logits_processor=force, **kw)
        answers = out[:, ids.shape[1]:].tolist()
        tokens = sum(next((k for k, t in enumerate(row) if t == EOS), len(row)) for row in answers)
        return out.shape[1] - ids.shape[1], tokens

    with torch.no_grad():
        # Warm-up on a full first batch with short answers: the kernels and, compiled, the graphs.
        run(batches[0][0], [min(s, 8) for s in batches[0][1]])
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        steps = tokens = 0
        for ps, ss in batches:
            s, k = run(ps, ss)
            steps += s
            tokens += k
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t
    result = {
        "mode": args.mode, "seconds": seconds, "decodeSteps": steps, "generatedTokens": tokens,
        "msPerStep": 1e3 * seconds / max(1, steps), "tokensPerSecond": tokens / seconds,
        "peakAllocatedBytes": torch.cuda.max_memory_allocated() if cuda else None,
        "torch": torch.__version__, "transformers": transformers.__version__,
    }
    print(json.dumps(result))
    print(f"transformers {args.mode} {args.decode}: {len(prompts)} prompts in batches of {batch}: {seconds:.2f} s, "
          f"{steps} steps, {tokens / seconds:.0f} tokens/s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
