#!/usr/bin/env python3
"""Reference log-prob of a response after a prompt, formatted as rpo trains (test-time reference).

    python hf_response_logprob.py < in.json

in.json:  {"model": DIR, "prompt": "...", "response": "...",
           "template": "chat" | "prefixes",
           "human_prefix": ..., "human_suffix": ..., "assistant_prefix": ..., "assistant_suffix": ...}
stdout:   one JSON line {"sum": float, "tokens": int, "input_ids": [...], "prompt_length": int,
                         "formatted_prompt": str, "formatted_response": str}

Written from rpo's documented semantics (lib/data/format, lib/data/batch), with transformers'
own pieces, not from rpo's code:
  - the prompt: template "chat" is tokenizer.apply_chat_template([{"role": "user", "content":
    prompt}], add_generation_prompt=True, tokenize=False); "prefixes" is human_prefix + prompt +
    human_suffix + assistant_prefix;
  - the response: the text ("chat"), or text + assistant_suffix ("prefixes");
  - tokens: the fast tokenizer on prompt + response as one string without special tokens; the
    response begins at the first token whose character span ends past the prompt; BOS is put first
    when the tokenizer adds one (tokenizer("a") starts with it) and the text does not already
    begin with it; EOS is appended unless the response already ends with it;
  - the score: AutoModelForCausalLM in float32 (eager attention), log_softmax of the logits,
    summed over the response tokens and the EOS (position t scored from the logits at t - 1).
"""

from __future__ import annotations

import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402


def main() -> int:
    req = json.load(sys.stdin)
    tok = AutoTokenizer.from_pretrained(req["model"])
    if req["template"] == "chat":
        prompt = tok.apply_chat_template(
            [{"role": "user", "content": req["prompt"]}], add_generation_prompt=True, tokenize=False
        )
        response = req["response"]
    else:
        prompt = req["human_prefix"] + req["prompt"] + req["human_suffix"] + req["assistant_prefix"]
        response = req["response"] + req["assistant_suffix"]

    enc = tok(prompt + response, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    split = next((i for i, (_, end) in enumerate(enc["offset_mapping"]) if end > len(prompt)), len(ids))
    prompt_ids, response_ids = ids[:split], ids[split:]
    bos = tok.bos_token_id
    adds_bos = bos is not None and tok("a")["input_ids"][:1] == [bos]
    if adds_bos and prompt_ids[:1] != [bos]:
        prompt_ids = [bos] + prompt_ids
    eos = tok.eos_token_id
    if response_ids[-1:] == [eos]:
        response_ids = response_ids[:-1]
    full = prompt_ids + response_ids + [eos]

    model = AutoModelForCausalLM.from_pretrained(req["model"], dtype=torch.float32, attn_implementation="eager")
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([full])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    start = max(1, len(prompt_ids))
    total = sum(float(logp[t - 1, full[t]]) for t in range(start, len(full)))
    print(
        json.dumps(
            {
                "sum": total,
                "tokens": len(full) - start,
                "input_ids": full,
                "prompt_length": len(prompt_ids),
                "formatted_prompt": prompt,
                "formatted_response": response,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
