#!/usr/bin/env python3
"""What transformers makes of a csft run (test-time reference).

    python csft_check.py BASE_DIR CSFT_BASE_DIR CHECKPOINT_DIR TOKEN [TOKEN ...]

Prints one JSON line:
  base_vocab, csft_vocab, checkpoint_vocab: config.json's vocab_size as
      AutoConfig reads it;
  token_ids: AutoTokenizer.from_pretrained(CHECKPOINT_DIR).encode(token,
      add_special_tokens=False) for each token (one id each when it is a token);
  mean_row_error: for each embedding matrix of CSFT_BASE_DIR grown from BASE_DIR, the largest
      |new row - mean of the base's rows| (numpy, float64) and the largest |old row - base row|;
  logits_shape: AutoModelForCausalLM.from_pretrained(CHECKPOINT_DIR) run on the token ids.
"""

import json
import sys

import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    base, grown, ckpt, *tokens = sys.argv[1:]
    out = {
        "base_vocab": AutoConfig.from_pretrained(base).vocab_size,
        "csft_vocab": AutoConfig.from_pretrained(grown).vocab_size,
        "checkpoint_vocab": AutoConfig.from_pretrained(ckpt).vocab_size,
    }
    tok = AutoTokenizer.from_pretrained(ckpt)
    out["token_ids"] = [tok.encode(t, add_special_tokens=False) for t in tokens]
    b = load_file(f"{base}/model.safetensors")
    g = load_file(f"{grown}/model.safetensors")
    errors = {}
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        if name not in b:
            continue
        old = b[name].astype(np.float64)
        new = g[name].astype(np.float64)
        n = old.shape[0]
        errors[name] = {
            "new_rows": int(new.shape[0] - n),
            "mean_error": float(np.abs(new[n:] - old.mean(axis=0)).max()) if new.shape[0] > n else None,
            "old_rows_error": float(np.abs(new[:n] - old).max()),
        }
    out["mean_row_error"] = errors
    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
    ids = torch.tensor([[i for t in out["token_ids"] for i in t]])
    with torch.no_grad():
        out["logits_shape"] = list(model(ids).logits.shape)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
