// Every engine failure reaches JS as an Error with a message a user can act on; nothing
// aborts the process.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { Model, Trainer, addon } from '../../lib/native.js';
import { randomBatch, tinyConfig } from './helpers.js';

const config = tinyConfig();

describe('errors cross the boundary as JS errors', () => {
  it('bad model configs and options', async () => {
    await expect(Model.create(tinyConfig({ num_key_value_heads: 3 }), {})).rejects.toThrow(/multiple of num_key_value_heads/);
    await expect(Model.create(tinyConfig({ head_dim: 7 }), {})).rejects.toThrow(/head_dim must be even/);
    await expect(Model.create(config, { dtype: 'float8' as never })).rejects.toThrow(/unsupported dtype "float8"/);
    await expect(Model.create({ ...config, vocab_size: 'big' } as never, {})).rejects.toThrow(/`vocab_size` must be a number/);
    await expect(Model.create(config, { device: 'cuda:0' })).rejects.toThrow(/no CUDA|CUDA/);
  });

  it('wrong batch shapes and out-of-vocabulary ids', async () => {
    const model = await Model.create(config, { seed: 1 });
    const batch = randomBatch(1, { rows: 2, seqLen: 6, vocab: config.vocab_size });
    await expect(model.logits({ ...batch, rows: 3 })).rejects.toThrow(/inputIds has 12 entries, rows x seqLen = 18/);
    await expect(model.logprobs({ ...batch, attentionMask: new Uint8Array(5) })).rejects.toThrow(/attentionMask has 5 entries/);
    const ids = batch.inputIds.slice();
    ids[7] = config.vocab_size + 5;
    await expect(model.logits({ ...batch, inputIds: ids })).rejects.toThrow(/inputIds\[row 1, position 1\] = 102 is outside the vocabulary \[0, 97\)/);
    await expect(model.logprobs({ ...batch, inputIds: Array.from(batch.inputIds) as never })).rejects.toThrow(/`inputIds` must be an Int32Array/);
    await expect(model.logprobs(batch, { chunkTokens: 0 })).rejects.toThrow(/chunkTokens/);
    model.dispose();
  });

  it('trainer misuse: rows per pair, missing reference, unknown loss and optimizer', async () => {
    const model = await Model.create(config, { seed: 2 });
    const batch = randomBatch(2, { rows: 4, seqLen: 6, vocab: config.vocab_size });
    expect(() => new Trainer(model, null, { loss: { name: 'our' as never } })).toThrow(/unknown loss 'our'/);
    expect(() => new Trainer(model, null, { loss: { name: 'sft', rationale: 'linear' } })).toThrow(/takes no rationale term/);
    expect(() => new Trainer(model, null, { loss: { name: 'dpo' }, optimizer: 'SGD' as never })).toThrow(/unknown optimizer "SGD"/);
    expect(() => new Trainer(model, model, { loss: { name: 'dpo' } })).toThrow(/different Model/);
    const dpo = new Trainer(model, null, { loss: { name: 'dpo' } });
    await expect(dpo.microStep(batch, { nPairs: 2 })).rejects.toThrow(/needs a reference model or precomputed reference/);
    await expect(dpo.microStep(batch, { nPairs: 3 })).rejects.toThrow(/3 pairs need 6 rows; the batch has 4/);
    dpo.dispose();
    const rdpo = new Trainer(model, null, { loss: { name: 'rdpo' } });
    await expect(rdpo.microStep(batch, { nPairs: 2 })).rejects.toThrow(/takes 3 rows per pair/);
    rdpo.dispose();
    model.dispose();
  });

  it('disposed objects and overlapping calls', async () => {
    const model = await Model.create(config, { seed: 3 });
    const batch = randomBatch(3, { rows: 2, seqLen: 6, vocab: config.vocab_size });
    // the raw addon object refuses a second call in flight; the TS wrapper queues instead
    const first = model.raw.logits(batch);
    expect(() => model.raw.logits(batch)).toThrow(/Model is busy/);
    expect(() => model.dispose()).toThrow(/busy/);
    await first;
    const queued = await Promise.all([model.logits(batch), model.logits(batch)]);
    expect(queued[0]).toEqual(queued[1]);
    model.dispose();
    await expect(model.logits(batch)).rejects.toThrow(/Model was disposed/);
    expect(() => model.params()).toThrow(/Model was disposed/);
    expect(() => new (addon().Model as unknown as new () => unknown)()).toThrow(/Model.create/);
  });

  it('load refuses byte ranges that do not fit the file or the tensor', async () => {
    const model = await Model.create(config, { seed: 4 });
    const dir = mkdtempSync(path.join(tmpdir(), 'rpo-errors-'));
    const file = path.join(dir, 'short.bin');
    writeFileSync(file, Buffer.alloc(64));
    const p = model.params()[0]!;
    const spec = { name: p.name, file, dtype: 'F32', shape: p.shape, begin: 0, end: p.nbytes };
    await expect(model.load([spec])).rejects.toThrow(/short.bin: tensor "model.embed_tokens.weight": byte range ends past the end of the file/);
    await expect(model.load([{ ...spec, end: 12 }])).rejects.toThrow(/does not hold/);
    await expect(model.load([{ ...spec, shape: [1, 2] }])).rejects.toThrow(/has shape \[1, 2\], the model expects \[97, 32\]/);
    await expect(model.load([{ ...spec, name: 'model.nope' }])).rejects.toThrow(/"model.nope" is not a parameter/);
    await expect(model.load([{ ...spec, file: path.join(dir, 'absent.bin') }])).rejects.toThrow(/absent.bin: No such file/);
    model.dispose();
  });
});
