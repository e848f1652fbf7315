#!/usr/bin/env python3
"""TRL's DPOTrainer on the length mix's rows (length_mix.ts's file), the trainer most DPO users run:
loss=dpo (TRL has no rationale row: chosen and rejected rows only), bf16 weights, activation
checkpointing, reference log-probs precomputed (precompute_ref_log_probs, as the rpo rows' precomputed
reference), --micro-pairs pairs per device batch and the rest as gradient accumulation, AdamW,
Liger's fused kernels on or off (--liger: use_liger_kernel, which needs the liger-kernel wheel).
Random init, the same shapes (models.json). Real tokens/s of the rows TRL trains (prompt + chosen,
prompt + rejected, each with TRL's EOS), MFU on them, peak memory. Prints one JSON line.

    python3 bench/gpu/trl_dpo.py --model mistral-7b --length-mix mix.json [--liger] [--out f.json]
    python3 bench/gpu/trl_dpo.py --tiny --length-mix mix.json       (CPU smoke test)

The text: each token a word "w<id>" of a word-level tokenizer made here (one token per word, TRL's
EOS split out as a special token), so a field of n words is n tokens, as the mix says.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")

import torch  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, TrainerCallback  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_train_step import emit, hf_config  # noqa: E402


def word_tokenizer(vocab: int) -> PreTrainedTokenizerFast:
    words = {"<pad>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i for i in range(3, vocab)}}
    tok = Tokenizer(models.WordLevel(words, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def text(g: torch.Generator, n: int, vocab: int, lead: str = "") -> str:
    return lead + " ".join(f"w{int(i)}" for i in torch.randint(3, vocab, (n,), generator=g))


class StepTimer(TrainerCallback):
    def __init__(self, cuda: bool):
        self.cuda, self.times, self.t = cuda, [], 0.0

    def on_step_begin(self, args, state, control, **kw):
        if self.cuda:
            torch.cuda.synchronize()
        self.t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        if self.cuda:
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.t)
        if len(self.times) == 1 and self.cuda:
            torch.cuda.reset_peak_memory_stats()  # after the warm-up step: the steady state


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="llama-1b")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--length-mix", required=True)
    ap.add_argument("--micro-pairs", type=int)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--liger", action="store_true")
    ap.add_argument("--peak-tflops", type=float)
    ap.add_argument("--out")
    args = ap.parse_args()
    name = "tiny" if args.tiny else args.model
    label = f"tiny (as {args.model})" if args.tiny else name  # a rehearsal's rows stay apart
    mix = json.load(open(args.length_mix))
    pairs = len(mix["pairs"])
    mp = args.micro_pairs or (2 if args.tiny else 4)
    cuda = torch.cuda.is_available()
    base = {"bench": "train_step", "impl": f"TRL DPOTrainer{' + Liger' if args.liger else ''}", "model": label, "loss": "dpo",
            "device": "cuda" if cuda else "cpu", "gpu": torch.cuda.get_device_name() if cuda else None, "dtype": "bfloat16",
            "pairs": pairs, "microPairs": mp, "seq": mix["maxLength"], "reference": "precomputed", "activationCheckpointing": True,
            "rows": "length mix", "paddingFree": False, "torch": torch.__version__, "transformers": transformers.__version__}
    try:
        import datasets
        import trl
        from trl import DPOConfig, DPOTrainer
    except ImportError as e:
        emit({**base, "error": f"TRL not importable here ({e}): carry its wheels (scripts/device-run.sh --prepare)"}, args.out)
        return 1
    base["trl"] = trl.__version__
    config = hf_config(name)
    vocab = config.vocab_size
    g = torch.Generator().manual_seed(24)
    rows = [{"prompt": text(g, p["prompt"], vocab), "chosen": text(g, p["chosen"], vocab, " "), "rejected": text(g, p["rejected"], vocab, " ")}
            for p in mix["pairs"]]
    # Real tokens a step: each pair's prompt + chosen and prompt + rejected rows, with the EOS TRL adds.
    real = sum(2 * p["prompt"] + p["chosen"] + p["rejected"] + 2 for p in mix["pairs"])
    torch.manual_seed(1)
    with torch.device("cuda" if cuda else "cpu"):
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())
    timer = StepTimer(cuda)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = DPOConfig(
            output_dir=tmp, per_device_train_batch_size=mp, gradient_accumulation_steps=pairs // mp, max_steps=1 + args.steps,
            learning_rate=5e-7, max_grad_norm=10.0, beta=0.1, bf16=cuda, gradient_checkpointing=True,
            gradient_checkpointing_kwargs={"use_reentrant": False}, max_length=mix["maxLength"], precompute_ref_log_probs=True,
            use_liger_kernel=args.liger, report_to=[], save_strategy="no", logging_steps=1000, dataloader_num_workers=0,
            dataset_num_proc=None, seed=1, use_cpu=not cuda,
        )
        trainer = DPOTrainer(model=model, args=cfg, train_dataset=datasets.Dataset.from_list(rows), processing_class=word_tokenizer(vocab),
                             callbacks=[timer])
        try:
            trainer.train()
        except torch.cuda.OutOfMemoryError as e:
            emit({**base, "params": n_params, "error": f"out of memory: {str(e).splitlines()[0]}", "oom": True}, args.out)
            return 1
    timed = timer.times[1:] or timer.times
    step = statistics.median(timed)
    flops = 6 * n_params * real
    peak = args.peak_tflops or (float(os.environ["RPO_BF16_PEAK_TFLOPS"]) if os.environ.get("RPO_BF16_PEAK_TFLOPS") else None)
    result = {**base, "params": n_params, "steps": len(timed), "stepSeconds": step, "stepTimes": timer.times, "policyTokensPerStep": real,
              "tokensPerSecond": real / step, "achievedTflops": flops / step / 1e12, "peakTflops": peak,
              "mfu": flops / step / 1e12 / peak if peak else None,
              "peakAllocatedBytes": torch.cuda.max_memory_allocated() if cuda else None,
              "peakReservedBytes": torch.cuda.max_memory_reserved() if cuda else None,
              "deviceTotalBytes": torch.cuda.get_device_properties(0).total_memory if cuda else None}
    emit(result, args.out)
    print(f"{base['impl']} {name}: {step:.2f} s/step, {real / step:.0f} real tokens/s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
