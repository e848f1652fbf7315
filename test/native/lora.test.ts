// LoRA adapters against PEFT (the pinned reference venv) and against the engine's own base:
//   1. an adapter rpo trains and saves is loaded by peft.PeftModel.from_pretrained to the same
//      logits; an adapter PEFT makes is loaded by rpo to PEFT's logits; rpo's merge gives
//      transformers the same logits;
//   2. the reference is the base with the adapters off: equal to a separate base model's
//      log-probs (also after training: only the adapters moved), and the DPO metrics a LoRA
//      trainer computes without a reference model equal those from the separate base's;
//   3. activation checkpointing gives the adapters their gradients (the block input does not
//      require grad: the embedding is frozen), equal to the plain path's, dropout included;
//   4. a bf16 base with fp32 adapters; bad targets and bad adapter files are clear errors.
//
// Logits are compared per position (norm-wise relative error over the vocabulary, ≤ 1e-4 in
// float32, as model_parity.test.ts does) and the max absolute difference is logged.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, saveModel } from '../../lib/model/io.js';
import { adaptedModuleNames, loadAdapter, readAdapterConfig, saveAdapter } from '../../lib/model/lora.js';
import { writeSafetensorsFile } from '../../lib/model/safetensors.js';
import { Trainer, type Model, type RowBatch } from '../../lib/native.js';
import { readFloat32, runPython } from '../reference/python.js';
import { normRelError, randomBatch, rng } from './helpers.js';
import { batchJson } from './parity.js';

const TOL = 1e-4;
const VOCAB = 256;
let dir: string;
let base: string;

/** Largest per-position norm-wise relative error and max abs difference over real positions. */
function compare(a: Float32Array, b: Float32Array, batch: RowBatch): { rel: number; abs: number } {
  expect(a.length).toBe(b.length);
  let rel = 0;
  let abs = 0;
  for (let row = 0; row < batch.rows; row++) {
    for (let t = 0; t < batch.seqLen; t++) {
      if (!batch.attentionMask[row * batch.seqLen + t]) continue;
      const off = (row * batch.seqLen + t) * VOCAB;
      rel = Math.max(rel, normRelError(a.subarray(off, off + VOCAB), b.subarray(off, off + VOCAB)));
      for (let v = off; v < off + VOCAB; v++) abs = Math.max(abs, Math.abs(a[v]! - b[v]!));
    }
  }
  return { rel, abs };
}

interface PeftJob {
  job: 'make' | 'logits';
  [key: string]: unknown;
}
function peft(jobs: PeftJob[]): Array<Record<string, unknown>> {
  const out = runPython('peft_adapter.py', JSON.stringify(jobs));
  return JSON.parse(out.trim().split('\n').pop()!) as Array<Record<string, unknown>>;
}

/** PEFT's logits for `batch` on the base (+ adapter dir). */
function peftLogits(baseDir: string, adapter: string | null, batch: RowBatch, name: string): Float32Array {
  const input = path.join(dir, `${name}.json`);
  const out = path.join(dir, `${name}.bin`);
  writeFileSync(input, batchJson(batch));
  peft([{ job: 'logits', base: baseDir, adapter, input, out }]);
  return readFloat32(out);
}

