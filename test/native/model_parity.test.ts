// The engine's model against HF transformers (the pinned reference venv), all in float32:
//   1. rpo → transformers: models rpo creates and saves, run by transformers.
//   2. transformers → rpo: models transformers creates (non-trivial norm weights and biases),
//      loaded by rpo.
//   3. sharded save/load, 4. bfloat16 save/load, 5. hostile safetensors files.
//
// Error measure: for every non-padded (row, position), the norm-wise relative error of the
// logits vector over the vocabulary, ||rpo - hf|| / ||hf|| (normRelError); the largest one over
// all positions must be ≤ 1e-4 in float32. Per position rather than per row or per batch, so a
// bug confined to a few positions (a sliding window, a RoPE band) cannot hide in the average. A
// real bug gives ≫ 1e-2. Padded positions are not compared (their logits mean nothing).
//
// Python starts cost ~8 s each, so every reference call of this file (hf_make_model.py and
// hf_logits.py, each run through its own main()) is made from one Python process in beforeAll.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Model, type ModelConfig, type RowBatch } from '../../lib/native.js';
import { loadModel, saveModel } from '../../lib/model/io.js';
import { INDEX_FILE, SINGLE_FILE, readSafetensorsHeader } from '../../lib/model/safetensors.js';
import { readFloat32, runReferenceJobs } from '../reference/python.js';
import { normRelError, tinyConfig } from './helpers.js';
import { batchJson, paddedBatch, rowErrors } from './parity.js';

const TOL_F32 = 1e-4;
const TOL_BF16 = 2e-2;
const T = 16;
/** Row lengths of the right-padded batches: one full row (so a window of 5 matters), two padded. */
const LENGTHS = [16, 11, 7];

interface PositionErrors {
  /** Largest per-position norm-wise relative error over non-padded positions. */
  max: number;
  /** Where it is. */
  at: { row: number; t: number };
  /** Per row: the first non-padded position whose error exceeds `tol` (-1 if none). */
  firstBad: number[];
}

function positionErrors(a: Float32Array, b: Float32Array, batch: RowBatch, vocab: number, tol: number): PositionErrors {
  expect(a.length).toBe(batch.rows * batch.seqLen * vocab);
  expect(b.length).toBe(a.length);
  let max = 0;
  let at = { row: -1, t: -1 };
  const firstBad: number[] = [];
  for (let row = 0; row < batch.rows; row++) {
    let bad = -1;
    for (let t = 0; t < batch.seqLen; t++) {
      if (!batch.attentionMask[row * batch.seqLen + t]) continue;
      const off = (row * batch.seqLen + t) * vocab;
      const e = normRelError(a.subarray(off, off + vocab), b.subarray(off, off + vocab));
      if (!(e <= max)) {
        max = e;
        at = { row, t };
      }
      if (bad < 0 && !(e <= tol)) bad = t;
    }
    firstBad.push(bad);
  }
  return { max, at, firstBad };
}

/** Asserts per-position parity and logs the measured level (for the record). */
function expectParity(label: string, ours: Float32Array, ref: Float32Array, batch: RowBatch, vocab: number, tol = TOL_F32): number {
  const e = positionErrors(ours, ref, batch, vocab, tol);
  console.log(`[parity] ${label}: max per-position rel error ${e.max.toExponential(2)} at row ${e.at.row}, t ${e.at.t}`);
  expect(e.max, `${label}: first diverging position per row ${JSON.stringify(e.firstBad)}`).toBeLessThanOrEqual(tol);
  return e.max;
}

/** The logits must vary with position, or the comparison would not see attention at all. */
function expectNonTrivial(logits: Float32Array, batch: RowBatch, vocab: number): void {
  const row0 = (t: number): Float32Array => logits.subarray(t * vocab, (t + 1) * vocab);
  expect(normRelError(row0(batch.seqLen - 1), row0(batch.seqLen - 2))).toBeGreaterThan(1e-2);
}

// ---------------------------------------------------------------------------------------------
// The reference runs: one Python process for the whole file.

interface Job {
  script: 'hf_make_model.py' | 'hf_logits.py';
  args: string[];
}


