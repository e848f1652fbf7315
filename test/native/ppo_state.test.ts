// loss=ppo's batch-level state in the trainer: ppoPrepare whitens the advantages over every
// micro-batch of an optimizer step together (the seed whitened over its batch), checked against
// GAE and whitening computed here by hand; and the value head's optimizer state file
// (value_head_optimizer.pt beside optimizer.pt): its errors name the file, the parameter and the
// tensor, and a checkpoint without it loads with a warning.
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Model, Trainer, type LossConfig, type ModelConfig, type RowBatch } from '../../lib/native.js';
import { randomBatch, tinyConfig } from './helpers.js';

const PPO: LossConfig = { name: 'ppo', ppo_epochs: 1, cliprange: 0.5, lam: 0.95, gamma: 0.99, critic_coef: 0.01, KL_coef: 0.1 };
const config = tinyConfig();
const b1: RowBatch = { ...randomBatch(81, { rows: 3, seqLen: 12, vocab: config.vocab_size, minLen: 5, promptLen: 3 }), desirable: Uint8Array.from([1, 0, 1]) };
const b2: RowBatch = { ...randomBatch(82, { rows: 3, seqLen: 10, vocab: config.vocab_size, minLen: 4, promptLen: 2 }), desirable: Uint8Array.from([0, 0, 1]) };

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'rpo-ppo-state-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function withTrainer<T>(cfg: ModelConfig, options: { seed: number; optimizer?: 'AdamW' | 'RMSprop' }, fn: (t: Trainer) => Promise<T>): Promise<T> {
  const policy = await Model.create(cfg, { seed: 1 });
  const reference = await Model.create(cfg, { seed: 1 });
  const trainer = new Trainer(policy, reference, { loss: PPO, ...options });
  try {
    return await fn(trainer);
  } finally {
    trainer.dispose();
    policy.dispose();
    reference.dispose();
  }
}

/**
 * A value_head.safetensors for hidden size h: weights zero, the last bias `bias` (the head then
 * says `bias` everywhere). `spaced`: the header as Python's json.dumps writes it (", " and ": ").
 */
function zeroHead(into: string, h: number, opts: { bias?: number; spaced?: boolean; dtype?: string } = {}): void {
  const shapes: Array<[string, number[]]> = [
    ['summary.0.weight', [h, h]], ['summary.0.bias', [h]], ['summary.3.weight', [h, h]], ['summary.3.bias', [h]], ['summary.6.weight', [1, h]], ['summary.6.bias', [1]],
  ];
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of shapes) {
    const bytes = 4 * shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype: name === 'summary.6.bias' ? (opts.dtype ?? 'F32') : 'F32', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  if (opts.spaced) json = json.replace(/([:,])/g, '$1 '); // no name or value here holds ':' or ','
  while (json.length % 8 !== 0) json += ' ';
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const data = Buffer.alloc(offset);
  data.writeFloatLE(opts.bias ?? 0, offset - 4); // summary.6.bias is the last tensor
  writeFileSync(path.join(into, 'value_head.safetensors'), Buffer.concat([len, Buffer.from(json), data]));
}

/**
 * The seed's compute_advantages with every value 0: delta_t = r_t, so A_t = (γλ)^(last − t)·score
 * on a row's label columns up to its last one (the reward's), 0 elsewhere. Column t is label
 * token t + 1. Returns per micro-batch the [rows][T-1] advantages and masks.
 */
function rawAdvantages(b: RowBatch): { adv: number[][]; mask: number[][] } {
  const T = b.seqLen, gl = PPO.gamma! * PPO.lam!;
  const adv: number[][] = [], mask: number[][] = [];
  for (let r = 0; r < b.rows; r++) {
    const m = Array.from({ length: T - 1 }, (_, t) => b.lossMask[r * T + t + 1]!);
    const last = m.lastIndexOf(1);
    const score = b.desirable![r] ? 1 : -1;
    adv.push(m.map((x, t) => (x && t <= last ? gl ** (last - t) * score : 0)));
    mask.push(m);
  }
  return { adv, mask };
}

