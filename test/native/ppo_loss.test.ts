// loss=ppo's token-level formulas (native/loss/ppo.cpp) against the seed's PPOTrainer written out
// in torch (test/reference/ppo_check.py) on the same log-probs, values and masks: the loss, its
// gradients w.r.t. the policy's log-probs and the value head's outputs, the GAE targets and the
// seed's metrics.
import { beforeAll, describe, expect, it } from 'vitest';

import { evaluatePpo, type LossConfig, type PpoResult, type PpoTokens } from '../../lib/native.js';
import { mulberry32 } from '../../lib/util/random.js';
import { runPython } from '../reference/python.js';

interface Case {
  label: string;
  cfg: LossConfig;
  tokens: PpoTokens;
}

const SEED_DEFAULTS = { name: 'ppo', ppo_epochs: 1, cliprange: 0.5, lam: 0.95, gamma: 0.99, critic_coef: 0.01, KL_coef: 0.1 } as const;

/**
 * Rows like a batch's: a prompt (mask 0), a response of 2..T-prompt tokens (mask 1), then
 * padding (mask 0). Log-probs −U(0, 6); the reference's within ±spread of them (a large spread
 * puts ratios outside [cliprange, 1/cliprange]); values U(−1, 1).
 */
function makeCase(label: string, cfg: Partial<LossConfig>, seed: number, rows: number, T: number, spread: number): Case {
  const rand = mulberry32(seed);
  const n = rows * T;
  const masks = new Float64Array(n);
  const scores = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const prompt = 1 + Math.floor(rand() * (T / 3));
    const len = 2 + Math.floor(rand() * (T - prompt - 2));
    for (let t = prompt; t < prompt + len; t++) masks[r * T + t] = 1;
    scores[r] = r % 3 === 1 ? -1 : 1;
  }
  const fill = (f: (i: number) => number) => Float64Array.from({ length: n }, (_, i) => f(i));
  const logps = fill(() => -6 * rand());
  const refLogps = fill((i) => logps[i]! + spread * (rand() - 0.5));
  const oldValues = fill(() => 2 * rand() - 1);
  const values = fill((i) => oldValues[i]! + 0.3 * (rand() - 0.5));
  return { label, cfg: { ...SEED_DEFAULTS, ...cfg } as LossConfig, tokens: { rows, T, logps, refLogps, values, oldValues, masks, scores } };
}

const CASES: Case[] = [
  makeCase('seed defaults, ratios near 1', {}, 1, 5, 12, 0.2),
  makeCase('seed defaults, ratios outside the clip', {}, 2, 6, 16, 3.0),
  makeCase('cliprange 0.8, gamma 0.9, lam 0.5', { cliprange: 0.8, gamma: 0.9, lam: 0.5 }, 3, 4, 10, 1.0),
  makeCase('critic_coef 0.5, KL_coef 0, gamma 1, lam 1', { critic_coef: 0.5, KL_coef: 0, gamma: 1, lam: 1 }, 4, 3, 9, 0.6),
];

function plain(c: Case): Record<string, unknown> {
  const t = c.tokens;
  return {
    cfg: c.cfg,
    rows: t.rows,
    T: t.T,
    logps: Array.from(t.logps),
    refLogps: Array.from(t.refLogps),
    values: Array.from(t.values),
    oldValues: Array.from(t.oldValues),
    masks: Array.from(t.masks),
    scores: Array.from(t.scores),
  };
}

function maxErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i]! - b[i]!));
  return e;
}

