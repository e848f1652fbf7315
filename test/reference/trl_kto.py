#!/usr/bin/env python3
"""KTO losses computed by TRL's own KTOTrainer code (test-time reference).

    python trl_kto.py < requests.json > answers.json

request (a JSON array of):
    {"loss_type": "kto" | "apo_zero_unpaired", "beta", "desirable_weight", "undesirable_weight",
     "policy": [...], "reference": [...],          # summed log-probs, one per example
     "policy_kl": [...], "reference_kl": [...],    # the KL rows' (kto only)
     "desirable": [0/1 per example]}

answer (a JSON array of): {"loss", "grad": [d loss / d policy[i]], "metrics": {...}, "trl": {...}}

Which TRL code runs (trl==1.16.0, requirements.txt): trl.KTOTrainer._compute_loss, the whole
loss as TRL trains it, on an object made with object.__new__ (its __init__ wants a model and a
dataset) given the attributes _compute_loss reads, precompute_ref_logps=True (the reference
log-probs go in as ref_logps / ref_KL_logps). A stub model returns the given log-probs as one
completion token per row (completion_mask [[0, 1]]); the KL rows are told from the target rows by
their input ids (1 vs 0). The policy's log-probs are leaves, so the gradient is TRL's.

Where TRL's semantics match rpo's: "kto" is the seed's KTOTrainer (KL = max(0, mean of the KL
rows' log-ratios), detached; desirable 1 - s(beta(r - KL)), undesirable 1 - s(beta(KL - r));
weights per kind; the mean over examples). "apo_zero_unpaired" is the seed's kto-zero:
undesirable s(beta r) = 1 - s(-beta r). TRL has no kto-simple (its reference points come from the
other kind's examples in the batch, with gradient).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections import defaultdict
from types import SimpleNamespace

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
warnings.filterwarnings("ignore")

import torch  # noqa: E402

import trl  # noqa: E402

DTYPE = torch.float64


class _Accelerator:
    device = torch.device("cpu")

    @staticmethod
    def gather_for_metrics(t: torch.Tensor) -> torch.Tensor:
        return t


def _trainer(req: dict) -> object:
    from trl import KTOTrainer

    t = object.__new__(KTOTrainer)
    # The attributes KTOTrainer._compute_loss reads (trl 1.16), set as __init__ sets them.
    t.model = SimpleNamespace(training=True)
    t.accelerator = _Accelerator()
    t.loss_type = req["loss_type"]
    t.calculate_KL = req["loss_type"] != "apo_zero_unpaired"
    t.aux_loss_enabled = False
    t.precompute_ref_logps = True
    t.beta = float(req["beta"])
    t.desirable_weight = float(req.get("desirable_weight", 1.0))
    t.undesirable_weight = float(req.get("undesirable_weight", 1.0))
    t._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    t._total_train_tokens = 0
    t._tp_size = 1
    t.args = SimpleNamespace(gradient_checkpointing_kwargs=None)
    return t


def answer(req: dict) -> dict:
    n = len(req["policy"])
    policy = torch.tensor(req["policy"], dtype=DTYPE, requires_grad=True)
    policy_kl = torch.tensor(req.get("policy_kl", [0.0] * n), dtype=DTYPE)
    zeros = torch.zeros(n, 1, dtype=DTYPE)

    def model(**kwargs: object) -> SimpleNamespace:
        ids = kwargs["input_ids"]
        is_kl = bool((ids == 1).all())  # type: ignore[union-attr]
        lp = (policy_kl if is_kl else policy).reshape(n, 1)
        return SimpleNamespace(log_probs=lp, entropy=zeros, mean_logits=zeros)

    inputs = {
        "input_ids": torch.zeros(n, 2, dtype=torch.long),
        "attention_mask": torch.ones(n, 2, dtype=torch.long),
        "completion_mask": torch.tensor([[0, 1]] * n, dtype=torch.long),
        "label": torch.tensor([bool(d) for d in req["desirable"]]),
        "ref_logps": torch.tensor(req["reference"], dtype=DTYPE),
    }
    if req["loss_type"] != "apo_zero_unpaired":
        inputs.update(
            KL_input_ids=torch.ones(n, 2, dtype=torch.long),
            KL_attention_mask=torch.ones(n, 2, dtype=torch.long),
            KL_completion_mask=torch.tensor([[0, 1]] * n, dtype=torch.long),
            ref_KL_logps=torch.tensor(req["reference_kl"], dtype=DTYPE),
        )
    t = _trainer(req)
    loss = t._compute_loss(model, inputs, return_outputs=False)
    loss.backward()
    m = t._metrics["train"]
    metrics = {k: v[-1] for k, v in m.items() if k in ("rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logps/rejected", "kl")}
    return {
        "loss": float(loss),
        "grad": policy.grad.tolist(),
        "metrics": metrics,
        "trl": {"version": trl.__version__, "function": f"trl.KTOTrainer._compute_loss(loss_type='{req['loss_type']}')"},
    }


def main() -> int:
    reqs = json.load(sys.stdin)
    sys.stdout.write(json.dumps([answer(r) for r in reqs]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
