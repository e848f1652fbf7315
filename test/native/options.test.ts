// Options a caller passes are checked where they cross into the engine: token ids against the
// vocabulary (an out-of-range id is a device assert on CUDA), and every integer option against
// NaN, Infinity, fractions and out-of-range values (a C++ cast of those is undefined behaviour),
// each error naming the option.
import { describe, expect, it } from 'vitest';

import { Model, Trainer, evaluateLoss, type GenerateOptions } from '../../lib/native.js';
import { randomBatch, tinyConfig } from './helpers.js';

const config = tinyConfig(); // vocab_size 97
const SAFE = Number.MAX_SAFE_INTEGER; // 9007199254740991
const INT32 = 2 ** 31 - 1;

describe('generate checks token ids against the vocabulary', () => {
  const prompts = [Int32Array.from([1, 2, 3]), Int32Array.from([4, 5, 6])];
  const greedy: GenerateOptions = { maxNewTokens: 4, doSample: false };

  it('pad, stop and prompt ids outside [0, vocab) are errors naming the option and the vocab size', async () => {
    const model = await Model.create(config, { seed: 51 });
    await expect(model.generate(prompts, { ...greedy, padTokenId: 97 })).rejects.toThrow(
      'generate: padTokenId (pad_token_id) 97 is outside the vocabulary [0, 97) of this model',
    );
    await expect(model.generate(prompts, { ...greedy, stopTokenIds: [5, 200] })).rejects.toThrow(
      'generate: stopTokenIds[1] (eos / stop token) 200 is outside the vocabulary [0, 97) of this model',
    );
    const bad = [prompts[0]!, Int32Array.from([4, 5, 97])];
    await expect(model.generate(bad, greedy)).rejects.toThrow('generate: prompt 1, token 2: id 97 is outside the vocabulary [0, 97) of this model');
    await expect(model.generate([Int32Array.from([-1])], greedy)).rejects.toThrow('generate: prompt 0, token 0: id -1 is outside');
    model.dispose();
  });

  it('the engine checks the same without the TypeScript layer', async () => {
    const model = await Model.create(config, { seed: 52 });
    await expect(model.raw.generate(prompts, { ...greedy, padTokenId: 1000 })).rejects.toThrow(
      'generate: padTokenId (pad_token_id) 1000 is outside the vocabulary [0, 97) of this model',
    );
    await expect(model.raw.generate(prompts, { ...greedy, stopTokenIds: [97] })).rejects.toThrow(
      'generate: stopTokenIds[0] (eos / stop token) 97 is outside the vocabulary',
    );
    await expect(model.raw.generate([Int32Array.from([3, 98])], greedy)).rejects.toThrow('generate: prompt 0, token 1: id 98 is outside');
    // the last id of the vocabulary is fine
    const ok = await model.generate(prompts, { ...greedy, padTokenId: 96, stopTokenIds: [96] });
    expect(ok.tokens).toHaveLength(2);
    model.dispose();
  });
});

