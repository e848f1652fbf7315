// Losses with a rationale row group (rdpo, rorpo, any paired loss with loss.rationale) run the
// response rows and the rationale rows as two forwards through the policy. The engine backwards
// each forward on its own from leaf copies of their log-probs (native/train/split_backward.h),
// so no set of gradients waits in autograd; RPO_SINGLE_BACKWARD=1 (read at each call) runs the
// one backward over both forwards it replaces, the reference here.
//
// Gradients: from empty .grad, a parameter used once per forward gets its two shares summed by
// one floating-point addition either way (a + b in autograd's buffer, or .grad = a then
// .grad += b), and each share is computed by the same ops on the same values: the gradients are
// bit-identical, and so are the loss and metrics. Where the order of additions does differ
// (tied embeddings: the head's and the embedding's shares of one matrix, four terms; a second
// micro-step adding into existing .grad), the bound is a few float32 roundings.
//
// Memory: the peak of an rdpo micro-step without checkpointing, measured in a fresh process (the
// planner's method, lib/plan/measure.ts), drops by one set of gradients on a shape where the
// parameters dominate, and the planner's estimate of the new step stays within 20%.
import { afterEach, describe, expect, it } from 'vitest';

import { Model, Trainer, type Dtype, type LossConfig, type ModelConfig, type PairLogps, type RowBatch } from '../../lib/native.js';
import { measureInChild, type MeasureRequest } from '../../lib/plan/measure.js';
import { estimateMicroStep, lossRowGroups, parameterCounts, shapeOf } from '../../lib/plan/estimate.js';
import { normRelError, randomBatch, tinyConfig } from './helpers.js';

afterEach(() => {
  delete process.env.RPO_SINGLE_BACKWARD;
});

const N_PAIRS = 3;

function setSingle(single: boolean): void {
  if (single) process.env.RPO_SINGLE_BACKWARD = '1';
  else delete process.env.RPO_SINGLE_BACKWARD;
}

interface RunOptions {
  loss: LossConfig;
  checkpointing: boolean;
  single: boolean;
  config?: ModelConfig;
  dtype?: Dtype;
  /** LoRA on every linear, dropout 0.1; one optimizer step first so B (zero-initialized) moves. */
  lora?: boolean;
  /** Micro-steps measured (2: the second adds into the first's .grad). */
  steps?: number;
}

async function run(o: RunOptions, batches: RowBatch[]) {
  const config = o.config ?? tinyConfig({ num_hidden_layers: 2 });
  const policy = await Model.create(config, { seed: 81, dtype: o.dtype ?? 'float32' });
  const needsRef = o.loss.name === 'rdpo' || o.loss.name === 'dpo';
  const reference = needsRef && !o.lora ? await Model.create(config, { seed: 82, dtype: o.dtype ?? 'float32' }) : null;
  if (o.lora) await policy.addLora({ r: 4, alpha: 8, dropout: 0.1, targetModules: ['all-linear'], seed: 6 });
  const names = o.lora ? policy.adapterParams().map((p) => p.name) : policy.params().map((p) => p.name);
  const trainer = new Trainer(policy, reference, { loss: o.loss, activationCheckpointing: o.checkpointing, seed: 4 });
  try {
    if (o.lora) {
      setSingle(true); // the same warm-up step for both runs
      await trainer.microStep(batches[1]!, { nPairs: N_PAIRS });
      await trainer.optimizerStep({ lr: 0.05 });
    }
    setSingle(o.single);
    const steps = [];
    for (let i = 0; i < (o.steps ?? 1); i++) steps.push(await trainer.microStep(batches[i]!, { nPairs: N_PAIRS, scale: 0.7 }));
    const grads = await trainer.gradSnapshot(names);
    return { steps, grads };
  } finally {
    trainer.dispose();
    policy.dispose();
    reference?.dispose();
  }
}

function mismatches(a: Float64Array, b: Float64Array): { count: number; maxAbs: number } {
  expect(a.length).toBe(b.length);
  let count = 0;
  let maxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) count++;
    maxAbs = Math.max(maxAbs, Math.abs(a[i]! - b[i]!));
  }
  return { count, maxAbs };
}

const vocab = tinyConfig().vocab_size;
const batches = [41, 42].map((seed) => randomBatch(seed, { rows: 3 * N_PAIRS, seqLen: 12, vocab, minLen: 5 }));

/** Split vs single backward on the same model, batch and options. */
async function compare(o: Omit<RunOptions, 'single'>) {
  const split = await run({ ...o, single: false }, batches);
  const single = await run({ ...o, single: true }, batches);
  expect(single.grads.some((g) => g !== 0)).toBe(true);
  // loss and metrics: the same ops on the same values
  for (let i = 0; i < split.steps.length; i++) {
    expect(split.steps[i]!.finite).toBe(true);
    expect(split.steps[i]!.loss).toBe(single.steps[i]!.loss);
    expect(split.steps[i]!.metrics).toEqual(single.steps[i]!.metrics);
  }
  return { split, single, diff: mismatches(split.grads, single.grads), rel: normRelError(split.grads, single.grads) };
}

