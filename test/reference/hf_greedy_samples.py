# Greedy continuations from HF transformers, the reference for rpo's samples during evaluation.
#
# argv: a model directory (a checkpoint rpo wrote).
# stdin: JSON {"prompts": [[token ids], ...], "max_lengths": [L, ...] (one per prompt),
#        "eos_token_ids": [...], "pad_token_id": p}
# stdout: JSON [[new token ids], ...]: one prompt at a time (no padding), do_sample=False,
#   max_length counting the prompt (as rpo's generation), the stop token not included.
import json
import sys

import torch
from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32, attn_implementation="eager").eval()
req = json.load(sys.stdin)
stops = set(req["eos_token_ids"])
out = []
with torch.no_grad():
    for ids, max_length in zip(req["prompts"], req["max_lengths"]):
        x = torch.tensor([ids], dtype=torch.long)
        y = model.generate(
            x,
            attention_mask=torch.ones_like(x),
            do_sample=False,
            max_length=max_length,
            eos_token_id=list(stops),
            pad_token_id=req["pad_token_id"],
        )[0, len(ids):].tolist()
        cut = next((i for i, t in enumerate(y) if t in stops), len(y))
        out.append(y[:cut])
json.dump(out, sys.stdout)