interface LogitsInfo {
  shape: number[];
  sliding_window: number | null;
  dtype: string;
}

const WORK = mkdtempSync(path.join(tmpdir(), 'rpo-parity-'));
const jobs: Job[] = [];
const logitsJobs = new Map<string, { out: string; index: number }>();
let results: unknown[] = [];

/** Queues hf_logits.py on `dir` with `batch`; the result is read after the Python run. */
function queueLogits(key: string, dir: string, batch: RowBatch): void {
  const input = path.join(WORK, `${key}.in.json`);
  const out = path.join(WORK, `${key}.logits.bin`);
  writeFileSync(input, batchJson(batch));
  logitsJobs.set(key, { out, index: jobs.length });
  jobs.push({ script: 'hf_logits.py', args: ['--model', dir, '--input', input, '--out', out] });
}

function hfLogits(key: string): { logits: Float32Array; info: LogitsInfo } {
  const job = logitsJobs.get(key);
  if (!job) throw new Error(`no reference logits queued for ${key}`);
  return { logits: readFloat32(job.out), info: results[job.index] as LogitsInfo };
}

// 1. rpo → transformers. initializer_range 0.1: at 0.02 attention is nearly uniform.
const RPO_CASES: Record<string, Partial<ModelConfig>> = {
  llama: {},
  'llama-llama3-tied-bias': {
    rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 },
    tie_word_embeddings: true,
    attention_bias: true,
  },
  'mistral-window5': { architecture: 'MistralForCausalLM', sliding_window: 5 },
  qwen2: { architecture: 'Qwen2ForCausalLM', qkv_bias: true },
};

// 2. transformers → rpo (hf_make_model.py defaults: vocab 256, hidden 64, initializer_range 0.1,
// norm weights 1 + 0.1 randn, biases 0.02 randn).
const LLAMA3_ROPE = {
  rope_type: 'llama3',
  rope_theta: 10000.0,
  factor: 8.0,
  low_freq_factor: 1.0,
  high_freq_factor: 4.0,
  original_max_position_embeddings: 64,
};
const HF_CASES: Record<string, { arch: string; config?: Record<string, unknown> }> = {
  llama: { arch: 'llama' },
  'llama-llama3-tied-bias': { arch: 'llama', config: { rope_parameters: LLAMA3_ROPE, tie_word_embeddings: true, attention_bias: true } },
  'mistral-window5': { arch: 'mistral', config: { sliding_window: 5 } },
  qwen2: { arch: 'qwen2' },
};
const HF_VOCAB = 256;

const rpoModels = new Map<string, { model: Model; dir: string; batch: RowBatch }>();
const hfBatches = new Map<string, RowBatch>();
let sharded: { model: Model; dir: string; batch: RowBatch; logits: Float32Array };
let bf16: { model: Model; dir: string; batch: RowBatch; logits: Float32Array };

