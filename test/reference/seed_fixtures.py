#!/usr/bin/env python3
"""Small fixtures of every dataset the seed loads, written by the real `datasets` library in the
layouts the seed read them from (test-time reference for test/unit/seed_datasets.test.ts).

    python seed_fixtures.py --out DIR

Writes, under DIR:

    cwd/data/<name>/            datasets.save_to_disk of a DatasetDict (train, test): what the seed
                                read with load_from_disk('../data/<name>') for orcaratgen,
                                orcaratspec, orcaratgen_llama3_8it, orcaratspec_llama3_8it
    cwd/orca/, cwd/rationalorca/  the same for orca ('../orca') and orcarat ('../rationalorca')
    hub/<repo id>/...           hub-shaped trees with the real repositories' file layouts:
        stanfordnlp/SHP                 <subreddit>/{train,validation,test}.json (JSON lines)
        Anthropic/hh-rlhf               {helpful-base,harmless-base,helpful-online}/{train,test}.jsonl.gz
                                        + red-team-attempts/red_team_attempts.jsonl.gz (other columns)
        OpenAssistant/oasst1            data/{train,validation}-00000-of-00001-<hash>.parquet
                                        + a root 2023-04-12_oasst_ready.trees.jsonl.gz decoy
        HuggingFaceH4/ultrafeedback_binarized  data/{train,test}_prefs-00000-of-00001.parquet

    single/                     a single Dataset (no splits) written by save_to_disk
    arrow/{file,stream}_format.arrow  pyarrow IPC files of awkward types (reader test)

and prints {"repos": {"<repo>": {"type": "dataset", "files": [...]}}, "cwd": "<DIR/cwd>", "single": "<DIR/single>"}.

The rows are synthetic and deterministic, with what the seed's loaders react to: runs of spaces
and tabs (its text cleaning), long prompts (truncation), a prompt shared by two rows, SHP score
ratios either side of 2 and one prompt with more than five pairs, multi-turn HH transcripts with
irregular whitespace, OASST trees with rankings, non-English messages and single replies.
"""
import argparse
import gzip
import json
import os

import datasets

datasets.disable_progress_bars()


def messy(i: int) -> str:
    """Whitespace the seed's remove_extra_spaces changes (and some it leaves)."""
    extras = ["", "  two  spaces", "\ttab\t\tand tabs", " — ünïcödé ✓", ' with "quotes"  ', "\nnew\n\nlines  ", "emoji 🚀   end"]
    return extras[i % len(extras)]


def long_text(kind: str, i: int, words: int) -> str:
    return " ".join(f"{kind}{i}w{k}" for k in range(words))


def rationale_rows(tag: str, split: str, n: int):
    rows = []
    for i in range(n):
        # every third prompt is long (truncated by the tests' max_prompt_length)
        prompt = f"{tag} {split} prompt {i}{messy(i)}" + (" " + long_text("p", i, 30) if i % 3 == 0 else "")
        rows.append({
            "prompt": prompt,
            "chosen": f"{tag} {split} chosen {i}{messy(i + 1)}" + (" " + long_text("c", i, 25) if i % 4 == 1 else ""),
            "rejected": f"{tag} {split} rejected  {i}{messy(i + 2)}",
            "rationale": f"The response above  is better: {tag} {i}{messy(i + 3)}" + (" " + long_text("r", i, 20) if i % 5 == 2 else ""),
        })
    # rows 2 and 3 share their prompt (the seed keyed examples by prompt)
    if n > 3:
        rows[3]["prompt"] = rows[2]["prompt"]
    return rows


def orca_rows(split: str, n: int):
    return [
        {"prompt": f"orca {split} question {i}{messy(i)}", "chosen": f"orca chosen  {i}{messy(i + 1)}", "rejected": f"orca rejected {i}{messy(i + 4)}"}
        for i in range(n)
    ]


def shp_rows(domain: str, split: str, n: int):
    rows = []
    for i in range(n):
        # prompts 0..n-1; in train, post 0 gets eight pairs (more than the cap of five)
        post = 0 if (split == "train" and i < 8) else i
        a, b = [(10, 3), (4, 3), (2, 6), (9, 9), (30, 2), (5, 11), (7, 3), (3, 12)][i % 8]
        rows.append({
            "post_id": f"{domain}{post}",
            "domain": f"{domain}_{split}",
            "upvote_ratio": 0.9,
            "history": f"{domain} post {post}: what  do you think?{messy(post)}",
            "c_root_id_A": f"a{i}",
            "c_root_id_B": f"b{i}",
            "created_at_utc_A": 1600000000 + i,
            "created_at_utc_B": 1600000100 + i,
            "score_A": a,
            "score_B": b,
            "human_ref_A": f"{domain} comment A {i}{messy(i + 1)}",
            "human_ref_B": f"{domain} comment B {i}{messy(i + 2)}",
            "labels": 1 if a > b else 0,
            "seconds_difference": 100.0,
            "score_ratio": max(a / b, b / a),
        })
    return rows


