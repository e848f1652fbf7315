#!/usr/bin/env python3
"""Greedy generation through HF transformers' generate (test-time reference).

    python hf_greedy.py --model DIR --input in.json [--max-new-tokens N]

in.json:  {"prompts": [[...], ...]}  token ids, one prompt per entry (any lengths).
stdout:   one JSON line {"tokens": [[new token ids], ...]}.

Each prompt is generated alone (no padding), greedy (do_sample=False), with the KV cache and no
stop token (generation_config.eos_token_id cleared), so every row runs max_new_tokens steps.
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

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

transformers.utils.logging.disable_progress_bar()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--max-new-tokens", type=int, default=12)
    args = ap.parse_args()

    with open(args.input, encoding="utf-8") as f:
        prompts = json.load(f)["prompts"]
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    model.generation_config.eos_token_id = None
    out = []
    with torch.no_grad():
        for p in prompts:
            ids = torch.tensor([p], dtype=torch.long)
            gen = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=args.max_new_tokens,
                use_cache=True,
                pad_token_id=0,
            )
            out.append(gen[0, len(p):].tolist())
    print(json.dumps({"tokens": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
