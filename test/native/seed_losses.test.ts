// The losses issue 13 added (rorpo, kto, kto-simple, kto-zero, and the rationale term on every
// paired loss) against the seed's formulas written out in torch (test/reference/seed_losses.py)
// on the same log-probs: values, metrics and gradients. Plus the identities the table promises
// (rdpo ≡ dpo + logsigmoid, rorpo-simple ≡ orpo + linear, exactly) and the engine's table
// against lib/gen/loss_table.ts (both generated from boundary/losses.mjs).
import { beforeAll, describe, expect, it } from 'vitest';

import { engineLossTable, evaluateLoss, type LossConfig, type PairLogps, type RowLogps } from '../../lib/native.js';
import { LOSS_ROWS, lossGroups, lossRow, lossUsesReference } from '../../lib/loss/table.js';
import { mulberry32 } from '../../lib/util/random.js';
import { runPython } from '../reference/python.js';

const N = 6;

/** Sums −U(2, 30), integer counts 2..20, means = sum / count. */
function rows(rand: () => number, n = N): RowLogps {
  const sum = new Float64Array(n);
  const mean = new Float64Array(n);
  const count = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    sum[i] = -(2 + 28 * rand());
    count[i] = 2 + Math.floor(19 * rand());
    mean[i] = sum[i]! / count[i]!;
  }
  return { sum, mean, count };
}

interface Case {
  label: string;
  cfg: LossConfig;
  policy: PairLogps;
  reference: PairLogps | null;
}

function makeCase(label: string, cfg: LossConfig, seed: number, desirable?: number[]): Case {
  const rand = mulberry32(seed);
  const groups = lossGroups({ name: cfg.name, rationale: cfg.rationale ?? 'none', rationale_form: cfg.rationale_form ?? 'code' });
  const policy: PairLogps = { chosen: rows(rand) };
  if (groups >= 2) policy.rejected = rows(rand);
  if (groups >= 3) policy.rationale = rows(rand);
  if (desirable) policy.desirable = Uint8Array.from(desirable);
  let reference: PairLogps | null = null;
  if (lossUsesReference(cfg.name)) {
    // The reference: near the policy, so log-ratios are of order 1 (both KTO branches matter).
    const near = (r: RowLogps): RowLogps => {
      const sum = r.sum.map((x) => x + 4 * (rand() - 0.5));
      return { sum, mean: sum.map((x, i) => x / r.count[i]!), count: r.count };
    };
    reference = { chosen: near(policy.chosen) };
    if (groups >= 2) reference.rejected = near(policy.rejected!);
  }
  return { label, cfg, policy, reference };
}

const MIXED = [1, 0, 0, 1, 1, 0];
const CASES: Case[] = [
  makeCase('rdpo (code)', { name: 'rdpo', beta: 0.1, gamma: 0.1 }, 1),
  makeCase('rdpo (paper)', { name: 'rdpo', beta: 0.2, gamma: 0.05, rationale_form: 'paper' }, 2),
  makeCase('rorpo', { name: 'rorpo', beta: 0.1, gamma: 1.0 }, 3),
  makeCase('rorpo-simple', { name: 'rorpo-simple', beta: 0.1, gamma: 1.0 }, 4),
  makeCase('dpo + logsigmoid', { name: 'dpo', beta: 0.1, gamma: 0.3, rationale: 'logsigmoid' }, 5),
  makeCase('cdpo + linear', { name: 'cdpo', beta: 0.1, epsilon: 0.2, gamma: 0.05, rationale: 'linear' }, 6),
  makeCase('ipo + logsigmoid (RIPO)', { name: 'ipo', beta: 0.5, gamma: 2.0, rationale: 'logsigmoid' }, 7),
  makeCase('slic + linear', { name: 'slic', beta: 1.0, lambda: 0.1, gamma: 0.02, rationale: 'linear' }, 8),
  makeCase('simpo + logsigmoid (RSimPO)', { name: 'simpo', beta: 2.0, margin: 0.5, gamma: 1.5, rationale: 'logsigmoid' }, 9),
  makeCase('orpo + linear', { name: 'orpo', beta: 0.1, gamma: 0.7, rationale: 'linear' }, 10),
  makeCase('kto', { name: 'kto', beta: 0.1, desirable_weight: 1, undesirable_weight: 1 }, 11, MIXED),
  makeCase('kto (weights 1.33, 0.5; β 0.5)', { name: 'kto', beta: 0.5, desirable_weight: 1.33, undesirable_weight: 0.5 }, 12, MIXED),
  makeCase('kto (all desirable)', { name: 'kto', beta: 0.3, desirable_weight: 1, undesirable_weight: 1 }, 13, [1, 1, 1, 1, 1, 1]),
  makeCase('kto-simple', { name: 'kto-simple', beta: 0.5 }, 14, [1, 0, 1, 0, 1, 0]),
  makeCase('kto-zero', { name: 'kto-zero', beta: 0.4 }, 15, MIXED),
];