/** A few DPO steps at a large lr so the adapters' B is far from zero. */
async function trainAdapters(policy: Model, steps: number, opts: { checkpointing?: boolean } = {}): Promise<void> {
  const trainer = new Trainer(policy, null, { loss: { name: 'dpo', beta: 0.5 }, activationCheckpointing: opts.checkpointing ?? false });
  try {
    for (let s = 0; s < steps; s++) {
      await trainer.microStep(randomBatch(100 + s, { rows: 4, seqLen: 12, vocab: VOCAB }), { nPairs: 2 });
      await trainer.optimizerStep({ lr: 3e-2, maxGradNorm: 0 });
    }
  } finally {
    trainer.dispose();
  }
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'rpo-lora-'));
  base = path.join(dir, 'base');
  runPython('hf_make_model.py', ['--arch', 'llama', '--out', base, '--seed', '3', '--config-json', JSON.stringify({ vocab_size: VOCAB })]);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('LoRA against PEFT', () => {
  it('PeftModel.from_pretrained loads an adapter rpo trained to the same logits', async () => {
    const policy = await loadModel(base);
    try {
      await policy.addLora({ r: 4, alpha: 8, targetModules: ['all-linear'], seed: 1 });
      expect(adaptedModuleNames(policy)).toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
      await trainAdapters(policy, 3);
      const out = path.join(dir, 'rpo-adapter');
      await saveAdapter(policy, out, { lora: { r: 4, alpha: 8, dropout: 0, rslora: false }, baseModel: base });
      const batch = randomBatch(7, { rows: 3, seqLen: 10, vocab: VOCAB, minLen: 5 });
      const ours = await policy.logits(batch);
      const theirs = peftLogits(base, out, batch, 'rpo-adapter');
      const plain = peftLogits(base, null, batch, 'base');
      const e = compare(ours, theirs, batch);
      console.log(`[lora] rpo adapter in PEFT: max abs logit diff ${e.abs.toExponential(2)}, max per-position rel ${e.rel.toExponential(2)}`);
      expect(e.rel).toBeLessThanOrEqual(TOL);
      // The adapters moved the logits well beyond that tolerance (the comparison can fail).
      expect(compare(theirs, plain, batch).rel).toBeGreaterThan(1e-2);
    } finally {
      policy.dispose();
    }
  });

  it('rpo loads an adapter PEFT made to PEFT\'s logits, and merges it into weights transformers loads', async () => {
    const made = path.join(dir, 'peft-made');
    peft([{ job: 'make', base, out: made, r: 4, alpha: 16, targets: ['q_proj', 'v_proj', 'down_proj'], rslora: true, seed: 5 }]);
    expect(readAdapterConfig(made).use_rslora).toBe(true);
    const policy = await loadModel(base);
    try {
      await loadAdapter(policy, made);
      expect(adaptedModuleNames(policy)).toEqual(['down_proj', 'q_proj', 'v_proj']);
      const batch = randomBatch(8, { rows: 3, seqLen: 10, vocab: VOCAB, minLen: 5 });
      const ours = await policy.logits(batch);
      const theirs = peftLogits(base, made, batch, 'peft-made');
      const e = compare(ours, theirs, batch);
      console.log(`[lora] PEFT adapter in rpo: max abs logit diff ${e.abs.toExponential(2)}, max per-position rel ${e.rel.toExponential(2)}`);
      expect(e.rel).toBeLessThanOrEqual(TOL);
      expect(compare(theirs, peftLogits(base, null, batch, 'base2'), batch).rel).toBeGreaterThan(1e-2);

      await policy.mergeLora();
      expect(policy.adapterParams()).toEqual([]);
      const merged = path.join(dir, 'merged');
      await saveModel(policy, merged);
      const m = compare(peftLogits(merged, null, batch, 'merged'), theirs, batch);
      console.log(`[lora] merged weights in transformers vs PEFT adapter: max abs logit diff ${m.abs.toExponential(2)}, max per-position rel ${m.rel.toExponential(2)}`);
      expect(m.rel).toBeLessThanOrEqual(TOL);
    } finally {
      policy.dispose();
    }
  });
});

describe('LoRA on the other architectures', () => {
  for (const arch of ['qwen2', 'mistral'] as const) {
    it(`${arch}: a PEFT adapter on every linear gives PEFT's logits in rpo`, async () => {
      const archBase = path.join(dir, `base-${arch}`);
      runPython('hf_make_model.py', ['--arch', arch, '--out', archBase, '--seed', '4', '--config-json', JSON.stringify({ vocab_size: VOCAB })]);
      const made = path.join(dir, `peft-${arch}`);
      // T = 12 > Mistral's tiny sliding window (8): the windowed mask path is exercised too.
      const batch = randomBatch(12, { rows: 2, seqLen: 12, vocab: VOCAB, minLen: 9 });
      const input = path.join(dir, `${arch}.json`);
      const out = path.join(dir, `${arch}.bin`);
      writeFileSync(input, batchJson(batch));
      peft([
        { job: 'make', base: archBase, out: made, r: 4, alpha: 8, targets: 'all-linear', seed: 6 },
        { job: 'logits', base: archBase, adapter: made, input, out },
      ]);
      const policy = await loadModel(archBase);
      try {
        await loadAdapter(policy, made);
        expect(adaptedModuleNames(policy)).toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
        const e = compare(await policy.logits(batch), readFloat32(out), batch);
        console.log(`[lora] ${arch} PEFT adapter in rpo: max abs logit diff ${e.abs.toExponential(2)}, max per-position rel ${e.rel.toExponential(2)}`);
        expect(e.rel).toBeLessThanOrEqual(TOL);
      } finally {
        policy.dispose();
      }
    });
  }
});

