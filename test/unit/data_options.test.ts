// The run options of the seed's data path (issue 12, items 3 and 4): drop_last (the seed's
// loaders yielded full batches only) and each dataset's truncation end and text cleaning, with
// the config's and a dataset entry's overrides.
import { describe, expect, it } from 'vitest';

import { loadConfig } from '../../lib/config/index.js';
import { epochOrder, examplesPerEpoch, makeBatches, type TokenizedExample, type TokenizedSequence } from '../../lib/data/batch/index.js';
import { datasetSpec, effectiveTraits, tokenizeConfig } from '../../lib/train/data.js';

function seq(n: number): TokenizedSequence {
  return { ids: Array.from({ length: n }, (_, i) => i + 3), promptLength: 1, fullLength: n, fullPromptLength: 1, promptTruncated: false, responseTruncated: false, truncated: false, dropped: false };
}
const EXAMPLES: TokenizedExample[] = Array.from({ length: 10 }, (_, i) => ({ id: `x:train:${i}`, chosen: seq(3 + (i % 3)), rejected: seq(4), truncated: false, dropped: false }));

describe('drop_last', () => {
  it('an epoch is its whole batches: 10 examples in batches of 4 → 8 trained; without drop_last all 10', () => {
    expect(examplesPerEpoch(10, 4, true)).toBe(8);
    expect(examplesPerEpoch(10, 4, false)).toBe(10);
    expect(examplesPerEpoch(8, 4, true)).toBe(8);
    const order = epochOrder(EXAMPLES, { batchSize: 4, seed: 1, epoch: 0, dropLast: true });
    expect(order.map((b) => b.length)).toEqual([4, 4]);
    expect(epochOrder(EXAMPLES, { batchSize: 4, seed: 1, epoch: 0, dropLast: false }).map((b) => b.length)).toEqual([4, 4, 2]);
  });

  it('each epoch leaves out other examples; the order is the one makeBatches shuffles, and a function of (seed, epoch)', () => {
    const ids = (epoch: number, dropLast = true) => epochOrder(EXAMPLES, { batchSize: 4, seed: 1, epoch, dropLast }).map((b) => b.map((e) => e.id));
    expect(ids(0)).toEqual(ids(0));
    expect(ids(0)).not.toEqual(ids(1));
    const batches = makeBatches(EXAMPLES, { batchSize: 4, groups: 2, seed: 1, epoch: 0, dropLast: true });
    expect(batches.map((b) => b.exampleIds)).toEqual(ids(0));
    expect(ids(0, false).flat().slice(0, 8)).toEqual(ids(0).flat());
    const left = (epoch: number) => EXAMPLES.map((e) => e.id).filter((id) => !ids(epoch).flat().includes(id));
    expect(new Set([0, 1, 2, 3, 4, 5].flatMap(left)).size).toBeGreaterThan(2); // not always the same two
  });

  it('a train set smaller than one batch: an error that names both ways on', () => {
    expect(() => examplesPerEpoch(3, 4, true)).toThrow(/model\.batch_size=4 is more than the 3 training examples.*drop_last=false/);
    expect(examplesPerEpoch(3, 4, false)).toBe(3);
  });

  it('config: drop_last defaults to true; drop_last=false trains the last smaller batch', () => {
    const base = ['loss=dpo', 'model=tiny', 'datasets=[orcaratspec]', 'exp_name=x'];
    expect(loadConfig({ overrides: base, env: {} }).config.drop_last).toBe(true);
    expect(loadConfig({ overrides: [...base, 'drop_last=false'], env: {} }).config.drop_last).toBe(false);
  });
});

describe('truncation end and cleaning per dataset', () => {
  const config = (extra: string[] = []) => loadConfig({ overrides: ['loss=dpo', 'model=tiny', 'datasets=[orcaratspec, hh, ./mine.jsonl]', 'exp_name=x', ...extra], env: {} }).config;

  it("truncation_mode: null by default, each dataset's own: keep_start for the orca family, shp, ultrabin; keep_end otherwise", () => {
    const c = config();
    expect(c.truncation_mode).toBeNull();
    expect(effectiveTraits(c, 'orcaratspec').truncation_mode).toBe('keep_start');
    for (const name of ['orca', 'orcarat', 'orcaratgen', 'orcaratgen_llama3_8it', 'orcaratspec_llama3_8it', 'shp', 'ultrabin']) expect(effectiveTraits(c, name).truncation_mode, name).toBe('keep_start');
    for (const name of ['hh', 'hh_helpful', 'hh_harmless', 'oasst', './mine.jsonl', 'org/any']) expect(effectiveTraits(c, name).truncation_mode, name).toBe('keep_end');
    expect(effectiveTraits(c, 'orcarat').rationale_prompt).toBe('numbered');
    expect(effectiveTraits(c, 'orcaratspec').rationale_prompt).toBe('above-below');
  });

  it('truncation_mode=X applies to every dataset; an entry\'s own truncation_mode and remove_extra_spaces win', () => {
    const c = config(['truncation_mode=keep_end']);
    expect(effectiveTraits(c, 'orcaratspec').truncation_mode).toBe('keep_end');
    const entry = datasetSpec({ path: './mine.jsonl', truncation_mode: 'keep_start', remove_extra_spaces: false });
    expect(entry.traits).toEqual({ truncation_mode: 'keep_start', remove_extra_spaces: false });
    expect(effectiveTraits(c, entry.spec, entry.traits)).toEqual({ truncation_mode: 'keep_start', remove_extra_spaces: false, rationale_prompt: 'above-below' });
    const cfg = tokenizeConfig(c, true, effectiveTraits(c, entry.spec, entry.traits));
    expect(cfg).toMatchObject({ truncation_mode: 'keep_start', remove_extra_spaces: false });
    // without traits (callers outside a run's datasets): the config's mode, keep_end when null, no cleaning
    expect(tokenizeConfig(config(), false)).toMatchObject({ truncation_mode: 'keep_end', remove_extra_spaces: false, rationale_prompt: 'above-below' });
  });

  it('a dataset entry with an unknown key or a bad value is a config error', () => {
    expect(() => datasetSpec({ path: 'x.jsonl', truncate: 'keep_start' })).toThrow(/unknown key\(s\) truncate/);
    expect(() => datasetSpec({ path: 'x.jsonl', truncation_mode: 'middle' })).toThrow(/keep_end or keep_start/);
    expect(() => datasetSpec({ path: 'x.jsonl', remove_extra_spaces: 'yes' })).toThrow(/true or false/);
    expect(datasetSpec('orcaratspec')).toEqual({ spec: 'orcaratspec', options: {}, traits: {} });
  });
});