interface SeedAnswer {
  loss: number;
  grads: Record<string, number[]>;
  metrics: Record<string, number>;
}

function request(c: Case): Record<string, unknown> {
  const plain = (r: RowLogps) => ({ sum: Array.from(r.sum), mean: Array.from(r.mean), count: Array.from(r.count) });
  const group = (p: PairLogps) => {
    const out: Record<string, unknown> = { chosen: plain(p.chosen) };
    if (p.rejected) out.rejected = plain(p.rejected);
    if (p.rationale) out.rationale = plain(p.rationale);
    if (p.desirable) out.desirable = Array.from(p.desirable);
    return out;
  };
  return { ...c.cfg, loss: c.cfg.name, policy: group(c.policy), reference: c.reference ? group(c.reference) : null };
}

function expectClose(got: number, want: number, what: string, rel = 1e-10, abs = 1e-12): void {
  const tol = abs + rel * Math.abs(want);
  if (!(Math.abs(got - want) <= tol)) expect.fail(`${what}: got ${got}, want ${want} (|diff| ${Math.abs(got - want)} > ${tol})`);
}

describe('new losses match the seed formulas (test/reference/seed_losses.py)', () => {
  let answers: SeedAnswer[] = [];
  beforeAll(() => {
    answers = JSON.parse(runPython('seed_losses.py', [], JSON.stringify(CASES.map(request)))) as SeedAnswer[];
    expect(answers).toHaveLength(CASES.length);
  }, 120_000);

  CASES.forEach((c, k) => {
    it(`${c.label}: loss, gradients, metrics`, () => {
      const want = answers[k]!;
      const got = evaluateLoss(c.cfg, c.policy, c.reference);
      expectClose(got.loss, want.loss, `${c.label} loss`);
      expectClose(got.metrics.loss!, want.loss, `${c.label} metrics.loss`);
      for (const [key, g] of Object.entries(want.grads)) {
        const mine = got.grads[key];
        expect(mine, `${c.label} has a gradient for ${key}`).toBeDefined();
        g.forEach((x, i) => expectClose(mine![i]!, x, `${c.label} d/d ${key}[${i}]`));
      }
      for (const [key, v] of Object.entries(want.metrics)) expectClose(got.metrics[key]!, v, `${c.label} metric ${key}`);
      let gradErr = 0;
      for (const [key, g] of Object.entries(want.grads)) g.forEach((x, i) => (gradErr = Math.max(gradErr, Math.abs(got.grads[key]![i]! - x))));
      console.log(`[seed-losses] ${c.label}: loss ${got.loss.toFixed(6)}, |loss - seed| ${Math.abs(got.loss - want.loss).toExponential(2)}, max |grad - seed| ${gradErr.toExponential(2)}`);
    });
  });
});