beforeAll(async () => {
  let seed = 100;
  for (const [name, overrides] of Object.entries(RPO_CASES)) {
    const config = tinyConfig({ initializer_range: 0.1, ...overrides });
    const model = await Model.create(config, { seed: ++seed });
    const dir = path.join(WORK, `rpo-${name}`);
    await saveModel(model, dir);
    const batch = paddedBatch(seed, config.vocab_size, LENGTHS);
    rpoModels.set(name, { model, dir, batch });
    queueLogits(`rpo-${name}`, dir, batch);
  }

  {
    // The llama3 model's weights under a config.json without rope scaling: transformers must then
    // disagree with rpo, or the llama3 case would not test the scaling at all.
    const entry = rpoModels.get('llama-llama3-tied-bias');
    if (!entry) throw new Error('no llama3 model');
    const dir = path.join(WORK, 'rpo-llama3-unscaled');
    await saveModel(entry.model, dir);
    const file = path.join(dir, 'config.json');
    const json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    json.rope_scaling = null;
    json.rope_parameters = { rope_type: 'default', rope_theta: entry.model.config.rope_theta };
    writeFileSync(file, JSON.stringify(json, null, 2));
    queueLogits('rpo-llama3-unscaled', dir, entry.batch);
  }

  for (const [name, c] of Object.entries(HF_CASES)) {
    const dir = path.join(WORK, `hf-${name}`);
    const args = ['--arch', c.arch, '--out', dir, '--seed', String(++seed)];
    if (c.config) args.push('--config-json', JSON.stringify(c.config));
    jobs.push({ script: 'hf_make_model.py', args });
    const batch = paddedBatch(seed, HF_VOCAB, LENGTHS);
    hfBatches.set(name, batch);
    queueLogits(`hf-${name}`, dir, batch);
  }

  {
    const config = tinyConfig({ initializer_range: 0.1 });
    const model = await Model.create(config, { seed: 200 });
    const dir = path.join(WORK, 'rpo-sharded');
    // ~12 KB embeddings, 8 KB per MLP matrix: a 16 KB cap gives several shards.
    await saveModel(model, dir, { maxShardBytes: 16 * 1024 });
    const batch = paddedBatch(200, config.vocab_size, LENGTHS);
    sharded = { model, dir, batch, logits: await model.logits(batch) };
    queueLogits('rpo-sharded', dir, batch);
  }

  {
    const config = tinyConfig({ initializer_range: 0.1 });
    const model = await Model.create(config, { seed: 300, dtype: 'bfloat16' });
    const dir = path.join(WORK, 'rpo-bf16');
    await saveModel(model, dir);
    const batch = paddedBatch(300, config.vocab_size, LENGTHS);
    bf16 = { model, dir, batch, logits: await model.logits(batch) };
    queueLogits('rpo-bf16', dir, batch);
  }

  results = runReferenceJobs(jobs);
});

afterAll(() => {
  for (const { model } of rpoModels.values()) model.dispose();
  sharded?.model.dispose();
  bf16?.model.dispose();
  rmSync(WORK, { recursive: true, force: true });
});

describe('rpo → transformers: models rpo creates and saves', () => {
  for (const name of Object.keys(RPO_CASES)) {
    it(`${name}: logits match transformers at every non-padded position`, async () => {
      const entry = rpoModels.get(name);
      if (!entry) throw new Error(`no model ${name}`);
      const { model, batch } = entry;
      const vocab = model.config.vocab_size;
      const { logits: ref, info } = hfLogits(`rpo-${name}`);
      expect(info.shape).toEqual([batch.rows, batch.seqLen, vocab]);
      if (model.config.architecture === 'MistralForCausalLM') expect(info.sliding_window).toBe(5);
      const ours = await model.logits(batch);
      expectNonTrivial(ref, batch, vocab);
      expectParity(`rpo→hf ${name}`, ours, ref, batch, vocab);
    });
  }

  it('llama3 rope scaling changes the logits (so the llama3 case tests it)', async () => {
    const entry = rpoModels.get('llama-llama3-tied-bias');
    if (!entry) throw new Error('no llama3 model');
    const { logits: unscaled } = hfLogits('rpo-llama3-unscaled');
    const e = positionErrors(await entry.model.logits(entry.batch), unscaled, entry.batch, entry.model.config.vocab_size, TOL_F32);
    expect(e.max).toBeGreaterThan(1e-2);
  });

  it('the window of 5 changes the logits from position 5 on (so the Mistral case tests it)', async () => {
    const entry = rpoModels.get('mistral-window5');
    if (!entry) throw new Error('no mistral model');
    const full = await Model.create({ ...entry.model.config, sliding_window: 0 }, { seed: 103 });
    try {
      // Same seed, same parameters (the window is not a parameter).
      const windowed = await entry.model.logits(entry.batch);
      const unwindowed = await full.logits(entry.batch);
      const vocab = entry.model.config.vocab_size;
      const at = (a: Float32Array, t: number): Float32Array => a.subarray(t * vocab, (t + 1) * vocab);
      for (let t = 0; t < 5; t++) expect(normRelError(at(windowed, t), at(unwindowed, t))).toBeLessThan(1e-6);
      expect(normRelError(at(windowed, T - 1), at(unwindowed, T - 1))).toBeGreaterThan(1e-2);
    } finally {
      full.dispose();
    }
  });
});

