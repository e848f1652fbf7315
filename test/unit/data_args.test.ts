// `rpo data`'s own option, -n (issue 9, item 13c), split from the Hydra arguments as typed.
import { describe, expect, it } from 'vitest';

import { ConfigError } from '../../lib/config/index.js';
import { DEFAULT_EXAMPLES, splitDataArgs } from '../../lib/commands/data.js';

describe('rpo data -n', () => {
  it('takes every spelling out and leaves the Hydra arguments as typed, in order', () => {
    const hydra = ['loss=dpo', 'n_examples=5', '++n_samples=2', 'exp_name=-n', '--config-path', 'runs/x', '--cfg', 'job'];
    for (const flag of [['-n', '5'], ['-n=5'], ['-n5'], ['--n', '5'], ['--n=5']]) {
      expect(splitDataArgs([...hydra.slice(0, 2), ...flag, ...hydra.slice(2)])).toEqual({ examples: 5, hydra });
    }
    expect(splitDataArgs(hydra)).toEqual({ examples: DEFAULT_EXAMPLES, hydra });
    expect(splitDataArgs(['-n', '1', '--n=7'])).toEqual({ examples: 7, hydra: [] }); // the last one wins
  });

  it('refuses a missing or non-numeric value', () => {
    expect(() => splitDataArgs(['loss=dpo', '-n'])).toThrow(ConfigError);
    expect(() => splitDataArgs(['-n', 'loss=dpo'])).toThrow(/-n: expected a whole number of examples, got "loss=dpo"/);
    expect(() => splitDataArgs(['--n=-1'])).toThrow(/expected a whole number/);
  });
});
