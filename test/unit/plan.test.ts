// The memory planner (lib/plan, `rpo plan`): the estimator's arithmetic on hand-computed cases,
// the per-device budget, and the command's option and config handling. The estimate against the
// engine's measured peaks is test/native/plan_measure.test.ts.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ConfigError } from '../../lib/config/index.js';
import { planFromArgs, splitPlanArgs } from '../../lib/commands/plan.js';
import {
  CUDA_HEADROOM,
  GiB,
  bytesPerParam,
  estimateMicroStep,
  divisorsOf,
  estimatePlan,
  forwardSavedBytes,
  largestFittingMicroBatch,
  layerSavedBytes,
  lossRowGroups,
  microPairs,
  parameterCounts,
  parseMemorySize,
  shapeOf,
  type MicroStepInputs,
  type ModelShape,
  type PlanInputs,
} from '../../lib/plan/estimate.js';
import { KNOWN_MODELS } from '../../lib/plan/models.js';
import { rpo } from '../e2e/cli.js';

// A shape small enough to follow by hand: q = 2 heads × 4 = 8, kv = 1 × 4 = 4.
const small: ModelShape = { vocab: 100, hidden: 8, intermediate: 16, layers: 1, heads: 2, kvHeads: 1, headDim: 4, tied: false, qkvBias: false, oBias: false };
const smallStep = (over: Partial<MicroStepInputs> = {}): MicroStepInputs => ({
  shape: small,
  pairs: 1,
  groups: 2,
  seqLen: 4,
  labelsPerRow: 3,
  computeBytes: 4,
  gradBytes: 4,
  checkpointing: false,
  chunkTokens: 2,
  headPath: 'chunked',
  referenceBytes: null,
  ...over,
});

const mistral = shapeOf(KNOWN_MODELS['mistralai/Mistral-7B-Instruct-v0.2']!);

describe('bytes per parameter', () => {
  it('is the precision table, with one moment for RMSprop', () => {
    expect(bytesPerParam('fp32', 'AdamW')).toEqual({ weights: 4, grads: 4, master: 0, moments: 8 });
    expect(bytesPerParam('bf16-pure', 'AdamW')).toEqual({ weights: 2, grads: 2, master: 0, moments: 4 });
    expect(bytesPerParam('bf16-mixed', 'AdamW')).toEqual({ weights: 2, grads: 2, master: 4, moments: 8 });
    expect(bytesPerParam('bf16-sr', 'AdamW')).toEqual({ weights: 2, grads: 2, master: 0, moments: 4 });
    expect(bytesPerParam('fp32', 'RMSprop').moments).toBe(4);
    expect(bytesPerParam('bf16-pure', 'RMSprop').moments).toBe(2);
    expect(bytesPerParam('bf16-mixed', 'RMSprop').moments).toBe(4);
    expect(bytesPerParam('bf16-sr', 'RMSprop').moments).toBe(2);
  });
});

describe('parameter counts', () => {
  it('match the published totals of the built-in models', () => {
    expect(parameterCounts(mistral).total).toBe(7_241_732_096); // Mistral-7B
    expect(parameterCounts(shapeOf(KNOWN_MODELS['meta-llama/Meta-Llama-3-8B-Instruct']!)).total).toBe(8_030_261_248);
    expect(parameterCounts(shapeOf(KNOWN_MODELS['Qwen/Qwen2.5-0.5B-Instruct']!)).total).toBe(494_032_768); // tied, q/k/v biases
    expect(parameterCounts(shapeOf(KNOWN_MODELS['huggyllama/llama-7b']!)).total).toBe(6_738_415_616);
    expect(parameterCounts(shapeOf(KNOWN_MODELS['huggyllama/llama-30b']!)).total).toBe(32_528_943_616);
    expect(parameterCounts(shapeOf(KNOWN_MODELS['huggyllama/llama-65b']!)).total).toBe(65_285_660_672);
    // GPTNeoX: the Pythia suite's published totals (biases and LayerNorm biases included).
    expect(parameterCounts(shapeOf(KNOWN_MODELS['EleutherAI/pythia-1.4b']!)).total).toBe(1_414_647_808);
    expect(parameterCounts(shapeOf(KNOWN_MODELS['EleutherAI/pythia-2.8b']!)).total).toBe(2_775_208_960);
    expect(parameterCounts(shapeOf(KNOWN_MODELS['EleutherAI/pythia-6.9b']!)).total).toBe(6_857_302_016);
    expect(parameterCounts(shapeOf(KNOWN_MODELS['EleutherAI/pythia-12b']!)).total).toBe(11_846_072_320);
  });

  it('count every tensor of the small shape', () => {
    // q 8·8, k 8·4, v 8·4, o 8·8 = 192; MLP 3·8·16 = 384; two norms 16 → 592 per layer
    expect(parameterCounts(small)).toEqual({ total: 800 + 800 + 8 + 592, embedding: 800, lmHead: 800, perLayer: 592, finalNorm: 8, largest: 800 });
    expect(parameterCounts({ ...small, tied: true, qkvBias: true }).total).toBe(800 + 8 + 592 + 16);
  });
});

