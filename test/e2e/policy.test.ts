// The REPL surface: `import { Policy, loadConfig, train } from 'rpo'` on a tiny model.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { Policy, initModelDir } from '../../lib/index.js';
import { tokenizeSequence } from '../../lib/data/batch/index.js';

const work = mkdtempSync(path.join(tmpdir(), 'rpo-policy-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('Policy', () => {
  it('samples text and scores a response as training tokenizes it', async () => {
    const dir = path.join(work, 'model');
    await initModelDir(dir, { preset: 'tiny', seed: 4 });
    const policy = await Policy.load(dir);
    const greedy = await policy.sample(['Sort: 3 1 2', 'Add 2 and 5'], { doSample: false, maxNewTokens: 8 });
    expect(greedy).toHaveLength(2);
    expect(await policy.sample(['Sort: 3 1 2', 'Add 2 and 5'], { doSample: false, maxNewTokens: 8 })).toEqual(greedy);

    const score = await policy.logprob('Sort: 3 1 2', 'Sure! Sorted: 1 2 3.');
    const seq = await tokenizeSequence('Sort: 3 1 2', 'Sure! Sorted: 1 2 3.', policy.tokenizer, { ...policy.format, max_length: 4096, max_prompt_length: 4096 });
    expect(score.tokens).toBe(seq.ids.length - seq.promptLength); // response tokens + EOS
    expect(score.sum).toBeLessThan(0);
    expect(score.mean).toBeCloseTo(score.sum / score.tokens, 5);
    policy.dispose();
  });
});
