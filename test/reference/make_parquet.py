#!/usr/bin/env python3
"""Write dataset fixtures in the real formats, with the real writers (test-time reference).

    python make_parquet.py --out DIR
    python make_parquet.py --splits DIR...  (HF datasets' own split resolution of each DIR's files)

Everything is written under DIR; one JSON object is printed on stdout:

    {"repos": {"<repo id>": {"type": "dataset", "files": ["<path in repo>", ...]}, ...},
     "rows":  {"<dataset>/<split>": [<the raw rows written, as Python holds them>], ...},
     "local": {"<name>": "<path under DIR>", ...},
     "writers": {"pyarrow": "<version>", "datasets": "<version>"}}

Hub-shaped trees (served by the tests' local hub server) live in DIR/hub/<repo id>/...
and mirror the file names of the real repositories:

    Intel/orca_dpo_pairs                  orca_rlhf.jsonl (JSON lines: system, question, chosen, rejected)
    redsgnaoh/orcaratspec                 data/{train,test}-00000-of-00001.parquet  (datasets' to_parquet)
    redsgnaoh/orcaratgen                  data/{train,test}-00000-of-00001.parquet  (pyarrow, zstd, 3-row groups)
    HuggingFaceH4/ultrafeedback_binarized data/{train,test}_{prefs,sft,gen}-00000-of-00001.parquet
                                          (datasets' to_parquet; chosen/rejected/messages are list<struct<content, role>>)
    tatsu-lab/alpaca_eval                 alpaca_eval.json (a JSON array, indented) + a decoy json file

Local layouts (DIR/local/...) for loading by path:

    pq_dir/data/train-0000{0,1}-of-00002.parquet, pq_dir/data/test-00000-of-00001.parquet
                                          (pyarrow snappy shard + datasets shard + pyarrow zstd)
    ultra_zstd.parquet                    ultrabin-shaped, pyarrow zstd, several row groups
    single.parquet                        prompt/chosen/rejected, one file (held-out split)
    mapped.parquet                        columns question/good/bad/why (column mapping)

--splits prints {"<DIR>": {"<split>": ["<file relative to DIR>", ...]}, ...}: how
datasets.load_dataset(DIR) would group each DIR's files (datasets.data_files.get_data_patterns + DataFilesDict.from_patterns), the
reference for rpo's file-name split rules.

The rows are synthetic and deterministic: unicode, newlines, quotes, empty system prompts,
a prompt repeated across rows.
"""
import argparse
import json
import os
import sys

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

datasets.disable_progress_bars()


def text(kind: str, i: int) -> str:
    """A deterministic string with the awkward characters real data has."""
    extras = ["", "\nsecond line", " — ünïcödé ✓", ' with "quotes"', "\ttab\tseparated", "emoji 🚀"]
    return f"{kind} {i}{extras[i % len(extras)]}"


def orca_rows(n: int):
    rows = []
    for i in range(n):
        rows.append({
            # every third row has an empty system prompt, as orca_dpo_pairs has
            "system": "" if i % 3 == 0 else text("You are a helpful assistant", i),
            # rows 4 and 5 share their question and system prompt
            "question": text("question", 4 if i == 5 else i),
            "chosen": text("chosen answer", i),
            "rejected": text("rejected answer", i),
        })
    rows[5]["system"] = rows[4]["system"]
    return rows


def rat_rows(split: str, n: int, tag: str):
    return [
        {
            "prompt": text(f"{tag} {split} prompt", i),
            "chosen": text(f"{tag} {split} chosen", i),
            "rejected": text(f"{tag} {split} rejected", i),
            "rationale": text(f"{tag} {split} rationale: the first response is better because", i),
        }
        for i in range(n)
    ]


def messages(prompt: str, answer: str):
    return [{"content": prompt, "role": "user"}, {"content": answer, "role": "assistant"}]


def ultra_rows(split: str, n: int):
    rows = []
    for i in range(n):
        prompt = text(f"ultra {split} prompt", i)
        chosen = text(f"ultra {split} chosen", i)
        rejected = text(f"ultra {split} rejected", i)
        rows.append({
            "prompt": prompt,
            "prompt_id": f"{split}-{i:04d}",
            "chosen": messages(prompt, chosen),
            "rejected": messages(prompt, rejected),
            "messages": messages(prompt, chosen),
            "score_chosen": 8.0 + (i % 3) * 0.5,
            "score_rejected": 3.0 + (i % 4) * 0.25,
        })
    return rows


def alpaca_rows(n: int):
    sets = ["helpful_base", "koala", "oasst", "selfinstruct", "vicuna"]
    return [
        {
            "instruction": text("instruction", i),
            "output": text("reference output", i),
            "generator": "text_davinci_003",
            "dataset": sets[i % len(sets)],
        }
        for i in range(n)
    ]