describe('ppo matches the seed PPOTrainer formulas (test/reference/ppo_check.py)', () => {
  let answers: PpoResult[] = [];
  beforeAll(() => {
    answers = CASES.map((c) => JSON.parse(runPython('ppo_check.py', [], JSON.stringify(plain(c)))) as PpoResult);
  }, 240_000);

  CASES.forEach((c, k) => {
    it(`${c.label}: loss, gradients, targets, metrics`, () => {
      const want = answers[k]!;
      const got = evaluatePpo(c.cfg, c.tokens);
      const lossErr = Math.abs(got.loss - want.loss);
      const gradErr = Math.max(maxErr(got.gradLogps, want.gradLogps), maxErr(got.gradValues, want.gradValues));
      const targetErr = Math.max(maxErr(got.advantages, want.advantages), maxErr(got.discountedFutureRewards, want.discountedFutureRewards));
      expect(lossErr).toBeLessThan(1e-12);
      expect(gradErr).toBeLessThan(1e-12);
      expect(targetErr).toBeLessThan(1e-12);
      for (const [key, v] of Object.entries(want.metrics)) {
        expect(got.metrics[key], key).toBeDefined();
        expect(Math.abs(got.metrics[key]! - v), key).toBeLessThan(1e-12 + 1e-12 * Math.abs(v));
      }
      expect(got.metrics.loss).toBeCloseTo(got.loss, 14);
      // Gradients are not trivially zero, and the values' gradient exists only on response tokens.
      expect(Math.max(...Array.from(got.gradLogps, Math.abs))).toBeGreaterThan(1e-4);
      c.tokens.masks.forEach((m, i) => {
        if (m === 0) expect(Math.abs(got.gradValues[i]!)).toBe(0);
      });
      console.log(`[ppo] ${c.label}: loss ${got.loss.toFixed(6)}, |loss - seed| ${lossErr.toExponential(2)}, max |grad - seed| ${gradErr.toExponential(2)}, max |target - seed| ${targetErr.toExponential(2)}, clipfrac ${got.metrics['clipfrac/policy']!.toFixed(3)}`);
    });
  });

  it('the clip is reached in the large-spread case (the clipped branch is exercised)', () => {
    expect(evaluatePpo(CASES[1]!.cfg, CASES[1]!.tokens).metrics['clipfrac/policy']).toBeGreaterThan(0.1);
  });

  it('hand-computed: one row, two response tokens, values 0, gamma 1, lam 1', () => {
    // rewards [0, +1] on the response (prompt column 0 masked); values 0, so advantages = returns
    // to go = [1, 1] and their whitening is 0/0 → 0 (var 0 + 1e-8); discounted future rewards
    // [1, 0]. With values 0: critic = 0.5 * mean([1, 0]) = 0.25; policy 0; KL = mean(ref - pi).
    const tokens: PpoTokens = {
      rows: 1, T: 3,
      logps: Float64Array.from([0, -1, -2]), refLogps: Float64Array.from([0, -1.5, -1.5]),
      values: new Float64Array(3), oldValues: new Float64Array(3),
      masks: Float64Array.from([0, 1, 1]), scores: Float64Array.from([1]),
    };
    const r = evaluatePpo({ ...SEED_DEFAULTS, gamma: 1, lam: 1 } as LossConfig, tokens);
    expect(Array.from(r.discountedFutureRewards, Math.abs)).toEqual([0, 1, 0]);
    expect(Array.from(r.advantages, Math.abs)).toEqual([0, 0, 0]);
    expect(r.metrics['loss/critic']).toBeCloseTo(0.25, 15);
    expect(r.metrics['loss/policykl']).toBeCloseTo(((-1.5 + 1) + (-1.5 + 2)) / 2, 15);
    expect(r.loss).toBeCloseTo(0.01 * 0.25 + 0.1 * 0, 15);
  });

  it('a row with no response token is an error naming the row', () => {
    const c = makeCase('x', {}, 5, 2, 6, 0.1);
    c.tokens.masks.fill(0, 6, 12);
    expect(() => evaluatePpo(c.cfg, c.tokens)).toThrow(/row 1 has no response token/);
  });

  it('bad hyperparameters are errors naming the key', () => {
    const c = CASES[0]!;
    expect(() => evaluatePpo({ ...c.cfg, cliprange: 1.5 }, c.tokens)).toThrow(/cliprange/);
    expect(() => evaluatePpo({ ...c.cfg, lam: -1 }, c.tokens)).toThrow(/lam/);
  });
});
