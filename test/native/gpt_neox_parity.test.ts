// GPTNeoX (Pythia) in the engine against HF transformers' GPTNeoXForCausalLM (the pinned reference
// venv), the way model_parity.test.ts checks the Llama family:
//   1. rpo → transformers: models rpo creates and saves (both residual forms, rotary_pct < 1, tied
//      and untied heads, with and without attention biases), run by transformers.
//   2. transformers → rpo: models transformers creates (LayerNorm weights 1 + 0.1 randn, every bias
//      0.02 randn), loaded by rpo; bf16 in both directions.
//   3. the SFT loss's gradients through the fused log-prob head (with and without activation
//      checkpointing) against autograd through transformers in float64; a few training steps,
//      then the trained model saved and run by transformers.
//   4. greedy generation with the KV cache against transformers' generate.
//
// Error measure as model_parity.test.ts: the largest per-position norm-wise relative error of the
// logits vector over non-padded positions, ≤ 1e-4 in float32 (a bug gives ≫ 1e-2); gradients per
// tensor, ||rpo - hf|| / ||hf||. All Python runs happen in one process in beforeAll.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, saveModel } from '../../lib/model/io.js';
import { SINGLE_FILE, readSafetensorsHeader } from '../../lib/model/safetensors.js';
import { Model, Trainer, type ModelConfig, type RowBatch } from '../../lib/native.js';
import { readFloat32, runReferenceJobs } from '../reference/python.js';
import { normRelError, tinyConfig } from './helpers.js';
import { batchJson, maxPositionError, paddedBatch, rowErrors, rowsOf } from './parity.js';

const TOL_F32 = 1e-4;
const TOL_BF16 = 2e-2;
const TOL_GRAD = 1e-4;
const T = 16;
const LENGTHS = [16, 11, 7];
const HF_VOCAB = 256;

function neoxConfig(overrides: Partial<ModelConfig> = {}): ModelConfig {
  return tinyConfig({
    architecture: 'GPTNeoXForCausalLM',
    vocab_size: 101,
    hidden_size: 64,
    intermediate_size: 128,
    num_attention_heads: 4,
    num_key_value_heads: 4,
    head_dim: 16,
    rms_norm_eps: 1e-5,
    attention_bias: true,
    layer_norm_eps: 1e-5,
    rotary_pct: 0.25,
    use_parallel_residual: true,
    initializer_range: 0.1,
    ...overrides,
  });
}

function expectParity(label: string, ours: Float32Array, ref: Float32Array, batch: RowBatch, vocab: number, tol = TOL_F32): void {
  const e = maxPositionError(ours, ref, batch, vocab);
  console.log(`[neox parity] ${label}: max per-position rel error ${e.toExponential(2)}`);
  expect(e, label).toBeLessThanOrEqual(tol);
}

/** Summed label log-probs per row, from full logits, in float64 (independent of rpo's head). */
function logprobsFromLogits(logits: Float32Array, batch: RowBatch, vocab: number): number[] {
  return Array.from({ length: batch.rows }, (_, r) => {
    let sum = 0;
    for (let t = 1; t < batch.seqLen; t++) {
      const i = r * batch.seqLen + t;
      if (!batch.lossMask[i]) continue;
      const row = logits.subarray((i - 1) * vocab, i * vocab);
      let m = -Infinity;
      for (const v of row) m = Math.max(m, v);
      let z = 0;
      for (const v of row) z += Math.exp(v - m);
      sum += row[batch.inputIds[i]!]! - m - Math.log(z);
    }
    return sum;
  });
}

// ---------------------------------------------------------------------------------------------
// The reference runs: one Python process for the whole file.

type Script = 'hf_make_model.py' | 'hf_logits.py' | 'hf_sft_grad.py' | 'hf_greedy.py';


const WORK = mkdtempSync(path.join(tmpdir(), 'rpo-neox-'));
const jobs: Array<{ script: Script; args: string[] }> = [];
let results: unknown[] = [];

function queue(script: Script, args: string[]): number {
  jobs.push({ script, args });
  return jobs.length - 1;
}

function queueLogits(key: string, dir: string, batch: RowBatch, dtype = 'float32'): void {
  const input = path.join(WORK, `${key}.in.json`);
  writeFileSync(input, batchJson(batch));
  queue('hf_logits.py', ['--model', dir, '--input', input, '--out', path.join(WORK, `${key}.logits.bin`), '--dtype', dtype]);
}

const hfLogits = (key: string): Float32Array => readFloat32(path.join(WORK, `${key}.logits.bin`));

// 1. rpo → transformers.
const RPO_CASES: Record<string, Partial<ModelConfig>> = {
  'parallel-rot25': {},
  'sequential-rot50-tied': { use_parallel_residual: false, rotary_pct: 0.5, tie_word_embeddings: true },
  'parallel-full-rotary-nobias': { rotary_pct: 1, attention_bias: false, rope_theta: 500 },
};

