#!/usr/bin/env python3
"""DPO-family loss values computed by TRL's own loss code (test-time reference).

    python trl_losses.py < request.json > answer.json

request (stdin):
    {"loss": "dpo"|"cdpo"|"ipo"|"simpo"|"orpo",
     "beta": float, "epsilon": float (cdpo), "margin": float (simpo),
     "policy_chosen": [...], "policy_rejected": [...],      # one value per pair
     "ref_chosen": [...],    "ref_rejected": [...]}         # dpo, cdpo, ipo only
    dpo, cdpo: summed response log-probs; ipo, simpo, orpo: length-normalized
    (mean per token) response log-probs, as rpo's docs/design.md table defines them.

    stdin may also be a JSON array of such requests: the answer is then the array of
    answers, in order (Python and TRL start once, ~8 s, instead of once per request).

answer (stdout, one JSON line):
    {"losses": [...per pair...], "chosen_rewards": [...], "rejected_rewards": [...],
     "trl": {"version": "...", "function": "..."}}
    orpo: "losses" is TRL's own per-pair return, beta*log(sigmoid(log odds ratio)), so
    the ORPO batch loss is NLL_w - mean(losses), exactly as ORPOTrainer forms it.

Which TRL code runs (trl==1.16.0, pinned in requirements.txt). Nothing here
re-implements a formula: each trainer is made with object.__new__ (its __init__,
which wants a model and a dataset, never runs), given exactly the attributes the
called method reads, and called on float64 tensors.

- dpo:   trl.DPOTrainer._compute_loss, loss_type=["sigmoid"], f_divergence_type
         "reverse_kl", precompute_ref_logps=True. In trl 1.x the DPO loss is no
         longer a standalone `dpo_loss` method (removed after trl 0.28); it is
         inlined in `_compute_loss`, which runs a model forward. A stub model
         returns the given log-probs as a single completion token per row
         (completion_mask [[0, 1]], so the shifted mask has one 1 and the summed
         log-prob is exactly the value given); the reference log-probs go in as
         precomputed `ref_chosen_logps` / `ref_rejected_logps`. `_compute_loss`
         returns the batch mean, so it is called once per pair. Rewards are
         TRL's own `rewards/chosen` / `rewards/rejected` metrics for that call.
- ipo:   trl.DPOTrainer._compute_loss, loss_type=["ipo"], as dpo. TRL's IPO divides
         the (policy - reference) log-ratios by the completion length (the
         unshifted completion_mask sum, 1 here), so passing mean log-probs gives
         ((pi_w - pi_l) - (ref_w - ref_l) - 1/(2 beta))^2 on the means.
- cdpo:  trl.experimental.cpo.CPOTrainer.cpo_loss, loss_type="sigmoid",
         label_smoothing=epsilon, alpha=0, called with the policy/reference
         log-ratios (pi_w - ref_w, pi_l - ref_l). trl 1.16's DPOTrainer "sigmoid"
         ignores label_smoothing (cDPO is gone from it); CPO's "sigmoid" is the
         same conservative expression old DPOTrainer.dpo_loss used:
         -(1-eps) log s(beta x) - eps log s(-beta x), x = its chosen - rejected
         input, so on log-ratios it is cDPO and its rewards are beta*(pi - ref).
- simpo: trl.experimental.cpo.CPOTrainer.cpo_loss, loss_type="simpo",
         simpo_gamma=margin, label_smoothing=0, alpha=0 (cpo_alpha=0: the NLL term
         lives outside cpo_loss). TRL computes -log s(beta (pi_w - pi_l -
         simpo_gamma/beta)) = -log s(beta pi_w - beta pi_l - margin), so
         simpo_gamma IS our margin (TRL's gamma_beta_ratio is simpo_gamma/beta).
- orpo:  trl.experimental.orpo.ORPOTrainer.odds_ratio_loss. "losses" is its
         return as is: beta*log s(log odds ratio) per pair (<= 0); the trainer
         minimizes policy_nll_loss - losses.mean(), i.e. DESIGN's
         NLL_w - beta*log s(...). NB: odds_ratio_loss casts its inputs to float32
         itself, so orpo values carry float32 rounding (~1e-7 relative).
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
DEVICE = torch.device("cpu")


class _Accelerator:
    """What the loss methods read from `self.accelerator`: single process, CPU."""

    device = DEVICE

    @staticmethod
    def gather(t: torch.Tensor) -> torch.Tensor:
        return t

    @staticmethod
    def gather_for_metrics(t: torch.Tensor) -> torch.Tensor:
        return t


def _param(req: dict, key: str) -> float:
    if not isinstance(req.get(key), (int, float)):
        raise SystemExit(f"{req.get('loss')} needs a number {key!r}, got {req.get(key)!r}")
    return float(req[key])


def _tensor(values: list[float]) -> torch.Tensor:
    return torch.tensor([float(v) for v in values], dtype=DTYPE, device=DEVICE)


def _dpo_trainer(loss_type: str, beta: float) -> object:
    from trl import DPOTrainer

    t = object.__new__(DPOTrainer)
    # The attributes DPOTrainer._compute_loss reads (trl 1.16), set as __init__ sets them.
    t.model = SimpleNamespace(training=True)
    t.accelerator = _Accelerator()
    t.aux_loss_enabled = False
    t.ld_alpha = None
    t.precompute_ref_logps = True
    t.f_divergence_type = "reverse_kl"
    t.f_alpha_divergence_coef = 1.0
    t.loss_types = [loss_type]
    t.loss_weights = [1.0]
    t.beta = beta
    t.label_smoothing = 0.0
    t.use_weighting = False
    t._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    t._total_train_tokens = 0
    t._tp_size = 1
    t.args = SimpleNamespace(gradient_checkpointing_kwargs=None)
    return t


def _dpo_family(loss_type: str, req: dict) -> dict:
    beta = _param(req, "beta")
    pc, pr = _tensor(req["policy_chosen"]), _tensor(req["policy_rejected"])
    rc, rr = _tensor(req["ref_chosen"]), _tensor(req["ref_rejected"])
    losses: list[float] = []
    chosen_rewards: list[float] = []
    rejected_rewards: list[float] = []
    for i in range(pc.numel()):
        trainer = _dpo_trainer(loss_type, beta)
        # Rows are [chosen, rejected]; one prompt token then one completion token each.
        log_probs = torch.stack([pc[i], pr[i]]).reshape(2, 1)
        outputs = SimpleNamespace(
            log_probs=log_probs,
            entropy=torch.zeros(2, 1, dtype=DTYPE),
            mean_logits=torch.zeros(2, 1, dtype=DTYPE),
            is_top1=torch.zeros(2, 1, dtype=torch.bool),
        )

        def model(**_kwargs: object) -> SimpleNamespace:
            return outputs

        inputs = {
            "input_ids": torch.zeros(2, 2, dtype=torch.long),
            "attention_mask": torch.ones(2, 2, dtype=torch.long),
            "completion_mask": torch.tensor([[0, 1], [0, 1]], dtype=torch.long),
            "ref_chosen_logps": rc[i : i + 1],
            "ref_rejected_logps": rr[i : i + 1],
        }
        loss = trainer._compute_loss(model, inputs, return_outputs=False)
        losses.append(float(loss))
        m = trainer._metrics["train"]
        chosen_rewards.append(float(m["rewards/chosen"][-1]))
        rejected_rewards.append(float(m["rewards/rejected"][-1]))
    fn = f"trl.DPOTrainer._compute_loss(loss_type=['{loss_type}'])"
    return {"losses": losses, "chosen_rewards": chosen_rewards, "rejected_rewards": rejected_rewards, "fn": fn}


def _cpo_trainer(loss_type: str, beta: float, label_smoothing: float, simpo_gamma: float) -> object:
    from trl.experimental.cpo import CPOTrainer

    t = object.__new__(CPOTrainer)
    # The attributes CPOTrainer.cpo_loss reads (trl 1.16).
    t.accelerator = _Accelerator()
    t.alpha = 0.0
    t.loss_type = loss_type
    t.beta = beta
    t.label_smoothing = label_smoothing
    t.simpo_gamma = simpo_gamma
    t.cpo_alpha = 0.0
    return t


def _cdpo(req: dict) -> dict:
    beta, eps = _param(req, "beta"), _param(req, "epsilon")
    chosen_logratios = _tensor(req["policy_chosen"]) - _tensor(req["ref_chosen"])
    rejected_logratios = _tensor(req["policy_rejected"]) - _tensor(req["ref_rejected"])
    trainer = _cpo_trainer("sigmoid", beta, eps, 0.0)
    losses, cr, rr = trainer.cpo_loss(chosen_logratios, rejected_logratios)
    fn = "trl.experimental.cpo.CPOTrainer.cpo_loss(loss_type='sigmoid', label_smoothing=epsilon) on log-ratios"
    return {"losses": losses.tolist(), "chosen_rewards": cr.tolist(), "rejected_rewards": rr.tolist(), "fn": fn}


def _simpo(req: dict) -> dict:
    beta, margin = _param(req, "beta"), _param(req, "margin")
    trainer = _cpo_trainer("simpo", beta, 0.0, margin)
    losses, cr, rr = trainer.cpo_loss(_tensor(req["policy_chosen"]), _tensor(req["policy_rejected"]))
    fn = "trl.experimental.cpo.CPOTrainer.cpo_loss(loss_type='simpo', simpo_gamma=margin, cpo_alpha=0)"
    return {"losses": losses.tolist(), "chosen_rewards": cr.tolist(), "rejected_rewards": rr.tolist(), "fn": fn}


def _orpo(req: dict) -> dict:
    from trl.experimental.orpo import ORPOTrainer

    t = object.__new__(ORPOTrainer)
    # The attributes ORPOTrainer.odds_ratio_loss reads (trl 1.16).
    t.accelerator = _Accelerator()
    t.beta = _param(req, "beta")
    terms, cr, rr, _mean_ratio, _mean_log_odds = t.odds_ratio_loss(
        _tensor(req["policy_chosen"]), _tensor(req["policy_rejected"])
    )
    return {
        "losses": terms.tolist(),
        "chosen_rewards": cr.tolist(),
        "rejected_rewards": rr.tolist(),
        "fn": "trl.experimental.orpo.ORPOTrainer.odds_ratio_loss (batch loss = NLL_w - mean(losses))",
    }


def answer(req: dict) -> dict:
    loss = req.get("loss")
    n = len(req["policy_chosen"])
    if len(req["policy_rejected"]) != n:
        raise SystemExit("policy_chosen and policy_rejected differ in length")
    if loss in ("dpo", "ipo", "cdpo"):
        for k in ("ref_chosen", "ref_rejected"):
            if len(req.get(k, [])) != n:
                raise SystemExit(f"{loss} needs {k} with one value per pair ({n})")
    if loss == "dpo":
        out = _dpo_family("sigmoid", req)
    elif loss == "ipo":
        out = _dpo_family("ipo", req)
    elif loss == "cdpo":
        out = _cdpo(req)
    elif loss == "simpo":
        out = _simpo(req)
    elif loss == "orpo":
        out = _orpo(req)
    else:
        raise SystemExit(f"unknown loss {loss!r}: expected dpo, cdpo, ipo, simpo or orpo")
    out["trl"] = {"version": trl.__version__, "function": out.pop("fn")}
    return out


def main() -> int:
    req = json.load(sys.stdin)
    # A JSON array of requests gets a JSON array of answers (one Python start-up, ~8 s, for all).
    out = [answer(r) for r in req] if isinstance(req, list) else answer(req)
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
