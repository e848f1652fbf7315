#!/usr/bin/env python3
"""Sharded safetensors checkpoints through HF transformers (test-time reference).

    python hf_sharded_save.py --single DIR --sharded DIR --out DIR --max-shard-size N --dtype float32|bfloat16

--single:  a model directory with one model.safetensors (rpo's unsharded save).
--sharded: the same model saved by rpo with max_shard_size N (shards + index).
--out:     where transformers' own save_pretrained(max_shard_size=N) of --single goes, for the
           caller to compare byte for byte with --sharded.

1. AutoModelForCausalLM.from_pretrained(--sharded): the loading info (missing, unexpected,
   mismatched keys) and, per tensor of its state dict, whether it equals (torch.equal) the
   tensor of --single's model.safetensors read with safetensors itself.
2. --single's weights in a model built by from_config (load_state_dict), saved with
   save_pretrained(--out, max_shard_size=N). Not a from_pretrained model: transformers 5 saves
   a loaded model's tensors in the order its weight conversion re-lists them (sorted by name),
   and one it built in state-dict (registration) order, the order huggingface_hub's split rule
   is defined on and rpo writes in.

Prints one JSON line {"loaded": n, "differ": [...], "missing": [...], "unexpected": [...],
"mismatched": [...], "files": [files save_pretrained wrote, sorted]}.
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

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--single", required=True)
    ap.add_argument("--sharded", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-shard-size", type=int, required=True)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    a = ap.parse_args()
    dtype = getattr(torch, a.dtype)

    expected = load_file(os.path.join(a.single, "model.safetensors"))
    model, info = AutoModelForCausalLM.from_pretrained(a.sharded, dtype=dtype, output_loading_info=True)
    state = model.state_dict()
    differ = [k for k, v in expected.items() if k not in state or not torch.equal(state[k], v)]

    single = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(a.single), dtype=dtype)
    single.load_state_dict(expected, strict=True)
    single.save_pretrained(a.out, max_shard_size=a.max_shard_size)
    print(
        json.dumps(
            {
                "loaded": len(expected),
                "differ": differ,
                "missing": sorted(info["missing_keys"]),
                "unexpected": sorted(info["unexpected_keys"]),
                "mismatched": [str(m) for m in info["mismatched_keys"]],
                "files": sorted(os.listdir(a.out)),
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
