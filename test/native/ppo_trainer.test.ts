// loss=ppo through the trainer on real (tiny) models: the value head trains, is written beside
// the optimizer state as value_head.safetensors and read back on load; ppo_epochs passes add
// their gradients (the policy's log-probs do not depend on the value head's dropout, so two
// passes give exactly twice one pass's policy gradient when the seeds line up).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Model, Trainer, type LossConfig, type RowBatch } from '../../lib/native.js';
import { randomBatch, tinyConfig } from './helpers.js';

const config = tinyConfig();
const PPO: LossConfig = { name: 'ppo', ppo_epochs: 1, cliprange: 0.5, lam: 0.95, gamma: 0.99, critic_coef: 0.01, KL_coef: 0.1 };
const n = 4;
const batch: RowBatch = { ...randomBatch(71, { rows: n, seqLen: 12, vocab: config.vocab_size, minLen: 6, promptLen: 3 }), desirable: Uint8Array.from([1, 0, 1, 0]) };

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'rpo-ppo-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function withTrainer<T>(loss: LossConfig, seed: number, fn: (t: Trainer, policy: Model) => Promise<T>): Promise<T> {
  const policy = await Model.create(config, { seed: 1 });
  const reference = await Model.create(config, { seed: 1 });
  const trainer = new Trainer(policy, reference, { loss, seed });
  try {
    return await fn(trainer, policy);
  } finally {
    trainer.dispose();
    policy.dispose();
    reference.dispose();
  }
}

