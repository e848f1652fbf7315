// The train step: activation checkpointing, gradient accumulation, precomputed references,
// clipping, and a tiny model that learns a preference.
import { describe, expect, it } from 'vitest';

import { Model, Trainer, type LossConfig, type RowBatch } from '../../lib/native.js';
import { normRelError, randomBatch, rng, tinyConfig } from './helpers.js';

const config = tinyConfig({ num_hidden_layers: 3 });

async function gradsFor(options: { activationCheckpointing: boolean }, batch: RowBatch, loss: LossConfig, nPairs: number) {
  const policy = await Model.create(config, { seed: 21 });
  const reference = await Model.create(config, { seed: 22 });
  const names = policy.params().map((p) => p.name);
  const trainer = new Trainer(policy, reference, { loss, ...options });
  const step = await trainer.microStep(batch, { nPairs });
  const grads = await trainer.gradSnapshot(names);
  trainer.dispose();
  policy.dispose();
  reference.dispose();
  return { step, grads };
}

/** Rows [a x n, b x n, ...] of a batch: the rows of `groups` picked pair by pair. */
function selectPairs(batch: RowBatch, nPairs: number, groups: number, pairs: number[]): RowBatch {
  const T = batch.seqLen;
  const rows: number[] = [];
  for (let g = 0; g < groups; g++) for (const p of pairs) rows.push(g * nPairs + p);
  const pick = <A extends Int32Array | Uint8Array>(src: A, make: (n: number) => A): A => {
    const out = make(rows.length * T);
    rows.forEach((r, i) => out.set(src.subarray(r * T, (r + 1) * T), i * T));
    return out;
  };
  return {
    rows: rows.length,
    seqLen: T,
    inputIds: pick(batch.inputIds, (n) => new Int32Array(n)),
    attentionMask: pick(batch.attentionMask, (n) => new Uint8Array(n)),
    lossMask: pick(batch.lossMask, (n) => new Uint8Array(n)),
  };
}

describe('activation checkpointing', () => {
  it('gives the same gradients as keeping activations (rdpo, all three row groups)', async () => {
    const batch = randomBatch(31, { rows: 9, seqLen: 12, vocab: config.vocab_size, minLen: 6 });
    const loss: LossConfig = { name: 'rdpo', beta: 0.5, gamma: 0.3 };
    const plain = await gradsFor({ activationCheckpointing: false }, batch, loss, 3);
    const ckpt = await gradsFor({ activationCheckpointing: true }, batch, loss, 3);
    expect(ckpt.step.loss).toBe(plain.step.loss);
    expect(normRelError(ckpt.grads, plain.grads)).toBeLessThan(1e-6);
    expect(plain.grads.some((g) => g !== 0)).toBe(true);
  });
});

describe('gradient accumulation', () => {
  it('two half micro-batches scaled by 1/2 equal one full batch', async () => {
    const nPairs = 4;
    const batch = randomBatch(32, { rows: 2 * nPairs, seqLen: 10, vocab: config.vocab_size });
    const loss: LossConfig = { name: 'dpo', beta: 0.2 };
    const policy = await Model.create(config, { seed: 23 });
    const reference = await Model.create(config, { seed: 24 });
    const names = policy.params().map((p) => p.name);
    const trainer = new Trainer(policy, reference, { loss });
    await trainer.microStep(batch, { nPairs });
    const full = await trainer.gradSnapshot(names);
    await trainer.optimizerStep({ lr: 0 }); // zeroes the gradients, weights unchanged (lr 0, wd * 0)
    await trainer.microStep(selectPairs(batch, nPairs, 2, [0, 1]), { nPairs: 2, scale: 0.5 });
    await trainer.microStep(selectPairs(batch, nPairs, 2, [2, 3]), { nPairs: 2, scale: 0.5 });
    const accumulated = await trainer.gradSnapshot(names);
    expect(normRelError(accumulated, full)).toBeLessThan(1e-5);
    trainer.dispose();
    policy.dispose();
    reference.dispose();
  });
});

