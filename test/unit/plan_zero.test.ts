// The planner's ZeRO stages (lib/parallel/zero_stages.ts, lib/plan/zero.ts): per-rank figures
// against hand-computed ones from the published llama-65b shape, the stage rules at world size 1
// and > 1, `rpo plan --zero 3` through the real CLI, and the README's 30B / 65B device table
// against the planner (lib/plan/devices.ts, scripts/plan-devices.mjs).
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { planFromArgs } from '../../lib/commands/plan.js';
import { DEVICE_TABLE_MODELS, DEVICE_TABLE_PRECISIONS, README_BEGIN, README_END, readmeDeviceBlock } from '../../lib/commands/plan_devices.js';
import { CUDA_HEADROOM, GiB, divisorsOf, estimatePlan, largestFittingMicroBatch, shapeOf, type PlanInputs } from '../../lib/plan/estimate.js';
import { fewestDevices } from '../../lib/plan/devices.js';
import { KNOWN_MODELS } from '../../lib/plan/models.js';
import { ZERO_RULES, ZERO_STAGES, parseZeroStage } from '../../lib/parallel/zero_stages.js';
import { REPO, rpo } from '../e2e/cli.js';

// huggyllama/llama-65b's config.json: vocab 32000, hidden 8192, MLP 22016, 80 layers, 64 heads
// (no GQA), untied head, no biases. Counted by hand, tensor by tensor:
const V = 32000;
const h = 8192;
const I = 22016;
const L = 80;
const perLayer = 4 * h * h + 3 * h * I + 2 * h; // q, k, v, o; gate, up, down; two RMSNorms
const embedding = V * h;
const P = 2 * embedding + h + L * perLayer; // embedding, LM head, final norm, layers
const PLAN_65B = ['loss=rdpo', 'model=llama65b', 'model.batch_size=128', '--precision', 'bf16-mixed', '--activation-checkpointing', '--device-memory', '80GiB'];

type Json = { bytes: Record<string, number>; fits: boolean; microPairs: number; zeroStage: number };
const planJson = (args: string[]): Json => {
  const out = planFromArgs([...args, '--json']);
  if ('cfg' in out) throw new Error('unexpected --cfg');
  return out.json as Json;
};