def hh_rows(part: str, split: str, n: int):
    rows = []
    for i in range(n):
        turns = [f"\n\nHuman: {part} {split} question {i}{messy(i)}"]
        if i % 2 == 1:  # multi-turn: an earlier exchange
            turns = [f"\n\nHuman:   {part} hello {i}", f"\n\nAssistant: Hi  there {i}.", f"\n\nHuman: {part} {split} follow-up {i}{messy(i)}"]
        if i % 4 == 3:
            turns.append(f"\n\nAssistant:\tSure.\n\nHuman:  and then?{messy(i + 2)}")
        history = "".join(turns)
        same = history if i != 2 else rows[1]["chosen"][: rows[1]["chosen"].rfind("\n\nAssistant: ")]  # row 2 repeats row 1's prompt
        rows.append({
            "chosen": f"{same}\n\nAssistant: {part} good answer {i}{messy(i + 1)}",
            "rejected": f"{same}\n\nAssistant: {part} bad  answer {i}{messy(i + 3)}",
        })
    return rows


def oasst_rows(split: str):
    """Message trees (lang, rank) in the oasst1 columns the seed reads, in dataset order."""
    rows = []

    def msg(mid, parent, role, text, rank=None, lang="en", tree="t"):
        rows.append({
            "message_id": f"{split}-{mid}",
            "parent_id": None if parent is None else f"{split}-{parent}",
            "user_id": "u",
            "text": text,
            "role": role,
            "lang": lang,
            "review_count": 3,
            "deleted": False,
            "rank": rank,
            "synthetic": False,
            "message_tree_id": f"{split}-{tree}",
        })

    # tree 1: a prompt with three ranked replies, one of which has two ranked prompter follow-ups
    msg("r1", None, "prompter", f"{split} how do  magnets work?", tree="1")
    msg("a1", "r1", "assistant", "Magnets  align domains.", 1, tree="1")
    msg("a0", "r1", "assistant", "Magnetic fields\tcome from moving charges.", 0, tree="1")
    msg("a2", "r1", "assistant", "Magic.", 2, tree="1")
    msg("p1", "a0", "prompter", "And  electromagnets?", 1, tree="1")
    msg("p0", "a0", "prompter", "Tell me more.", 0, tree="1")
    msg("b0", "p0", "assistant", "Moving charges  make fields.", 0, tree="1")
    msg("b1", "p0", "assistant", "They just do.", 1, tree="1")
    msg("b2", "p0", "assistant", "No idea  at all.", None, tree="1")  # unranked
    # tree 2: the best reply is German: the rank-1 English reply has no English sibling of rank 0
    msg("r2", None, "prompter", f"{split} say hello", tree="2")
    msg("c0", "r2", "assistant", "Hallo!", 0, lang="de", tree="2")
    msg("c1", "r2", "assistant", "Hello  there!", 1, tree="2")
    msg("c2", "r2", "assistant", "hi", 2, tree="2")
    # tree 3: a reply that is its parent's only English one (the other is Spanish)
    msg("r3", None, "prompter", f"{split} count to three", tree="3")
    msg("d1", "r3", "assistant", "1 2 3", 1, tree="3")
    msg("d0", "r3", "assistant", "uno dos tres", 0, lang="es", tree="3")
    # tree 4: a French root: its English replies have no English path to the root
    msg("r4", None, "prompter", "bonjour", lang="fr", tree="4")
    msg("e0", "r4", "assistant", "Hello!", 0, tree="4")
    msg("e1", "r4", "assistant", "Hi.", 1, tree="4")
    return rows


def ultra_rows(split: str, n: int):
    out = []
    for i in range(n):
        prompt = f"ultra {split} prompt {i}{messy(i)}"
        out.append({
            "prompt": prompt,
            "prompt_id": f"{split}{i}",
            "chosen": [{"content": prompt, "role": "user"}, {"content": f"ultra chosen  {i}{messy(i + 1)}", "role": "assistant"}],
            "rejected": [{"content": prompt, "role": "user"}, {"content": f"ultra rejected {i}{messy(i + 2)}", "role": "assistant"}],
            "messages": [{"content": prompt, "role": "user"}],
            "score_chosen": 8.0,
            "score_rejected": 3.0,
        })
    return out


