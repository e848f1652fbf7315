#!/usr/bin/env python3
"""PEFT LoRA adapters as the reference for rpo's (test-time reference).

Runs a JSON list of jobs from stdin in one process (Python and torch start once) and prints one
JSON list of results. Jobs:

  {"job": "make", "base": DIR, "out": DIR, "r": 4, "alpha": 8, "targets": ["q_proj", ...] | "all-linear",
   "rslora": false, "seed": 0}
      get_peft_model(base, LoraConfig(..., init_lora_weights=False)): A and B both random (PEFT's
      non-default init, so the adapter changes the logits), then save_pretrained(out):
      adapter_config.json + adapter_model.safetensors, exactly what PEFT users have.
  {"job": "logits", "base": DIR, "adapter": DIR | null, "input": in.json, "out": out.bin}
      AutoModelForCausalLM.from_pretrained(base, float32, eager) wrapped by
      PeftModel.from_pretrained(base, adapter) (none: the base alone), eval mode, no grad; the
      logits as raw little-endian float32 [rows, T, vocab] (hf_logits.py's layout).
      Result: {"shape": [...], "adapted": N} (N: the LoRA linears PEFT found in the adapter).

in.json: {"input_ids": [[...]], "attention_mask": [[...]]}, rows right-padded to one length.
"""

from __future__ import annotations

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
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402


def load_base(path: str):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")


def make(job: dict) -> dict:
    torch.manual_seed(job.get("seed", 0))
    base = load_base(job["base"])
    cfg = LoraConfig(
        r=job["r"],
        lora_alpha=job["alpha"],
        target_modules=job["targets"],
        use_rslora=job.get("rslora", False),
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, cfg)
    model.save_pretrained(job["out"])
    return {"out": job["out"]}


def logits(job: dict) -> dict:
    with open(job["input"], encoding="utf-8") as f:
        req = json.load(f)
    input_ids = torch.tensor(req["input_ids"], dtype=torch.long)
    mask = req.get("attention_mask")
    attention_mask = torch.ones_like(input_ids) if mask is None else torch.tensor(mask, dtype=torch.long)
    model = load_base(job["base"])
    adapted = 0
    if job.get("adapter"):
        model = PeftModel.from_pretrained(model, job["adapter"])
        adapted = sum(1 for n, _ in model.named_modules() if n.endswith(".lora_A"))
    model.eval()
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    arr = out.logits.to(torch.float32).cpu().contiguous().numpy()
    np.ascontiguousarray(arr, dtype="<f4").tofile(job["out"])
    return {"shape": list(arr.shape), "adapted": adapted}


def main() -> int:
    jobs = json.load(sys.stdin)
    results = []
    for job in jobs:
        kind = job.get("job")
        if kind == "make":
            results.append(make(job))
        elif kind == "logits":
            results.append(logits(job))
        else:
            raise SystemExit(f"unknown job {kind!r}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