describe('ZeRO stages in the planner', () => {
  it('the parameter count is the hand-counted one', () => {
    expect(P).toBe(65_285_660_672);
    const j = planJson([...PLAN_65B, '--world-size', '32', '--zero', '3']);
    expect((j as unknown as { model: { parameters: { total: number } } }).model.parameters.total).toBe(P);
  });

  it('llama65b, bf16-mixed, 32 ranks, ZeRO-3: every per-rank figure is the hand-computed one, and it fits', () => {
    const j = planJson([...PLAN_65B, '--world-size', '32', '--zero', '3']);
    expect(j.microPairs).toBe(1); // 128 pairs = 4 accumulation steps (llama65b.yaml) × 32 ranks × 1
    const b = j.bytes;
    // bf16 weights and gradients, fp32 master, two fp32 moments, the bf16 reference: each 1/32.
    expect(b.weights).toBe((2 * P) / 32);
    expect(b.gradients).toBe((2 * P) / 32);
    expect(b.master).toBe((4 * P) / 32);
    expect(b.optimizerState).toBe((8 * P) / 32);
    expect(b.reference).toBe((2 * P) / 32);
    expect(b.persistent).toBe((18 * P) / 32);
    // Held whole: two bf16 layers and the embedding, LM head and final norm; two layers' bf16 gradients.
    expect(b.gathered).toBe(2 * (2 * perLayer + 2 * embedding + h));
    expect(b.gradientsInFlight).toBe(2 * (2 * perLayer));
    // Activations are the micro-batch's, whatever the stage: the same as ZeRO-1 at the same micro-batch.
    const z1 = planJson([...PLAN_65B, '--world-size', '32', '--zero', '1']);
    expect(b.microStepPeak).toBe(z1.bytes.microStepPeak);
    const total = (18 * P) / 32 + b.gathered! + b.gradientsInFlight! + b.microStepPeak!;
    expect(b.total).toBeCloseTo(total, 0);
    expect(b.required).toBeCloseTo(total * 1.1 + 1 * GiB + 0.5 * GiB, 0); // context, 10 %, NCCL
    // 57.0 GiB: the hand-computed figures in GiB, for the reader.
    expect(b.required! / GiB).toBeCloseTo(57.02, 2);
    expect(j.fits).toBe(true);
  });

  it('the same run on one device does not fit: nothing is sharded there, whatever --zero says', () => {
    const one = planJson([...PLAN_65B, '--world-size', '1', '--zero', '3']);
    expect(one.fits).toBe(false);
    expect([one.bytes.weights, one.bytes.gradients, one.bytes.master, one.bytes.optimizerState, one.bytes.reference]).toEqual([2 * P, 2 * P, 4 * P, 8 * P, 2 * P]);
    expect([one.bytes.gathered, one.bytes.gradientsInFlight]).toEqual([0, 0]);
    expect(planJson([...PLAN_65B, '--world-size', '1', '--zero', '0']).bytes.required).toBe(one.bytes.required);
  });

  it('`rpo plan ... --world-size 32 --zero 3` says it fits; on one device it says it does not (the CLI, exit 0)', () => {
    const fits = rpo(['plan', ...PLAN_65B, '--world-size', '32', '--zero', '3'], { timeoutMs: 60_000 });
    expect(fits.code).toBe(0);
    expect(fits.stdout).toMatch(/ZeRO-3: optimizer state, master weights, gradients and weights sharded/);
    expect(fits.stdout).toMatch(/weights \(bf16, 2 B\/param \/ 32 ranks\) +3\.80/);
    expect(fits.stdout).toMatch(/^ {2}fits in 80\.00 GiB/m);
    const one = rpo(['plan', ...PLAN_65B, '--world-size', '1', '--zero', '3'], { timeoutMs: 60_000 });
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/does NOT fit in 80\.00 GiB/);
    const bad = rpo(['plan', ...PLAN_65B, '--zero', '4'], { timeoutMs: 60_000 });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--zero: expected one of 0, 1, 2, 3, got "4"/);
  }, 120_000);

  it('each stage shards what its rule says, at 8 ranks (Mistral-7B, bf16-mixed)', () => {
    const shape = shapeOf(KNOWN_MODELS['mistralai/Mistral-7B-Instruct-v0.2']!);
    const Pm = 7_241_732_096;
    const base: PlanInputs = {
      shape, precision: 'bf16-mixed', optimizer: 'AdamW', batchSize: 32, gradientAccumulationSteps: 1, worldSize: 8, zeroStage: 0,
      groups: 3, seqLen: 2048, checkpointing: true, chunkTokens: 1024, headPath: 'cuda-kernel', referenceBytes: 2, headroom: CUDA_HEADROOM, deviceBytes: 80 * GiB,
    };
    const at = (zeroStage: 0 | 1 | 2 | 3) => estimatePlan({ ...base, zeroStage });
    const row = (p: ReturnType<typeof at>) => [p.weights, p.gradients, p.master, p.optimizerState, p.reference];
    expect(row(at(0))).toEqual([2 * Pm, 2 * Pm, 4 * Pm, 8 * Pm, 2 * Pm]);
    expect(row(at(1))).toEqual([2 * Pm, 2 * Pm, (4 * Pm) / 8, (8 * Pm) / 8, 2 * Pm]);
    expect(row(at(2))).toEqual([2 * Pm, (2 * Pm) / 8, (4 * Pm) / 8, (8 * Pm) / 8, 2 * Pm]);
    expect(row(at(3))).toEqual([(2 * Pm) / 8, (2 * Pm) / 8, (4 * Pm) / 8, (8 * Pm) / 8, (2 * Pm) / 8]);
    // ZeRO-2: two 25 MiB float32 buckets' worth of bf16 gradients await their reduce.
    expect(at(2).zero.gradientsInFlight).toBe(2 * ((25 * 2 ** 20) / 4) * 2);
    expect([at(0).zeroTransient, at(1).zeroTransient]).toEqual([0, 0]);
    // Each stage needs less than the one before it.
    const required = ZERO_STAGES.map((z) => at(z).required);
    for (let z = 1; z < required.length; z++) expect(required[z]).toBeLessThan(required[z - 1]!);
    // The optimizer step (after backward) holds nothing gathered: the transients ride on the micro-step only.
    const z3 = at(3);
    expect(z3.total).toBe(z3.persistent + Math.max(z3.step.peak.total + z3.zeroTransient, z3.optimizerStepTransient));
  });

  it('the stages and their rules are declared once, and --zero reads them', () => {
    expect(ZERO_STAGES).toEqual([0, 1, 2, 3]);
    const sharded = (z: 0 | 1 | 2 | 3) => Object.entries(ZERO_RULES[z]).filter(([k, v]) => k !== 'summary' && v).map(([k]) => k);
    expect(sharded(0)).toEqual([]);
    expect(sharded(1)).toEqual(['optimizerState', 'masterWeights']);
    expect(sharded(2)).toEqual(['optimizerState', 'masterWeights', 'gradients']);
    expect(sharded(3)).toEqual(['optimizerState', 'masterWeights', 'gradients', 'weights']);
    expect(parseZeroStage('3', '--zero')).toBe(3);
    expect(() => parseZeroStage('', '--zero')).toThrow(/expected one of/);
    expect(() => parseZeroStage('-1', 'RPO_ZERO')).toThrow(/RPO_ZERO: expected one of 0, 1, 2, 3, got "-1"/);
  });
});

