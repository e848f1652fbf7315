"""A ppo checkpoint directory: transformers loads it as is (the value head's file beside the
weights is not a weight of the model), and value_head.safetensors holds the seed's ValueHead
state dict (summary.0/3/6 weight and bias) for the model's hidden size.

    python ppo_checkpoint_check.py DIR   ->  one JSON line
"""
import json
import sys

import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM


def main():
    d = sys.argv[1]
    model, info = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, output_loading_info=True)
    h = model.config.hidden_size
    with safe_open(f"{d}/value_head.safetensors", framework="pt") as f:
        shapes = {k: list(f.get_tensor(k).shape) for k in f.keys()}
        dtypes = sorted({str(f.get_tensor(k).dtype) for k in f.keys()})
        finite = all(bool(torch.isfinite(f.get_tensor(k)).all()) for k in f.keys())
    # The head as the seed builds it, with these weights, on the model's last hidden states.
    head = torch.nn.Module()
    head.summary = torch.nn.Sequential(torch.nn.Linear(h, h), torch.nn.Identity(), torch.nn.ReLU(),
                                       torch.nn.Linear(h, h), torch.nn.Identity(), torch.nn.ReLU(), torch.nn.Linear(h, 1))
    with safe_open(f"{d}/value_head.safetensors", framework="pt") as f:
        head.load_state_dict({k: f.get_tensor(k) for k in f.keys()})
    with torch.no_grad():
        hidden = model(torch.tensor([[1, 2, 3, 4]]), output_hidden_states=True).hidden_states[-1]
        values = head.summary(hidden).squeeze(-1)
    print(json.dumps({
        "hidden_size": h,
        "missing": sorted(info["missing_keys"]), "unexpected": sorted(info["unexpected_keys"]),
        "shapes": shapes, "dtypes": dtypes, "finite": finite,
        "values": values[0].tolist(),
    }))


if __name__ == "__main__":
    main()
