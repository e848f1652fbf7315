// The sampler (native/model/sampler.cpp): the warps against transformers' logits processors, the
// sampled frequencies against the warped distribution (chi-squared), and per-prompt streams: the
// same seed gives each prompt the same sample whatever the slots or the split of the prompts.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { Model, warpLogits, type GenerateOptions } from '../../lib/native.js';
import { runReferenceJobs } from '../reference/python.js';
import { rng, tinyConfig } from './helpers.js';

const WORK = mkdtempSync(path.join(tmpdir(), 'rpo-sampler-'));
afterAll(() => rmSync(WORK, { recursive: true, force: true }));

const list = (g: { tokens: Int32Array[] }) => g.tokens.map((t) => Array.from(t));

describe('warps', () => {
  it('equal transformers\' repetition penalty, temperature, top-k and top-p processors on the same logits', () => {
    const r = rng(71);
    const rows = 6;
    const vocab = 50;
    // Logits of both signs (the penalty multiplies negative ones), some ties at the top-k edge.
    const logits = Float32Array.from({ length: rows * vocab }, () => Math.round((r() * 8 - 4) * 64) / 64);
    const context = Array.from({ length: rows }, (_, i) => Int32Array.from({ length: 3 + i * 4 }, () => Math.floor(r() * vocab)));
    const cases = [
      { temperature: 0.7, top_k: 0, top_p: 1.0, repetition_penalty: 1.0 },
      { temperature: 1.0, top_k: 7, top_p: 1.0, repetition_penalty: 1.0 },
      { temperature: 1.0, top_k: 0, top_p: 0.8, repetition_penalty: 1.0 },
      { temperature: 1.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.3 },
      { temperature: 1.3, top_k: 12, top_p: 0.9, repetition_penalty: 1.2 },
      { temperature: 0.5, top_k: 3, top_p: 0.5, repetition_penalty: 0.8 },
    ];
    const input = path.join(WORK, 'warps.json');
    writeFileSync(input, JSON.stringify({ logits: Array.from({ length: rows }, (_, i) => Array.from(logits.subarray(i * vocab, (i + 1) * vocab))), context: context.map((c) => Array.from(c)), cases }));
    const [ref] = runReferenceJobs([{ script: 'hf_warps.py', args: ['--input', input] }]) as { warped: (number | null)[][][] }[];
    cases.forEach((c, k) => {
      const ours = warpLogits(logits, context, { temperature: c.temperature, topK: c.top_k, topP: c.top_p, repetitionPenalty: c.repetition_penalty });
      const theirs = ref!.warped[k]!.flat();
      let removed = 0;
      theirs.forEach((v, i) => {
        if (v === null) {
          removed++;
          expect(ours[i], `case ${k}, entry ${i}: removed by transformers`).toBe(-Infinity);
        } else {
          expect(Math.abs(ours[i]! - v), `case ${k}, entry ${i}`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(v)));
        }
      });
      // The top-k / top-p cases remove tokens (so the -inf comparison tests something).
      if (c.top_k > 0 || c.top_p < 1) expect(removed, `case ${k}`).toBeGreaterThan(0);
    });
  });
});

/** The chi-squared statistic's 0.999 quantile with `df` degrees of freedom (Wilson-Hilferty). */
function chiSquaredCritical(df: number): number {
  const z = 3.0902; // the standard normal's 0.999 quantile
  const a = 2 / (9 * df);
  return df * (1 - a + z * Math.sqrt(a)) ** 3;
}

