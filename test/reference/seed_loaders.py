#!/usr/bin/env python3
"""A Python port of the seed's data path (reds-lab's dataloader.py, from ContextualAI/HALOs), the
reference rpo's loaders are compared with. It follows the seed's behaviour step for step —
how each get_<name> reads its source (datasets.load_dataset / load_from_disk), builds prompts,
responses and the rationale context, groups examples by prompt, cleans text, and how
tokenize_batch_element truncates — written anew for the tests (not the seed's text).

    seed_loaders.py load --cwd DIR --hub DIR < prefixes.json
        Every dataset's examples, both splits, as the seed's loaders hold them: one JSON object
        {"<name>/<split>": {"examples": [...], "rows": [...]}}. `examples` in the seed's dict
        order: {prompt, prompt_rat, generations, pairs, truncation_mode, dataset_name}, after
        remove_extra_spaces; for shp's train split also "pairs_before_cap". `rows` (orca
        family): per source row, in order, the strings the seed trains that row's pair on.
        DIR/cwd plays the seed's code directory's parent: '../data/<name>' is DIR/data/<name>.
        Hub datasets are read with datasets.load_dataset from DIR/hub/<repo id>, the same file
        layout the hub serves, so datasets' own split rules apply.

    seed_loaders.py tokenize --tokenizer DIR < jobs.json
        jobs: {"jobs": [{"max_length", "max_prompt_length", "items": [{"prompt", "generation",
        "truncation_mode"}]}]}; one output list per job. For each item, the seed's
        tokenize_batch_element with transformers' AutoTokenizer: the prompt and generation ids
        after its truncation (before it decoded them), whether each was cut, and the ids it
        finally trained on (decoded with skip_special_tokens, ' ' + eos_token appended,
        re-tokenized) with its label mask length.

    seed_loaders.py unpaired < spec.json
        The seed's unpaired / conditional data with shuffling switched off (identity), on
        spec = {"pairs": [{"prompt", "chosen", "rejected"}], "batch_size", "frac_unique_desirable",
        "frac_unique_undesirable", "chosen_control_token", "rejected_control_token"}: the flat
        example lists and batches of UnpairedPreferenceDataLoader (with its KL pairing),
        SimpleKTODataLoader and ConditionalSFTDataLoader.
"""
import argparse
import json
import os
import re
import sys
from collections import defaultdict

# --------------------------------------------------------------------------------------------
# Examples, as the seed keeps them


class Example:
    def __init__(self):
        self.prompt = ""
        self.prompt_rat = ""
        self.generations = []
        self.pairs = []
        self.truncation_mode = "keep_end"
        self.dataset_name = ""
        self.sft_index = -1

    def clean(self):
        # remove_extra_spaces: the prompt and every generation, never prompt_rat
        squash = lambda s: re.sub(r"[ \t]{2,}", " ", s)
        self.prompt = squash(self.prompt)
        self.generations = [squash(g) for g in self.generations]

    def as_json(self):
        return {
            "prompt": self.prompt,
            "prompt_rat": self.prompt_rat,
            "generations": self.generations,
            "pairs": [list(p) for p in self.pairs],
            "truncation_mode": self.truncation_mode,
            "dataset_name": self.dataset_name,
        }


def new_store():
    return defaultdict(Example)


# --------------------------------------------------------------------------------------------
# Loaders


def add_pair(store, key, prompt, responses, mode, name, prompt_rat=None):
    ex = store[key]
    base = len(ex.generations)
    ex.prompt = prompt
    if prompt_rat is not None:
        ex.prompt_rat = prompt_rat  # the seed overwrote it with each row of the same prompt
    ex.generations.extend(responses)
    ex.pairs.append(tuple(range(base, base + len(responses))))
    ex.truncation_mode = mode
    ex.dataset_name = name
    ex.clean()


def question_above_below(p, c, r):
    return (f"Given the prompt:\n{p}\n"
            "Which of the following assistant's response is more preferable and strictly follows with the prompt question?\n"
            f"Response above:\"{c}\"\nor\nResponse below:\"{r}\"?\n")


def question_numbered(p, c, r):
    return (f"Given the prompt:\n{p}\n"
            "Which of the following assistant's response is more preferable and strictly follows with the prompt question?\n"
            f"Assistant 1:\"{c}\"\nor\nAssistant 2:\"{r}\"?\n"
            "Provide a rationale of your answer.")