describe('the rationale term is the same term on every paired loss', () => {
  const same = (a: Case, bCfg: LossConfig) => {
    const x = evaluateLoss(a.cfg, a.policy, a.reference);
    const y = evaluateLoss(bCfg, a.policy, a.reference);
    expect(y.loss).toBe(x.loss);
    expect(y.metrics).toEqual(x.metrics);
    expect(Object.keys(y.grads).sort()).toEqual(Object.keys(x.grads).sort());
    for (const key of Object.keys(x.grads)) expect(Array.from(y.grads[key]!)).toEqual(Array.from(x.grads[key]!));
  };
  it('rdpo ≡ dpo + logsigmoid, exactly (values, metrics, gradients)', () => {
    same(makeCase('rdpo', { name: 'rdpo', beta: 0.1, gamma: 0.1 }, 21), { name: 'dpo', beta: 0.1, gamma: 0.1, rationale: 'logsigmoid' });
  });
  it("rdpo rationale_form=paper ≡ dpo + linear, exactly", () => {
    same(makeCase('rdpo', { name: 'rdpo', beta: 0.1, gamma: 0.1, rationale_form: 'paper' }, 22), { name: 'dpo', beta: 0.1, gamma: 0.1, rationale: 'linear' });
  });
  it('rorpo-simple ≡ orpo + linear, exactly', () => {
    same(makeCase('rorpo-simple', { name: 'rorpo-simple', beta: 0.1, gamma: 1 }, 23), { name: 'orpo', beta: 0.1, gamma: 1, rationale: 'linear' });
  });
  it('rorpo ≡ orpo + logsigmoid, exactly', () => {
    same(makeCase('rorpo', { name: 'rorpo', beta: 0.1, gamma: 1 }, 24), { name: 'orpo', beta: 0.1, gamma: 1, rationale: 'logsigmoid' });
  });
  it('rationale none leaves a paired loss as it was; the reference is never read on rationale rows', () => {
    const c = makeCase('dpo', { name: 'dpo', beta: 0.1, gamma: 0.5, rationale: 'logsigmoid' }, 25);
    expect(c.reference!.rationale).toBeUndefined();
    const withTerm = evaluateLoss(c.cfg, c.policy, c.reference);
    const without = evaluateLoss({ name: 'dpo', beta: 0.1 }, { chosen: c.policy.chosen, rejected: c.policy.rejected! }, c.reference);
    // The term adds mean(−log σ(γ·π_r)) on the rationale sums, nothing else.
    let term = 0;
    for (const x of c.policy.rationale!.sum) term += Math.log1p(Math.exp(-0.5 * x)) / N;
    expectClose(withTerm.loss, without.loss + term, 'dpo + term', 1e-12);
    expect(withTerm.metrics['rewards/margins']).toBe(without.metrics['rewards/margins']);
  });
});

