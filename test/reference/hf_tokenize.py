"""Reference token ids from HF's own libraries, for test/unit/tokenize.test.ts.

    hf_tokenize.py DIR [DIR ...] < input.json

input.json: {"texts": [str, ...], "chats": [[{"role": ..., "content": ...}, ...], ...],
             "decode": {DIR: [[id, ...], ...]}}   (every key optional; ids are per tokenizer)

For each tokenizer directory DIR (tokenizer.json + tokenizer_config.json) it prints, as one JSON
object keyed by DIR:

  auto:  transformers.AutoTokenizer.from_pretrained(DIR)
         encode(text) with and without special tokens, decode(ids) with and without
         skip_special_tokens, the special tokens and their ids, and for each chat
         apply_chat_template(chat, add_generation_prompt=True) with tokenize=False (text) and
         tokenize=True (ids); chats are null where the tokenizer has no chat template.
  raw:   tokenizers.Tokenizer.from_file(DIR/tokenizer.json) (the library HF's AutoTokenizer wraps):
         encode(text) with and without special tokens, the char offsets, and decode.

Both are printed because transformers 5 rebuilds some tokenizer classes (LlamaTokenizer: its own
Metaspace pre-tokenizer instead of tokenizer.json's normalizer) while `tokenizers` runs
tokenizer.json as written; the tests say which one each tokenizer is held to.
One Python start per test file (imports take seconds): batch every input into one call.
"""

import json
import os
import sys


def main() -> None:
    dirs = sys.argv[1:]
    if not dirs:
        sys.exit("usage: hf_tokenize.py DIR [DIR ...] < input.json")
    spec = json.load(sys.stdin)
    texts = spec.get("texts", [])
    chats = spec.get("chats", [])
    decode_by_dir = spec.get("decode", {})

    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    out = {}
    for d in dirs:
        auto = AutoTokenizer.from_pretrained(d)
        raw = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        decode = decode_by_dir.get(d, [])

        def ids_of(x):
            # apply_chat_template(tokenize=True) returns a list or, in transformers 5, a BatchEncoding
            if isinstance(x, dict) or hasattr(x, "keys"):
                x = x["input_ids"]
            return [int(i) for i in x]

        has_template = bool(getattr(auto, "chat_template", None))
        chat_out = []
        for chat in chats:
            if not has_template:
                chat_out.append(None)
                continue
            text = auto.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            ids = auto.apply_chat_template(chat, tokenize=True, add_generation_prompt=True)
            chat_out.append({"text": text, "ids": ids_of(ids)})

        raw_with = [raw.encode(t, add_special_tokens=True) for t in texts]
        raw_without = [raw.encode(t, add_special_tokens=False) for t in texts]
        out[d] = {
            "auto": {
                "class": type(auto).__name__,
                "bos_token": auto.bos_token,
                "bos_token_id": auto.bos_token_id,
                "eos_token": auto.eos_token,
                "eos_token_id": auto.eos_token_id,
                "pad_token": auto.pad_token,
                "pad_token_id": auto.pad_token_id,
                "chat_template": auto.chat_template if has_template else None,
                "with_special": [auto(t, add_special_tokens=True)["input_ids"] for t in texts],
                "without_special": [auto(t, add_special_tokens=False)["input_ids"] for t in texts],
                "decode": [auto.decode(ids, skip_special_tokens=False) for ids in decode],
                "decode_skip": [auto.decode(ids, skip_special_tokens=True) for ids in decode],
                "chats": chat_out,
            },
            "raw": {
                "with_special": [e.ids for e in raw_with],
                "without_special": [e.ids for e in raw_without],
                "offsets": [[list(o) for o in e.offsets] for e in raw_without],
                "decode": [raw.decode(ids, skip_special_tokens=False) for ids in decode],
                "decode_skip": [raw.decode(ids, skip_special_tokens=True) for ids in decode],
            },
        }
    json.dump(out, sys.stdout, ensure_ascii=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