describe('ppoPrepare: advantages whitened over the whole batch', () => {
  it('each micro-step sees the statistics of all the prepared micro-batches (values 0, policy = reference)', async () => {
    zeroHead(dir, config.hidden_size);
    const parts = [b1, b2].map(rawAdvantages);
    // The seed's masked_mean / masked_var (biased) over both micro-batches' response tokens.
    let n = 0, sum = 0;
    for (const p of parts) p.adv.forEach((row, r) => row.forEach((a, t) => { n += p.mask[r]![t]!; sum += a * p.mask[r]![t]!; }));
    const mean = sum / n;
    let sq = 0;
    for (const p of parts) p.adv.forEach((row, r) => row.forEach((a, t) => { sq += (a - mean) ** 2 * p.mask[r]![t]!; }));
    const std = Math.sqrt(sq / n + 1e-8);
    // At ratio 1 the clipped and unclipped terms agree: loss/policy = −(mean of Â over the micro-batch).
    const expected = parts.map((p) => {
      let s = 0, c = 0, raw = 0;
      p.adv.forEach((row, r) => row.forEach((a, t) => { const m = p.mask[r]![t]!; s += ((a - mean) / std) * m; raw += a * m; c += m; }));
      return { policy: -s / c, returnsMean: raw / c, tokens: c };
    });
    // Not zero: the micro-batches' own means differ from the batch's.
    expect(Math.abs(expected[0]!.policy)).toBeGreaterThan(0.05);

    await withTrainer(config, { seed: 5 }, async (t) => {
      await t.loadValueHead(dir);
      await t.ppoPrepare([b1, b2]);
      const r1 = await t.microStep(b1, { nPairs: 3, scale: 0.5 });
      const r2 = await t.microStep(b2, { nPairs: 3, scale: 0.5 });
      for (const [r, e] of [[r1, expected[0]!], [r2, expected[1]!]] as const) {
        expect(r.metrics['val/mean']).toBe(0);
        expect(Math.abs(r.metrics['returns/mean']! - e.returnsMean)).toBeLessThan(1e-6);
        expect(Math.abs(r.metrics['loss/policy']! - e.policy)).toBeLessThan(1e-5);
      }
      // Over the batch's tokens the whitened advantages have mean 0.
      expect(Math.abs(r1.metrics['loss/policy']! * expected[0]!.tokens + r2.metrics['loss/policy']! * expected[1]!.tokens)).toBeLessThan(1e-4);
      await t.optimizerStep({ lr: 0, maxGradNorm: 1 });

      // A micro-step that was not prepared whitens over itself: mean 0 within it.
      const alone = await t.microStep(b1, { nPairs: 3 });
      expect(Math.abs(alone.metrics['loss/policy']!)).toBeLessThan(1e-5);
      await t.optimizerStep({ lr: 0, maxGradNorm: 1 });

      // Micro-steps must come in the prepared order.
      await t.ppoPrepare([b1, b2]);
      await expect(t.microStep(b2, { nPairs: 3 })).rejects.toThrow(/not the next one ppoPrepare took \(2 prepared micro-batches wait/);
    });
  });

  it('ppoPrepare of one micro-batch is the unprepared micro-step, bit for bit', async () => {
    const run = (prepare: boolean) =>
      withTrainer(config, { seed: 9 }, async (t) => {
        if (prepare) await t.ppoPrepare([b1]);
        return (await t.microStep(b1, { nPairs: 3 })).metrics;
      });
    expect(await run(true)).toEqual(await run(false));
  });
});

describe('value_head.safetensors', () => {
  it('is read by its JSON, whatever the spacing: a head saying 0.25 says 0.25 (D8)', async () => {
    const d = mkdtempSync(path.join(dir, 'spaced-'));
    zeroHead(d, config.hidden_size, { bias: 0.25, spaced: true });
    await withTrainer(config, { seed: 5 }, async (t) => {
      await t.loadValueHead(d);
      const r = await t.evalStep(b1, { nPairs: 3 });
      expect(r.metrics['val/mean']).toBeCloseTo(0.25, 6);
    });
  });

  it('a tensor of another dtype is refused naming the file, the tensor and its dtype', async () => {
    const d = mkdtempSync(path.join(dir, 'f16-'));
    zeroHead(d, config.hidden_size, { spaced: true, dtype: 'F16' });
    await withTrainer(config, { seed: 5 }, async (t) => {
      await expect(t.loadValueHead(d)).rejects.toThrow(/value_head\.safetensors: .*summary\.6\.bias.* F16/);
    });
  });
});

describe('value_head_optimizer.pt', () => {
  async function trainedState(into: string, cfg: ModelConfig, optimizer: 'AdamW' | 'RMSprop'): Promise<void> {
    await withTrainer(cfg, { seed: 3, optimizer }, async (t) => {
      for (let i = 0; i < 2; i++) {
        await t.microStep(b1, { nPairs: 3 });
        await t.optimizerStep({ lr: 1e-2, maxGradNorm: 10 });
      }
      await t.saveState(path.join(into, 'optimizer.pt'));
    });
  }

  it('is written beside optimizer.pt and read back without warnings', async () => {
    const d = mkdtempSync(path.join(dir, 'ok-'));
    await trainedState(d, config, 'AdamW');
    expect(existsSync(path.join(d, 'value_head_optimizer.pt'))).toBe(true);
    expect(readdirSync(d).filter((f) => f.includes('.tmp-'))).toEqual([]);
    await withTrainer(config, { seed: 4 }, async (t) => {
      expect(await t.loadState(path.join(d, 'optimizer.pt'))).toEqual([]);
    });
  });

  it('resume reads a value_head.safetensors written with JSON spacing (D8): a head saying 0.25 says 0.25', async () => {
    const d = mkdtempSync(path.join(dir, 'spaced-resume-'));
    await trainedState(d, config, 'AdamW');
    zeroHead(d, config.hidden_size, { bias: 0.25, spaced: true });
    await withTrainer(config, { seed: 4 }, async (t) => {
      expect(await t.loadState(path.join(d, 'optimizer.pt'))).toEqual([]);
      expect((await t.evalStep(b1, { nPairs: 3 })).metrics['val/mean']).toBeCloseTo(0.25, 6);
    });
  });

  it("another model's state is refused naming the file, the parameter, the tensor and both shapes", async () => {
    const d = mkdtempSync(path.join(dir, 'shape-'));
    await trainedState(d, config, 'AdamW');
    const small = tinyConfig({ hidden_size: 16, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 8 });
    await withTrainer(small, { seed: 4 }, async (t) => {
      await expect(t.loadState(path.join(d, 'optimizer.pt'))).rejects.toThrow(
        /value_head_optimizer\.pt: value head parameter "summary\.0\.weight" \(1 of 6\): exp_avg: expected shape \[16, 16\] but found \[32, 32\]/,
      );
    });
  });

  it("an AdamW state is refused by an RMSprop trainer, naming both", async () => {
    const d = mkdtempSync(path.join(dir, 'kind-'));
    await trainedState(d, config, 'AdamW');
    await withTrainer(config, { seed: 4, optimizer: 'RMSprop' }, async (t) => {
      await expect(t.loadState(path.join(d, 'optimizer.pt'))).rejects.toThrow(/value_head_optimizer\.pt: the value head's optimizer state is AdamW's, this trainer uses RMSprop/);
    });
  });

  it('an older checkpoint without it loads with a warning naming the file (fresh moments)', async () => {
    const d = mkdtempSync(path.join(dir, 'old-'));
    await trainedState(d, config, 'RMSprop');
    rmSync(path.join(d, 'value_head_optimizer.pt'));
    await withTrainer(config, { seed: 4, optimizer: 'RMSprop' }, async (t) => {
      const warnings = await t.loadState(path.join(d, 'optimizer.pt'));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(path.join(d, 'value_head_optimizer.pt'));
      expect(warnings[0]).toMatch(/is missing .* RMSprop state restarts from zero/);
    });
  });

  it('a file that is not one is refused naming it', async () => {
    const d = mkdtempSync(path.join(dir, 'junk-'));
    await trainedState(d, config, 'AdamW');
    copyFileSync(path.join(d, 'value_head.safetensors'), path.join(d, 'value_head_optimizer.pt'));
    await withTrainer(config, { seed: 4 }, async (t) => {
      await expect(t.loadState(path.join(d, 'optimizer.pt'))).rejects.toThrow(/value_head_optimizer\.pt: not a value head optimizer state/);
    });
  });
});