describe('LoRA on GPTNeoX', () => {
  // PEFT's all-linear on gpt_neox (its own target resolution): every linear of the blocks, not
  // the output head embed_out.
  const NEOX_LINEARS = ['dense', 'dense_4h_to_h', 'dense_h_to_4h', 'query_key_value'];
  let neox: string;
  beforeAll(() => {
    neox = path.join(dir, 'base-neox');
    runPython('hf_make_model.py', ['--arch', 'gpt_neox', '--out', neox, '--seed', '5', '--config-json', JSON.stringify({ vocab_size: VOCAB })]);
  });

  it('a PEFT all-linear adapter loads in rpo to PEFT\'s logits', async () => {
    const made = path.join(dir, 'peft-neox');
    const batch = randomBatch(13, { rows: 3, seqLen: 11, vocab: VOCAB, minLen: 6 });
    const input = path.join(dir, 'neox.json');
    const out = path.join(dir, 'neox.bin');
    const plainOut = path.join(dir, 'neox-base.bin');
    writeFileSync(input, batchJson(batch));
    const res = peft([
      { job: 'make', base: neox, out: made, r: 4, alpha: 8, targets: 'all-linear', seed: 7 },
      { job: 'logits', base: neox, adapter: made, input, out },
      { job: 'logits', base: neox, adapter: null, input, out: plainOut },
    ]);
    // PEFT 0.21 writes its all-linear resolution as full module names: every block linear, no embed_out.
    const peftTargets = readAdapterConfig(made).target_modules;
    expect(peftTargets).toHaveLength(8);
    expect([...new Set(peftTargets.map((t) => t.slice(t.lastIndexOf('.') + 1)))].sort()).toEqual(NEOX_LINEARS);
    const policy = await loadModel(neox);
    try {
      await loadAdapter(policy, made);
      expect(adaptedModuleNames(policy)).toEqual(NEOX_LINEARS);
      // As many adapted linears as PEFT found (2 layers × 4), so embed_out is left out in both.
      expect(policy.adapterParams().length / 2).toBe(res[1]!.adapted);
      expect(res[1]!.adapted).toBe(8);
      expect(policy.adapterParams().some((p) => p.name.includes('embed_out'))).toBe(false);
      const theirs = readFloat32(out);
      const e = compare(await policy.logits(batch), theirs, batch);
      console.log(`[lora] gpt_neox PEFT adapter in rpo: max abs logit diff ${e.abs.toExponential(2)}, max per-position rel ${e.rel.toExponential(2)}`);
      expect(e.rel).toBeLessThanOrEqual(TOL);
      expect(compare(theirs, readFloat32(plainOut), batch).rel).toBeGreaterThan(1e-2);
    } finally {
      policy.dispose();
    }
  });

  it('an adapter rpo trained (checkpointing, dropout) loads in PeftModel.from_pretrained to rpo\'s logits', async () => {
    const policy = await loadModel(neox);
    try {
      await policy.addLora({ r: 4, alpha: 8, dropout: 0.1, targetModules: ['all-linear'], seed: 3 });
      expect(adaptedModuleNames(policy)).toEqual(NEOX_LINEARS);
      await trainAdapters(policy, 3, { checkpointing: true });
      const out = path.join(dir, 'rpo-neox-adapter');
      await saveAdapter(policy, out, { lora: { r: 4, alpha: 8, dropout: 0.1, rslora: false }, baseModel: neox });
      expect(readAdapterConfig(out).target_modules).toEqual(NEOX_LINEARS);
      const batch = randomBatch(14, { rows: 3, seqLen: 10, vocab: VOCAB, minLen: 5 });
      const ours = await policy.logits(batch);
      const theirs = peftLogits(neox, out, batch, 'rpo-neox-adapter');
      const e = compare(ours, theirs, batch);
      console.log(`[lora] gpt_neox rpo adapter in PEFT: max abs logit diff ${e.abs.toExponential(2)}, max per-position rel ${e.rel.toExponential(2)}`);
      expect(e.rel).toBeLessThanOrEqual(TOL);
      expect(compare(theirs, peftLogits(neox, null, batch, 'neox-base2'), batch).rel).toBeGreaterThan(1e-2);
    } finally {
      policy.dispose();
    }
  });

  it('a target list follows PEFT\'s suffix rule: "dense" is attention.dense only; Llama names are refused', async () => {
    const policy = await loadModel(neox);
    try {
      await expect(policy.addLora({ r: 2, alpha: 4, targetModules: ['q_proj'] })).rejects.toThrow(
        /"q_proj" matches no linear layer of this model \(its linears: dense, dense_4h_to_h, dense_h_to_4h, embed_out, query_key_value, or all-linear\)/,
      );
      await policy.addLora({ r: 2, alpha: 4, targetModules: ['dense'] });
      expect(policy.adapterParams().map((p) => p.name)).toEqual(
        [0, 1].flatMap((l) => ['A', 'B'].map((ab) => `base_model.model.gpt_neox.layers.${l}.attention.dense.lora_${ab}.weight`)),
      );
    } finally {
      policy.dispose();
    }
  });

  async function neoxGrads(checkpointing: boolean, dropout: number): Promise<{ g: Float64Array; params: Array<{ name: string; shape: number[] }> }> {
    const policy = await loadModel(neox);
    try {
      await policy.addLora({ r: 4, alpha: 8, dropout, targetModules: ['all-linear'], seed: 4 });
      await trainAdapters(policy, 1); // B non-zero, so A gets a gradient too
      const params = policy.adapterParams().map((p) => ({ name: p.name, shape: [...p.shape] }));
      const trainer = new Trainer(policy, null, { loss: { name: 'dpo', beta: 0.5 }, activationCheckpointing: checkpointing, seed: 3 });
      await trainer.microStep(randomBatch(15, { rows: 4, seqLen: 12, vocab: VOCAB }), { nPairs: 2 });
      const g = await trainer.gradSnapshot(params.map((p) => p.name));
      trainer.dispose();
      return { g, params };
    } finally {
      policy.dispose();
    }
  }

  for (const dropout of [0, 0.2]) {
    it(`activation checkpointing gives every adapter of every layer its gradient (dropout ${dropout})`, async () => {
      const plain = await neoxGrads(false, dropout);
      const ckpt = await neoxGrads(true, dropout);
      // The recompute replays the forward's dropout masks (preserve_rng): the same gradients.
      expect(normRelError(ckpt.g, plain.g)).toBeLessThan(1e-5);
      if (dropout > 0) expect(normRelError(plain.g, (await neoxGrads(false, 0)).g)).toBeGreaterThan(1e-3);
      let off = 0;
      const seen = new Set<string>();
      for (const p of ckpt.params) {
        const n = p.shape.reduce((a, b) => a * b, 1);
        expect(Math.hypot(...Array.from(ckpt.g.subarray(off, off + n))), p.name).toBeGreaterThan(0);
        seen.add(p.name.replace(/^base_model\.model\.gpt_neox\.layers\.(\d+)\..*\.([^.]+)\.lora_([AB])\.weight$/, '$1 $2 $3'));
        off += n;
      }
      expect(off).toBe(ckpt.g.length);
      // 2 layers × 4 linears × (A, B), each named as PEFT names it.
      expect(seen.size).toBe(16);
      for (const l of [0, 1]) for (const m of NEOX_LINEARS) for (const ab of ['A', 'B']) expect(seen.has(`${l} ${m} ${ab}`), `${l} ${m} ${ab}`).toBe(true);
    });
  }
});