describe('activations (hand-computed, small shape, 2 rows × 4 tokens, 3 labels a row, fp32)', () => {
  const f = { rows: 2, seqLen: 4, labels: 6, masked: false, plain: false };
  it('one layer saves norms, attention at q / kv width, the MLP (lean functions, and plain autograd)', () => {
    // N = 8. lean: norms 2·8·8·(2·4) + 2·4·8 = 1088; attention 2·8·8·4 + 2·8·4·4 + lse 2·2·4·4 = 832;
    // MLP gate and up 2·8·16·4 = 1024
    expect(layerSavedBytes(small, f, 4)).toBe(1088 + 832 + 1024);
    // plain: norms 2·(8·8·(4+8)) + 64 = 1600; MLP 4·8·16·4 = 2048
    expect(layerSavedBytes(small, { ...f, plain: true }, 4)).toBe(1600 + 832 + 2048);
    // with a mask: K, V repeated (4·8·8·4 = 1024) + lse 64 + float mask 2·4·4·4 = 128
    expect(layerSavedBytes(small, { ...f, masked: true }, 4)).toBe(1088 + 1024 + 64 + 128 + 1024);
  });

  it('a forward adds rotary tables, the batch buffer, the final norm, the head inputs', () => {
    // other: cos/sin 2·8·4·4 = 256 + int64 buffer (3·8 + 3·6 + 2)·8 = 352; final norm 8·8·4 + 4·8 = 288;
    // head 6·(8·4 + 4) = 216
    expect(forwardSavedBytes(small, f, 4, false)).toEqual({ layers: 2944, other: 608, finalNorm: 288, head: 216, total: 4056 });
    expect(forwardSavedBytes(small, { ...f, plain: true }, 4, false).finalNorm).toBe(8 * 8 * 8 + 32);
    expect(forwardSavedBytes(small, f, 4, true).layers).toBe(8 * 8 * 4); // each layer's input only
  });

  it('dpo: the peak is the head backward (weight-gradient accumulator + one chunk)', () => {
    const e = estimateMicroStep(smallStep());
    // head backward: 100·8·4 = 3200 + grad_h 6·8·4 = 192 + chunk 2·100·4 + 2·8·4 = 864 → 4256
    expect(e.peak).toMatchObject({ name: 'backward, forward: log-prob head', saved: 4056, head: 4256, total: 8312 });
    // forward head: hidden 8·8·4 + 6·8 + chunk 2·100·4 = 1104; top layer: 4056 − 216 − 288 + the
    // incoming gradient 8·8·4 + the lean MLP's backward 3·8·16·4 + down's weight gradient 8·16·4
    expect(e.phases.map((p) => [p.name, p.total])).toEqual([
      ['forward: log-prob head', 4056 + 1104],
      ['backward, forward: log-prob head', 8312],
      ['backward, forward: top layer', 3552 + 256 + 1536 + 512],
    ]);
  });

  it('dpo with checkpointing: the peak is the top layer recomputed', () => {
    const e = estimateMicroStep(smallStep({ checkpointing: true }));
    expect(e.savedTotal).toBe(256 + 608 + 288 + 216);
    // 1368 − 504 + its recomputed layer 2944 + backward 256 + 2048
    expect(e.peak).toMatchObject({ name: 'backward, forward: top layer', total: 864 + 2944 + 2304 });
    // the forward's no-grad layer: max(MLP 3·8·8·4 + 3·8·16·4, attention ...) = 2304
    expect(e.phases[0]).toMatchObject({ name: 'forward: a checkpointed layer', total: 864 + 2304 });
  });

  it('rdpo: each forward backwards on its own, the rationale forward first; no gradients wait', () => {
    const e = estimateMicroStep(smallStep({ groups: 3 }));
    expect(e.forwards.map((f) => f.rows)).toEqual([2, 1]);
    // the rationale forward (4 tokens, 3 labels) saves 1472 + 304 + 144 + 108 = 2028
    expect(e.savedTotal).toBe(4056 + 2028);
    // both forwards' saved + the rationale head's backward: 3200 + grad_h 3·8·4 = 96 + chunk 864
    expect(e.peak).toMatchObject({ name: 'backward, rationale forward: log-prob head', saved: 6084, gradientCopy: 0, head: 4160, total: 10_244 });
    // then the response forward alone: its saved + its head's backward, nothing waiting
    expect(e.phases.find((p) => p.name === 'backward, response forward: log-prob head')).toMatchObject({ saved: 4056, gradientCopy: 0, total: 8312 });
    expect(e.phases.at(-1)).toMatchObject({ name: 'backward, response forward: top layer', gradientCopy: 0, total: 3552 + 256 + 1536 + 512 });
    const ck = estimateMicroStep(smallStep({ groups: 3, checkpointing: true }));
    expect(ck.phases.every((p) => p.gradientCopy === 0)).toBe(true);
    // tied embeddings: the head's weight gradient waits for the embedding's in each forward
    const tied = estimateMicroStep(smallStep({ groups: 3, shape: { ...small, tied: true } }));
    expect(tied.phases.at(-1)).toMatchObject({ name: 'backward, response forward: top layer', gradientCopy: 800 * 4 });
  });

  it('plain autograd keeps more and frees the MLP product in backward', () => {
    const e = estimateMicroStep(smallStep({ plain: true }));
    expect(e.savedTotal).toBe(4480 + 608 + 544 + 216);
    expect(e.phases.at(-1)).toMatchObject({ name: 'backward, forward: top layer', total: 5848 - 216 - 544 + 256 + 2 * 8 * 16 * 4 });
  });

  it('tied embeddings: the head\'s weight gradient waits for the embedding\'s', () => {
    const e = estimateMicroStep(smallStep({ shape: { ...small, tied: true } }));
    expect(e.phases.find((p) => p.name === 'backward, forward: top layer')!.gradientCopy).toBe(800 * 4);
  });

  it('a live reference runs alone, before the policy', () => {
    const e = estimateMicroStep(smallStep({ referenceBytes: 2 }));
    expect(e.phases[0]!.name).toBe('reference forward (before the policy)');
    expect(e.phases[0]!.saved).toBe(0);
  });

  it('bf16 halves the layer activations; plain autograd\'s norms keep fp32 copies', () => {
    // lean: norms 2·8·8·4 + 64 = 576; attention 2·8·8·2 + 2·8·4·2 + 64 = 448; MLP 2·8·16·2 = 512
    expect(layerSavedBytes(small, f, 2)).toBe(576 + 448 + 512);
    // plain: norms 2·8·8·(4 + 4) + 64 = 1088; MLP 1024
    expect(layerSavedBytes(small, { ...f, plain: true }, 2)).toBe(1088 + 448 + 1024);
  });

  it('grows linearly in rows and quadratically in nothing (no mask)', () => {
    const a = estimateMicroStep(smallStep({ shape: mistral, pairs: 1, seqLen: 1024, chunkTokens: 1024, computeBytes: 2, gradBytes: 2, headPath: 'cuda-kernel' }));
    const b = estimateMicroStep(smallStep({ shape: mistral, pairs: 2, seqLen: 1024, chunkTokens: 1024, computeBytes: 2, gradBytes: 2, headPath: 'cuda-kernel' }));
    expect(b.savedTotal / a.savedTotal).toBeCloseTo(2, 2);
  });
});

