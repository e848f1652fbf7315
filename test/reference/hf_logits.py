#!/usr/bin/env python3
"""Reference logits from HF transformers (test-time reference).

    python hf_logits.py --model DIR --input in.json --out out.bin [--dtype float32] [--device cpu]

in.json:  {"input_ids": [[...], [...]], "attention_mask": [[...], [...]]}
          rows right-padded to one length T; attention_mask optional (all ones).
out.bin:  the logits as raw little-endian float32, shape [rows, T, vocab], C order.
stdout:   one JSON line {"shape": [rows, T, vocab], "attn_implementation": "eager",
                         "sliding_window": W or null, "dtype": "float32"}

--device cuda runs the model on the GPU (test/gpu); the logits come back to the CPU as float32
whatever --dtype computed them (bfloat16: the model's weights are cast to bf16 on load).

The model is loaded with AutoModelForCausalLM.from_pretrained(DIR, dtype=float32,
attn_implementation="eager") (the same implementation hf_make_model.py builds
with), in eval mode under torch.no_grad(), and run once on input_ids and
attention_mask. Position ids are transformers' default, 0..T-1 per row, which is
right for right padding; logits at padded positions are whatever the model
computes there (finite, but not meaningful).

Sliding window (Mistral, and Qwen2 with use_sliding_window): in transformers 5
MistralModel builds its mask with masking_utils.create_sliding_window_causal_mask
whenever config.sliding_window is set, for eager and sdpa alike: query i sees key j
iff i - W < j <= i (W keys, itself included) and j is not padding. For sdpa the
"use is_causal instead of a mask" shortcut is disabled once T >= W, so sdpa honours
the window too; eager is used here because it is the plainest path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

transformers.utils.logging.disable_progress_bar()

ATTN_IMPLEMENTATION = "eager"
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="HF model directory (config.json + safetensors)")
    ap.add_argument("--input", required=True, help='JSON file {"input_ids": [[...]], "attention_mask": [[...]]}')
    ap.add_argument("--out", required=True, help="output file: raw little-endian float32 [rows, T, vocab]")
    ap.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="compute dtype (output is float32)")
    ap.add_argument("--device", default="cpu", help="torch device to run on: cpu (default), cuda, cuda:N")
    args = ap.parse_args()

    with open(args.input, encoding="utf-8") as f:
        req = json.load(f)
    input_ids = torch.tensor(req["input_ids"], dtype=torch.long)
    if input_ids.dim() != 2:
        raise SystemExit("input_ids must be a list of equal-length rows")
    mask = req.get("attention_mask")
    attention_mask = torch.ones_like(input_ids) if mask is None else torch.tensor(mask, dtype=torch.long)
    if attention_mask.shape != input_ids.shape:
        raise SystemExit(f"attention_mask shape {list(attention_mask.shape)} != input_ids shape {list(input_ids.shape)}")

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(
        args.model, dtype=DTYPES[args.dtype], attn_implementation=ATTN_IMPLEMENTATION
    )
    model.to(args.device)
    model.eval()
    with torch.no_grad():
        out = model(
            input_ids=input_ids.to(args.device), attention_mask=attention_mask.to(args.device), use_cache=False
        )
    logits = out.logits.to(torch.float32).cpu().contiguous().numpy()

    np.ascontiguousarray(logits, dtype="<f4").tofile(args.out)
    print(
        json.dumps(
            {
                "shape": list(logits.shape),
                "attn_implementation": model.config._attn_implementation,
                "sliding_window": getattr(model.config, "sliding_window", None),
                "dtype": args.dtype,
                "device": args.device,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
