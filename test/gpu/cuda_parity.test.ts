// GPU suite: runs where CUDA is found (`npm run test:gpu`), skipped loudly elsewhere.
import { describe, expect, it } from 'vitest';

import { Model, cudaAvailable } from '../../lib/native.js';
import { maxRelError, randomBatch, tinyConfig } from '../native/helpers.js';

const cuda = cudaAvailable();
if (!cuda) console.warn('test/gpu: skipped: no CUDA (this LibTorch or machine has no GPU)');

describe.skipIf(!cuda)('CUDA vs CPU, fp32', () => {
  it('logits and per-row log-probs agree', async () => {
    const config = tinyConfig();
    const cpu = await Model.create(config, { seed: 9 });
    const gpu = await Model.create(config, { seed: 9, device: 'cuda' });
    const batch = randomBatch(9, { rows: 3, seqLen: 16, vocab: config.vocab_size });
    expect(maxRelError(await gpu.logits(batch), await cpu.logits(batch), 1e-3)).toBeLessThan(1e-3);
    expect(maxRelError((await gpu.logprobs(batch)).sum, (await cpu.logprobs(batch)).sum)).toBeLessThan(1e-4);
    cpu.dispose();
    gpu.dispose();
  });
});