def orca_family(dirpath, split, fmt, name, rationale):
    """get_orca (rationale=None), get_orcarat ('numbered'), get_orcaratgen/spec[_llama3_8it] ('above-below')."""
    import datasets
    hp, hs, ap, as_ = fmt
    rows = datasets.load_from_disk(dirpath)[split]
    store = new_store()
    per_row = []
    for row in rows:
        prompt = hp + row["prompt"] + hs + ap
        if rationale is None:
            add_pair(store, prompt, prompt, [row["chosen"] + as_, row["rejected"] + as_], "keep_start", name)
        else:
            if rationale == "numbered":
                prompt_rat = hp + question_numbered(row["prompt"], row["chosen"], row["rejected"]) + ap
            else:
                prompt_rat = hp + question_above_below(row["prompt"], row["chosen"], row["rejected"]) + hs + ap
            add_pair(store, prompt, prompt, [row["chosen"] + as_, row["rejected"] + as_, row["rationale"] + as_], "keep_start", name, prompt_rat)
        per_row.append((prompt, len(store[prompt].pairs) - 1))
    rows_out = []
    for key, k in per_row:
        ex = store[key]
        pair = ex.pairs[k]
        item = {"prompt": ex.prompt, "chosen": ex.generations[pair[0]], "rejected": ex.generations[pair[1]], "truncation_mode": ex.truncation_mode}
        if len(pair) > 2:
            item["rationale"] = ex.generations[pair[2]]
            item["prompt_rat"] = ex.prompt_rat
        rows_out.append(item)
    return store, rows_out


def shp(hubdir, split, fmt):
    import datasets
    hp, hs, ap, as_ = fmt
    rows = datasets.load_dataset(os.path.join(hubdir, "stanfordnlp/SHP"), split=split)
    store = new_store()
    for row in rows:
        a, b = row["score_A"], row["score_B"]
        if max(a / b, b / a) < 2 and split == "train":
            continue
        prompt = hp + row["history"] + hs + ap
        ex = store[prompt]
        i = len(ex.generations)
        pair = (i, i + 1) if row["labels"] == 1 else (i + 1, i)
        add_pair(store, prompt, prompt, [row["human_ref_A"] + as_, row["human_ref_B"] + as_], "keep_start", "shp")
        ex.pairs[-1] = pair
    before = {k: [list(p) for p in ex.pairs] for k, ex in store.items()}
    if split == "train":
        import random
        random.seed(0)
        for ex in store.values():
            ex.pairs = random.sample(ex.pairs, min(5, len(ex.pairs)))
    return store, before


def hh_prompt(prompt_text, fmt):
    """The seed's HH prompt: re.split on the role markers, each marker chunk replaced by its
    prefix *and suffix* (the suffix lands before the turn's text), the text chunks left as they are."""
    hp, hs, ap, as_ = fmt
    chunks = []
    # (The seed passed the prefix as re.sub's replacement string, which interprets backslashes;
    # a function gives the same result for prefixes without backslashes, the only ones tested.)
    for chunk in re.split(r"\s*(Human:|Assistant:)\s+", prompt_text):
        if chunk.startswith("Human"):
            chunk = re.sub(r"\s*Human:\s*", lambda m: hp, chunk) + hs
        elif chunk.startswith("Assistant"):
            chunk = re.sub(r"\s*Assistant:\s*", lambda m: ap, chunk) + as_
        if chunk != "":
            chunks.append(chunk)
    return "".join(chunks)


def hh(hubdir, split, fmt, data_dir, name):
    import datasets
    hp, hs, ap, as_ = fmt
    kwargs = {"data_dir": data_dir} if data_dir else {}
    rows = datasets.load_dataset(os.path.join(hubdir, "Anthropic/hh-rlhf"), split=split, **kwargs)
    store = new_store()
    mark = "\n\nAssistant: "
    for row in rows:
        cut = row["chosen"].rfind(mark)
        prompt_text = row["chosen"][: cut + len(mark)]
        chosen = row["chosen"][len(prompt_text):]
        rejected = row["rejected"][len(prompt_text):]
        prompt = hh_prompt(prompt_text, fmt)
        add_pair(store, prompt, prompt, [chosen + as_, rejected + as_], "keep_end", name)
    return store