describe('integer options refuse NaN, Infinity, fractions and out-of-range values, naming the option', () => {
  const range = (key: string, lo: number, hi: number, got: string) => `\`${key}\` must be an integer from ${lo} to ${hi}, got ${got}`;

  it('generate options', async () => {
    const model = await Model.create(config, { seed: 53 });
    const p = [Int32Array.from([1, 2])];
    const cases: Array<[GenerateOptions, string]> = [
      [{ maxNewTokens: NaN }, range('maxNewTokens', 0, SAFE, 'NaN')],
      [{ maxNewTokens: Infinity }, range('maxNewTokens', 0, SAFE, 'Infinity')],
      [{ maxNewTokens: 2.5 }, range('maxNewTokens', 0, SAFE, '2.5')],
      [{ maxNewTokens: -1 }, range('maxNewTokens', 0, SAFE, '-1')],
      [{ maxNewTokens: 4, maxLength: 1e300 }, range('maxLength', 0, SAFE, '1e+300')],
      [{ maxNewTokens: 4, topK: -Infinity }, range('topK', 0, SAFE, '-Infinity')],
      [{ maxNewTokens: 4, padTokenId: NaN }, range('padTokenId', 0, INT32, 'NaN')],
      [{ maxNewTokens: 4, stopTokenIds: [3, 1.5] }, range('stopTokenIds[1]', 0, INT32, '1.5')],
      [{ maxNewTokens: 4, seed: Infinity }, range('seed', 0, SAFE, 'Infinity')],
      [{ maxNewTokens: 4, seed: -2 }, range('seed', 0, SAFE, '-2')],
    ];
    for (const [options, message] of cases) {
      await expect(model.generate(p, options), JSON.stringify(options)).rejects.toThrow(`generate options: ${message}`);
    }
    // (the TypeScript layer calls this one outside the vocabulary first; the binding's own check,
    // thrown as the raw call converts its options:)
    expect(() => model.raw.generate(p, { maxNewTokens: 4, padTokenId: 2 ** 40 })).toThrow(
      `generate options: ${range('padTokenId', 0, INT32, '1099511627776')}`,
    );
    await expect(model.generate(p, { maxNewTokens: 2, temperature: NaN })).rejects.toThrow(/temperature must be a finite number > 0/);
    await expect(model.generate(p, { maxNewTokens: 2, topP: NaN })).rejects.toThrow(/top_p must be in \(0, 1\]/);
    model.dispose();
  });

  it('trainer, step, log-prob and loss options', async () => {
    const model = await Model.create(config, { seed: 54 });
    expect(() => new Trainer(model, null, { loss: { name: 'sft' }, chunkTokens: Infinity })).toThrow(
      `trainer options: ${range('chunkTokens', 1, SAFE, 'Infinity')}`,
    );
    expect(() => new Trainer(model, null, { loss: { name: 'sft' }, chunkTokens: 0.5 })).toThrow(RangeError);
    const batch = randomBatch(54, { rows: 2, seqLen: 6, vocab: config.vocab_size });
    await expect(model.logprobs(batch, { chunkTokens: NaN })).rejects.toThrow(`log-prob options: ${range('chunkTokens', 1, SAFE, 'NaN')}`);
    const trainer = new Trainer(model, null, { loss: { name: 'sft' } });
    await expect(trainer.microStep(batch, { nPairs: NaN })).rejects.toThrow(`microStep options: ${range('nPairs', 1, INT32, 'NaN')}`);
    await expect(trainer.evalStep(batch, { nPairs: 1e20 })).rejects.toThrow(`evalStep options: ${range('nPairs', 1, INT32, '100000000000000000000')}`);
    await expect(model.logits({ ...batch, rows: 2 ** 33 })).rejects.toThrow(`batch: ${range('rows', 0, INT32, '8589934592')}`);
    const logps = (count: number[]) => ({ sum: Float64Array.of(-1), mean: Float64Array.of(-1), count: Float64Array.from(count) });
    expect(() => evaluateLoss({ name: 'sft' }, { chosen: logps([NaN]) })).toThrow(`evaluateLoss: policy.chosen: ${range('count[0]', 0, SAFE, 'NaN')}`);
    trainer.dispose();
    model.dispose();
  });

  it('model config, init options and tensor specs', async () => {
    await expect(Model.create(tinyConfig({ vocab_size: 1.5 }), {})).rejects.toThrow(`model config: ${range('vocab_size', 0, INT32, '1.5')}`);
    await expect(Model.create(tinyConfig({ max_position_embeddings: Infinity }), {})).rejects.toThrow(
      `model config: ${range('max_position_embeddings', 0, SAFE, 'Infinity')}`,
    );
    await expect(Model.create(tinyConfig({ sliding_window: NaN }), {})).rejects.toThrow(`model config: ${range('sliding_window', 0, SAFE, 'NaN')}`);
    await expect(Model.create(config, { seed: NaN })).rejects.toThrow(`model options: ${range('seed', 0, SAFE, 'NaN')}`);
    const model = await Model.create(config, { seed: 55 });
    const p = model.params()[0]!;
    const spec = { name: p.name, file: '/nonexistent', dtype: 'F32', shape: p.shape, begin: 0, end: p.nbytes };
    await expect(model.load([{ ...spec, begin: NaN }])).rejects.toThrow(`load: tensors[0]: ${range('begin', 0, SAFE, 'NaN')}`);
    await expect(model.load([{ ...spec, shape: [97, 2.5] }])).rejects.toThrow(`load: tensors[0]: ${range('shape[1]', 0, SAFE, '2.5')}`);
    model.dispose();
  });
});
