#!/usr/bin/env python3
"""transformers' logits processors on given logits (test-time reference for the sampler's warps).

    python hf_warps.py --input in.json

in.json:  {"logits": [[...], ...], "context": [[ids], ...], "cases": [{"temperature": t,
          "top_k": k, "top_p": p, "repetition_penalty": r}, ...]}
stdout:   one JSON line {"warped": [ [[...], ...] per case ]}, -inf as null.

Each case runs the processors generate builds for those settings, in its order:
RepetitionPenaltyLogitsProcessor (over each row's context, as generate passes input_ids), then
TemperatureLogitsWarper, TopKLogitsWarper and TopPLogitsWarper, each only when the setting is
active (generate's own conditions), all in float32.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from transformers.generation.logits_process import (  # noqa: E402
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)


def processors(case: dict) -> LogitsProcessorList:
    out = LogitsProcessorList()
    r = case.get("repetition_penalty", 1.0)
    if r != 1.0:
        out.append(RepetitionPenaltyLogitsProcessor(penalty=r))
    t = case.get("temperature", 1.0)
    if t != 1.0:
        out.append(TemperatureLogitsWarper(t))
    k = case.get("top_k", 0)
    if k:
        out.append(TopKLogitsWarper(top_k=k))
    p = case.get("top_p", 1.0)
    if p < 1.0:
        out.append(TopPLogitsWarper(top_p=p))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True)
    args = ap.parse_args()
    with open(args.input, encoding="utf-8") as f:
        spec = json.load(f)
    logits = torch.tensor(spec["logits"], dtype=torch.float32)
    # Rows' contexts of different lengths: the repetition penalty gathers and scatters by id, so
    # each row runs alone with its own input_ids.
    warped = []
    for case in spec["cases"]:
        rows = []
        for r, ctx in enumerate(spec["context"]):
            ids = torch.tensor([ctx], dtype=torch.long)
            out = processors(case)(ids, logits[r : r + 1].clone())[0]
            rows.append([None if math.isinf(v) and v < 0 else v for v in out.tolist()])
        warped.append(rows)
    print(json.dumps({"warped": warped}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