describe('the per-device budget', () => {
  const base: PlanInputs = {
    shape: mistral,
    precision: 'bf16-mixed',
    optimizer: 'AdamW',
    batchSize: 32,
    gradientAccumulationSteps: 1,
    worldSize: 8,
    zeroStage: 1,
    groups: 3,
    seqLen: 2048,
    checkpointing: true,
    chunkTokens: 1024,
    headPath: 'cuda-kernel',
    referenceBytes: 2,
    headroom: CUDA_HEADROOM,
    deviceBytes: 80 * GiB,
  };
  const P = 7_241_732_096;

  it('shards master weights and optimizer state over ranks (ZeRO-1), gradients too with ZeRO-2', () => {
    const p = estimatePlan(base);
    expect(p.microPairs).toBe(4);
    expect([p.weights, p.gradients, p.master, p.optimizerState, p.reference]).toEqual([2 * P, 2 * P, (4 * P) / 8, (8 * P) / 8, 2 * P]);
    expect(p.persistent).toBe(54_312_990_720);
    expect(p.total).toBe(p.persistent + p.step.peak.total);
    expect(p.headroomBytes).toBeCloseTo(GiB + 0.1 * p.total + 0.5 * GiB, 0);
    expect(p.required).toBe(p.total + p.headroomBytes);
    expect(p.fits).toBe(p.required <= 80 * GiB);
    const z2 = estimatePlan({ ...base, zeroStage: 2 });
    expect(z2.gradients).toBe((2 * P) / 8);
    expect(z2.persistent).toBe(54_312_990_720 - 2 * P + (2 * P) / 8);
  });

  it('one device: no sharding, no communication buffers; precomputed reference: no reference model', () => {
    const p = estimatePlan({ ...base, worldSize: 1, precision: 'fp32', referenceBytes: null, gradientAccumulationSteps: 32 });
    expect([p.weights, p.gradients, p.master, p.optimizerState, p.reference]).toEqual([4 * P, 4 * P, 0, 8 * P, 0]);
    expect(p.headroomBytes).toBeCloseTo(GiB + 0.1 * p.total, 0);
    expect(p.microPairs).toBe(1);
  });

  it('a token budget plans the micro-step as that many tokens in full rows (a longer pair: its own rows)', () => {
    // rdpo at 2048 tokens a row: a pair is 3 × 2048 = 6144 tokens. A budget of 4 pairs' tokens
    // plans as batch_size 32 over 8 devices × 1 step does (4 pairs a micro-step), activations and all.
    const byPairs = estimatePlan(base);
    const budget = estimatePlan({ ...base, gradientAccumulationSteps: 7, tokensPerMicroBatch: 4 * 6144 });
    expect(budget.microPairs).toBe(4);
    expect(budget.step.peak.total).toBe(byPairs.step.peak.total);
    expect(budget.required).toBe(byPairs.required);
    // Half a pair's tokens: a pair longer than the budget trains alone, so one pair is planned.
    expect(estimatePlan({ ...base, tokensPerMicroBatch: 3072 }).microPairs).toBe(1);
    // 1.5 pairs' tokens: rows × tokens, hence the activations, 1.5 times one pair's (the linear terms).
    const one = estimatePlan({ ...base, tokensPerMicroBatch: 6144 });
    const oneAndHalf = estimatePlan({ ...base, tokensPerMicroBatch: 9216 });
    expect(oneAndHalf.microPairs).toBe(1.5);
    expect(oneAndHalf.step.savedTotal).toBeGreaterThan(one.step.savedTotal);
    expect(oneAndHalf.step.savedTotal).toBeLessThan(2 * one.step.savedTotal);
    // The budget replaces gradient_accumulation_steps: a batch that does not split by it is fine.
    expect(() => estimatePlan({ ...base, batchSize: 30, gradientAccumulationSteps: 4, tokensPerMicroBatch: 8192 })).not.toThrow();
    // The largest micro-batch that fits is still counted in pairs (a gradient_accumulation_steps).
    expect(largestFittingMicroBatch({ ...base, precision: 'bf16-pure', worldSize: 1, tokensPerMicroBatch: 6144 })).toEqual(largestFittingMicroBatch({ ...base, precision: 'bf16-pure', worldSize: 1 }));
  });

  it('the largest fitting micro-batch fits, and the next larger one does not', () => {
    const x = { ...base, precision: 'bf16-pure' as const, worldSize: 1 };
    const fit = largestFittingMicroBatch(x)!;
    expect(fit).not.toBeNull();
    expect(estimatePlan({ ...x, gradientAccumulationSteps: fit.gradientAccumulationSteps }).fits).toBe(true);
    const larger = [1, 2, 4, 8, 16, 32].filter((g) => g < fit.gradientAccumulationSteps);
    for (const g of larger) expect(estimatePlan({ ...x, gradientAccumulationSteps: g }).fits).toBe(false);
    // fp32 + AdamW + a live reference is 16 + 2 bytes a parameter before any activation
    expect(largestFittingMicroBatch({ ...base, precision: 'fp32', worldSize: 1 })).toBeNull();
  });

  it('the largest fitting micro-batch is the first fitting accumulation count a linear search finds', () => {
    // The independent computation: every count from 1 up, as the planner once searched.
    const linear = (x: PlanInputs) => {
      const perRank = x.batchSize / x.worldSize;
      for (let gas = 1; gas <= perRank; gas++) {
        if (perRank % gas !== 0) continue;
        if (estimatePlan({ ...x, gradientAccumulationSteps: gas }).fits) return gas;
      }
      return null;
    };
    for (const batchSize of [1, 7, 36, 96, 360, 1024]) {
      for (const precision of ['bf16-pure', 'bf16-mixed', 'fp32'] as const) {
        const x = { ...base, batchSize, precision, worldSize: 1, deviceBytes: 160 * GiB };
        expect(largestFittingMicroBatch(x)?.gradientAccumulationSteps ?? null).toBe(linear(x));
      }
    }
    expect(divisorsOf(360)).toEqual([1, 2, 3, 4, 5, 6, 8, 9, 10, 12, 15, 18, 20, 24, 30, 36, 40, 45, 60, 72, 90, 120, 180, 360]);
    expect(divisorsOf(49)).toEqual([1, 7, 49]);
  });

  it('a hostile batch size (1e12 pairs, 1e8 tokens) is planned in seconds, not one plan per accumulation count', () => {
    // A child with a deadline: the old search looped 1e12 times in this process's thread.
    const r = rpo(['plan', 'model=llama7b', 'loss=dpo', 'model.batch_size=1000000000000', 'model.max_length=100000000'], { timeoutMs: 30_000 });
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/no micro-batch fits, not even 1 pair per device/);
    const t0 = performance.now();
    expect(largestFittingMicroBatch({ ...base, batchSize: 999_999_999_989, worldSize: 1, deviceBytes: 1e15 })).not.toBeNull();
    expect(performance.now() - t0).toBeLessThan(5_000);
  }, 60_000);

  it('refuses a batch that does not split into whole pairs', () => {
    expect(microPairs(32, 1, 8)).toBe(4);
    expect(() => microPairs(32, 3, 1)).toThrow(/does not split/);
    expect(() => microPairs(32, 4, 16)).toThrow(/does not split/);
  });

  it('row groups per loss', () => {
    expect((['sft', 'dpo', 'orpo', 'rdpo', 'rorpo-simple'] as const).map((name) => lossRowGroups(name))).toEqual([1, 2, 2, 3, 3]);
  });
});

