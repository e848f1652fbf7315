#!/usr/bin/env python3
"""The PyTorch twin of bench/train_step_case.ts: one case in a process of its own, one JSON line.

transformers + PyTorch eager (SDPA attention, no torch.compile), fp32, on the CPU, loading the
same HF model directory and reading the same rows / prompts file as the rpo case.

  train     1 warmup + `steps` timed steps (the fastest counts). A step = what rpo's Trainer does: the chosen and
            rejected rows in one forward (cut to their longest real row), the rationale rows (RDPO)
            in a second; per-row log-prob sums over the label positions (full logits, log_softmax
            in fp32, as TRL / HALOs); the loss of native/loss/losses.cpp:
              dpo:  mean(-logsigmoid(beta * ((pi_w - pi_l) - (ref_w - ref_l))))
              rdpo: mean(-logsigmoid(beta * (...)) - logsigmoid(gamma * pi_r))   (rationale_form code)
            backward; clip_grad_norm_(max_grad_norm); torch.optim.AdamW (torch defaults: betas
            (0.9, 0.999), eps 1e-8, weight_decay 0.01 -- LibTorch's AdamWOptions defaults, which rpo
            uses); zero_grad(set_to_none).
  train-pairs  the packing bench's padded side (bench/packing.ts): pairs of their own lengths, in
            micro-batches of pairs, each padded to its longest row (train_pairs below).
  generate  model.generate, greedy, KV cache, left padding, pad 0, no EOS, exactly new_tokens,
            `repeats` times after a short warm-up (the fastest counts). With stopTokenIds: those are
            the EOS ids (a list, as generation_config takes), up to new_tokens, each row's answer
            cut before its stop token; the batch runs until its last row ends (generate's way).
            batchSize B > 0: the prompts in consecutive batches of B (the seed's eval_batch_size
            way), each left-padded to its own longest prompt and run until its own last row ends.
            rowSteps: the token choices computed, sum over batches of rows x steps run.

    .venv/bin/python bench/pytorch_case.py '<json case>'
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402


def status_bytes(field: str):
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def load(model_dir: str):
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    return model, time.perf_counter() - t0


def row_logps(model, ids, att, lm):
    """Summed log-probs of the label tokens per row (lm[t] = 1: token t, predicted from t - 1)."""
    logits = model(input_ids=ids, attention_mask=att, use_cache=False).logits[:, :-1].float()
    logp = torch.gather(logits.log_softmax(-1), 2, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (logp * lm[:, 1:]).sum(-1)


def trimmed(ids, att, lm, begin, count):
    """Rows [begin, begin + count), cut to their longest real row (as rpo's rows_trimmed)."""
    a = att[begin : begin + count]
    used = a.any(0).nonzero()
    T = 1 if used.numel() == 0 else int(used.max()) + 1
    return ids[begin : begin + count, :T], a[:, :T], lm[begin : begin + count, :T]


def timed_steps(step, steps, tokens):
    """1 warmup step, then `steps` timed ones (the fastest counts: the machine may be shared, and
    interference only adds time); `step()` returns (loss, grad norm)."""
    w0 = time.perf_counter()
    loss, gn = step()
    warmup = time.perf_counter() - w0
    losses, grad_norms, times = [loss], [gn], []
    for _ in range(steps):
        t = time.perf_counter()
        loss, gn = step()
        times.append(time.perf_counter() - t)
        losses.append(loss)
        grad_norms.append(gn)
    step_seconds = min(times)
    return {
        "impl": "pytorch", "tokens": tokens, "warmupSeconds": warmup, "stepTimes": times, "stepSeconds": step_seconds,
        "tokensPerSecond": tokens / step_seconds, "losses": losses, "gradNorms": grad_norms, "peakRssBytes": peak_rss(),
    }


def train(c):
    with open(c["rowsFile"], encoding="utf-8") as f:
        rows = json.load(f)
    loss_name = c["loss"]["name"]
    beta = c["loss"]["beta"]
    gamma = c["loss"].get("gamma", 0.1)
    P, S = rows["pairs"], rows["seqLen"]
    groups = 3 if loss_name == "rdpo" else 2
    n = P * groups
    ids = torch.tensor(rows["inputIds"][: n * S], dtype=torch.long).view(n, S)
    att = torch.tensor(rows["attentionMask"][: n * S], dtype=torch.long).view(n, S)
    lm = torch.tensor(rows["lossMask"][: n * S], dtype=torch.float32).view(n, S)
    ref_w = torch.tensor(rows["reference"]["chosen"]["sum"], dtype=torch.float32)
    ref_l = torch.tensor(rows["reference"]["rejected"]["sum"], dtype=torch.float32)
    tokens = int(att.sum())

    model, load_seconds = load(c["modelDir"])
    rss_after_load, load_peak = status_bytes("VmRSS"), status_bytes("VmHWM")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=c["lr"])

    def step():
        pi = row_logps(model, *trimmed(ids, att, lm, 0, 2 * P))
        logits = beta * ((pi[:P] - pi[P:]) - (ref_w - ref_l))
        per_pair = -F.logsigmoid(logits)
        if loss_name == "rdpo":
            pi_r = row_logps(model, *trimmed(ids, att, lm, 2 * P, P))
            per_pair = per_pair - F.logsigmoid(gamma * pi_r)
        loss = per_pair.mean()
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), c["maxGradNorm"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach()), float(gn)

    return {**timed_steps(step, c["steps"], tokens), "params": sum(p.numel() for p in model.parameters()),
            "loadSeconds": load_seconds, "rssAfterLoadBytes": rss_after_load, "loadPeakRssBytes": load_peak}


