// Learning-rate schedules against transformers.get_scheduler (and torch's LambdaLR with the
// seed's lambda for the default), step by step over whole runs.
import { describe, expect, it } from 'vitest';

import { loadConfig } from '../../lib/config/index.js';
import { scheduledLearningRate, warmupSteps, type ScheduleConfig } from '../../lib/train/schedule.js';
import { runPython } from '../reference/python.js';

const CASES: (ScheduleConfig & { total: number })[] = [];
for (const type of [null, 'linear', 'cosine', 'constant_with_warmup'] as const) {
  CASES.push({ lr_scheduler_type: type, lr: 5e-7, warmup_steps: 150, warmup_ratio: null, total: 400 });
  CASES.push({ lr_scheduler_type: type, lr: 1e-3, warmup_steps: 0, warmup_ratio: null, total: 37 });
  CASES.push({ lr_scheduler_type: type, lr: 2e-5, warmup_steps: 150, warmup_ratio: 0.1, total: 97 });
  CASES.push({ lr_scheduler_type: type, lr: 3e-4, warmup_steps: 0, warmup_ratio: 0.33, total: 10 });
  CASES.push({ lr_scheduler_type: type, lr: 1e-4, warmup_steps: 20, warmup_ratio: null, total: 12 }); // warmup longer than the run
}

describe('learning-rate schedules', () => {
  it('match transformers (and the seed\'s LambdaLR) at every step', () => {
    const input = CASES.map((c) => ({ type: c.lr_scheduler_type, lr: c.lr, warmup_steps: c.warmup_steps, warmup_ratio: c.warmup_ratio, total: c.total }));
    const ref = JSON.parse(runPython('lr_schedule.py', JSON.stringify(input))) as number[][];
    CASES.forEach((c, i) => {
      const want = ref[i]!;
      expect(want).toHaveLength(c.total);
      const got = Array.from({ length: c.total }, (_, s) => scheduledLearningRate(c, s, c.total));
      for (let s = 0; s < c.total; s++) {
        const tol = 1e-12 * c.lr;
        if (Math.abs(got[s]! - want[s]!) > tol) throw new Error(`${JSON.stringify(c)} step ${s}: rpo ${got[s]} transformers ${want[s]}`);
      }
    });
  }, 120_000);

  it('by hand: cosine halfway through the decay is lr/2; warmup_ratio rounds up', () => {
    const c: ScheduleConfig = { lr_scheduler_type: 'cosine', lr: 1, warmup_steps: 0, warmup_ratio: 0.1, total: 0 } as ScheduleConfig;
    expect(warmupSteps(c, 95)).toBe(10);
    expect(scheduledLearningRate(c, 10 + 85 / 2, 95)).toBeCloseTo(0.5, 12);
    expect(scheduledLearningRate(c, 5, 95)).toBeCloseTo(0.5, 12);
  });

  it('the config: null is the seed\'s default; a typo names the choices', () => {
    const base = ['loss=dpo', 'model=tiny', 'datasets=[x]', 'exp_name=e'];
    const d = loadConfig({ overrides: base, env: {} }).config;
    expect(d.lr_scheduler_type).toBeNull();
    expect(d.warmup_ratio).toBeNull();
    const c = loadConfig({ overrides: [...base, 'lr_scheduler_type=cosine', 'warmup_ratio=0.05'], env: {} }).config;
    expect(c.lr_scheduler_type).toBe('cosine');
    expect(c.warmup_ratio).toBe(0.05);
    expect(() => loadConfig({ overrides: [...base, 'lr_scheduler_type=cosin'], env: {} })).toThrow(/cosine/);
    expect(() => loadConfig({ overrides: [...base, 'warmup_ratio=2'], env: {} })).toThrow(/warmup_ratio/);
  });
});