describe('the README\'s 30B / 65B device table', () => {
  it('is the planner\'s (scripts/plan-devices.mjs --write)', () => {
    const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
    const a = readme.indexOf(README_BEGIN);
    const b = readme.indexOf(README_END);
    expect(a).toBeGreaterThan(-1);
    expect(readme.slice(a, b + README_END.length)).toBe(readmeDeviceBlock());
    // Every model × precision has a row.
    expect(readmeDeviceBlock().split('\n').filter((l) => /^\| llama(30|65)b/.test(l))).toHaveLength(DEVICE_TABLE_MODELS.length * DEVICE_TABLE_PRECISIONS.length);
  });

  it('each count is the fewest: the plan fits there and at no smaller world size that splits the batch', () => {
    const shape = shapeOf(KNOWN_MODELS['huggyllama/llama-65b']!);
    const base: PlanInputs = {
      shape, precision: 'bf16-pure', optimizer: 'AdamW', batchSize: 16, gradientAccumulationSteps: 4, worldSize: 1, zeroStage: 3,
      groups: 3, seqLen: 2048, checkpointing: true, chunkTokens: 1024, headPath: 'cuda-kernel', referenceBytes: 2, headroom: CUDA_HEADROOM, deviceBytes: 80 * GiB,
    };
    for (const precision of ['fp32', 'bf16-pure', 'bf16-mixed'] as const) {
      const x = { ...base, precision };
      const n = fewestDevices(x)!;
      expect(n).not.toBeNull();
      expect(estimatePlan({ ...x, batchSize: n.batchSize, worldSize: n.worldSize, gradientAccumulationSteps: n.gradientAccumulationSteps }).fits).toBe(true);
      // Linear search over every world size that splits the batch, up to the answer.
      for (let w = 1; w < Math.min(n.worldSize, 16 + 1); w++) {
        if (16 % w !== 0) continue;
        expect(largestFittingMicroBatch({ ...x, worldSize: w })).toBeNull();
      }
      if (n.batchSize !== 16) for (const w of divisorsOf(16)) expect(largestFittingMicroBatch({ ...x, worldSize: w })).toBeNull();
    }
    // ZeRO-1 never fits 65B on 80 GiB devices: the bf16 weights alone are 121.6 GiB.
    expect(fewestDevices({ ...base, zeroStage: 1 })).toBeNull();
  });
});
