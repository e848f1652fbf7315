// `rpo init` (lib/model/init.ts): random-weight model directories that transformers'
// AutoModelForCausalLM + AutoTokenizer and rpo's loadModel + loadTokenizer both load, with the
// same token ids and the same logits; the directory rules (atomic, refuse non-empty, overwrite);
// and the errors (unknown preset, vocabulary too small, tokenizer directory missing files).
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer } from '../../lib/data/tokenize/index.js';
import { initModelDir, type InitModelResult } from '../../lib/model/init.js';
import { WRITTEN_MANIFEST } from '../../lib/util/out_dir.js';
import { loadModel } from '../../lib/model/io.js';
import { MODEL_PRESETS, PRESET_NAMES, presetConfig, roundUpVocab } from '../../lib/model/presets.js';
import type { RowBatch } from '../../lib/native.js';
import { runPython } from '../reference/python.js';
import { maxRelError } from './helpers.js';

const TEXTS = ['Hello world, this is a test.', 'Numbers 2024 and 12345, émoji 🤗\n\n  spaces', 'A\u030a NFD'];

// Loads each directory the way a transformers user would and reports what it sees.
const CHECK_PY = `
import json, os, sys, warnings
warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
transformers.utils.logging.disable_progress_bar()
texts = json.loads(sys.stdin.read())
out = {}
for d in sys.argv[1:]:
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    gen = GenerationConfig.from_pretrained(d)
    ids = [tok(t)["input_ids"] for t in texts]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids[0]], dtype=torch.long)).logits
    out[d] = {
        "model_class": type(model).__name__,
        "tokenizer_class": type(tok).__name__,
        "params": sum(p.numel() for p in model.parameters()),
        "ids": ids,
        "shape": list(logits.shape),
        "logits": logits[0].reshape(-1).tolist(),
        "generation": {k: getattr(gen, k) for k in ("bos_token_id", "eos_token_id", "pad_token_id", "do_sample", "top_p")},
        "config_ids": [model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id],
    }
print(json.dumps(out))
`;

interface PyOut {
  model_class: string;
  tokenizer_class: string;
  params: number;
  ids: number[][];
  shape: number[];
  logits: number[];
  generation: Record<string, unknown>;
  config_ids: Array<number | null>;
}

const CHECKED = ['tiny', 'tiny-mistral', 'tiny-qwen2', 'tiny-neox'] as const;
const CLASSES: Record<(typeof CHECKED)[number], string> = {
  tiny: 'LlamaForCausalLM',
  'tiny-mistral': 'MistralForCausalLM',
  'tiny-qwen2': 'Qwen2ForCausalLM',
  'tiny-neox': 'GPTNeoXForCausalLM',
};

let work: string;
const made = {} as Record<(typeof CHECKED)[number], InitModelResult>;
let py: Record<string, PyOut>;

function entriesOf(dir: string): string[] {
  return readdirSync(dir).sort();
}

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-init-'));
  for (const preset of CHECKED) made[preset] = await initModelDir(path.join(work, preset), { preset, seed: 7 });
  const script = path.join(work, 'check.py');
  writeFileSync(script, CHECK_PY);
  py = JSON.parse(runPython(script, CHECKED.map((p) => made[p].dir), JSON.stringify(TEXTS))) as Record<string, PyOut>;
}, 600_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('presets', () => {
  it('size the vocabulary from the tokenizer, rounded up to 64', () => {
    expect(roundUpVocab(509)).toBe(512);
    expect(roundUpVocab(512)).toBe(512);
    expect(roundUpVocab(513)).toBe(576);
    expect(presetConfig('tiny', 509)).toMatchObject({
      architecture: 'LlamaForCausalLM',
      vocab_size: 512,
      hidden_size: 64,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 16,
      max_position_embeddings: 512,
      tie_word_embeddings: false,
    });
    expect(presetConfig('tiny-mistral', 100).sliding_window).toBeGreaterThan(0);
    expect(presetConfig('tiny-qwen2', 100)).toMatchObject({ architecture: 'Qwen2ForCausalLM', qkv_bias: true });
    expect(PRESET_NAMES).toEqual(expect.arrayContaining(['tiny', 'small', 'tiny-mistral', 'tiny-qwen2']));
    for (const name of PRESET_NAMES) expect(MODEL_PRESETS[name]!.config.hidden_size % MODEL_PRESETS[name]!.config.num_attention_heads).toBe(0);
    expect(() => presetConfig('huge', 509)).toThrow(/unknown model preset "huge"; known presets: tiny, small/);
  });
});

