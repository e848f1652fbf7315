#!/usr/bin/env python3
"""The RDPO train step of train_step.ts, written the way the seed's stack does it: HF transformers
+ PyTorch, bf16 parameters (pure bf16), SDPA attention, activation checkpointing
(gradient_checkpointing_enable), full logits then log_softmax in fp32 (as HALOs / TRL compute
per-row log-probs), torch.optim.AdamW (fused on CUDA). Same shapes, same row layout, same micro-batches, same
random-token rows as train_step.ts, random init. Prints one JSON line (and writes it with --out).

    python3 bench/gpu/pytorch_train_step.py --model llama-1b [--pairs 32] [--micro-pairs 8] [--seq 1024]
        [--prompt 256] [--reference precomputed|live] [--no-ckpt] [--steps 2] [--out f.json]
    python3 bench/gpu/pytorch_train_step.py --tiny      (CPU smoke test)
    python3 bench/gpu/pytorch_train_step.py --model mistral-7b --length-mix mix.json
        (the rows of length_mix.ts's file, each micro-batch right-padded to its longest row; tokens/s
        of the real tokens)

RDPO (docs/design.md): dpo(beta) - log sigmoid(gamma * pi_r), pi = summed response log-probs, the
reference on chosen and rejected rows only. TRL's DPO loss would be the same sigmoid formula; TRL
is not installed on the GPU machines, so the loss is written out here.
If the micro-batch runs out of GPU memory, it is halved (and the run says so): the comparison
then reports what PyTorch needed to fit.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_CLASSES = {"LlamaForCausalLM": LlamaConfig, "MistralForCausalLM": MistralConfig, "Qwen2ForCausalLM": Qwen2Config}
GROUPS = 3


def hf_config(name: str):
    with open(os.path.join(HERE, "models.json"), encoding="utf-8") as f:
        shapes = json.load(f)
    fields = {k: v for k, v in shapes[name].items() if not k.startswith("_")}
    cls = CONFIG_CLASSES[fields.pop("architectures")[0]]
    fields.pop("model_type", None)
    return cls(**fields)


def mulberry32(seed: int):
    a = seed & 0xFFFFFFFF

    def nxt() -> float:
        nonlocal a
        a = (a + 0x6D2B79F5) & 0xFFFFFFFF
        t = a
        t = ((t ^ (t >> 15)) * (t | 1)) & 0xFFFFFFFF
        t ^= (t + (((t ^ (t >> 7)) * (t | 61)) & 0xFFFFFFFF)) & 0xFFFFFFFF
        return ((t ^ (t >> 14)) & 0xFFFFFFFF) / 4294967296

    return nxt


def full_rows(seed: int, rows: int, seq: int, vocab: int, prompt: int, device):
    """The same rows as common.ts fullRows (mulberry32): ids 3..vocab-1, labels after `prompt`."""
    r = mulberry32(seed)
    ids = [3 + int(r() * (vocab - 3)) for _ in range(rows * seq)]
    input_ids = torch.tensor(ids, dtype=torch.long).view(rows, seq)
    loss_mask = torch.zeros(rows, seq, dtype=torch.bool)
    loss_mask[:, prompt:] = True
    return input_ids.to(device), loss_mask.to(device)


def mix_rows(mix: dict, i: int, micro_pairs: int, vocab: int, device):
    """Micro-batch i of a length-mix file (length_mix.ts): chosen, rejected and rationale rows of
    its pairs, right-padded to the longest (causal attention: real tokens never see the padding,
    as in rpo's padded path), labels the response tokens. Returns ids, loss mask, real tokens."""
    ps = mix["pairs"][i * micro_pairs:(i + 1) * micro_pairs]
    rows = ([(p["prompt"] + p["chosen"], p["prompt"]) for p in ps] + [(p["prompt"] + p["rejected"], p["prompt"]) for p in ps]
            + [(p["prompt"] + p["rationale"], p["prompt"]) for p in ps])
    seq = max(n for n, _ in rows)
    g = torch.Generator().manual_seed(1000 + i)
    input_ids = torch.randint(3, vocab, (len(rows), seq), generator=g)
    loss_mask = torch.zeros(len(rows), seq, dtype=torch.bool)
    for k, (n, prompt) in enumerate(rows):
        loss_mask[k, prompt:n] = True
        input_ids[k, n:] = 0
    return input_ids.to(device), loss_mask.to(device), sum(n for n, _ in rows)


def row_logps(model, input_ids, loss_mask):
    """Summed log-probs of the label tokens per row: full logits, log_softmax in fp32 (HALOs/TRL)."""
    logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), use_cache=False).logits
    logits = logits[:, :-1].float()
    labels = input_ids[:, 1:]
    mask = loss_mask[:, 1:]
    logp = torch.gather(logits.log_softmax(-1), 2, labels.unsqueeze(-1)).squeeze(-1)
    return (logp * mask).sum(-1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="llama-1b")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--pairs", type=int)
    ap.add_argument("--micro-pairs", type=int)
    ap.add_argument("--seq", type=int)
    ap.add_argument("--prompt", type=int)
    ap.add_argument("--reference", default="precomputed", choices=["precomputed", "live"])
    ap.add_argument("--no-ckpt", action="store_true")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--length-mix", help="rows from length_mix.ts's file, each micro-batch padded to its longest row")
    ap.add_argument("--out")
    args = ap.parse_args()

    name = "tiny" if args.tiny else args.model
    label = f"tiny (as {args.model})" if args.tiny else name  # a rehearsal's rows stay apart
    mix = json.load(open(args.length_mix)) if args.length_mix else None
    pairs = len(mix["pairs"]) if mix else (args.pairs or (4 if args.tiny else 32))
    micro_pairs = args.micro_pairs or (2 if args.tiny else (4 if name == "mistral-7b" else 8))
    seq = mix["maxLength"] if mix else (args.seq or (64 if args.tiny else 1024))
    prompt = args.prompt if args.prompt is not None else seq // 4
    steps = args.steps or (1 if args.tiny or name == "mistral-7b" else 2)
    live = args.reference == "live"
    ckpt = not args.no_ckpt
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    beta, gamma = 0.1, 0.001
    base = {
        "bench": "train_step", "impl": "pytorch", "model": label, "device": str(device),
        "gpu": torch.cuda.get_device_name() if cuda else None, "dtype": "bfloat16", "loss": "rdpo",
        "pairs": pairs, "seq": seq, "prompt": prompt, "reference": args.reference, "activationCheckpointing": ckpt,
        "attn": args.attn, "torch": torch.__version__, "transformers": transformers.__version__,
        "rows": "length mix" if mix else "full", "paddingFree": False,
    }
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True  # as rpo on GPUs (only fp32 matmuls: none here in bf16)

    t0 = time.perf_counter()
    config = hf_config(name)
    torch.manual_seed(1)
    with torch.device(device):
        policy = AutoModelForCausalLM.from_config(config, attn_implementation=args.attn, dtype=torch.bfloat16)
        reference = AutoModelForCausalLM.from_config(config, attn_implementation=args.attn, dtype=torch.bfloat16) if live else None
    if reference is not None:
        reference.eval().requires_grad_(False)
    if ckpt:
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    policy.config.use_cache = False
    policy.train()
    # fused=True on CUDA: the fastest AdamW PyTorch has, and it needs no parameter-sized temporaries
    # (the default foreach one would add a bf16 copy of all 7.24 B parameters at each step).
    opt = torch.optim.AdamW(policy.parameters(), lr=5e-7, fused=cuda)
    create_seconds = time.perf_counter() - t0
    n_params = sum(p.numel() for p in policy.parameters())

    def run(micro_pairs: int):
        micro = pairs // micro_pairs
        if mix:
            batches = [mix_rows(mix, i, micro_pairs, config.vocab_size, device) for i in range(micro)]
        else:
            batches = [(*full_rows(1000 + i, micro_pairs * GROUPS, seq, config.vocab_size, prompt, device), micro_pairs * GROUPS * seq)
                       for i in range(micro)]
        n = seq - prompt
        pre = {
            "chosen": torch.tensor([-2.5 * n + 0.5 + i * 0.01 for i in range(micro_pairs)], device=device),
            "rejected": torch.tensor([-2.5 * n - 0.5 + i * 0.01 for i in range(micro_pairs)], device=device),
        }

        def micro_step(ids, mask, real_tokens):
            mp = micro_pairs
            # Response rows and rationale rows as two forwards, as rpo's trainer does.
            pi = row_logps(policy, ids[: 2 * mp], mask[: 2 * mp])
            pi_r = row_logps(policy, ids[2 * mp :], mask[2 * mp :])
            if live:
                with torch.no_grad():
                    ref = row_logps(reference, ids[: 2 * mp], mask[: 2 * mp])
                ref_w, ref_l = ref[:mp], ref[mp:]
            else:
                ref_w, ref_l = pre["chosen"], pre["rejected"]
            logits = beta * ((pi[:mp] - pi[mp:]) - (ref_w - ref_l))
            loss = (-F.logsigmoid(logits) - F.logsigmoid(gamma * pi_r)).mean()
            (loss * (mp / pairs)).backward()
            return float(loss.detach()), real_tokens

        def full_step():
            tokens, last = 0, 0.0
            for ids, mask, real in batches:
                last, t = micro_step(ids, mask, real)
                tokens += t
            gn = torch.nn.utils.clip_grad_norm_(policy.parameters(), 10.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return tokens, last, float(gn)

        w0 = time.perf_counter()
        micro_step(*batches[0])
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 10.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        warmup = time.perf_counter() - w0
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        times, tokens, last = [], 0, 0.0
        for _ in range(steps):
            t = time.perf_counter()
            tokens, last, _gn = full_step()
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        return micro_pairs, warmup, times, tokens, last

    tried = []
    mp = micro_pairs
    while True:
        message = None
        try:
            used, warmup, times, tokens, last = run(mp)
            break
        except torch.cuda.OutOfMemoryError as e:
            message = str(e).splitlines()[0]
        # Out of the except block, so the traceback's tensors are freed before retrying.
        tried.append(mp)
        opt.zero_grad(set_to_none=True)
        gc.collect()
        torch.cuda.empty_cache()
        if mp == 1 or pairs % (mp // 2) != 0:
            emit({**base, "microPairs": micro_pairs, "error": f"out of memory at micro-pairs {tried}", "oom": True, "message": message}, args.out)
            return 1
        print(f"pytorch {name}: out of memory at {mp} pairs per micro-batch; trying {mp // 2}", file=sys.stderr)
        mp //= 2

    step = statistics.median(times)
    ref_tokens = tokens * 2 / 3 if live else 0
    flops = 6 * n_params * tokens + 2 * n_params * ref_tokens
    result = {
        **base, "microPairs": used, "oomAtMicroPairs": tried, "params": n_params, "createSeconds": create_seconds,
        "warmupSeconds": warmup, "steps": steps, "stepSeconds": step, "stepTimes": times, "policyTokensPerStep": tokens,
        "referenceTokensPerStep": ref_tokens, "tokensPerSecond": tokens / step, "achievedTflops": flops / step / 1e12,
        "peakAllocatedBytes": torch.cuda.max_memory_allocated() if cuda else None,
        "peakReservedBytes": torch.cuda.max_memory_reserved() if cuda else None,
        "deviceTotalBytes": torch.cuda.get_device_properties(0).total_memory if cuda else None,
        "lastLoss": last,
    }
    emit(result, args.out)
    print(f"pytorch {name} ({n_params / 1e9:.2f} B params, {device}): {step:.2f} s/step, {tokens / step:.0f} tokens/s"
          + (f", peak {result['peakReservedBytes'] / 2**30:.1f} GiB reserved" if cuda else ""), file=sys.stderr)
    return 0


def emit(result: dict, out: str | None) -> None:
    line = json.dumps(result)
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w", encoding="utf-8") as f:
            f.write(line + "\n")
    print(line)


if __name__ == "__main__":
    sys.exit(main())