describe('split backward (rationale forward, then response forward) equals the single backward', () => {
  const losses: Array<[string, LossConfig]> = [
    ['rdpo', { name: 'rdpo', beta: 0.5, gamma: 0.3 }],
    ['rdpo paper form', { name: 'rdpo', beta: 0.5, gamma: 0.3, rationale_form: 'paper' }],
    ['rorpo', { name: 'rorpo', beta: 0.25, gamma: 0.2 }],
    ['simpo + linear rationale', { name: 'simpo', beta: 2, margin: 0.5, gamma: 0.1, rationale: 'linear' }],
  ];
  for (const [label, loss] of losses) {
    for (const checkpointing of [false, true]) {
      it(`${label}, checkpointing ${checkpointing ? 'on' : 'off'}: every gradient bit-identical`, async () => {
        const r = await compare({ loss, checkpointing });
        console.log(`[split] ${label}, checkpointing ${checkpointing}: ${r.diff.count} of ${r.single.grads.length} gradients differ (max ${r.diff.maxAbs})`);
        expect(r.diff.count).toBe(0);
      });
    }
  }

  it('rdpo, bfloat16: every gradient bit-identical', async () => {
    const r = await compare({ loss: { name: 'rdpo', beta: 0.5, gamma: 0.3 }, checkpointing: false, dtype: 'bfloat16' });
    expect(r.diff.count).toBe(0);
  });

  for (const checkpointing of [false, true]) {
    it(`LoRA policy (dropout 0.1, no reference model), rdpo, checkpointing ${checkpointing ? 'on' : 'off'}: adapter gradients bit-identical`, async () => {
      const r = await compare({ loss: { name: 'rdpo', beta: 0.5, gamma: 0.3 }, checkpointing, lora: true });
      // both A and B get gradients (B moved in the warm-up step)
      expect(r.single.grads.filter((g) => g !== 0).length).toBeGreaterThan(r.single.grads.length / 2);
      expect(r.diff.count).toBe(0);
    });
  }

  it('tied embeddings: the head\'s and the embedding\'s shares add in another order, within float32 rounding', async () => {
    const config = tinyConfig({ num_hidden_layers: 2, tie_word_embeddings: true });
    const r = await compare({ loss: { name: 'rdpo', beta: 0.5, gamma: 0.3 }, checkpointing: false, config });
    console.log(`[split] tied: ${r.diff.count} differ, max abs ${r.diff.maxAbs.toExponential(2)}, norm-wise rel ${r.rel.toExponential(2)}`);
    // four terms summed in a different order: a few units of float32 rounding (2^-24 ≈ 6e-8)
    expect(r.rel).toBeLessThan(1e-6);
    // and the two runs did take different paths (RPO_SINGLE_BACKWARD is read at each call), so
    // the bit-identical results above compare two computations, not one
    expect(r.diff.count).toBeGreaterThan(0);
  });

  it('a second micro-step adds into existing .grad in another order, within float32 rounding', async () => {
    const r = await compare({ loss: { name: 'rdpo', beta: 0.5, gamma: 0.3 }, checkpointing: false, steps: 2 });
    console.log(`[split] two micro-steps: ${r.diff.count} differ, max abs ${r.diff.maxAbs.toExponential(2)}, norm-wise rel ${r.rel.toExponential(2)}`);
    expect(r.rel).toBeLessThan(1e-6);
  });

  it('a non-finite loss with no gradients before it still drops the gradients', async () => {
    const config = tinyConfig({ num_hidden_layers: 2 });
    const model = await Model.create(config, { seed: 83 });
    const names = model.params().map((p) => p.name);
    const trainer = new Trainer(model, null, { loss: { name: 'rdpo', beta: 0.1, gamma: 0.1 } });
    const g = () => ({ sum: new Float64Array(N_PAIRS).fill(NaN), mean: new Float64Array(N_PAIRS).fill(NaN), count: new Float64Array(N_PAIRS).fill(1) });
    const reference: PairLogps = { chosen: g(), rejected: g() };
    const r = await trainer.microStep(batches[0]!, { nPairs: N_PAIRS, reference });
    expect(r.finite).toBe(false);
    expect((await trainer.gradSnapshot(names)).every((x) => x === 0)).toBe(true);
    trainer.dispose();
    model.dispose();
  });
});

describe.skipIf(process.platform !== 'linux')('the rdpo micro-step peak drops by one set of gradients (CPU, measured)', () => {
  it('parameters dominating (vocab 8192, hidden 256, 3 rows of 32 tokens), checkpointing off', () => {
    const req: MeasureRequest = {
      model: tinyConfig({ vocab_size: 8192, hidden_size: 256, intermediate_size: 1024, num_hidden_layers: 2, num_attention_heads: 8, num_key_value_heads: 4, head_dim: 32, max_position_embeddings: 1024 }),
      loss: 'rdpo', pairs: 1, seqLen: 32, chunkTokens: 128, activationCheckpointing: false,
    };
    const split = measureInChild(req, { RPO_SINGLE_BACKWARD: '0' }).stepPeakBytes;
    const single = measureInChild(req, { RPO_SINGLE_BACKWARD: '1' }).stepPeakBytes;
    const gradientSet = parameterCounts(shapeOf(req.model)).total * 4;
    const est = estimateMicroStep({
      shape: shapeOf(req.model), pairs: 1, groups: lossRowGroups('rdpo'), seqLen: 32, labelsPerRow: 32 - 8, computeBytes: 4, gradBytes: 4,
      checkpointing: false, chunkTokens: 128, headPath: 'chunked', referenceBytes: null,
    });
    const mb = (b: number) => (b / 1e6).toFixed(1);
    console.log(`[split] peak: single backward ${mb(single)} MB, split ${mb(split)} MB, drop ${mb(single - split)} MB; one gradient set ${mb(gradientSet)} MB; planner ${mb(est.peak.total)} MB (${est.peak.name})`);
    expect((single - split) / gradientSet).toBeGreaterThan(0.85);
    expect((single - split) / gradientSet).toBeLessThan(1.1);
    expect(est.peak.total / split).toBeGreaterThan(0.8);
    expect(est.peak.total / split).toBeLessThan(1.2);
  });
});
