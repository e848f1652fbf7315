"""The seed's offline PPO (its trainers.py PPOTrainer: train's rewards, compute_advantages, loss,
get_batch_metrics) written out in torch float64, loop for loop, on given token-level tensors.

stdin: JSON {cfg: {gamma, lam, cliprange, critic_coef, KL_coef}, rows, T, logps, refLogps, values,
oldValues, masks, scores} (the [rows, T] ones flat, row-major). stdout: JSON {loss, metrics,
gradLogps, gradValues, advantages, discountedFutureRewards}.
"""
import json
import sys

import torch


def masked_mean(x, m):
    return (x * m).sum() / m.sum()


def masked_var(x, m):
    mean = masked_mean(x, m)
    return masked_mean((x - mean) ** 2, m)


def main():
    d = json.load(sys.stdin)
    c = d["cfg"]
    R, T = d["rows"], d["T"]
    grid = lambda k: torch.tensor(d[k], dtype=torch.float64).view(R, T)
    masks = grid("masks")
    # The seed's token-level log-probs are zero off the response (get_batch_logps * loss_mask).
    policy_logps = (grid("logps") * masks).requires_grad_(True)
    ref_logps = grid("refLogps") * masks
    values_now = grid("values").requires_grad_(True)
    old_values = grid("oldValues")
    scores = torch.tensor(d["scores"], dtype=torch.float64)

    # train(): the score on each row's last response token.
    rewards = torch.zeros_like(masks)
    for r in range(R):
        rewards[r, masks[r].nonzero()[-1]] += scores[r]
    rewards = rewards * masks

    # compute_advantages()
    gamma, lam = c["gamma"], c["lam"]
    values = old_values * masks
    rewards = rewards * masks
    gae = 0
    adv_rev, fut_rev = [], []
    fut = torch.zeros(R, dtype=torch.float64)
    for t in reversed(range(T)):
        nxt = values[:, t + 1] if t < T - 1 else 0.0
        delta = rewards[:, t] + gamma * nxt - values[:, t]
        gae = delta + gamma * lam * gae
        adv_rev.append(gae)
        fut_rev.append(fut)
        fut = rewards[:, t] + gamma * fut
    advantages = torch.stack(adv_rev[::-1]).transpose(0, 1) * masks
    returns = advantages + values
    dfr = torch.stack(fut_rev[::-1]).transpose(0, 1) * masks
    norm_adv = (advantages - masked_mean(advantages, masks)) * torch.rsqrt(masked_var(advantages, masks) + 1e-8)
    norm_adv = (norm_adv * masks).detach()

    # loss(): episode = the policy's pass, batch = the reference's log-probs and the targets.
    critic = 0.5 * masked_mean((values_now - dfr) ** 2, masks)
    ratio = torch.exp(policy_logps - ref_logps)
    pl = -norm_adv * ratio
    plc = -norm_adv * torch.clamp(ratio, c["cliprange"], 1 / c["cliprange"])
    policy = masked_mean(torch.max(pl, plc), masks)
    kl = masked_mean(ref_logps - policy_logps, masks)
    loss = policy + c["critic_coef"] * critic + c["KL_coef"] * kl
    loss.backward()

    seqratio = ratio.detach().clone()
    seqratio[masks == 0] = 1
    metrics = {
        "loss/critic": critic.item(),
        "loss/policy": policy.item(),
        "clipfrac/policy": masked_mean(torch.gt(plc, pl).double(), masks).item(),
        "loss/policykl": kl.item(),
        "loss/seqratio": seqratio.prod(dim=1).mean().item(),
        "returns/mean": masked_mean(returns, masks).item(),
        "returns/var": masked_var(returns, masks).item(),
        "val/mean": masked_mean(old_values, masks).item(),
        "val/var": masked_var(old_values, masks).item(),
    }
    # d loss / d logps as given: the seed's mask multiplies them first (chain rule through * masks).
    json.dump({
        "loss": loss.item(),
        "metrics": metrics,
        "gradLogps": policy_logps.grad.flatten().tolist(),
        "gradValues": values_now.grad.flatten().tolist(),
        "advantages": norm_adv.flatten().tolist(),
        "discountedFutureRewards": dfr.flatten().tolist(),
    }, sys.stdout)


if __name__ == "__main__":
    main()