// 2. transformers → rpo (hf_make_model.py's gpt_neox defaults: rotary_pct 0.5, parallel residual).
const HF_CASES: Record<string, Record<string, unknown>> = {
  parallel: {},
  'sequential-rot25': { use_parallel_residual: false, rotary_pct: 0.25, rotary_emb_base: 1000 },
};

const rpoModels = new Map<string, { model: Model; dir: string; batch: RowBatch }>();
const hfBatches = new Map<string, RowBatch>();
let bf16: { model: Model; dir: string; batch: RowBatch; logits: Float32Array };
const hfBf16Dir = path.join(WORK, 'hf-bf16');
const hfBf16Batch = paddedBatch(77, HF_VOCAB, LENGTHS);

// 3. gradients, training.
const gradDir = path.join(WORK, 'hf-grad');
const gradBatch = paddedBatch(88, HF_VOCAB, [16, 12, 9, 14]);
let gradNames: string[] = [];
let gradJob = -1;
const trainedDir = path.join(WORK, 'rpo-trained');
const trainedBatch = paddedBatch(99, HF_VOCAB, LENGTHS);
let trained: { model: Model; losses: number[] };

// 4. generation.
const genPrompts = [[5, 17, 200, 3], [9], [44, 45, 46, 47, 48, 49, 50, 51, 52]];
const GEN_TOKENS = 12;
let genJob = -1;

beforeAll(async () => {
  let seed = 500;
  for (const [name, overrides] of Object.entries(RPO_CASES)) {
    const config = neoxConfig(overrides);
    const model = await Model.create(config, { seed: ++seed });
    const dir = path.join(WORK, `rpo-${name}`);
    await saveModel(model, dir);
    const batch = paddedBatch(seed, config.vocab_size, LENGTHS);
    rpoModels.set(name, { model, dir, batch });
    queueLogits(`rpo-${name}`, dir, batch);
  }
  for (const [name, config] of Object.entries(HF_CASES)) {
    const dir = path.join(WORK, `hf-${name}`);
    queue('hf_make_model.py', ['--arch', 'gpt_neox', '--out', dir, '--seed', String(++seed), '--config-json', JSON.stringify(config)]);
    const batch = paddedBatch(seed, HF_VOCAB, LENGTHS);
    hfBatches.set(name, batch);
    queueLogits(`hf-${name}`, dir, batch);
  }
  {
    const config = neoxConfig();
    const model = await Model.create(config, { seed: 600, dtype: 'bfloat16' });
    const dir = path.join(WORK, 'rpo-bf16');
    await saveModel(model, dir);
    const batch = paddedBatch(600, config.vocab_size, LENGTHS);
    bf16 = { model, dir, batch, logits: await model.logits(batch) };
    queueLogits('rpo-bf16', dir, batch);
  }
  queue('hf_make_model.py', ['--arch', 'gpt_neox', '--out', hfBf16Dir, '--seed', '610', '--dtype', 'bfloat16']);
  queueLogits('hf-bf16', hfBf16Dir, hfBf16Batch);

  // The gradient reference needs the parameter names; the first Python run makes the model.
  queue('hf_make_model.py', ['--arch', 'gpt_neox', '--out', gradDir, '--seed', '620', '--config-json', JSON.stringify({ rotary_pct: 0.25 })]);
  const run = (): unknown[] => runReferenceJobs(jobs.splice(0));
  results = run();

  {
    const model = await loadModel(gradDir);
    gradNames = model.params().map((p) => p.name);
    model.dispose();
    const input = path.join(WORK, 'grad.in.json');
    writeFileSync(
      input,
      JSON.stringify({
        input_ids: rowsOf(gradBatch, gradBatch.inputIds),
        attention_mask: rowsOf(gradBatch, gradBatch.attentionMask),
        loss_mask: rowsOf(gradBatch, gradBatch.lossMask),
        names: gradNames,
      }),
    );
    gradJob = results.length + queue('hf_sft_grad.py', ['--model', gradDir, '--input', input, '--out', path.join(WORK, 'grad.bin')]);
  }
  {
    // A few AdamW steps from transformers' model, then the result saved for transformers to run.
    const model = await loadModel(gradDir);
    const trainer = new Trainer(model, null, { loss: { name: 'sft' } });
    const losses: number[] = [];
    for (let step = 0; step < 4; step++) {
      const r = await trainer.microStep(gradBatch, { nPairs: gradBatch.rows });
      losses.push(r.loss);
      await trainer.optimizerStep({ lr: 3e-3, maxGradNorm: 1 });
    }
    trainer.dispose();
    trained = { model, losses };
    await saveModel(model, trainedDir);
    queueLogits('rpo-trained', trainedDir, trainedBatch);
  }
  {
    const input = path.join(WORK, 'gen.in.json');
    writeFileSync(input, JSON.stringify({ prompts: genPrompts }));
    genJob = results.length + queue('hf_greedy.py', ['--model', gradDir, '--input', input, '--max-new-tokens', String(GEN_TOKENS)]);
  }
  results = results.concat(run());
}, 600_000);