describe('initModelDir', () => {
  it('writes the HF files, with the tokenizer ids in config.json and generation_config.json', () => {
    const r = made.tiny;
    expect(r.files).toEqual([
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'special_tokens_map.json',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    // The files rpo wrote, and its record of them (what --overwrite may remove: lib/util/out_dir.ts).
    expect(entriesOf(r.dir)).toEqual([WRITTEN_MANIFEST, ...r.files].sort());
    expect(r).toMatchObject({ preset: 'tiny', tokenizerVocabSize: 509, bosTokenId: 1, eosTokenId: 2, padTokenId: 0 });
    expect(r.config.vocab_size).toBe(512);
    const config = JSON.parse(readFileSync(path.join(r.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ architectures: ['LlamaForCausalLM'], vocab_size: 512, bos_token_id: 1, eos_token_id: 2, pad_token_id: 0 });
    const gen = JSON.parse(readFileSync(path.join(r.dir, 'generation_config.json'), 'utf8')) as Record<string, unknown>;
    expect(gen).toEqual({ bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, do_sample: true, top_p: 0.95 });
    const tcfg = JSON.parse(readFileSync(path.join(r.dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    expect(tcfg.model_max_length).toBe(512);
    // Nothing left beside it.
    expect(readdirSync(work).filter((n) => n.includes('.tmp-') || n.includes('.old-'))).toEqual([]);
  });

  for (const preset of CHECKED) {
    it(`${preset}: transformers loads model and tokenizer; ids and logits agree with rpo's loadModel + loadTokenizer`, async () => {
      const r = made[preset];
      const p = py[r.dir];
      if (!p) throw new Error(`no Python result for ${r.dir}`);
      expect(p.model_class).toBe(CLASSES[preset]);
      expect(p.tokenizer_class).toBe(preset === 'tiny-qwen2' ? 'Qwen2Tokenizer' : 'TokenizersBackend');
      expect(p.params).toBe(r.numParameters);
      expect(p.config_ids).toEqual([1, 2, 0]);
      expect(p.generation).toEqual({ bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, do_sample: true, top_p: 0.95 });

      const tok = await loadTokenizer(r.dir);
      const ids = await Promise.all(TEXTS.map((t) => tok.encode(t)));
      expect(ids).toEqual(p.ids);
      expect(tok.vocabSize).toBe(509);

      const model = await loadModel(r.dir);
      try {
        expect(model.config).toEqual(r.config);
        expect(model.numParameters).toBe(r.numParameters);
        const row = ids[0]!;
        const T = row.length;
        expect(p.shape).toEqual([1, T, 512]);
        const batch: RowBatch = {
          rows: 1,
          seqLen: T,
          inputIds: Int32Array.from(row),
          attentionMask: new Uint8Array(T).fill(1),
          lossMask: new Uint8Array(T).fill(1),
        };
        const ours = await model.logits(batch);
        expect(ours.length).toBe(T * 512);
        expect(maxRelError(ours, p.logits, 1e-2)).toBeLessThan(1e-3);
        // Random init is not all zeros.
        expect(Math.max(...p.logits.map(Math.abs))).toBeGreaterThan(1e-3);
      } finally {
        model.dispose();
      }
    });
  }

  it('is deterministic in the seed', async () => {
    const again = await initModelDir(path.join(work, 'tiny-again'), { preset: 'tiny', seed: 7 });
    const other = await initModelDir(path.join(work, 'tiny-other'), { preset: 'tiny', seed: 8 });
    const weights = (d: string): Buffer => readFileSync(path.join(d, 'model.safetensors'));
    expect(weights(again.dir).equals(weights(made.tiny.dir))).toBe(true);
    expect(weights(other.dir).equals(weights(made.tiny.dir))).toBe(false);
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'config.json']) {
      expect(readFileSync(path.join(again.dir, f), 'utf8')).toBe(readFileSync(path.join(made.tiny.dir, f), 'utf8'));
    }
  });

  it('refuses a non-empty directory and leaves it alone; overwrite replaces only what rpo wrote; an empty one is fine', async () => {
    const dir = path.join(work, 'occupied');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'keep.txt'), 'mine');
    await expect(initModelDir(dir, { preset: 'tiny' })).rejects.toThrow(/exists and is not empty.*overwrite/);
    expect(entriesOf(dir)).toEqual(['keep.txt']);
    const r = await initModelDir(dir, { preset: 'tiny', overwrite: true });
    expect(entriesOf(dir)).toEqual([WRITTEN_MANIFEST, 'keep.txt', ...r.files].sort());
    expect(readFileSync(path.join(dir, 'keep.txt'), 'utf8')).toBe('mine');

    const empty = path.join(work, 'empty');
    mkdirSync(empty);
    await initModelDir(empty, { preset: 'tiny' });
    expect(entriesOf(empty)).toContain('model.safetensors');

    const file = path.join(work, 'a-file');
    writeFileSync(file, 'x');
    await expect(initModelDir(file, { preset: 'tiny', overwrite: true })).rejects.toThrow(/not a directory/);
    expect(readdirSync(work).filter((n) => n.includes('.tmp-') || n.includes('.old-'))).toEqual([]);
  });

  it('names the known presets for an unknown one and writes nothing', async () => {
    const dir = path.join(work, 'nope');
    await expect(initModelDir(dir, { preset: 'gigantic' })).rejects.toThrow(
      /unknown model preset "gigantic"; known presets: tiny, small, medium, tiny-mistral, tiny-qwen2/,
    );
    expect(existsSync(dir)).toBe(false);
    expect(readdirSync(work).filter((n) => n.startsWith('nope'))).toEqual([]);
    await expect(initModelDir(dir, { preset: 'tiny', configJson: path.join(made.tiny.dir, 'config.json') })).rejects.toThrow(/not both/);
    await expect(initModelDir(dir, { preset: 'tiny', dtype: 'float64' as 'float32' })).rejects.toThrow(/unknown dtype/);
  });

  it('takes the shape from a config.json whose vocabulary covers the tokenizer, and refuses one that does not', async () => {
    const cfgFile = path.join(work, 'shape.json');
    const base = JSON.parse(readFileSync(path.join(made.tiny.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(cfgFile, JSON.stringify({ ...base, vocab_size: 640, num_hidden_layers: 1 }));
    const r = await initModelDir(path.join(work, 'from-config'), { configJson: cfgFile, dtype: 'bfloat16' });
    expect(r.preset).toBeNull();
    expect(r.config).toMatchObject({ vocab_size: 640, num_hidden_layers: 1, hidden_size: 64 });
    const written = JSON.parse(readFileSync(path.join(r.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(written).toMatchObject({ vocab_size: 640, dtype: 'bfloat16', bos_token_id: 1 });
    const model = await loadModel(r.dir);
    expect(model.config.vocab_size).toBe(640);
    model.dispose();

    writeFileSync(cfgFile, JSON.stringify({ ...base, vocab_size: 300 }));
    await expect(initModelDir(path.join(work, 'too-small'), { configJson: cfgFile })).rejects.toThrow(
      /vocab_size 300 is smaller than the tokenizer's 509 ids/,
    );
    expect(existsSync(path.join(work, 'too-small'))).toBe(false);
    await expect(initModelDir(path.join(work, 'no-config'), { configJson: path.join(work, 'missing.json') })).rejects.toThrow(/does not exist/);
  });

  it('copies a tokenizer directory, taking its stop ids, and names the files a directory lacks', async () => {
    const src = path.join(work, 'snapshot');
    mkdirSync(src);
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
      copyFileSync(path.join(made.tiny.dir, f), path.join(src, f));
    }
    // A snapshot whose generation_config.json stops on two ids (as Llama 3 Instruct's does).
    writeFileSync(path.join(src, 'generation_config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: [2, 0] }));
    const r = await initModelDir(path.join(work, 'copied'), { preset: 'tiny', tokenizer: src });
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
      expect(readFileSync(path.join(r.dir, f), 'utf8')).toBe(readFileSync(path.join(src, f), 'utf8'));
    }
    const gen = JSON.parse(readFileSync(path.join(r.dir, 'generation_config.json'), 'utf8')) as Record<string, unknown>;
    expect(gen.eos_token_id).toEqual([2, 0]);
    const config = JSON.parse(readFileSync(path.join(r.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config.eos_token_id).toBe(2);

    const partial = path.join(work, 'partial');
    mkdirSync(partial);
    copyFileSync(path.join(src, 'tokenizer.json'), path.join(partial, 'tokenizer.json'));
    await expect(initModelDir(path.join(work, 'bad-tok'), { tokenizer: partial })).rejects.toThrow(/partial is missing tokenizer_config\.json/);
    await expect(initModelDir(path.join(work, 'bad-tok'), { tokenizer: path.join(work, 'absent') })).rejects.toThrow(/does not exist/);
    expect(existsSync(path.join(work, 'bad-tok'))).toBe(false);
  });
});
