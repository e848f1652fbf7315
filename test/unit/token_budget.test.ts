// Token-budget micro-batches (model.tokens_per_micro_batch, issue 24 item 2): the cut of a global
// batch by real tokens and the ranks' shares of balanced token counts, against cuts worked out by
// hand; the config's rules (the losses it refuses, what it replaces); the shares every rank of a
// job computes cover the global batch once, in order.
import { describe, expect, it } from 'vitest';

import { loadConfig } from '../../lib/config/index.js';
import { balancedShards, budgetCut } from '../../lib/data/batch/token_budget.js';
import { Parallel } from '../../lib/parallel/context.js';

describe('budgetCut: micro-batches of at most the budget, in order', () => {
  it('takes pairs while they fit; a pair over the budget is alone', () => {
    // 5+4 = 9 ≤ 10, +3 = 12 > 10 | 3+6 = 9, +2 = 11 > 10 | 2 | 30 alone (over) | 1+1
    expect(budgetCut([5, 4, 3, 6, 2, 30, 1, 1], 10)).toEqual([2, 2, 1, 1, 2]);
    // Exactly the budget fits.
    expect(budgetCut([5, 5, 5, 5], 10)).toEqual([2, 2]);
    // Budget 1: every pair alone; a budget above the sum: one micro-batch.
    expect(budgetCut([3, 1, 4, 1, 5], 1)).toEqual([1, 1, 1, 1, 1]);
    expect(budgetCut([3, 1, 4, 1, 5], 14)).toEqual([5]);
    // The first pair over the budget, then a run that fits.
    expect(budgetCut([40, 3, 3], 10)).toEqual([1, 2]);
    expect(budgetCut([], 10)).toEqual([]);
  });

  it('refuses a budget that is not a positive integer', () => {
    expect(() => budgetCut([1], 0)).toThrow(/tokens_per_micro_batch must be a positive integer, got 0/);
    expect(() => budgetCut([1], 2.5)).toThrow(/positive integer/);
  });
});

describe('balancedShards: contiguous shares of a global batch, balanced by tokens', () => {
  it('ends each shard at the pair boundary nearest its share of the tokens', () => {
    // Total 20, halves at 10: prefix sums 0 5 9 12 20 → boundary 9 (1 from 10) beats 12 (2 from 10).
    expect(balancedShards([5, 4, 3, 8], 2)).toEqual([2, 2]);
    // One long pair first: by pairs (2 + 2) rank 0 would hold 23 of 26 tokens; by tokens it holds the long one alone.
    expect(balancedShards([20, 3, 2, 1], 2)).toEqual([1, 3]);
    // Three ranks over 12 equal pairs: 4 each.
    expect(balancedShards(Array(12).fill(7), 3)).toEqual([4, 4, 4]);
    // Fewer pairs than ranks: some ranks get none (targets 2, 4, 6 of 8: boundaries after 1, 1, 2 pairs).
    expect(balancedShards([4, 4], 4)).toEqual([1, 0, 1, 0]);
    expect(balancedShards([9], 1)).toEqual([1]);
  });

  it('the shares cover the batch once, in order', () => {
    const tokens = [13, 2, 2, 40, 7, 7, 1, 9, 30, 3, 3, 3];
    for (const parts of [1, 2, 3, 5, 12, 15]) {
      const shards = balancedShards(tokens, parts);
      expect(shards).toHaveLength(parts);
      expect(shards.reduce((a, b) => a + b, 0)).toBe(tokens.length);
      expect(shards.every((n) => n >= 0)).toBe(true);
    }
  });
});

describe('Parallel.budgetShards: each rank cuts its own share', () => {
  it('ranks of a 2-rank job together hold the global batch once, in order, cut by the budget', () => {
    const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
    const tokens = [6, 6, 2, 2, 2, 9, 1]; // total 28: rank 0 takes a b c (14), rank 1 d e f g (14)
    const rank = (r: number) => {
      const par = Object.create(Parallel.prototype) as Parallel;
      Object.defineProperty(par, 'rank', { value: r });
      Object.defineProperty(par, 'worldSize', { value: 2 });
      return par.budgetShards(ids, tokens, 8);
    };
    expect(rank(0)).toEqual([['a'], ['b', 'c']]);
    expect(rank(1)).toEqual([['d', 'e'], ['f'], ['g']]);
    // One process: the whole batch cut by the budget (6 | 6+2 | 2+2 | 9 | 1), another cut, the same pairs.
    expect(Parallel.single().budgetShards(ids, tokens, 8)).toEqual([['a'], ['b', 'c'], ['d', 'e'], ['f'], ['g']]);
  });
});

describe('model.tokens_per_micro_batch in the config', () => {
  const load = (overrides: string[]) => loadConfig({ overrides: ['model=tiny', 'model.name_or_path=/nowhere', 'datasets=[x]', 'exp_name=t', ...overrides] });

  it('is off (null) by default, and replaces gradient_accumulation_steps when set (a notice says so)', () => {
    expect(load(['loss=dpo']).config.model.tokens_per_micro_batch).toBeNull();
    const { config, notices } = load(['loss=dpo', 'model.tokens_per_micro_batch=512', 'model.batch_size=6', 'model.gradient_accumulation_steps=4']);
    expect(config.model.tokens_per_micro_batch).toBe(512);
    // batch_size need not divide by gradient_accumulation_steps: the budget cuts the batch.
    expect(notices.join('\n')).toMatch(/model\.gradient_accumulation_steps=4 ignored: model\.tokens_per_micro_batch=512 cuts each global batch by tokens/);
  });

  it('is a positive integer', () => {
    expect(() => load(['loss=dpo', 'model.tokens_per_micro_batch=0'])).toThrow(/model\.tokens_per_micro_batch: must be ≥ 1, got 0/);
    expect(() => load(['loss=dpo', 'model.tokens_per_micro_batch=1.5'])).toThrow(/model\.tokens_per_micro_batch: expected an integer/);
  });

  it.each(['kto', 'kto-simple', 'kto-zero'])('is refused for the unpaired loss %s (micro-batches laid out over the global batch)', (loss) => {
    expect(() => load([`loss=${loss}`, 'model.tokens_per_micro_batch=512'])).toThrow(new RegExp(`model\\.tokens_per_micro_batch=512: loss=${loss} lays out its micro-batches over the whole global batch`));
  });

  it('is refused for ppo (a mean over each micro-batch\'s tokens)', () => {
    expect(() => load(['loss=ppo', 'model.tokens_per_micro_batch=512'])).toThrow(/loss=ppo's loss is a mean over each micro-batch's tokens/);
  });
});
