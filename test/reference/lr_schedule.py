# Learning rates per optimizer step from transformers' get_scheduler (and, for the seed's
# schedule, torch's LambdaLR with the seed's lambda), the reference for lib/train/schedule.ts.
#
# stdin: a JSON list of {"type": "linear" | "cosine" | "constant_with_warmup" | null, "lr": float,
#        "warmup_steps": int, "warmup_ratio": float | null, "total": int}
# stdout: a JSON list of lists: the lr each optimizer step used, in order.
import json
import sys
import tempfile

import torch
from transformers import TrainingArguments, get_scheduler


def warmup(case):
    if case["warmup_ratio"] is None:
        return case["warmup_steps"]
    # transformers 5 takes a ratio as a warmup_steps below 1 and computes ceil(total * ratio).
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, warmup_steps=case["warmup_ratio"], report_to=[])
        return args.get_warmup_steps(case["total"])


def lrs(case):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=case["lr"])
    w = warmup(case)
    if case["type"] is None:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=lambda step: min(1.0, (step + 1) / (w + 1)))
    else:
        sched = get_scheduler(case["type"], opt, num_warmup_steps=w, num_training_steps=case["total"])
    out = []
    for _ in range(case["total"]):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


json.dump([lrs(c) for c in json.load(sys.stdin)], sys.stdout)