describe('the reference is the base with the adapters off', () => {
  it('equals a separate base model\'s log-probs before and after training, and gives the same DPO metrics', async () => {
    const policy = await loadModel(base);
    const separate = await loadModel(base);
    try {
      await policy.addLora({ r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'], seed: 2 });
      const batch = randomBatch(9, { rows: 4, seqLen: 12, vocab: VOCAB });
      const want = await separate.logprobs(batch);
      expect(await policy.logprobs(batch, { adapters: false })).toEqual(want);
      await trainAdapters(policy, 2);
      // Only the adapters moved: the base is bit-for-bit the separate model.
      expect(await policy.logprobs(batch, { adapters: false })).toEqual(want);
      const adapted = await policy.logprobs(batch);
      expect(Math.max(...Array.from(adapted.sum, (v, i) => Math.abs(v - want.sum[i]!)))).toBeGreaterThan(1e-3);

      const loss = { name: 'dpo' as const, beta: 0.5 };
      const lora = new Trainer(policy, null, { loss });
      const n = 2;
      const reference = {
        chosen: { sum: want.sum.slice(0, n), mean: want.mean.slice(0, n), count: want.count.slice(0, n) },
        rejected: { sum: want.sum.slice(n), mean: want.mean.slice(n), count: want.count.slice(n) },
      };
      const a = await lora.evalStep(batch, { nPairs: n });
      const b = await lora.evalStep(batch, { nPairs: n, reference });
      lora.dispose();
      // The same numbers by hand: β(π - ref) per response from the two models' log-probs.
      const margin = (i: number) => 0.5 * (adapted.sum[i]! - want.sum[i]! - (adapted.sum[n + i]! - want.sum[n + i]!));
      const handLoss = (Array.from({ length: n }, (_, i) => Math.log1p(Math.exp(-margin(i)))).reduce((x, y) => x + y, 0)) / n;
      expect(a.loss).toBeCloseTo(handLoss, 5);
      expect(a.loss).toBeCloseTo(b.loss, 6);
      for (const k of Object.keys(b.metrics)) expect(a.metrics[k], k).toBeCloseTo(b.metrics[k]!, 6);
    } finally {
      policy.dispose();
      separate.dispose();
    }
  });
});

describe('training the adapters', () => {
  async function grads(checkpointing: boolean, dropout: number): Promise<{ g: Float64Array; names: string[] }> {
    const policy = await loadModel(base);
    try {
      await policy.addLora({ r: 4, alpha: 8, dropout, targetModules: ['all-linear'], seed: 4 });
      // Make B non-zero so A gets a gradient too.
      await trainAdapters(policy, 1);
      const names = policy.adapterParams().map((p) => p.name);
      const trainer = new Trainer(policy, null, { loss: { name: 'dpo', beta: 0.5 }, activationCheckpointing: checkpointing, seed: 3 });
      await trainer.microStep(randomBatch(11, { rows: 4, seqLen: 12, vocab: VOCAB }), { nPairs: 2 });
      const g = await trainer.gradSnapshot(names);
      trainer.dispose();
      return { g, names };
    } finally {
      policy.dispose();
    }
  }

  for (const dropout of [0, 0.2]) {
    it(`activation checkpointing gives every adapter its gradient (dropout ${dropout})`, async () => {
      const plain = await grads(false, dropout);
      const ckpt = await grads(true, dropout);
      expect(normRelError(ckpt.g, plain.g)).toBeLessThan(1e-5);
      // Dropout does drop: its gradients are not the dropout-free ones.
      if (dropout > 0) expect(normRelError(plain.g, (await grads(false, 0)).g)).toBeGreaterThan(1e-3);
      // Every adapter tensor of every layer has a non-zero gradient (layer 0's too, whose block
      // input comes from the frozen embedding).
      let off = 0;
      const policy = await loadModel(base);
      await policy.addLora({ r: 4, alpha: 8, targetModules: ['all-linear'] });
      for (const p of policy.adapterParams()) {
        const n = p.shape.reduce((a, b) => a * b, 1);
        const norm = Math.hypot(...Array.from(ckpt.g.subarray(off, off + n)));
        expect(norm, p.name).toBeGreaterThan(0);
        off += n;
      }
      policy.dispose();
      expect(off).toBe(ckpt.g.length);
    });
  }

  it('adapter gradients match central finite differences of the DPO loss (A and B of several linears)', async () => {
    const policy = await loadModel(base);
    try {
      await policy.addLora({ r: 2, alpha: 4, targetModules: ['q_proj', 'down_proj'], seed: 1 });
      const params = policy.adapterParams();
      // Non-zero A and B (fresh B is zero: A's gradient would vanish), written as a PEFT file.
      const r = rng(21);
      const values = params.map((p) => new Float32Array(p.shape.reduce((a, b) => a * b, 1)).map(() => (r() - 0.5) * 0.4));
      const adapterDir = path.join(dir, 'fd-adapter');
      const write = (vals: Float32Array[]) => {
        writeSafetensorsFile(path.join(adapterDir, 'adapter_model.safetensors'), params.map((p, i) => ({ name: p.name, dtype: 'F32', shape: p.shape, data: new Uint8Array(vals[i]!.buffer.slice(0)) })));
      };
      const { mkdirSync } = await import('node:fs');
      const { readSafetensorsHeader } = await import('../../lib/model/safetensors.js');
      mkdirSync(adapterDir, { recursive: true });
      const load = async (vals: Float32Array[]) => {
        write(vals);
        await policy.loadAdapters(readSafetensorsHeader(path.join(adapterDir, 'adapter_model.safetensors')).tensors);
      };
      await load(values);
      const batch = randomBatch(31, { rows: 4, seqLen: 10, vocab: VOCAB });
      const trainer = new Trainer(policy, null, { loss: { name: 'dpo', beta: 2 } });
      await trainer.microStep(batch, { nPairs: 2 });
      const names = params.map((p) => p.name);
      const g = await trainer.gradSnapshot(names);
      // Checked: each of layer 0's and layer 1's tensors, at its largest-gradient element.
      let off = 0;
      let checked = 0;
      const eps = 1e-2;
      for (let i = 0; i < params.length; i++) {
        const n = values[i]!.length;
        let k = 0;
        for (let j = 1; j < n; j++) if (Math.abs(g[off + j]!) > Math.abs(g[off + k]!)) k = j;
        const at = (delta: number) => values.map((v, t) => (t === i ? v.map((x, j) => (j === k ? x + delta : x)) : v));
        await load(at(eps));
        const up = (await trainer.evalStep(batch, { nPairs: 2 })).loss;
        await load(at(-eps));
        const down = (await trainer.evalStep(batch, { nPairs: 2 })).loss;
        const fd = (up - down) / (2 * eps);
        expect(Math.abs(g[off + k]!), params[i]!.name).toBeGreaterThan(1e-4);
        expect(Math.abs(fd - g[off + k]!) / Math.abs(g[off + k]!), `${params[i]!.name}[${k}]: engine ${g[off + k]}, finite difference ${fd}`).toBeLessThan(2e-2);
        checked++;
        off += n;
      }
      expect(checked).toBe(8); // 2 layers × (q_proj, down_proj) × (A, B)
      trainer.dispose();
    } finally {
      policy.dispose();
    }
  });

  it('a bf16 base trains fp32 adapters', async () => {
    const policy = await loadModel(base, { dtype: 'bfloat16' });
    try {
      await policy.addLora({ r: 4, alpha: 8, targetModules: ['all-linear'], seed: 1 });
      expect(new Set(policy.adapterParams().map((p) => p.dtype))).toEqual(new Set(['F32']));
      expect(new Set(policy.params().map((p) => p.dtype))).toEqual(new Set(['BF16']));
      const batch = randomBatch(9, { rows: 4, seqLen: 12, vocab: VOCAB });
      const before = await policy.logprobs(batch, { adapters: false });
      await trainAdapters(policy, 2, { checkpointing: true });
      expect(await policy.logprobs(batch, { adapters: false })).toEqual(before);
      const after = await policy.logprobs(batch);
      expect(Math.max(...Array.from(after.sum, (v, i) => Math.abs(v - before.sum[i]!)))).toBeGreaterThan(1e-2);
    } finally {
      policy.dispose();
    }
  });

  it('fresh adapters are PEFT\'s init: A uniform within 1/sqrt(in), B zero, the logits unchanged', async () => {
    const policy = await loadModel(base);
    const plain = await loadModel(base);
    try {
      await policy.addLora({ r: 8, alpha: 16, targetModules: ['q_proj'], seed: 9 });
      const out = path.join(dir, 'fresh');
      await saveAdapter(policy, out, { lora: { r: 8, alpha: 16, dropout: 0, rslora: false }, baseModel: base });
      const batch = randomBatch(3, { rows: 2, seqLen: 8, vocab: VOCAB });
      expect(await policy.logits(batch)).toEqual(await plain.logits(batch));
      const { readSafetensorsHeader } = await import('../../lib/model/safetensors.js');
      const { readFileSync } = await import('node:fs');
      const file = path.join(out, 'adapter_model.safetensors');
      const h = readSafetensorsHeader(file);
      const bytes = readFileSync(file);
      for (const t of h.tensors) {
        const v = new Float32Array(bytes.buffer.slice(bytes.byteOffset + t.begin, bytes.byteOffset + t.end));
        if (t.name.endsWith('lora_B.weight')) {
          expect(t.shape).toEqual([64, 8]);
          expect(v.every((x) => x === 0)).toBe(true);
        } else {
          expect(t.shape).toEqual([8, 64]);
          const bound = 1 / Math.sqrt(64);
          expect(v.every((x) => Math.abs(x) <= bound)).toBe(true);
          // uniform(-b, b): variance b²/3
          const variance = v.reduce((s, x) => s + x * x, 0) / v.length;
          expect(variance).toBeGreaterThan((bound * bound) / 3 * 0.8);
          expect(variance).toBeLessThan((bound * bound) / 3 * 1.2);
        }
      }
    } finally {
      policy.dispose();
      plain.dispose();
    }
  });
});

describe('errors', () => {
  it('a target that matches no linear names the model\'s linears', async () => {
    const policy = await loadModel(base);
    try {
      await expect(policy.addLora({ r: 4, alpha: 8, targetModules: ['query_key_value'] })).rejects.toThrow(
        /"query_key_value" matches no linear layer of this model \(its linears: .*q_proj/,
      );
    } finally {
      policy.dispose();
    }
  });

  it('a bf16 precision for a LoRA trainer says the adapters train in fp32', async () => {
    const policy = await loadModel(base, { dtype: 'bfloat16' });
    try {
      await policy.addLora({ r: 2, alpha: 4, targetModules: ['q_proj'] });
      expect(() => new Trainer(policy, null, { loss: { name: 'dpo', beta: 0.1 }, precision: 'bf16-mixed' })).toThrow(/LoRA adapters train in fp32 \(precision fp32, or unset\), not bf16-mixed/);
      new Trainer(policy, null, { loss: { name: 'dpo', beta: 0.1 }, precision: 'fp32' }).dispose();
    } finally {
      policy.dispose();
    }
  });

  it('an adapter file with a wrong shape or a stray tensor is refused, naming it', async () => {
    const bad = path.join(dir, 'bad-adapter');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(bad, { recursive: true });
    writeFileSync(path.join(bad, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj'] }));
    const r = rng(1);
    const tensors = [];
    for (let l = 0; l < 2; l++) {
      const prefix = `base_model.model.model.layers.${l}.self_attn.q_proj`;
      tensors.push({ name: `${prefix}.lora_A.weight`, dtype: 'F32', shape: [2, 64], data: new Float32Array(128).map(() => r()) });
      // B has the wrong shape in layer 1
      tensors.push({ name: `${prefix}.lora_B.weight`, dtype: 'F32', shape: l === 1 ? [32, 2] : [64, 2], data: new Float32Array(l === 1 ? 64 : 128) });
    }
    writeSafetensorsFile(path.join(bad, 'adapter_model.safetensors'), tensors.map((t) => ({ ...t, data: new Uint8Array(t.data.buffer) })));
    const policy = await loadModel(base);
    try {
      await expect(loadAdapter(policy, bad)).rejects.toThrow(/layers\.1\.self_attn\.q_proj\.lora_B\.weight" has shape \[32, 2\], the model expects \[64, 2\]/);
    } finally {
      policy.dispose();
    }
    // A tensor for a module the config does not target.
    const stray = [
      ...tensors.map((t, i) => (i === 3 ? { ...t, shape: [64, 2], data: new Float32Array(128) } : t)),
      { name: 'base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight', dtype: 'F32', shape: [2, 64], data: new Float32Array(128) },
    ];
    writeSafetensorsFile(path.join(bad, 'adapter_model.safetensors'), stray.map((t) => ({ ...t, data: new Uint8Array(t.data.buffer) })));
    const other = await loadModel(base);
    try {
      await expect(loadAdapter(other, bad)).rejects.toThrow(/tensors this model's adapters \(q_proj\) have no place for: base_model\.model\.model\.layers\.0\.self_attn\.k_proj\.lora_A\.weight/);
    } finally {
      other.dispose();
    }
    writeFileSync(path.join(bad, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj'], use_dora: true }));
    expect(() => readAdapterConfig(bad)).toThrow(/DoRA adapters are not supported \("use_dora": true\)/);
  });
});
