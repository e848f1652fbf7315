#!/usr/bin/env python3
"""The seed's losses written out in torch (float64, autograd): a test-time reference.

    python seed_losses.py < requests.json > answers.json

Each formula is the one in the seed's trainers.py (RDPOTrainer, RORPOTrainer,
SimpleRORPOTrainer, KTOTrainer, SimpleKTOTrainer, KTOZeroTrainer, and the paired losses
DPO/CDPO/IPO/SLiC/SimPO/ORPO that the rationale term extends), written out here, applied to
the given per-row log-probs. rpo's engine computes its own; the tests compare the two.

request (stdin: a JSON array of these):
    {"loss": name, "beta", "gamma", "epsilon", "lambda", "margin",
     "desirable_weight", "undesirable_weight": numbers (those the loss reads),
     "rationale": "none" | "logsigmoid" | "linear"  (paired losses; rdpo etc. fix theirs),
     "policy": {"chosen": {"sum": [...], "mean": [...], "count": [...]}, "rejected": ..., "rationale": ...,
                "desirable": [0/1 per example]},
     "reference": {"chosen": ..., "rejected": ...} or null}
    Paired losses: rows are pairs. Unpaired (kto*): chosen = the examples, with "desirable";
    kto's rejected = the KL rows (each prompt with another example's response).

answer (stdout: a JSON array): {"loss": float, "grads": {"chosen.sum": [...], ...},
    "metrics": {...}}; grads are d loss / d each given policy field.
"""

from __future__ import annotations

import json
import sys

import torch
import torch.nn.functional as F

DTYPE = torch.float64


def leaf(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=DTYPE, requires_grad=True)


def const(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=DTYPE)


def log_odds(logp: torch.Tensor) -> torch.Tensor:
    # The seed's ORPO: log(p / (1 - p)) = logp - log1p(-exp(logp)).
    return logp - torch.log1p(-torch.exp(logp))


def rationale_gain(form: str, gamma: float, pr: torch.Tensor) -> torch.Tensor:
    # RDPOTrainer / RORPOTrainer: + logsigmoid(gamma pi_r) (subtracted from the loss);
    # SimpleRORPOTrainer (and RDPO's paper form): + gamma pi_r.
    if form == "logsigmoid":
        return F.logsigmoid(gamma * pr)
    if form == "linear":
        return gamma * pr
    raise SystemExit(f"unknown rationale form {form!r}")


FIXED = {"rdpo": ("dpo", None), "rorpo": ("orpo", "logsigmoid"), "rorpo-simple": ("orpo", "linear")}
MEAN_LOSSES = {"ipo", "simpo", "orpo"}


def paired(req: dict, pol: dict, ref: dict | None) -> tuple[torch.Tensor, dict]:
    name = req["loss"]
    base, form = FIXED.get(name, (name, req.get("rationale", "none")))
    if name == "rdpo":
        form = "linear" if req.get("rationale_form") == "paper" else "logsigmoid"
    beta = req.get("beta", 0.1)
    use_mean = base in MEAN_LOSSES
    pw = pol["chosen"]["mean" if use_mean else "sum"]
    pl = pol["rejected"]["mean" if use_mean else "sum"]
    nll = -pol["chosen"]["sum"].sum() / pol["chosen"]["count"].sum()
    metrics: dict = {}
    offset = None
    if base == "dpo":
        rw, rl = ref["chosen"]["sum"], ref["rejected"]["sum"]
        losses = -F.logsigmoid(beta * ((pw - pl) - (rw - rl)))
    elif base == "cdpo":
        eps = req["epsilon"]
        rw, rl = ref["chosen"]["sum"], ref["rejected"]["sum"]
        fwd = -F.logsigmoid(beta * ((pw - rw) - (pl - rl)))
        rev = -F.logsigmoid(beta * ((pl - rl) - (pw - rw)))
        losses = (1 - eps) * fwd + eps * rev
    elif base == "ipo":
        rw, rl = ref["chosen"]["mean"], ref["rejected"]["mean"]
        losses = ((pw - pl) - (rw - rl) - 1 / (2 * beta)) ** 2
    elif base == "slic":
        losses = torch.clamp(beta - pw + pl, min=0) + req["lambda"] * (-pw)
    elif base == "simpo":
        losses = -F.logsigmoid(beta * pw - beta * pl - req["margin"])
    elif base == "orpo":
        # The seed's ORPOTrainer: loss = NLL - mean(beta log sigmoid(log odds ratio) [+ rationale]).
        ratio = torch.log(torch.sigmoid(log_odds(pw) - log_odds(pl)))
        losses = -(beta * ratio)
        offset = nll
    else:
        raise SystemExit(f"unknown paired loss {name!r}")
    if form != "none":
        pr = pol["rationale"]["mean" if use_mean else "sum"]
        losses = losses - rationale_gain(form, req["gamma"], pr)
    loss = losses.mean() if offset is None else offset + losses.mean()
    return loss, metrics