describe('transformers → rpo: models transformers creates (non-trivial norms and biases)', () => {
  for (const [name, c] of Object.entries(HF_CASES)) {
    it(`${name}: loadModel gives transformers' logits`, async () => {
      const dir = path.join(WORK, `hf-${name}`);
      const model = await loadModel(dir);
      try {
        const cfg = model.config;
        expect(cfg.vocab_size).toBe(HF_VOCAB);
        if (name === 'llama-llama3-tied-bias') {
          expect(cfg.rope_scaling.rope_type).toBe('llama3');
          expect(cfg.rope_scaling.factor).toBe(8);
          expect(cfg.tie_word_embeddings).toBe(true);
          expect(cfg.attention_bias).toBe(true);
        }
        if (c.arch === 'mistral') expect(cfg.sliding_window).toBe(5);
        if (c.arch === 'qwen2') expect(cfg.qkv_bias).toBe(true);
        const { logits: ref, info } = hfLogits(`hf-${name}`);
        const batch = hfBatches.get(name);
        if (!batch) throw new Error(`no batch for ${name}`);
        expect(info.shape).toEqual([batch.rows, batch.seqLen, HF_VOCAB]);
        expectNonTrivial(ref, batch, HF_VOCAB);
        expectParity(`hf→rpo ${name}`, await model.logits(batch), ref, batch, HF_VOCAB);
      } finally {
        model.dispose();
      }
    });
  }
});

describe('sharded save and load', () => {
  it('writes several shards and an index that transformers and loadModel both read', async () => {
    const { model, dir, batch, logits } = sharded;
    const files = readdirSync(dir);
    const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).sort();
    expect(shards.length).toBeGreaterThan(1);
    expect(files).not.toContain(SINGLE_FILE);
    const index = JSON.parse(readFileSync(path.join(dir, INDEX_FILE), 'utf8')) as { weight_map: Record<string, string> };
    expect(Object.keys(index.weight_map).sort()).toEqual(model.params().map((p) => p.name).sort());
    expect([...new Set(Object.values(index.weight_map))].sort()).toEqual(shards);

    const { logits: ref, info } = hfLogits('rpo-sharded');
    expect(info.shape).toEqual([batch.rows, batch.seqLen, model.config.vocab_size]);
    expectParity('sharded rpo→hf', logits, ref, batch, model.config.vocab_size);

    const back = await loadModel(dir);
    try {
      const again = await back.logits(batch);
      expect(again.length).toBe(logits.length);
      expect(Buffer.from(again.buffer, again.byteOffset, again.byteLength).equals(Buffer.from(logits.buffer, logits.byteOffset, logits.byteLength))).toBe(true);
    } finally {
      back.dispose();
    }
  });
});

describe('bfloat16', () => {
  it('saves BF16 tensors that rpo loads back bit-exactly and transformers loads', async () => {
    const { model, dir, batch, logits } = bf16;
    const vocab = model.config.vocab_size;
    const header = readSafetensorsHeader(path.join(dir, SINGLE_FILE));
    expect(header.tensors.length).toBe(model.params().length);
    for (const t of header.tensors) expect(t.dtype, t.name).toBe('BF16');
    const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config.dtype).toBe('bfloat16');

    const back = await loadModel(dir, { dtype: 'bfloat16' });
    try {
      expect(back.dtype).toBe('bfloat16');
      const again = await back.logits(batch);
      expect(Buffer.from(again.buffer, again.byteOffset, again.byteLength).equals(Buffer.from(logits.buffer, logits.byteOffset, logits.byteLength))).toBe(true);
    } finally {
      back.dispose();
    }

    const { logits: ref, info } = hfLogits('rpo-bf16');
    expect(info.shape).toEqual([batch.rows, batch.seqLen, vocab]);
    expect(ref.every(Number.isFinite)).toBe(true);
    // transformers computes in float32 from the bf16 weights; rpo computes in bf16. Measured per
    // row (norm-wise over the row's non-padded logits): single positions reach ~1.6e-2, rows ~1e-2.
    const rows = rowErrors(logits, ref, batch, vocab);
    console.log(`[parity] bf16 rpo (bf16 compute) vs hf (fp32 compute): per-row rel errors ${rows.map((e) => e.toExponential(2)).join(', ')}`);
    for (const e of rows) expect(e).toBeLessThanOrEqual(TOL_BF16);
    // The same bf16 weights loaded by rpo into float32 are exact, so the float32 bound holds.
    const up = await loadModel(dir);
    try {
      expectParity('bf16 weights, rpo fp32 vs hf fp32', await up.logits(batch), ref, batch, vocab);
    } finally {
      up.dispose();
    }
  });
});