def oasst(hubdir, split, fmt):
    import datasets
    import pandas as pd
    try:  # the seed ran on pandas < 3: strings in object columns, None kept as None
        pd.set_option("future.infer_string", False)
    except Exception:
        pass
    hp, hs, ap, as_ = fmt
    rows = datasets.load_dataset(os.path.join(hubdir, "OpenAssistant/oasst1"), split=("validation" if split == "test" else "train"))
    rows = rows.filter(lambda x: x["lang"] == "en")
    by_id = pd.DataFrame(rows).set_index("message_id")
    by_parent = pd.DataFrame(rows).set_index("parent_id")

    def to_root(node):
        if node["parent_id"] is None:
            return [node]
        return [node] + to_root(by_id.loc[node["parent_id"]])

    def render(path):
        out = []
        while path:
            node = path.pop()
            if node["role"] == "assistant":
                out.append(ap + node["text"] + as_)
            else:
                out.append(hp + node["text"] + hs)
        out.append(ap)
        return "".join(out)

    store = new_store()
    for row in rows:
        if row["rank"] == 0 or row["rank"] is None:
            continue
        try:
            siblings = by_parent.loc[row["parent_id"]]
            better = siblings[siblings["rank"] == (row["rank"] - 1)].iloc[0]
            path = to_root(by_id.loc[better["message_id"]])
        except (KeyError, IndexError):
            continue
        prompt = render(path[1:])
        add_pair(store, prompt, prompt, [better["text"] + as_, row["text"] + as_], "keep_end", "oasst")
    return store


def ultrabin(hubdir, split, fmt):
    import datasets
    hp, hs, ap, as_ = fmt
    rows = datasets.load_dataset(os.path.join(hubdir, "HuggingFaceH4/ultrafeedback_binarized"), split=f"{split}_prefs")
    store = new_store()
    for row in rows:
        prompt = hp + row["prompt"] + hs + ap
        add_pair(store, prompt, prompt, [row["chosen"][-1]["content"] + as_, row["rejected"][-1]["content"] + as_], "keep_start", "ultrabin")
    return store


def load(args):
    # datasets' cache next to the fixtures, not in the user's home
    os.environ["HF_DATASETS_CACHE"] = os.path.join(os.path.dirname(os.path.abspath(args.cwd)), "hf-datasets-cache")
    spec = json.load(sys.stdin)
    fmt = (spec["human_prefix"], spec["human_suffix"], spec["assistant_prefix"], spec["assistant_suffix"])
    import datasets
    datasets.disable_progress_bars()
    data = os.path.join(args.cwd, "data")
    out = {}

    def put(key, store, rows=None, extra=None):
        item = {"examples": [ex.as_json() for ex in store.values()]}
        if rows is not None:
            item["rows"] = rows
        if extra:
            item.update(extra)
        out[key] = item

    for split in ("train", "test"):
        s, r = orca_family(os.path.join(args.cwd, "orca"), split, fmt, "orca", None)
        put(f"orca/{split}", s, r)
        s, r = orca_family(os.path.join(args.cwd, "rationalorca"), split, fmt, "orcarat", "numbered")
        put(f"orcarat/{split}", s, r)
        for name in ("orcaratgen", "orcaratspec", "orcaratgen_llama3_8it", "orcaratspec_llama3_8it"):
            s, r = orca_family(os.path.join(data, name), split, fmt, name, "above-below")
            put(f"{name}/{split}", s, r)
        s, before = shp(args.hub, split, fmt)
        put(f"shp/{split}", s, extra={"pairs_before_cap": [before[k] for k in s.keys()]} if split == "train" else None)
        put(f"hh/{split}", hh(args.hub, split, fmt, None, "hh"))
        put(f"hh_helpful/{split}", hh(args.hub, split, fmt, "helpful-base", "hh_helpful"))
        put(f"hh_harmless/{split}", hh(args.hub, split, fmt, "harmless-base", "hh_harmless"))
        put(f"oasst/{split}", oasst(args.hub, split, fmt))
        put(f"ultrabin/{split}", ultrabin(args.hub, split, fmt))
    json.dump(out, sys.stdout)


# --------------------------------------------------------------------------------------------
# Tokenization (tokenize_batch_element)


def tokenize(args):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    json.dump([tokenize_job(tok, job["max_length"], job["max_prompt_length"], job["items"]) for job in json.load(sys.stdin)["jobs"]], sys.stdout)