function softmax(x: Float32Array): number[] {
  const m = Math.max(...Array.from(x).filter((v) => v !== -Infinity));
  const e = Array.from(x, (v) => (v === -Infinity ? 0 : Math.exp(v - m)));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

describe('sampling', () => {
  const config = tinyConfig({ vocab_size: 12, initializer_range: 0.5 });

  it('draws first tokens with the warped distribution\'s frequencies (chi-squared), never a removed token', async () => {
    const model = await Model.create(config, { seed: 72 });
    const prompt = Int32Array.from([3, 7, 1, 9]);
    // The prompt's next-token distribution, from the model's logits (not the sampler).
    const all = await model.logits({ rows: 1, seqLen: 4, inputIds: prompt, attentionMask: new Uint8Array(4).fill(1), lossMask: new Uint8Array(4) });
    const last = all.subarray(3 * config.vocab_size, 4 * config.vocab_size);
    const n = 6000;
    for (const settings of [{ temperature: 1.0 }, { temperature: 0.8, topP: 0.9 }, { temperature: 1.5, topK: 5 }] as GenerateOptions[]) {
      const expected = softmax(warpLogits(Float32Array.from(last), [prompt], settings));
      // n copies of the prompt: n independent streams (one per prompt index).
      const r = await model.generate(Array.from({ length: n }, () => prompt), { ...settings, maxNewTokens: 1, seed: 5, slots: 256 });
      const counts = new Array<number>(config.vocab_size).fill(0);
      for (const t of r.tokens) counts[t[0]!]!++;
      let chi = 0;
      let df = -1;
      expected.forEach((p, v) => {
        if (p === 0) {
          expect(counts[v], `token ${v} is removed by the warps`).toBe(0);
          return;
        }
        chi += (counts[v]! - n * p) ** 2 / (n * p);
        df++;
      });
      console.log(`[sampler] ${JSON.stringify(settings)}: chi2 ${chi.toFixed(2)} on ${df} df (0.999 quantile ${chiSquaredCritical(df).toFixed(2)})`);
      expect(df).toBeGreaterThanOrEqual(3);
      expect(chi).toBeLessThan(chiSquaredCritical(df));
    }
    model.dispose();
  });

  it('the same seed gives each prompt the same sample with 1, 7 or 35 slots, and split over two calls', async () => {
    const model = await Model.create(tinyConfig({ initializer_range: 0.2, num_hidden_layers: 3 }), { seed: 73 });
    const r = rng(73);
    const ps = Array.from({ length: 40 }, () => Int32Array.from({ length: 2 + Math.floor(r() * 20) }, () => 1 + Math.floor(r() * 96)));
    const o: GenerateOptions = { maxNewTokens: 20, temperature: 1.2, topP: 0.95, topK: 40, repetitionPenalty: 1.3, stopTokenIds: [5, 17], seed: 11 };
    const one = await model.generate(ps, { ...o, slots: 1 });
    const seven = await model.generate(ps, { ...o, slots: 7 });
    const many = await model.generate(ps, { ...o, slots: 35 });
    expect(list(seven)).toEqual(list(one));
    expect(list(many)).toEqual(list(one));
    expect(seven.finishReasons).toEqual(one.finishReasons);
    // Two ranks' parts: each prompt keeps its index in the whole list.
    const head = await model.generate(ps.slice(0, 13), { ...o, slots: 4 });
    const tail = await model.generate(ps.slice(13), { ...o, slots: 4, firstPromptIndex: 13 });
    expect([...list(head), ...list(tail)]).toEqual(list(one));
    // The draws are the sampler's, not greedy, and the seed matters.
    const greedy = await model.generate(ps, { ...o, doSample: false, slots: 7 });
    expect(list(greedy)).not.toEqual(list(one));
    expect(list(await model.generate(ps, { ...o, seed: 12, slots: 7 }))).not.toEqual(list(one));
    // Without the prompt index in the stream, equal prompts would sample alike.
    const twins = await model.generate([ps[0]!, ps[0]!, ps[0]!], { ...o, slots: 3 });
    expect(new Set(list(twins).map((t) => t.join(','))).size).toBeGreaterThan(1);
    model.dispose();
  });

  it('the repetition penalty changes greedy decoding as transformers\' processor does: a seen token is less likely', async () => {
    const model = await Model.create(tinyConfig({ initializer_range: 0.3, num_hidden_layers: 2 }), { seed: 74 });
    const r = rng(74);
    const ps = Array.from({ length: 8 }, () => Int32Array.from({ length: 6 }, () => 1 + Math.floor(r() * 96)));
    const plain = list(await model.generate(ps, { doSample: false, maxNewTokens: 24 }));
    const penalized = list(await model.generate(ps, { doSample: false, maxNewTokens: 24, repetitionPenalty: 10 }));
    const uncached = list(await model.generate(ps, { doSample: false, maxNewTokens: 24, repetitionPenalty: 10, useCache: false }));
    expect(penalized).toEqual(uncached);
    const repeats = (rows: number[][]) => rows.reduce((s, t) => s + t.length - new Set(t).size, 0);
    expect(repeats(plain)).toBeGreaterThan(0); // random tiny models loop
    expect(repeats(penalized)).toBeLessThan(repeats(plain));
    await expect(model.generate(ps, { maxNewTokens: 2, repetitionPenalty: 0 })).rejects.toThrow(/repetition_penalty/);
    model.dispose();
  });
});