def write_datasets(rows, path: str):
    """datasets' own writer (what push_to_hub uploads: pyarrow underneath, snappy, HF schema metadata)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    datasets.Dataset.from_list(rows).to_parquet(path)


def write_pyarrow(rows, path: str, compression: str = "snappy", row_group_size: int | None = None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, compression=compression, row_group_size=row_group_size)


def write_jsonl(rows, path: str):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")  # ensure_ascii: \uXXXX escapes, as pandas/json write them


def write_json(rows, path: str):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=4, ensure_ascii=False)


def splits_of(base: str) -> dict:
    from datasets.data_files import DataFilesDict, get_data_patterns

    base = os.path.abspath(base)
    try:
        patterns = get_data_patterns(base)
    except Exception as err:  # EmptyDatasetError: no data files at all
        return {"error": type(err).__name__}
    files = DataFilesDict.from_patterns(patterns, base_path=base)
    return {str(split): sorted(os.path.relpath(f, base) for f in fs) for split, fs in files.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--out")
    group.add_argument("--splits", nargs="+")
    args = ap.parse_args()
    if args.splits:
        json.dump({d: splits_of(d) for d in args.splits}, sys.stdout)
        sys.stdout.write("\n")
        return
    out = os.path.abspath(args.out)
    hub = os.path.join(out, "hub")
    local = os.path.join(out, "local")

    repos: dict = {}
    rows: dict = {}

    def add(repo: str, rel: str) -> str:
        repos.setdefault(repo, {"type": "dataset", "files": []})["files"].append(rel)
        return os.path.join(hub, repo, rel)

    def readme(repo: str) -> None:
        path = add(repo, "README.md")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"---\nlicense: apache-2.0\n---\n# {repo} (test fixture)\n")

    # Intel/orca_dpo_pairs: one JSON-lines file, train only.
    rows["orca/train"] = orca_rows(40)
    write_jsonl(rows["orca/train"], add("Intel/orca_dpo_pairs", "orca_rlhf.jsonl"))
    readme("Intel/orca_dpo_pairs")

    # redsgnaoh/orcaratspec: datasets' writer; redsgnaoh/orcaratgen: pyarrow zstd, small row groups.
    for split, n in (("train", 12), ("test", 5)):
        rows[f"orcaratspec/{split}"] = rat_rows(split, n, "spec")
        write_datasets(rows[f"orcaratspec/{split}"], add("redsgnaoh/orcaratspec", f"data/{split}-00000-of-00001.parquet"))
        rows[f"orcaratgen/{split}"] = rat_rows(split, n, "gen")
        write_pyarrow(rows[f"orcaratgen/{split}"], add("redsgnaoh/orcaratgen", f"data/{split}-00000-of-00001.parquet"),
                      compression="zstd", row_group_size=3)
    readme("redsgnaoh/orcaratspec")
    readme("redsgnaoh/orcaratgen")

    # HuggingFaceH4/ultrafeedback_binarized: six splits; the loader must pick the *_prefs ones.
    for split, n in (("train_prefs", 9), ("test_prefs", 4), ("train_sft", 3), ("test_sft", 2), ("train_gen", 2), ("test_gen", 2)):
        rows[f"ultrabin/{split}"] = ultra_rows(split, n)
        write_datasets(rows[f"ultrabin/{split}"],
                       add("HuggingFaceH4/ultrafeedback_binarized", f"data/{split}-00000-of-00001.parquet"))
    readme("HuggingFaceH4/ultrafeedback_binarized")

    # tatsu-lab/alpaca_eval: alpaca_eval.json (+ a decoy with other content).
    rows["alpacaeval/eval"] = alpaca_rows(7)
    write_json(rows["alpacaeval/eval"], add("tatsu-lab/alpaca_eval", "alpaca_eval.json"))
    write_json([{"instruction": "decoy", "output": "x", "generator": "g", "dataset": "d"}],
               add("tatsu-lab/alpaca_eval", "alpaca_eval_gpt4_baseline.json"))
    readme("tatsu-lab/alpaca_eval")

    # Local layouts.
    paths = {}
    pq_train = rat_rows("train", 10, "dir")
    pq_test = rat_rows("test", 4, "dir")
    rows["pq_dir/train"] = pq_train
    rows["pq_dir/test"] = pq_test
    paths["pq_dir"] = os.path.join(local, "pq_dir")
    write_pyarrow(pq_train[:6], os.path.join(paths["pq_dir"], "data", "train-00000-of-00002.parquet"))
    write_datasets(pq_train[6:], os.path.join(paths["pq_dir"], "data", "train-00001-of-00002.parquet"))
    write_pyarrow(pq_test, os.path.join(paths["pq_dir"], "data", "test-00000-of-00001.parquet"), compression="zstd")

    rows["ultra_zstd/train"] = ultra_rows("local", 7)
    paths["ultra_zstd"] = os.path.join(local, "ultra_zstd.parquet")
    write_pyarrow(rows["ultra_zstd/train"], paths["ultra_zstd"], compression="zstd", row_group_size=2)

    rows["single/train"] = [
        {"prompt": text("single prompt", i), "chosen": text("single chosen", i), "rejected": text("single rejected", i)}
        for i in range(60)
    ]
    paths["single"] = os.path.join(local, "single.parquet")
    write_datasets(rows["single/train"], paths["single"])

    rows["mapped/train"] = [
        {"question": text("mapped q", i), "good": text("mapped good", i), "bad": text("mapped bad", i),
         "why": text("mapped why", i), "score": i}
        for i in range(8)
    ]
    paths["mapped"] = os.path.join(local, "mapped.parquet")
    write_pyarrow(rows["mapped/train"], paths["mapped"])

    json.dump({
        "repos": repos,
        "rows": rows,
        "local": paths,
        "writers": {"pyarrow": pa.__version__, "datasets": datasets.__version__},
    }, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