describe('memory sizes', () => {
  it('reads GB as 10^9 and GiB (or no unit) as 2^30', () => {
    expect(parseMemorySize('80GB')).toBe(80e9);
    expect(parseMemorySize('80GiB')).toBe(80 * GiB);
    expect(parseMemorySize('80')).toBe(80 * GiB);
    expect(parseMemorySize('141G')).toBe(141 * GiB);
    expect(parseMemorySize('512MiB')).toBe(512 * 2 ** 20);
    expect(parseMemorySize('1.5TB')).toBe(1.5e12);
    expect(() => parseMemorySize('lots')).toThrow(/not a memory size/);
    expect(() => parseMemorySize('0GB')).toThrow(/positive/);
  });
});

describe('rpo plan: options and config', () => {
  let tmp: string;
  const saved = process.env.HF_HUB_CACHE;
  beforeAll(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'rpo-plan-'));
    process.env.HF_HUB_CACHE = path.join(tmp, 'hub'); // empty: the built-in shapes answer
  });
  afterAll(() => {
    if (saved === undefined) delete process.env.HF_HUB_CACHE;
    else process.env.HF_HUB_CACHE = saved;
    rmSync(tmp, { recursive: true, force: true });
  });

  it('splits its own options from the Hydra overrides', () => {
    const { options, hydra } = splitPlanArgs([
      'loss=rdpo', '--precision', 'bf16-sr', '--world-size=8', '--device-memory', '141GiB', '--json', 'model=mistral7bv2', '--activation-checkpointing=false', '++loss.gamma=0.001',
    ]);
    expect(hydra).toEqual(['loss=rdpo', 'model=mistral7bv2', '++loss.gamma=0.001']);
    expect(options).toEqual({ precisions: ['bf16-sr'], worldSizes: [8], deviceBytes: 141 * GiB, activationCheckpointing: false, zeroStage: 1, json: true, table: false });
    expect(splitPlanArgs(['--activation-checkpointing']).options.activationCheckpointing).toBe(true);
    expect(splitPlanArgs(['--no-activation-checkpointing']).options.activationCheckpointing).toBe(false);
    expect(splitPlanArgs([]).options).toMatchObject({ precisions: null, worldSizes: [1], deviceBytes: 80 * GiB, activationCheckpointing: null });
    expect(splitPlanArgs(['--table']).options).toMatchObject({ precisions: ['fp32', 'bf16-pure', 'bf16-mixed', 'bf16-sr'], worldSizes: [1, 2, 8] });
  });

  it('refuses bad option values as usage errors', () => {
    expect(() => splitPlanArgs(['--precision', 'fp16'])).toThrow(ConfigError);
    expect(() => splitPlanArgs(['--world-size', '0'])).toThrow(ConfigError);
    expect(() => splitPlanArgs(['--world-size', '1,2'])).toThrow(/only with --table/);
    expect(() => splitPlanArgs(['--device-memory', 'big'])).toThrow(ConfigError);
    expect(() => splitPlanArgs(['--zero', '4'])).toThrow(ConfigError);
    expect(() => splitPlanArgs(['--zero', '1.5'])).toThrow(/--zero: expected one of 0, 1, 2, 3/);
    expect(() => splitPlanArgs(['--precision'])).toThrow(/needs a value/);
  });

  it('plans the seed\'s RDPO on Mistral-7B from the built-in shape, without a dataset or run name', () => {
    const out = planFromArgs(['loss=rdpo', 'model=mistral7bv2', '--world-size', '8', '--precision', 'bf16-mixed']);
    if ('cfg' in out) throw new Error('unexpected --cfg');
    const j = out.json as Record<string, any>;
    expect(j.model.source).toMatch(/Mistral-7B-Instruct-v0\.2 \(built-in shape/);
    expect(j.model.parameters.total).toBe(7_241_732_096);
    expect(j.bytes.persistent).toBe(54_312_990_720);
    expect(j).toMatchObject({ precision: 'bf16-mixed', worldSize: 8, microPairs: 4, groups: 3, seqLen: 2048, activationCheckpointing: true, headPath: 'cuda-kernel' });
    expect(out.text).toMatch(/weights \(bf16, 2 B\/param\) +13\.49/);
    expect(out.text).not.toMatch(/gradients waiting in autograd/); // each forward backwarded on its own
  });

  it('model.tokens_per_micro_batch: the plan says the budget and plans its tokens', () => {
    const out = planFromArgs(['loss=rdpo', 'model=mistral7bv2', '--world-size', '8', '--precision', 'bf16-mixed', 'model.tokens_per_micro_batch=12288', 'model.batch_size=30']);
    if ('cfg' in out) throw new Error('unexpected --cfg');
    const j = out.json as Record<string, any>;
    // 12288 tokens = 2 pairs of three 2048-token rows.
    expect(j).toMatchObject({ tokensPerMicroBatch: 12288, microPairs: 2, batchSize: 30 });
    expect(out.text).toMatch(/30 pairs per optimizer step over 8 devices, in micro-batches of ≤ 12288 real tokens \(model\.tokens_per_micro_batch; a longer pair alone\): a micro-step planned as 12288 tokens in full rows, 4 response rows \+ 2 rationale rows/);
  });

  it('auto precision: bf16-mixed on CUDA, fp32 with device=cpu; a precomputed reference is no model', () => {
    const cuda = planFromArgs(['loss=dpo', 'model=mistral7bv2']) as { json: Record<string, any> };
    expect(cuda.json).toMatchObject({ precision: 'bf16-mixed', precisionSource: 'auto: bf16-mixed on CUDA', device: 'cuda' });
    expect(cuda.json.bytes.reference).toBe(2 * 7_241_732_096);
    const cpu = planFromArgs(['loss=dpo', 'model=mistral7bv2', 'device=cpu', 'precompute_reference=true']) as { json: Record<string, any> };
    expect(cpu.json).toMatchObject({ precision: 'fp32', device: 'cpu', headPath: 'chunked' });
    expect(cpu.json.bytes.reference).toBe(0);
    expect(cpu.json.headroom.context).toBe(0);
  });

  it('takes the precision from the config\'s precision key; --precision wins', () => {
    const fromKey = planFromArgs(['loss=rdpo', 'model=mistral7bv2', '++precision=bf16-sr']) as { json: Record<string, any> };
    expect(fromKey.json).toMatchObject({ precision: 'bf16-sr', precisionSource: "the config's precision key" });
    expect(fromKey.json.bytes.master).toBe(0);
    const flag = planFromArgs(['loss=rdpo', 'model=mistral7bv2', '++precision=bf16-sr', '--precision', 'fp32']) as { json: Record<string, any> };
    expect(flag.json).toMatchObject({ precision: 'fp32', precisionSource: '--precision' });
  });

  it('reads the shape from a local model directory\'s config.json', () => {
    const dir = path.join(tmp, 'model');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    writeFileSync(
      path.join(dir, 'config.json'),
      JSON.stringify({ architectures: ['LlamaForCausalLM'], vocab_size: 512, hidden_size: 64, intermediate_size: 176, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2 }),
    );
    const out = planFromArgs(['loss=sft', 'model=tiny', `model.name_or_path=${dir}`, '--json']) as { json: Record<string, any> };
    expect(out.json.model.source).toBe(path.join(dir, 'config.json'));
    // 512·64·2 + 64 + 2·(64·64·2 + 64·32·2 + 3·64·176 + 128)
    expect(out.json.model.parameters.total).toBe(65_536 + 64 + 2 * (8192 + 4096 + 33_792 + 128));
    expect(out.json.activationCheckpointing).toBe(false); // tiny.yaml
  });

  it('model=tiny without its directory: the shape `rpo init` writes', () => {
    const out = planFromArgs(['loss=sft', 'model=tiny', `model.name_or_path=${path.join(tmp, 'absent')}`]) as { json: Record<string, any> };
    expect(out.json.model.shape).toMatchObject({ vocab: 512, hidden: 64, layers: 2 });
  });

  it('an unknown model, or a batch that does not split, is a usage error', () => {
    expect(() => planFromArgs(['loss=dpo', 'model=mistral7bv2', 'model.name_or_path=someone/unknown-model'])).toThrow(/no shape for model/);
    expect(() => planFromArgs(['loss=dpo', 'model=mistral7bv2', 'model.name_or_path=someone/unknown-model'])).toThrow(ConfigError);
    expect(() => planFromArgs(['loss=dpo', 'model=mistral7bv2', '--world-size', '3'])).toThrow(ConfigError);
  });

  it('--table: every precision × world size × checkpointing setting', () => {
    const out = planFromArgs(['loss=rdpo', 'model=mistral7bv2', '--table']) as { text: string; json: unknown[] };
    expect(out.json).toHaveLength(4 * 3 * 2);
    const rows = out.text.split('\n').filter((l) => /^\| (fp32|bf16)/.test(l));
    expect(rows).toHaveLength(24);
    expect(rows[0]).toMatch(/^\| fp32 \| 1 \| off \| /);
  });
});
