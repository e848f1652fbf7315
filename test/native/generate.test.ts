// Generation: the KV cache against recomputing the whole sequence, a batch (a packed prefill,
// slots of different lengths) against one prompt at a time, a sliding window, stop tokens, lengths, seeded sampling.
import { describe, expect, it } from 'vitest';

import { Model } from '../../lib/native.js';
import { rng, tinyConfig } from './helpers.js';

const config = tinyConfig({ initializer_range: 0.2, num_hidden_layers: 3 });

function prompts(seed: number, lengths: number[]): Int32Array[] {
  const r = rng(seed);
  return lengths.map((n) => Int32Array.from({ length: n }, () => 1 + Math.floor(r() * (config.vocab_size - 1))));
}

/** Greedy decoding of one unpadded prompt by full logits at every step, in TS. */
async function greedyByLogits(model: Model, prompt: Int32Array, steps: number): Promise<number[]> {
  const seq = Array.from(prompt);
  const out: number[] = [];
  for (let s = 0; s < steps; s++) {
    const T = seq.length;
    const logits = await model.logits({ rows: 1, seqLen: T, inputIds: Int32Array.from(seq), attentionMask: new Uint8Array(T).fill(1), lossMask: new Uint8Array(T) });
    const last = logits.subarray((T - 1) * config.vocab_size, T * config.vocab_size);
    let best = 0;
    for (let v = 1; v < last.length; v++) if (last[v]! > last[best]!) best = v;
    out.push(best);
    seq.push(best);
  }
  return out;
}

describe('generate', () => {
  it('greedy with the KV cache equals recomputing the whole sequence each step', async () => {
    const model = await Model.create(config, { seed: 51 });
    const ps = prompts(1, [5, 9, 3, 7]);
    const cached = await model.generate(ps, { doSample: false, maxNewTokens: 12 });
    const full = await model.generate(ps, { doSample: false, maxNewTokens: 12, useCache: false });
    expect(cached.tokens.map((t) => Array.from(t))).toEqual(full.tokens.map((t) => Array.from(t)));
    expect(cached.tokens.every((t) => t.length === 12)).toBe(true);
    expect(cached.finishReasons).toEqual(['length', 'length', 'length', 'length']);
    model.dispose();
  });

  it('batches decode as each prompt alone does (full logits at every step)', async () => {
    const model = await Model.create(config, { seed: 52 });
    const ps = prompts(2, [4, 8, 6]);
    const batched = await model.generate(ps, { doSample: false, maxNewTokens: 6 });
    for (let i = 0; i < ps.length; i++) {
      expect(Array.from(batched.tokens[i]!), `prompt ${i}`).toEqual(await greedyByLogits(model, ps[i]!, 6));
    }
    model.dispose();
  });

  it('a sliding window (Mistral) holds in the packed prefill and the decode steps', async () => {
    const windowed = await Model.create({ ...config, architecture: 'MistralForCausalLM', sliding_window: 4 }, { seed: 56 });
    const ps = prompts(6, [9, 3, 6]);
    const batched = await windowed.generate(ps, { doSample: false, maxNewTokens: 6 });
    for (let i = 0; i < ps.length; i++) {
      expect(Array.from(batched.tokens[i]!), `prompt ${i}`).toEqual(await greedyByLogits(windowed, ps[i]!, 6));
    }
    // The window changes the tokens (so the comparison above tests it).
    const full = await Model.create({ ...config, architecture: 'MistralForCausalLM', sliding_window: 0 }, { seed: 56 });
    const unwindowed = await full.generate(ps, { doSample: false, maxNewTokens: 6 });
    expect(unwindowed.tokens.map((t) => Array.from(t))).not.toEqual(batched.tokens.map((t) => Array.from(t)));
    windowed.dispose();
    full.dispose();
  });

  it('stops a row at a stop token, drops it, and keeps the others going', async () => {
    const model = await Model.create(config, { seed: 53 });
    const ps = prompts(3, [5, 5]);
    const free = await model.generate(ps, { doSample: false, maxNewTokens: 8 });
    const stop = free.tokens[0]![2]!;
    const stopped = await model.generate(ps, { doSample: false, maxNewTokens: 8, stopTokenIds: [stop] });
    const firstStop = Array.from(free.tokens[0]!).indexOf(stop);
    expect(Array.from(stopped.tokens[0]!)).toEqual(Array.from(free.tokens[0]!.subarray(0, firstStop)));
    expect(stopped.finishReasons[0]).toBe('stop');
    if (!free.tokens[1]!.includes(stop)) {
      expect(Array.from(stopped.tokens[1]!)).toEqual(Array.from(free.tokens[1]!));
      expect(stopped.finishReasons[1]).toBe('length');
    }
    model.dispose();
  });

  it('maxLength counts each prompt\'s own length (not its batch\'s longest)', async () => {
    const model = await Model.create(config, { seed: 54 });
    const r = await model.generate(prompts(4, [3, 7]), { doSample: false, maxLength: 10 });
    expect(r.tokens.map((t) => t.length)).toEqual([7, 3]);
    expect(r.finishReasons).toEqual(['length', 'length']);
    const none = await model.generate(prompts(4, [10, 2]), { doSample: false, maxLength: 10 });
    expect(none.tokens.map((t) => t.length)).toEqual([0, 8]);
    model.dispose();
  });

  it('sampling is reproducible from a seed; top-k 1 is greedy', async () => {
    const model = await Model.create(config, { seed: 55 });
    const ps = prompts(5, [4, 6, 5]);
    const opts = { maxNewTokens: 10, temperature: 1.5, topP: 0.95, seed: 7 };
    const a = await model.generate(ps, opts);
    const b = await model.generate(ps, opts);
    const c = await model.generate(ps, { ...opts, seed: 8 });
    const flat = (g: typeof a) => g.tokens.flatMap((t) => Array.from(t));
    expect(flat(a)).toEqual(flat(b));
    expect(flat(a)).not.toEqual(flat(c));
    const greedy = await model.generate(ps, { doSample: false, maxNewTokens: 10 });
    const topk1 = await model.generate(ps, { maxNewTokens: 10, topK: 1, seed: 3 });
    expect(flat(topk1)).toEqual(flat(greedy));
    await expect(model.generate(ps, { maxNewTokens: 2, topP: 0 })).rejects.toThrow(/top_p/);
    await expect(model.generate([new Int32Array(0)], { maxNewTokens: 2 })).rejects.toThrow(/prompt 0 is empty/);
    model.dispose();
  });
});