describe('reference log-probs', () => {
  it('precomputed ones give the same loss and metrics as the live reference model', async () => {
    const nPairs = 3;
    const batch = randomBatch(33, { rows: 3 * nPairs, seqLen: 11, vocab: config.vocab_size });
    const loss: LossConfig = { name: 'rdpo', beta: 0.1, gamma: 0.1 };
    const policy = await Model.create(config, { seed: 25 });
    const reference = await Model.create(config, { seed: 26 });
    const live = new Trainer(policy, reference, { loss });
    const a = await live.microStep(batch, { nPairs });
    live.dispose();
    // the reference runs on chosen and rejected rows only
    const refRows = await reference.logprobs(selectPairs(batch, nPairs, 2, [0, 1, 2]));
    const slice = (g: number) => ({
      sum: refRows.sum.slice(g * nPairs, (g + 1) * nPairs),
      mean: refRows.mean.slice(g * nPairs, (g + 1) * nPairs),
      count: refRows.count.slice(g * nPairs, (g + 1) * nPairs),
    });
    const cached = new Trainer(policy, null, { loss });
    const b = await cached.microStep(batch, { nPairs, reference: { chosen: slice(0), rejected: slice(1) } });
    expect(b.loss).toBeCloseTo(a.loss, 6);
    for (const [k, v] of Object.entries(a.metrics)) expect(b.metrics[k], k).toBeCloseTo(v, 6);
    cached.dispose();
    policy.dispose();
    reference.dispose();
  });
});

describe('optimizer step', () => {
  it('returns the global gradient norm before clipping', async () => {
    const policy = await Model.create(config, { seed: 27 });
    const names = policy.params().map((p) => p.name);
    const trainer = new Trainer(policy, null, { loss: { name: 'sft' } });
    await trainer.microStep(randomBatch(34, { rows: 2, seqLen: 9, vocab: config.vocab_size }), { nPairs: 2 });
    const grads = await trainer.gradSnapshot(names);
    const norm = Math.sqrt(grads.reduce((s, g) => s + g * g, 0));
    const { gradNorm } = await trainer.optimizerStep({ lr: 1e-3, maxGradNorm: norm / 10 });
    expect(gradNorm).toBeCloseTo(norm, 3);
    // gradients are zeroed after the step
    expect((await trainer.gradSnapshot(names)).every((g) => g === 0)).toBe(true);
    trainer.dispose();
    policy.dispose();
  });
});

/**
 * A fixed preference batch: chosen and rejected responses share a prompt and differ in their
 * tokens. Training should push the policy's chosen log-prob margin up until every pair is
 * ranked right.
 */
function preferenceBatch(nPairs: number, groups: number, seqLen: number, vocab: number): RowBatch {
  const r = rng(99);
  const rows = nPairs * groups;
  const inputIds = new Int32Array(rows * seqLen);
  const attentionMask = new Uint8Array(rows * seqLen).fill(1);
  const lossMask = new Uint8Array(rows * seqLen);
  const promptLen = 4;
  for (let p = 0; p < nPairs; p++) {
    const prompt = Array.from({ length: promptLen }, () => Math.floor(r() * vocab));
    for (let g = 0; g < groups; g++) {
      const row = g * nPairs + p;
      for (let t = 0; t < seqLen; t++) {
        inputIds[row * seqLen + t] = t < promptLen ? prompt[t]! : Math.floor(r() * vocab);
        lossMask[row * seqLen + t] = t >= promptLen ? 1 : 0;
      }
    }
  }
  return { rows, seqLen, inputIds, attentionMask, lossMask };
}