describe('hostile safetensors in a model directory', () => {
  /** A copy of a saved model directory, then `corrupt` applied to it. */
  function corruptCopy(src: string, name: string, corrupt: (dir: string) => string): { dir: string; file: string } {
    const dir = path.join(WORK, `hostile-${name}`);
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(src)) copyFileSync(path.join(src, f), path.join(dir, f));
    return { dir, file: corrupt(dir) };
  }

  it('loadModel rejects each with an error naming the file, and the process carries on', async () => {
    const good = rpoModels.get('llama');
    if (!good) throw new Error('no llama model');
    const single = (dir: string): string => path.join(dir, SINGLE_FILE);
    const size = (file: string): number => readFileSync(file).byteLength;

    const cases: Array<[string, (dir: string) => string, RegExp]> = [
      ['truncated-data', (d) => (truncateSync(single(d), size(single(d)) - 100), single(d)), /past the data section|trailing/],
      ['truncated-header', (d) => (truncateSync(single(d), 20), single(d)), /header length \d+ runs past the end/],
      ['four-bytes', (d) => (truncateSync(single(d), 4), single(d)), /truncated/],
      ['empty', (d) => (truncateSync(single(d), 0), single(d)), /truncated/],
      [
        'huge-header-length',
        (d) => {
          const buf = readFileSync(single(d));
          buf.writeBigUInt64LE(1n << 62n, 0);
          writeFileSync(single(d), buf);
          return single(d);
        },
        /exceeds/,
      ],
      [
        'garbage-header',
        (d) => {
          const buf = readFileSync(single(d));
          buf.fill(0x7b, 8, 40); // '{{{{...'
          writeFileSync(single(d), buf);
          return single(d);
        },
        /not valid JSON/,
      ],
      [
        'trailing-bytes',
        (d) => {
          writeFileSync(single(d), Buffer.concat([readFileSync(single(d)), Buffer.alloc(16)]));
          return single(d);
        },
        /trailing bytes/,
      ],
    ];
    for (const [name, corrupt, message] of cases) {
      const { dir, file } = corruptCopy(good.dir, name, corrupt);
      const err = await loadModel(dir).then(
        (m) => {
          m.dispose();
          return new Error('loaded');
        },
        (e: unknown) => e as Error,
      );
      expect(err.message, name).not.toBe('loaded');
      expect(err.message, name).toContain(file);
      expect(err.message, name).toMatch(message);
    }

    // A truncated shard of a sharded checkpoint: the error names that shard.
    const { dir, file } = corruptCopy(sharded.dir, 'truncated-shard', (d) => {
      const shard = readdirSync(d).filter((f) => f.endsWith('.safetensors')).sort()[1]!;
      const f = path.join(d, shard);
      truncateSync(f, size(f) - 64);
      return f;
    });
    await expect(loadModel(dir)).rejects.toThrow(file);

    // A missing shard: the error names it.
    const missing = corruptCopy(sharded.dir, 'missing-shard', (d) => {
      const shard = readdirSync(d).filter((f) => f.endsWith('.safetensors')).sort()[0]!;
      rmSync(path.join(d, shard));
      return shard;
    });
    expect(existsSync(path.join(missing.dir, missing.file))).toBe(false);
    await expect(loadModel(missing.dir)).rejects.toThrow(missing.file);

    // Still alive: the intact directory loads and gives the same logits as before.
    const back = await loadModel(good.dir);
    try {
      const a = await back.logits(good.batch);
      const b = await good.model.logits(good.batch);
      expect(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))).toBe(true);
    } finally {
      back.dispose();
    }
  });
});