def write_jsonl(rows, path, gz=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    cwd = os.path.join(out, "cwd")
    hub = os.path.join(out, "hub")
    repos: dict = {}

    def add(repo: str, rel: str) -> str:
        repos.setdefault(repo, {"type": "dataset", "files": []})["files"].append(rel)
        path = os.path.join(hub, repo, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    # the orca family: DatasetDicts written by save_to_disk
    def dict_of(make):
        return datasets.DatasetDict({split: datasets.Dataset.from_list(make(split)) for split in ("train", "test")})

    for name, tag in (("orcaratgen", "gen"), ("orcaratspec", "spec"), ("orcaratgen_llama3_8it", "gen3"), ("orcaratspec_llama3_8it", "spec3")):
        dict_of(lambda split, tag=tag: rationale_rows(tag, split, 9 if split == "train" else 5)).save_to_disk(os.path.join(cwd, "data", name))
    dict_of(lambda split: rationale_rows("rat", split, 7 if split == "train" else 4)).save_to_disk(os.path.join(cwd, "rationalorca"))
    # orca: two shards, to read state.json's file list in order
    dict_of(lambda split: orca_rows(split, 6 if split == "train" else 3)).save_to_disk(os.path.join(cwd, "orca"), num_shards={"train": 2, "test": 1})

    # a single Dataset (not a DatasetDict) written by save_to_disk: a path with no splits
    datasets.Dataset.from_list(orca_rows("train", 20)).save_to_disk(os.path.join(out, "single"))

    # Arrow IPC files written by pyarrow itself, in both IPC formats, with the types a reader must
    # turn into plain values: int64 beyond 2^53, list<struct>, map, nulls, float, bool
    import pyarrow as pa
    arrow_dir = os.path.join(out, "arrow")
    os.makedirs(arrow_dir, exist_ok=True)
    table = pa.table({
        "prompt": ["a", None, "c"],
        "big": pa.array([1, 2**60, -5], type=pa.int64()),
        "msgs": pa.array([[{"role": "user", "content": "hi"}], [], None], type=pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        "tags": pa.array([[("k", 1)], [], [("x", 2), ("y", 3)]], type=pa.map_(pa.string(), pa.int32())),
        "score": [0.5, 1.25, None],
        "ok": [True, False, None],
    })
    with pa.OSFile(os.path.join(arrow_dir, "file_format.arrow"), "wb") as sink:
        with pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table, max_chunksize=2)
    with pa.OSFile(os.path.join(arrow_dir, "stream_format.arrow"), "wb") as sink:
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table, max_chunksize=2)

    # stanfordnlp/SHP: per-subreddit JSON lines named .json
    for domain in ("askacademics", "askbaking"):
        for split, n in (("train", 12), ("validation", 3), ("test", 5)):
            write_jsonl(shp_rows(domain, split, n), add("stanfordnlp/SHP", f"{domain}/{split}.json"))

    # Anthropic/hh-rlhf: gzipped JSON lines per part; red-team attempts have other columns
    for part in ("helpful-base", "harmless-base", "helpful-online"):
        for split, n in (("train", 6), ("test", 4)):
            write_jsonl(hh_rows(part, split, n), add("Anthropic/hh-rlhf", f"{part}/{split}.jsonl.gz"), gz=True)
    write_jsonl([{"transcript": "\n\nHuman: hi\n\nAssistant: hi", "min_harmlessness_score_transcript": 0.1, "num_params": "52B"}],
                add("Anthropic/hh-rlhf", "red-team-attempts/red_team_attempts.jsonl.gz"), gz=True)

    # OpenAssistant/oasst1: parquet shards as datasets writes them, plus a root decoy
    for split, suffix in (("train", "b42a775f407cee45"), ("validation", "134b8fd0c89408b6")):
        datasets.Dataset.from_list(oasst_rows(split)).to_parquet(add("OpenAssistant/oasst1", f"data/{split}-00000-of-00001-{suffix}.parquet"))
    write_jsonl([{"message_tree_id": "x", "prompt": {"text": "decoy"}}], add("OpenAssistant/oasst1", "2023-04-12_oasst_ready.trees.jsonl.gz"), gz=True)

    # HuggingFaceH4/ultrafeedback_binarized
    for split, n in (("train_prefs", 5), ("test_prefs", 3), ("train_sft", 2)):
        datasets.Dataset.from_list(ultra_rows(split, n)).to_parquet(add("HuggingFaceH4/ultrafeedback_binarized", f"data/{split}-00000-of-00001.parquet"))

    print(json.dumps({"repos": repos, "cwd": cwd, "single": os.path.join(out, "single")}))


if __name__ == "__main__":
    main()