afterAll(() => {
  for (const { model } of rpoModels.values()) model.dispose();
  bf16?.model.dispose();
  trained?.model.dispose();
  rmSync(WORK, { recursive: true, force: true });
});

describe('GPTNeoX rpo → transformers', () => {
  for (const name of Object.keys(RPO_CASES)) {
    it(`${name}: logits match transformers at every non-padded position`, async () => {
      const { model, dir, batch } = rpoModels.get(name)!;
      const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(config.model_type).toBe('gpt_neox');
      expect(config.rotary_pct).toBe(model.config.rotary_pct);
      const names = readSafetensorsHeader(path.join(dir, SINGLE_FILE)).tensors.map((t) => t.name);
      expect(names).toContain('gpt_neox.layers.0.attention.query_key_value.weight');
      expect(names.includes('embed_out.weight')).toBe(!model.config.tie_word_embeddings);
      const ref = hfLogits(`rpo-${name}`);
      const vocab = model.config.vocab_size;
      // The logits vary with position, so attention and rotary are exercised.
      expect(normRelError(ref.subarray((T - 1) * vocab, T * vocab), ref.subarray((T - 2) * vocab, (T - 1) * vocab))).toBeGreaterThan(1e-2);
      expectParity(`rpo→hf ${name}`, await model.logits(batch), ref, batch, vocab);
    });
  }

  it('rotary_pct and the residual form change the logits (so the cases above test them)', async () => {
    const { model, batch } = rpoModels.get('parallel-rot25')!;
    const base = await model.logits(batch);
    const vocab = model.config.vocab_size;
    for (const change of [{ rotary_pct: 0.5 }, { use_parallel_residual: false }] as Array<Partial<ModelConfig>>) {
      // Same seed: the same parameters (neither setting is a parameter).
      const other = await Model.create({ ...model.config, ...change }, { seed: 501 });
      try {
        expect(maxPositionError(await other.logits(batch), base, batch, vocab), JSON.stringify(change)).toBeGreaterThan(1e-2);
      } finally {
        other.dispose();
      }
    }
  });
});

describe('GPTNeoX transformers → rpo', () => {
  for (const [name, overrides] of Object.entries(HF_CASES)) {
    it(`${name}: loadModel gives transformers' logits`, async () => {
      const model = await loadModel(path.join(WORK, `hf-${name}`));
      try {
        expect(model.config.architecture).toBe('GPTNeoXForCausalLM');
        expect(model.config.rotary_pct).toBe((overrides.rotary_pct as number | undefined) ?? 0.5);
        expect(model.config.use_parallel_residual).toBe(overrides.use_parallel_residual ?? true);
        expect(model.config.rope_theta).toBe((overrides.rotary_emb_base as number | undefined) ?? 10000);
        const batch = hfBatches.get(name)!;
        expectParity(`hf→rpo ${name}`, await model.logits(batch), hfLogits(`hf-${name}`), batch, HF_VOCAB);
        // The fused log-prob head against log-softmax of transformers' logits.
        const lp = await model.logprobs(batch);
        const ref = logprobsFromLogits(hfLogits(`hf-${name}`), batch, HF_VOCAB);
        for (let r = 0; r < batch.rows; r++) expect(Math.abs(lp.sum[r]! - ref[r]!)).toBeLessThan(1e-3 * Math.max(1, Math.abs(ref[r]!)));
      } finally {
        model.dispose();
      }
    });
  }
});