def padded(seqs, pad):
    """Sequences ({ids, promptLength}) as one right-padded batch cut to its longest row; the
    label mask is 1 on the response tokens (ids[promptLength:], EOS included), as rpo's rows."""
    T = max(len(s["ids"]) for s in seqs)
    ids = torch.full((len(seqs), T), pad, dtype=torch.long)
    att = torch.zeros(len(seqs), T, dtype=torch.long)
    lm = torch.zeros(len(seqs), T, dtype=torch.float32)
    for i, s in enumerate(seqs):
        n = len(s["ids"])
        ids[i, :n] = torch.tensor(s["ids"])
        att[i, :n] = 1
        lm[i, s["promptLength"] : n] = 1
    return ids, att, lm


def train_pairs(c):
    """The packing bench's PyTorch side (bench/packing.ts): pairs of rows of their own lengths
    (rpo's tokenization), one global batch of all of them a step, in `accumulation` micro-batches
    of near-equal pair counts, each padded to its longest row (the chosen and rejected rows as one
    forward, the rationale rows as another); each micro-batch's loss scaled by its pairs / the
    batch's, so the step is the batch's mean; reference log-prob sums from the starting weights,
    computed once before the steps."""
    with open(c["pairsFile"], encoding="utf-8") as f:
        pairs = json.load(f)["pairs"]
    loss_name = c["loss"]["name"]
    beta = c["loss"]["beta"]
    gamma = c["loss"].get("gamma", 0.1)
    B, G, pad = len(pairs), c["accumulation"], c["padTokenId"]
    n_micro = max(1, min(G, B))
    sizes = [B // n_micro + (1 if i < B % n_micro else 0) for i in range(n_micro)]
    micros, start = [], 0
    for n in sizes:
        part = pairs[start : start + n]
        start += n
        resp = padded([p["chosen"] for p in part] + [p["rejected"] for p in part], pad)
        rat = padded([p["rationale"] for p in part], pad) if loss_name == "rdpo" else None
        micros.append({"n": n, "resp": resp, "rat": rat})
    forwards = [m["resp"] for m in micros] + [m["rat"] for m in micros if m["rat"] is not None]
    tokens = sum(int(a.sum()) for _, a, _ in forwards)
    computed = sum(a.numel() for _, a, _ in forwards)

    model, load_seconds = load(c["modelDir"])
    rss_after_load, load_peak = status_bytes("VmRSS"), status_bytes("VmHWM")
    model.train()
    with torch.no_grad():
        for m in micros:
            ref = row_logps(model, *m["resp"])
            m["ref_w"], m["ref_l"] = ref[: m["n"]], ref[m["n"] :]
    opt = torch.optim.AdamW(model.parameters(), lr=c["lr"])

    def step():
        total = 0.0
        for m in micros:
            n = m["n"]
            pi = row_logps(model, *m["resp"])
            per_pair = -F.logsigmoid(beta * ((pi[:n] - pi[n:]) - (m["ref_w"] - m["ref_l"])))
            if m["rat"] is not None:
                per_pair = per_pair - F.logsigmoid(gamma * row_logps(model, *m["rat"]))
            loss = per_pair.mean() * (n / B)
            loss.backward()
            total += float(loss.detach())
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), c["maxGradNorm"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        return total, float(gn)

    return {**timed_steps(step, c["steps"], tokens), "params": sum(p.numel() for p in model.parameters()),
            "paddingFraction": 1 - tokens / computed, "loadSeconds": load_seconds,
            "rssAfterLoadBytes": rss_after_load, "loadPeakRssBytes": load_peak}


def left_padded(prompts):
    B, L = len(prompts), max(len(p) for p in prompts)
    ids = torch.zeros(B, L, dtype=torch.long)
    mask = torch.zeros(B, L, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, L - len(p) :] = torch.tensor(p)
        mask[i, L - len(p) :] = 1
    return ids, mask


def generate(c):
    with open(c["promptsFile"], encoding="utf-8") as f:
        prompts = json.load(f)
    size = c.get("batchSize") or len(prompts)
    batches = [left_padded(prompts[i : i + size]) for i in range(0, len(prompts), size)]
    model, load_seconds = load(c["modelDir"])
    rss_after_load, load_peak = status_bytes("VmRSS"), status_bytes("VmHWM")
    model.eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    new = c["newTokens"]
    stops = c.get("stopTokenIds") or []
    kw = dict(do_sample=False, pad_token_id=0, eos_token_id=stops or None, use_cache=True, top_p=None, top_k=None, temperature=None)
    # Without stop tokens every row runs exactly `new` steps; with them a row ends at its first.
    lengths = dict(max_new_tokens=new) if stops else dict(max_new_tokens=new, min_new_tokens=new)
    with torch.no_grad():
        ids, mask = batches[0]
        model.generate(ids[:2], attention_mask=mask[:2], max_new_tokens=4, min_new_tokens=4, **{**kw, "eos_token_id": None})  # warm-up
        seconds = float("inf")
        for _ in range(c["repeats"]):
            t = time.perf_counter()
            outs = [model.generate(ids, attention_mask=mask, **lengths, **kw) for ids, mask in batches]
            seconds = min(seconds, time.perf_counter() - t)  # the fastest run
    gen, row_steps = [], 0
    for (ids, _), out in zip(batches, outs):
        steps = out.shape[1] - ids.shape[1]
        row_steps += ids.shape[0] * steps
        gen += out[:, ids.shape[1] :].tolist()
    if stops:  # each row's answer: the tokens before its stop token (padding follows it)
        gen = [next((row[:k] for k, t in enumerate(row) if t in stops), row) for row in gen]
    tokens = sum(len(row) for row in gen)
    return {
        "impl": "transformers", "params": sum(p.numel() for p in model.parameters()), "loadSeconds": load_seconds,
        "batchSize": size, "rowSteps": row_steps,
        "seconds": seconds, "generatedTokens": tokens, "tokensPerSecond": tokens / seconds,
        "ids": gen, "rssAfterLoadBytes": rss_after_load, "loadPeakRssBytes": load_peak, "peakRssBytes": peak_rss(),
    }


def main() -> int:
    c = json.loads(sys.argv[1])
    torch.set_num_threads(c["threads"])
    torch.manual_seed(0)
    r = train(c) if c["kind"] == "train" else train_pairs(c) if c["kind"] == "train-pairs" else generate(c)
    r.update(torch=torch.__version__, transformers=transformers.__version__, threads=torch.get_num_threads())
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