describe('loss table and errors', () => {
  it("the built engine's table and lib/gen/loss_table.ts (one declaration, two outputs) agree", () => {
    const engine = engineLossTable();
    expect(engine.map((e) => e.name)).toEqual(LOSS_ROWS.map((l) => l.name));
    for (const e of engine) {
      const l = lossRow(e.name);
      expect(e).toEqual({
        name: l.name, formula: l.formula, layout: l.layout, needsReference: l.reference, policyMean: l.policyMean, referenceMean: l.referenceMean, rationale: l.rationale,
        valueHead: l.valueHead, params: l.params.map((p) => p.key),
      });
    }
  });
  it('ppo has no per-row function: evaluateLoss says its loss is the value-head step\'s', () => {
    const c = makeCase('kto-zero', { name: 'kto-zero' }, 30, [1, 0, 1, 0]);
    expect(() => evaluateLoss({ name: 'ppo' }, c.policy, c.reference)).toThrow(/loss 'ppo' is computed on token-level log-probs and values \(the trainer's value-head step\)/);
  });
  it('a rationale term where none is taken, or against the one a name fixes', () => {
    const c = makeCase('sft', { name: 'sft' }, 31);
    expect(() => evaluateLoss({ name: 'sft', rationale: 'linear' }, c.policy, null)).toThrow(/sft.*no rationale/);
    const r = makeCase('rorpo', { name: 'rorpo', beta: 0.1, gamma: 1 }, 32);
    expect(() => evaluateLoss({ name: 'rorpo', rationale: 'linear' }, r.policy, null)).toThrow(/fixes its rationale term \(logsigmoid\)/);
    expect(() => evaluateLoss({ name: 'dpo', rationale: 'cubic' as 'linear' }, r.policy, r.reference)).toThrow(/none, logsigmoid or linear/);
  });
  it('a paired loss with a rationale term needs rationale rows', () => {
    const c = makeCase('simpo', { name: 'simpo' }, 33);
    expect(() => evaluateLoss({ name: 'simpo', rationale: 'linear' }, c.policy, null)).toThrow(/rationale rows/);
  });
  it('unpaired losses need each example\'s kind; kto needs KL rows; kto-simple both kinds', () => {
    const k = makeCase('kto', { name: 'kto' }, 34, MIXED);
    expect(() => evaluateLoss({ name: 'kto' }, { chosen: k.policy.chosen, rejected: k.policy.rejected! }, k.reference)).toThrow(/desirable/);
    expect(() => evaluateLoss({ name: 'kto' }, { chosen: k.policy.chosen, desirable: k.policy.desirable! }, k.reference)).toThrow(/KL rows/);
    expect(() => evaluateLoss({ name: 'kto', undesirable_weight: -1 }, k.policy, k.reference)).toThrow(/undesirable_weight/);
    const s = makeCase('kto-simple', { name: 'kto-simple' }, 35, [1, 1, 1, 1, 1, 1]);
    expect(() => evaluateLoss({ name: 'kto-simple' }, s.policy, s.reference)).toThrow(/desirable and undesirable/);
    expect(() => evaluateLoss({ name: 'kto-zero' }, s.policy, null)).toThrow(/reference/);
  });
});

describe("kto and kto-zero match TRL's KTOTrainer (test/reference/trl_kto.py)", () => {
  // TRL's "kto" is the seed's kto; its "apo_zero_unpaired" is the seed's kto-zero
  // (σ(β·r) = 1 − σ(−β·r)). TRL has no kto-simple.
  const TRL = CASES.filter((c) => c.cfg.name === 'kto' || c.cfg.name === 'kto-zero');
  let answers: Array<{ loss: number; grad: number[]; metrics: Record<string, number> }> = [];
  beforeAll(() => {
    const reqs = TRL.map((c) => ({
      loss_type: c.cfg.name === 'kto' ? 'kto' : 'apo_zero_unpaired',
      beta: c.cfg.beta,
      desirable_weight: c.cfg.desirable_weight ?? 1,
      undesirable_weight: c.cfg.undesirable_weight ?? 1,
      policy: Array.from(c.policy.chosen.sum),
      reference: Array.from(c.reference!.chosen.sum),
      ...(c.policy.rejected ? { policy_kl: Array.from(c.policy.rejected.sum), reference_kl: Array.from(c.reference!.rejected!.sum) } : {}),
      desirable: Array.from(c.policy.desirable!),
    }));
    answers = JSON.parse(runPython('trl_kto.py', [], JSON.stringify(reqs))) as typeof answers;
    expect(answers).toHaveLength(TRL.length);
  }, 180_000);

  TRL.forEach((c, k) => {
    it(`${c.label}: loss, d loss / d π, rewards, KL`, () => {
      const want = answers[k]!;
      const got = evaluateLoss(c.cfg, c.policy, c.reference);
      expectClose(got.loss, want.loss, `${c.label} loss vs TRL`);
      want.grad.forEach((g, i) => expectClose(got.grads['chosen.sum']![i]!, g, `${c.label} grad[${i}] vs TRL`));
      for (const key of ['rewards/chosen', 'rewards/rejected', 'logps/chosen', 'logps/rejected', 'rewards/margins']) {
        if (want.metrics[key] !== undefined) expectClose(got.metrics[key]!, want.metrics[key]!, `${c.label} ${key} vs TRL`);
      }
      if (c.cfg.name === 'kto') expectClose(got.metrics['rewards/KL_estimate']!, want.metrics.kl!, `${c.label} KL vs TRL`);
      const gradErr = Math.max(...want.grad.map((g, i) => Math.abs(got.grads['chosen.sum']![i]! - g)));
      console.log(`[trl-kto] ${c.label}: |loss - TRL| ${Math.abs(got.loss - want.loss).toExponential(2)}, max |grad - TRL| ${gradErr.toExponential(2)}`);
    });
  });
});
