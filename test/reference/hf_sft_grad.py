#!/usr/bin/env python3
"""Gradients of the SFT loss through HF transformers (test-time reference).

    python hf_sft_grad.py --model DIR --input in.json --out grads.bin

in.json:  {"input_ids": [[...]], "attention_mask": [[...]], "loss_mask": [[...]],
           "names": ["gpt_neox.embed_in.weight", ...]}  rows right-padded to one length T.
out.bin:  the gradients of `names`, each flattened in C order and concatenated, raw
          little-endian float64.
stdout:   one JSON line {"loss": L, "count": [labels per row]}.

The loss is rpo's "sft" loss written out independently of rpo: for each row r,
    logp_r = sum over t >= 1 with loss_mask[r, t] of log_softmax(logits[r, t - 1])[input_ids[r, t]]
and loss = mean over rows of -logp_r. The model is loaded in float64 (eager attention,
train mode off: no dropout), so the reference is exact to far below rpo's float32 error.
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    with open(args.input, encoding="utf-8") as f:
        req = json.load(f)
    ids = torch.tensor(req["input_ids"], dtype=torch.long)
    mask = torch.tensor(req["attention_mask"], dtype=torch.long)
    labels = torch.tensor(req["loss_mask"], dtype=torch.bool)

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float64, attn_implementation="eager")
    model.eval()
    params = dict(model.named_parameters())
    # transformers 5 calls GPTNeoX's head lm_head in memory; its checkpoint key is embed_out.
    aliases = {"embed_out.weight": "lm_head.weight"}
    names = req["names"]
    for n in names:
        if n not in params and aliases.get(n) not in params:
            raise SystemExit(f"no parameter {n} in the transformers model")

    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    sel = labels[:, 1:]
    row_logp = (logp * sel).sum(-1)
    loss = (-row_logp).mean()
    loss.backward()

    out = []
    for n in names:
        p = params[n] if n in params else params[aliases[n]]
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        out.append(g.detach().reshape(-1))
    np.ascontiguousarray(torch.cat(out).numpy(), dtype="<f8").tofile(args.out)
    print(json.dumps({"loss": loss.item(), "count": sel.sum(-1).tolist()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