describe('loss=ppo in the trainer', () => {
  it('policy = reference at the start: ratio 1, KL 0, no log-ratio between the kinds', async () => {
    await withTrainer(PPO, 3, async (t) => {
      const r = await t.evalStep(batch, { nPairs: n });
      expect(r.metrics['loss/policykl']).toBeCloseTo(0, 6);
      expect(r.metrics['loss/seqratio']).toBeCloseTo(1, 5);
      expect(r.metrics['logratio/margin']).toBeCloseTo(0, 5);
      for (const k of ['loss/critic', 'loss/policy', 'clipfrac/policy', 'returns/mean', 'returns/var', 'val/mean', 'val/var']) expect(r.metrics[k], k).toBeTypeOf('number');
    });
  });

  it("the step's token log-probs: KL, sequence ratio and log-ratios equal those from each model's logits", async () => {
    // Token t of a row counts when its loss mask is 1; its log-prob comes from position t - 1.
    const tokenLogps = (logits: Float32Array): Float64Array => {
      const V = config.vocab_size, T = batch.seqLen;
      const out = new Float64Array(batch.rows * T);
      for (let r = 0; r < batch.rows; r++)
        for (let t = 1; t < T; t++) {
          if (!batch.lossMask[r * T + t]) continue;
          const base = (r * T + t - 1) * V;
          let max = -Infinity;
          for (let v = 0; v < V; v++) max = Math.max(max, logits[base + v]!);
          let z = 0;
          for (let v = 0; v < V; v++) z += Math.exp(logits[base + v]! - max);
          out[r * T + t] = logits[base + batch.inputIds[r * T + t]!]! - max - Math.log(z);
        }
      return out;
    };
    const policy = await Model.create(config, { seed: 1 });
    const reference = await Model.create(config, { seed: 2 });
    const trainer = new Trainer(policy, reference, { loss: PPO, seed: 5 });
    try {
      const pi = tokenLogps(new Float32Array(await policy.logits(batch)));
      const ref = tokenLogps(new Float32Array(await reference.logits(batch)));
      const T = batch.seqLen;
      let kl = 0, count = 0, seqratio = 0;
      const byKind = [0, 0], kinds = [0, 0];
      for (let r = 0; r < n; r++) {
        let rowRatio = 0, rowLogratio = 0;
        for (let t = 1; t < T; t++) {
          if (!batch.lossMask[r * T + t]) continue;
          kl += ref[r * T + t]! - pi[r * T + t]!;
          rowLogratio += pi[r * T + t]! - ref[r * T + t]!;
          count++;
        }
        rowRatio = Math.exp(rowLogratio);
        seqratio += rowRatio / n;
        const k = batch.desirable![r] ? 0 : 1;
        byKind[k]! += rowLogratio;
        kinds[k]!++;
      }
      const m = (await trainer.evalStep(batch, { nPairs: n })).metrics;
      const close = (got: number | undefined, want: number, what: string) => expect(Math.abs(got! - want), what).toBeLessThan(1e-4 * Math.max(1, Math.abs(want)));
      expect(Math.abs(kl / count)).toBeGreaterThan(1e-3); // the two models differ
      close(m['loss/policykl'], kl / count, 'loss/policykl');
      close(m['loss/seqratio'], seqratio, 'loss/seqratio');
      close(m['logratio/desirable'], byKind[0]! / kinds[0]!, 'logratio/desirable');
      close(m['logratio/undesirable'], byKind[1]! / kinds[1]!, 'logratio/undesirable');
    } finally {
      trainer.dispose();
      policy.dispose();
      reference.dispose();
    }
  });

  it('ppo_epochs=2 adds two passes: twice the policy gradient of one pass', async () => {
    const name = 'model.layers.0.mlp.down_proj.weight';
    const one = await withTrainer(PPO, 7, async (t) => {
      await t.microStep(batch, { nPairs: n });
      return t.gradSnapshot([name]);
    });
    const two = await withTrainer({ ...PPO, ppo_epochs: 2 }, 7, async (t) => {
      await t.microStep(batch, { nPairs: n });
      return t.gradSnapshot([name]);
    });
    let maxAbs = 0, err = 0;
    one.forEach((g, i) => {
      maxAbs = Math.max(maxAbs, Math.abs(g));
      err = Math.max(err, Math.abs(two[i]! - 2 * g));
    });
    expect(maxAbs).toBeGreaterThan(0);
    expect(err).toBeLessThan(1e-6 * maxAbs + 1e-9);
  });

  it('the value head trains, is saved as value_head.safetensors and loaded back', async () => {
    const state = path.join(dir, 'optimizer.pt');
    const trained = await withTrainer(PPO, 11, async (t) => {
      const before = (await t.evalStep(batch, { nPairs: n })).metrics;
      for (let i = 0; i < 3; i++) {
        await t.microStep(batch, { nPairs: n });
        await t.optimizerStep({ lr: 1e-2, maxGradNorm: 10 });
      }
      const after = (await t.evalStep(batch, { nPairs: n })).metrics;
      expect(after['val/mean']).not.toBe(before['val/mean']);
      await t.saveState(state);
      return after;
    });
    expect(existsSync(path.join(dir, 'value_head.safetensors'))).toBe(true);
    // Two trainers with other seeds (other heads) on the initial policy: each reads the same
    // values once the trained head is loaded, and other values before.
    const loaded: Array<Record<string, number>> = [];
    for (const seed of [12, 13]) {
      await withTrainer(PPO, seed, async (t) => {
        const fresh = (await t.evalStep(batch, { nPairs: n })).metrics;
        await t.loadState(state);
        const got = (await t.evalStep(batch, { nPairs: n })).metrics;
        expect(got['val/mean']).not.toBe(fresh['val/mean']);
        loaded.push(got);
      });
    }
    expect(loaded[1]!['val/mean']).toBe(loaded[0]!['val/mean']);
    expect(loaded[1]!['val/var']).toBe(loaded[0]!['val/var']);
    expect(trained['val/mean']).toBeTypeOf('number');
  });

  it('loading a state without its value head is an error naming the file', async () => {
    const other = mkdtempSync(path.join(tmpdir(), 'rpo-ppo-nohead-'));
    try {
      await withTrainer({ name: 'kto-zero', beta: 0.1 }, 1, (t) => t.saveState(path.join(other, 'optimizer.pt')));
      await withTrainer(PPO, 1, async (t) => {
        await expect(t.loadState(path.join(other, 'optimizer.pt'))).rejects.toThrow(/value_head\.safetensors/);
      });
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});