describe('GPTNeoX bfloat16', () => {
  it('rpo saves BF16 tensors that rpo loads back bit-exactly and transformers runs', async () => {
    const { model, dir, batch, logits } = bf16;
    for (const t of readSafetensorsHeader(path.join(dir, SINGLE_FILE)).tensors) expect(t.dtype, t.name).toBe('BF16');
    const back = await loadModel(dir, { dtype: 'bfloat16' });
    try {
      const again = await back.logits(batch);
      expect(Buffer.from(again.buffer, again.byteOffset, again.byteLength).equals(Buffer.from(logits.buffer, logits.byteOffset, logits.byteLength))).toBe(true);
    } finally {
      back.dispose();
    }
    // transformers computes in float32 from the bf16 weights (hf_logits.py loads with dtype
    // float32), rpo in bf16: compared per row. The same weights in float32 in rpo: exact bound.
    const ref = hfLogits('rpo-bf16');
    const vocab = model.config.vocab_size;
    const rows = rowErrors(logits, ref, batch, vocab);
    console.log(`[neox parity] bf16 rpo (bf16 compute) vs hf (fp32 compute): per-row rel errors ${rows.map((e) => e.toExponential(2)).join(', ')}`);
    for (const e of rows) expect(e).toBeLessThanOrEqual(TOL_BF16);
    const up = await loadModel(dir);
    try {
      expectParity('bf16 weights, rpo fp32 vs hf fp32', await up.logits(batch), ref, batch, vocab);
    } finally {
      up.dispose();
    }
  });

  it('transformers-written BF16 weights load into rpo in bf16 and float32', async () => {
    const ref = hfLogits('hf-bf16');
    const b = await loadModel(hfBf16Dir, { dtype: 'bfloat16' });
    const f = await loadModel(hfBf16Dir);
    try {
      const rows = rowErrors(await b.logits(hfBf16Batch), ref, hfBf16Batch, HF_VOCAB);
      console.log(`[neox parity] hf bf16 weights, rpo bf16 compute: per-row rel errors ${rows.map((e) => e.toExponential(2)).join(', ')}`);
      for (const e of rows) expect(e).toBeLessThanOrEqual(TOL_BF16);
      expectParity('hf bf16 weights, rpo fp32', await f.logits(hfBf16Batch), ref, hfBf16Batch, HF_VOCAB);
    } finally {
      b.dispose();
      f.dispose();
    }
  });
});

describe('GPTNeoX training', () => {
  const gradsOf = async (activationCheckpointing: boolean): Promise<{ loss: number; grads: Float64Array }> => {
    const model = await loadModel(gradDir);
    const trainer = new Trainer(model, null, { loss: { name: 'sft' }, activationCheckpointing });
    try {
      const r = await trainer.microStep(gradBatch, { nPairs: gradBatch.rows });
      return { loss: r.loss, grads: await trainer.gradSnapshot(gradNames) };
    } finally {
      trainer.dispose();
      model.dispose();
    }
  };

  it('the SFT gradients of every parameter match autograd through transformers (float64)', async () => {
    const info = results[gradJob] as { loss: number };
    const ref = new Float64Array(new Uint8Array(readFileSync(path.join(WORK, 'grad.bin'))).buffer);
    const plain = await gradsOf(false);
    expect(Math.abs(plain.loss - info.loss) / info.loss).toBeLessThan(1e-5);
    expect(plain.grads.length).toBe(ref.length);
    const model = await loadModel(gradDir);
    const shapes = model.params();
    model.dispose();
    let off = 0;
    let worst = 0;
    for (const p of shapes) {
      const n = p.shape.reduce((a, b) => a * b, 1);
      const e = normRelError(plain.grads.subarray(off, off + n), ref.subarray(off, off + n));
      expect(e, p.name).toBeLessThanOrEqual(TOL_GRAD);
      worst = Math.max(worst, e);
      off += n;
    }
    console.log(`[neox parity] sft grads vs transformers fp64: worst per-tensor rel error ${worst.toExponential(2)} over ${shapes.length} tensors`);
    // Activation checkpointing recomputes the same layers: the same gradients.
    const ckpt = await gradsOf(true);
    expect(ckpt.loss).toBe(plain.loss);
    expect(normRelError(ckpt.grads, plain.grads)).toBeLessThan(1e-6);
  });

  it('a few AdamW steps lower the loss, and the trained model saves to what transformers computes', async () => {
    const { model, losses } = trained;
    console.log(`[neox parity] sft losses over 4 steps: ${losses.map((l) => l.toFixed(4)).join(', ')}`);
    for (let i = 1; i < losses.length; i++) expect(losses[i]!).toBeLessThan(losses[i - 1]!);
    expectParity('trained rpo→hf', await model.logits(trainedBatch), hfLogits('rpo-trained'), trainedBatch, HF_VOCAB);
  });
});

describe('GPTNeoX generation', () => {
  it("greedy decoding with the KV cache equals transformers' generate, alone and left-padded in one batch", async () => {
    const ref = (results[genJob] as { tokens: number[][] }).tokens;
    const model = await loadModel(gradDir);
    try {
      const prompts = genPrompts.map((p) => Int32Array.from(p));
      const batched = await model.generate(prompts, { doSample: false, maxNewTokens: GEN_TOKENS, padTokenId: 0 });
      expect(batched.tokens.map((t) => Array.from(t))).toEqual(ref);
      for (let i = 0; i < prompts.length; i++) {
        const alone = await model.generate([prompts[i]!], { doSample: false, maxNewTokens: GEN_TOKENS, padTokenId: 0 });
        expect(Array.from(alone.tokens[0]!)).toEqual(ref[i]);
      }
      // The generated sequences are not constant (the comparison would be weak otherwise).
      expect(new Set(ref.flat()).size).toBeGreaterThan(3);
    } finally {
      model.dispose();
    }
  });
});