def tokenize_job(tok, L, P, items):
    out = []
    for item in items:
        p = tok.encode(item["prompt"])
        g = tok.encode(item["generation"])
        if p and p[-1] == tok.eos_token_id:
            p.pop()
        if g and g[0] == tok.bos_token_id:
            g.pop(0)
        if g and g[-1] == tok.eos_token_id:
            g.pop()
        full_p, full_g = len(p), len(g)
        if len(p) + len(g) > L and len(p) > P:
            if item["truncation_mode"] == "keep_start":
                p = p[:P]
            elif item["truncation_mode"] == "keep_end":
                p = p[-P:]
            else:
                raise ValueError(item["truncation_mode"])
        if len(p) + len(g) > L:
            g = g[: L - len(p)]
        prompt_text = tok.decode(p, skip_special_tokens=True)
        gen_text = tok.decode(g, skip_special_tokens=True) + " " + tok.eos_token
        prompt_ids = tok(prompt_text)["input_ids"]
        combined = tok(prompt_text + gen_text)["input_ids"]
        out.append({
            "prompt_ids": p,
            "generation_ids": g,
            "prompt_truncated": len(p) < full_p,
            "generation_truncated": len(g) < full_g,
            "trained_ids": list(combined),
            "trained_prompt_length": len(prompt_ids),
            "trained_prompt_text": prompt_text,
        })
    return out


# --------------------------------------------------------------------------------------------
# Unpaired and conditional data, shuffling off


def unpaired(args):
    spec = json.load(sys.stdin)
    pairs = spec["pairs"]
    B = spec["batch_size"]

    # UnpairedPreferenceDataLoader.get_flat_data
    n = len(pairs)
    allowed_d = n * spec.get("frac_unique_desirable", 1.0)
    allowed_u = n * spec.get("frac_unique_undesirable", 1.0)
    seen_d = seen_u = 0
    flat = []
    for k, p in enumerate(pairs):
        if seen_d < allowed_d:
            flat.append((k, p["prompt"], p["chosen"], "chosen"))
            seen_d += 1
        if seen_u < allowed_u:
            flat.append((k, p["prompt"], p["rejected"], "rejected"))
            seen_u += 1
    batches, queue, batch = [], [], []
    for item in flat:
        queue.append(item)
        if len(queue) >= B:
            while len(batch) < B:
                batch.append(queue.pop(0))
        if len(batch) >= B:
            nxt = list(range(1, len(batch))) + [0]
            batches.append([{"pair": e[0], "status": e[3], "prompt": e[1], "target": e[2], "kl_target": batch[nxt[i]][2]} for i, e in enumerate(batch)])
            batch = []

    # SimpleKTODataLoader (all pairs, both responses)
    flat_all = []
    for k, p in enumerate(pairs):
        flat_all.append((k, p["chosen"], "chosen"))
        flat_all.append((k, p["rejected"], "rejected"))
    simple, good, bad, batch = [], [], [], []
    quota = B // 2
    for item in flat_all:
        (good if item[2] == "chosen" else bad).append(item)
        if len(good) >= quota and len(bad) >= quota:
            while len(batch) < B:
                batch.append(good.pop(0))
                batch.append(bad.pop(0))
        if len(batch) >= B:
            simple.append([{"pair": e[0], "status": e[2]} for e in batch])
            batch = []

    # ConditionalSFTDataLoader
    conditional, batch = [], []
    for k, p in enumerate(pairs):
        for status, target in (("chosen", p["chosen"]), ("rejected", p["rejected"])):
            token = spec["chosen_control_token"] if status == "chosen" else spec["rejected_control_token"]
            batch.append({"pair": k, "status": status, "prompt": p["prompt"] + token, "target": target})
            if len(batch) >= B:
                conditional.append(batch)
                batch = []

    json.dump({
        "unpaired_flat": [{"pair": e[0], "status": e[3]} for e in flat],
        "unpaired_batches": batches,
        "simple_kto_batches": simple,
        "conditional_batches": conditional,
    }, sys.stdout)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("load")
    a.add_argument("--cwd", required=True)
    a.add_argument("--hub", required=True)
    t = sub.add_parser("tokenize")
    t.add_argument("--tokenizer", required=True)
    sub.add_parser("unpaired")
    args = ap.parse_args()
    {"load": load, "tokenize": tokenize, "unpaired": unpaired}[args.cmd](args)


if __name__ == "__main__":
    main()