def unpaired(req: dict, pol: dict, ref: dict) -> tuple[torch.Tensor, dict]:
    name = req["loss"]
    beta = req.get("beta", 0.1)
    d = torch.tensor(req["policy"]["desirable"], dtype=torch.bool)
    lr = pol["chosen"]["sum"] - ref["chosen"]["sum"]
    chosen_lr, rejected_lr = lr[d], lr[~d]
    metrics: dict = {}
    if name == "kto":
        # KTOTrainer: KL from the mismatched rows, detached, clamped at 0 (one rank).
        kl = (pol["rejected"]["sum"] - ref["rejected"]["sum"]).mean().detach().clamp(min=0)
        chosen_losses = 1 - torch.sigmoid(beta * (chosen_lr - kl))
        rejected_losses = 1 - torch.sigmoid(beta * (kl - rejected_lr))
        losses = torch.cat((req["desirable_weight"] * chosen_losses, req["undesirable_weight"] * rejected_losses))
        metrics["rewards/KL_estimate"] = float(kl)
    elif name == "kto-simple":
        # SimpleKTOTrainer: each kind's reference point is the other kind's mean log-ratio.
        chosen_kl = chosen_lr.mean().clamp(min=0)
        rejected_kl = rejected_lr.mean().clamp(min=0)
        losses = torch.cat((1 - torch.sigmoid(beta * (chosen_lr - rejected_kl)), 1 - torch.sigmoid(beta * (chosen_kl - rejected_lr))))
    elif name == "kto-zero":
        losses = torch.cat((1 - torch.sigmoid(beta * (chosen_lr - 0)), 1 - torch.sigmoid(beta * (0 - rejected_lr))))
    else:
        raise SystemExit(f"unknown unpaired loss {name!r}")
    cr, rr = beta * chosen_lr.detach(), beta * rejected_lr.detach()
    if cr.numel():
        metrics["rewards/chosen"] = float(cr.mean())
        metrics["logps/chosen"] = float(pol["chosen"]["sum"][d].detach().mean())
    if rr.numel():
        metrics["rewards/rejected"] = float(rr.mean())
        metrics["logps/rejected"] = float(pol["chosen"]["sum"][~d].detach().mean())
    metrics["rewards/margins"] = float(cr.mean().nan_to_num(0) - rr.mean().nan_to_num(0))
    return losses.mean(), metrics


def answer(req: dict) -> dict:
    pol: dict = {}
    for group, fields in req["policy"].items():
        if group == "desirable":
            continue
        pol[group] = {k: (const(v) if k == "count" else leaf(v)) for k, v in fields.items()}
    ref = None
    if req.get("reference"):
        ref = {g: {k: const(v) for k, v in f.items()} for g, f in req["reference"].items()}
    if req["loss"].startswith("kto"):
        loss, metrics = unpaired(req, pol, ref)
    else:
        loss, metrics = paired(req, pol, ref)
    loss.backward()
    grads = {}
    for group, fields in pol.items():
        for k, t in fields.items():
            if k != "count":
                grads[f"{group}.{k}"] = (t.grad if t.grad is not None else torch.zeros_like(t)).tolist()
    return {"loss": float(loss), "grads": grads, "metrics": metrics}


def main() -> None:
    requests = json.load(sys.stdin)
    json.dump([answer(r) for r in requests], sys.stdout)


if __name__ == "__main__":
    main()