describe('learning', () => {
  for (const [loss, optimizer] of [
    [{ name: 'dpo', beta: 0.1 }, 'AdamW'],
    [{ name: 'rdpo', beta: 0.1, gamma: 0.1 }, 'AdamW'],
    [{ name: 'dpo', beta: 0.1 }, 'RMSprop'],
  ] as const) {
    it(`${loss.name} with ${optimizer} drives the loss down and reward accuracy to 1`, async () => {
      const nPairs = 6;
      const groups = loss.name === 'rdpo' ? 3 : 2;
      const batch = preferenceBatch(nPairs, groups, 12, config.vocab_size);
      const policy = await Model.create(config, { seed: 41 });
      const reference = await Model.create(config, { seed: 41 });
      const trainer = new Trainer(policy, reference, { loss, optimizer });
      const first = await trainer.microStep(batch, { nPairs });
      // policy == reference: every reward margin is 0, so the DPO part is log 2
      expect(first.metrics['rewards/margins']).toBeCloseTo(0, 6);
      if (loss.name === 'dpo') expect(first.loss).toBeCloseTo(Math.log(2), 5);
      else expect(first.loss).toBeGreaterThan(Math.log(2)); // + the rationale term
      await trainer.optimizerStep({ lr: 1e-3, maxGradNorm: 10 });
      // dpo: halve the loss; rdpo: the rationale term (~3.7 at the start) must fall too
      const target = loss.name === 'dpo' ? 0.5 * first.loss : first.loss - 1.5;
      let last = first;
      for (let step = 0; step < 60; step++) {
        last = await trainer.microStep(batch, { nPairs });
        await trainer.optimizerStep({ lr: 1e-3, maxGradNorm: 10 });
        if (last.metrics['rewards/accuracies'] === 1 && last.loss < target) break;
      }
      expect(last.metrics['rewards/accuracies']).toBe(1);
      expect(last.loss).toBeLessThan(target);
      expect(last.metrics['rewards/margins']).toBeGreaterThan(0);
      if (loss.name === 'rdpo') expect(last.metrics['logps/rationale']).toBeGreaterThan(first.metrics['logps/rationale']! + 5);
      trainer.dispose();
      policy.dispose();
      reference.dispose();
    });
  }
});

describe('optimizer state', () => {
  it('saved and loaded, training continues exactly as without the interruption', async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const { saveModel, loadModel } = await import('../../lib/model/io.js');
    const dir = mkdtempSync(path.join(tmpdir(), 'rpo-state-'));
    const batch = randomBatch(35, { rows: 4, seqLen: 10, vocab: config.vocab_size });
    const step = async (t: Trainer) => {
      await t.microStep(batch, { nPairs: 4 });
      await t.optimizerStep({ lr: 1e-2, maxGradNorm: 1 });
    };
    const loss: LossConfig = { name: 'sft' };
    const a = await Model.create(config, { seed: 28 });
    const ta = new Trainer(a, null, { loss });
    await step(ta);
    await step(ta);
    await saveModel(a, dir);
    await ta.saveState(path.join(dir, 'optimizer.pt'));
    await step(ta);
    await step(ta);

    const b = await loadModel(dir);
    const tb = new Trainer(b, null, { loss });
    await tb.loadState(path.join(dir, 'optimizer.pt'));
    await step(tb);
    await step(tb);
    expect(Array.from(await b.logits(batch))).toEqual(Array.from(await a.logits(batch)));
    // without the moments the continuation differs: the state carried something real
    const c = await loadModel(dir);
    const tc = new Trainer(c, null, { loss });
    await step(tc);
    await step(tc);
    expect(Array.from(await c.logits(batch))).not.toEqual(Array.from(await a.logits(batch)));
    await expect(tc.loadState(path.join(dir, 'config.json'))).rejects.toThrow(/config.json: not an optimizer state/);
    for (const x of [ta, tb, tc]) x.dispose();
    for (const m of [a, b, c]) m.dispose();
  });
});

describe('eval step', () => {
  it('gives the micro-step\'s loss and metrics and leaves gradients untouched', async () => {
    const nPairs = 2;
    const batch = randomBatch(36, { rows: 3 * nPairs, seqLen: 9, vocab: config.vocab_size });
    const policy = await Model.create(config, { seed: 29 });
    const reference = await Model.create(config, { seed: 30 });
    const names = policy.params().map((p) => p.name);
    const trainer = new Trainer(policy, reference, { loss: { name: 'rdpo' }, activationCheckpointing: true });
    const evaluated = await trainer.evalStep(batch, { nPairs });
    expect((await trainer.gradSnapshot(names)).every((g) => g === 0)).toBe(true);
    const trained = await trainer.microStep(batch, { nPairs });
    expect(evaluated.loss).toBeCloseTo(trained.loss, 6);
    expect(Object.keys(evaluated.metrics).sort()).toEqual(Object.keys(trained.metrics).sort());
    for (const [k, v] of Object.entries(trained.metrics)) expect(evaluated.metrics[k], k).toBeCloseTo(v, 6);
    trainer.dispose();
    policy.dispose();
    reference.dispose();
  });
});
