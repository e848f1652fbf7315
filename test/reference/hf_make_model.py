#!/usr/bin/env python3
"""Build a tiny random causal LM through HF transformers and save it (test-time reference).

    python hf_make_model.py --arch llama|mistral|qwen2|gpt_neox --out DIR [--seed N]
                            [--config-json '{"num_hidden_layers": 3, ...}'] [--dtype float32|bfloat16|float16]

Writes DIR/config.json, DIR/generation_config.json and DIR/model.safetensors
(save_pretrained, safe_serialization=True) and prints one JSON line
{"out": DIR, "arch": ..., "config": {...config.json...}}.

Tiny defaults (any of them can be overridden with --config-json, which is
passed to the config class as keyword arguments after the defaults):
    vocab_size 256, hidden_size 64, intermediate_size 128, num_hidden_layers 2,
    num_attention_heads 4, num_key_value_heads 2 (GQA), max_position_embeddings 256,
    initializer_range 0.1, bos 1, eos 2, pad none, tie_word_embeddings false.
    mistral: sliding_window 8 (so any test with T > 8 exercises it).
    qwen2:   q/k/v biases (always on in Qwen2).
    gpt_neox: GPTNeoXConfig has no num_key_value_heads / rms_norm_eps; intermediate_size 128,
             rotary_pct 0.5 (rope_parameters.partial_rotary_factor), layer_norm_eps 1e-5,
             biases everywhere (attention_bias true), use_parallel_residual true.

Why initializer_range 0.1 (HF's default is 0.02): with hidden 64 and std 0.02 the
attention scores are ~0.03, attention is uniform and RoPE/masking bugs barely move the
logits; at 0.1 the scores and logits are O(1).

After from_config every RMSNorm weight is re-drawn as 1 + 0.1*randn and (qwen2)
every q/k/v bias as normal(0, 0.02), because HF initializes them to 1 and 0,
which would hide a missing norm weight or a missing bias. All draws come from
torch.manual_seed(seed).

rope: transformers 5 keeps rope settings in config.json's "rope_parameters"
({"rope_type": ..., "rope_theta": ..., ...}), no longer top-level rope_theta /
rope_scaling. A llama3-scaled llama:
    --config-json '{"rope_parameters": {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                    "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 64}}'
(the legacy '{"rope_scaling": {...}, "rope_theta": ...}' form is accepted too and
converted by transformers).

Attention implementation: "eager" (ATTN_IMPLEMENTATION below), the same one
hf_logits.py loads with; it is not written into config.json.
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
from transformers import AutoModelForCausalLM, GPTNeoXConfig, LlamaConfig, MistralConfig, Qwen2Config  # noqa: E402

transformers.utils.logging.disable_progress_bar()

ATTN_IMPLEMENTATION = "eager"

COMMON = {
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "initializer_range": 0.1,
    "rms_norm_eps": 1e-6,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": None,
    "tie_word_embeddings": False,
}

ARCHS = {
    "llama": (LlamaConfig, {}),
    "mistral": (MistralConfig, {"sliding_window": 8}),
    "qwen2": (Qwen2Config, {"use_sliding_window": False}),
    "gpt_neox": (GPTNeoXConfig, {"rotary_pct": 0.5, "layer_norm_eps": 1e-5}),
}

# Keys of COMMON that a config class does not have (GPTNeoXConfig is strict about its fields).
NOT_IN = {"gpt_neox": ("num_key_value_heads", "rms_norm_eps")}

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True, choices=sorted(ARCHS))
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config-json", default="{}", help="JSON object of config overrides")
    ap.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="dtype of the saved weights")
    args = ap.parse_args()

    overrides = json.loads(args.config_json)
    if not isinstance(overrides, dict):
        raise SystemExit("--config-json must be a JSON object")

    config_cls, arch_defaults = ARCHS[args.arch]
    common = {k: v for k, v in COMMON.items() if k not in NOT_IN.get(args.arch, ())}
    kwargs = {**common, **arch_defaults, **overrides}
    config = config_cls(**kwargs)

    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_config(
        config, attn_implementation=ATTN_IMPLEMENTATION, dtype=torch.float32
    )

    # Make the parameters HF initializes to constants non-trivial (see the docstring).
    gen = torch.Generator().manual_seed(args.seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            elif name.endswith(".bias"):
                p.copy_(0.02 * torch.randn(p.shape, generator=gen, dtype=p.dtype))

    model = model.to(DTYPES[args.dtype])
    model.eval()
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)

    with open(os.path.join(args.out, "config.json"), encoding="utf-8") as f:
        saved = json.load(f)
    print(json.dumps({"out": args.out, "arch": args.arch, "config": saved}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
