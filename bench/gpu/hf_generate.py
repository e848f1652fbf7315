#!/usr/bin/env python3
"""Generation throughput, transformers: the same AlpacaEval-like prompts as generate.ts (same
lengths, same token ids: the same mulberry32 draws), left-padded, model.generate with a KV cache,
greedy (--sample: top_p 0.95), every row forced to --new-tokens (min_new_tokens, no EOS). bf16,
SDPA, random init. Prints one JSON line (and writes it with --out).

    python3 bench/gpu/hf_generate.py --model llama-1b [--batch 35] [--new-tokens 256] [--out f.json]
    python3 bench/gpu/hf_generate.py --tiny      (CPU smoke test)
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_train_step import emit, hf_config, mulberry32  # noqa: E402


def alpaca_like_prompts(n: int, vocab: int, seed: int = 805) -> list[list[int]]:
    """generate.ts alpacaLikePrompts, draw for draw."""
    r = mulberry32(seed)
    out = []
    for _ in range(n):
        u1 = max(r(), 1e-12)
        u2 = r()
        z = math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
        length = min(512, max(8, round_half_up(math.exp(3.7 + 0.7 * z))))
        out.append([3 + int(r() * (vocab - 3)) for _ in range(length)])
    return out


def round_half_up(x: float) -> int:
    """JavaScript's Math.round (halves go up), not Python's banker's rounding."""
    return math.floor(x + 0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="llama-1b")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--new-tokens", type=int)
    ap.add_argument("--sample", action="store_true")
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--out")
    args = ap.parse_args()
    name = "tiny" if args.tiny else args.model
    batch = args.batch or (4 if args.tiny else 35)
    new_tokens = args.new_tokens or (16 if args.tiny else 256)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")

    config = hf_config(name)
    prompts = alpaca_like_prompts(batch, config.vocab_size)
    longest = max(len(p) for p in prompts)
    ids = torch.zeros(batch, longest, dtype=torch.long)
    mask = torch.zeros(batch, longest, dtype=torch.long)
    for i, p in enumerate(prompts):  # left padding
        ids[i, longest - len(p):] = torch.tensor(p)
        mask[i, longest - len(p):] = 1
    ids, mask = ids.to(device), mask.to(device)

    torch.manual_seed(1)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, attn_implementation=args.attn, dtype=torch.bfloat16)
    model.eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    kw = dict(do_sample=args.sample, pad_token_id=0)
    if args.sample:
        kw.update(top_p=0.95, temperature=1.0, top_k=0)

    with torch.no_grad():
        model.generate(ids[:4], attention_mask=mask[:4], max_new_tokens=8, min_new_tokens=8, **kw)  # warm-up
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        out = model.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t
    generated = (out.shape[1] - longest) * batch
    emit({
        "bench": "generate", "impl": "transformers", "model": name, "device": str(device),
        "gpu": torch.cuda.get_device_name() if cuda else None, "dtype": "bfloat16", "batch": batch,
        "newTokens": new_tokens, "sample": args.sample, "promptTokens": sum(len(p) for p in prompts), "longestPrompt": longest,
        "params": sum(p.numel() for p in model.parameters()), "seconds": seconds, "generatedTokens": generated,
        "tokensPerSecond": generated / seconds, "msPerStep": 1e3 * seconds / new_tokens,
        "peakAllocatedBytes": torch.cuda.max_memory_allocated() if cuda else None,
        "peakReservedBytes": torch.cuda.max_memory_reserved() if cuda else None,
        "torch": torch.__version__, "transformers": transformers.__version__,
    }, args.out)
    print(f"transformers generate {name}: {batch} prompts x {new_tokens} new tokens in {seconds:.2f} s, "
          f"{generated / seconds:.0f} tokens/s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
