// Continuous batching (native/model/generate.cpp): 40 prompts of varied lengths on 8 slots, rows
// finishing at varied steps (stop tokens, per-prompt budgets) and their slots refilled, give each
// prompt exactly the tokens it gets alone, and those the uncached path (the whole sequence
// recomputed every step, no slot cache) gives. Llama, Mistral with a sliding window that cuts in,
// GPTNeoX (which has no sliding window).
import { describe, expect, it } from 'vitest';

import { Model, type GenerateOptions, type ModelConfig } from '../../lib/native.js';
import { rng, tinyConfig } from './helpers.js';

const LLAMA = tinyConfig({ initializer_range: 0.2, num_hidden_layers: 3 });
const MISTRAL = tinyConfig({ initializer_range: 0.2, num_hidden_layers: 3, architecture: 'MistralForCausalLM', sliding_window: 5 });
const NEOX = tinyConfig({ initializer_range: 0.2, num_hidden_layers: 3, architecture: 'GPTNeoXForCausalLM', num_key_value_heads: 4, rotary_pct: 0.5, layer_norm_eps: 1e-5, use_parallel_residual: true });

function prompts(seed: number, vocab: number, count: number): Int32Array[] {
  const r = rng(seed);
  return Array.from({ length: count }, () => Int32Array.from({ length: 2 + Math.floor(r() * 27) }, () => 1 + Math.floor(r() * (vocab - 1))));
}

const list = (g: { tokens: Int32Array[] }) => g.tokens.map((t) => Array.from(t));

/** Where each output ends with `stops` (its first stop token), or -1. */
function stopsAt(free: number[][], stops: readonly number[]): number[] {
  return free.map((out) => out.findIndex((t) => stops.includes(t)));
}

/**
 * Stop tokens that end the free-running outputs at varied steps while leaving a third of them to
 * run to their budget: up to three tokens, each the one that adds the most distinct stop steps
 * while at most 2/3 of the outputs stop.
 */
function stopTokensFor(free: number[][]): number[] {
  const tokens = [...new Set(free.flat())].sort((a, b) => a - b);
  const stops: number[] = [];
  const score = (set: number[]) => {
    const at = stopsAt(free, set);
    const stopped = at.filter((k) => k >= 0).length;
    return stopped > (2 * free.length) / 3 ? -1 : new Set(at).size;
  };
  for (let round = 0; round < 3; round++) {
    let best = -1;
    let bestScore = score(stops);
    for (const t of tokens) {
      if (stops.includes(t)) continue;
      const s = score([...stops, t]);
      if (s > bestScore) [best, bestScore] = [t, s];
    }
    if (best < 0) break;
    stops.push(best);
  }
  return stops;
}

async function checkArchitecture(config: ModelConfig, seed: number): Promise<void> {
  const model = await Model.create(config, { seed });
  try {
    const ps = prompts(seed, config.vocab_size, 40);
    const free = list(await model.generate(ps, { doSample: false, maxNewTokens: 24, slots: 8 }));
    // Budgets vary with the prompt (max_length counts each prompt's own length), stops with the tokens.
    const options: GenerateOptions = { doSample: false, maxNewTokens: 24, maxLength: 40, stopTokenIds: stopTokensFor(free), slots: 8 };
    const batched = await model.generate(ps, options);
    const alone: number[][] = [];
    const reasons: string[] = [];
    for (const p of ps) {
      const r = await model.generate([p], { ...options, slots: 1 });
      alone.push(Array.from(r.tokens[0]!));
      reasons.push(r.finishReasons[0]!);
    }
    const uncached = await model.generate(ps, { ...options, useCache: false });
    // The test is only worth something if rows end at many different steps, both ways.
    const lengths = new Set(alone.map((t) => t.length));
    expect(lengths.size, `output lengths ${[...lengths].join(',')}`).toBeGreaterThanOrEqual(6);
    expect(reasons.filter((r) => r === 'stop').length).toBeGreaterThanOrEqual(5);
    expect(reasons.filter((r) => r === 'length').length).toBeGreaterThanOrEqual(5);
    ps.forEach((p, i) => {
      expect(list(batched)[i], `prompt ${i} (${p.length} tokens): 8 slots vs alone`).toEqual(alone[i]);
      expect(batched.finishReasons[i], `prompt ${i}`).toBe(reasons[i]);
      expect(list(uncached)[i], `prompt ${i}: uncached vs alone`).toEqual(alone[i]);
      expect(uncached.finishReasons[i], `prompt ${i}`).toBe(reasons[i]);
      expect(alone[i]!.length).toBeLessThanOrEqual(Math.min(24, 40 - p.length));
    });
  } finally {
    model.dispose();
  }
}

describe('continuous batching, greedy', () => {
  it('Llama: 40 prompts on 8 slots give each prompt its tokens alone', async () => {
    await checkArchitecture(LLAMA, 61);
  });

  it('Mistral with a sliding window shorter than the prompts: the same', async () => {
    await checkArchitecture(MISTRAL, 62);
  });

  it('GPTNeoX: the same', async () => {
    await checkArchitecture(NEOX, 63);
  });

  it('the sliding window is in effect (the windowed model decodes differently without it)', async () => {
    const ps = prompts(62, MISTRAL.vocab_size, 40);
    const windowed = await Model.create(MISTRAL, { seed: 62 });
    const full = await Model.create({ ...MISTRAL, sliding_window: 0 }, { seed: 62 });
    const o = { doSample: false, maxNewTokens: 16, slots: 8 };
    expect(list(await windowed.generate(ps, o))).not.toEqual(list(await full.generate(ps, o)));
    windowed.dispose();
    full.dispose();
  });

  it('more slots than prompts, one slot, and slots 0 (all at once) agree', async () => {
    const model = await Model.create(LLAMA, { seed: 64 });
    const ps = prompts(64, LLAMA.vocab_size, 6);
    const o = { doSample: false, maxNewTokens: 10 };
    const all = list(await model.generate(ps, o));
    expect(list(await model.generate(ps, { ...o, slots: 1 }))).toEqual(all);
    expect(list(await model.generate(ps, { ...o, slots: 50 }))).toEqual(all);
    await expect(model.generate(ps, { ...o, slots: -1 })).rejects.toThrow(/slots/);
    model.dispose();
  });

  it('finished rows leave the computed batch: a decode step computes the running rows only (all at once, and after the queue empties)', async () => {
    const model = await Model.create(LLAMA, { seed: 66 });
    try {
      const ps = prompts(66, LLAMA.vocab_size, 40);
      const free = list(await model.generate(ps, { doSample: false, maxNewTokens: 24, slots: 8 }));
      const options: GenerateOptions = { doSample: false, maxNewTokens: 24, maxLength: 40, stopTokenIds: stopTokensFor(free) };
      for (const slots of [0, 8, 13]) {
        const r = await model.generate(ps, { ...options, slots });
        // Token choices: each prompt's answer and, when it stopped, its stop token; the prefill
        // makes each prompt's first, every decode step one per row it computes.
        const choices = r.tokens.map((t, i) => t.length + (r.finishReasons[i] === 'stop' ? 1 : 0));
        expect(new Set(choices).size, `slots ${slots}: varied lengths`).toBeGreaterThanOrEqual(6);
        expect(r.rowSteps, `slots ${slots}`).toBe(choices.reduce((a, b) => a + b, 0) - ps.length);
        expect(r.graphReplays).toBe(0);
        if (slots === 0) expect(r.steps).toBe(Math.max(...choices) - 1); // one step per token of the longest answer
        expect(list(r), `slots ${slots}`).toEqual(list(await model.generate(ps, { ...options, slots: 1 })));
      }
    } finally {
      model.dispose();
    }
  });

  it('promptMaxNewTokens gives each prompt its own budget: its free answer cut there', async () => {
    const model = await Model.create(LLAMA, { seed: 67 });
    try {
      const ps = prompts(67, LLAMA.vocab_size, 12);
      const free = list(await model.generate(ps, { doSample: false, maxNewTokens: 20 }));
      const budgets = ps.map((_, i) => 1 + ((i * 7) % 20));
      const r = await model.generate(ps, { doSample: false, promptMaxNewTokens: budgets, slots: 5 });
      expect(list(r)).toEqual(free.map((t, i) => t.slice(0, budgets[i])));
      expect(r.finishReasons.every((f) => f === 'length')).toBe(true);
      await expect(model.generate(ps, { doSample: false, promptMaxNewTokens: budgets.slice(1) })).rejects.toThrow(/promptMaxNewTokens has 11 entries for 12 prompts/);
    } finally {
      model.dispose();
    }
  });

  it('reports progress while it runs, and the finished prompts and tokens at the end', async () => {
    const model = await Model.create(LLAMA, { seed: 65 });
    const ps = prompts(65, LLAMA.vocab_size, 40);
    const seen: { prompts: number; tokens: number }[] = [];
    const r = await model.generate(ps, { doSample: false, maxNewTokens: 64, slots: 4 }, (p) => seen.push(p), 5);
    expect(seen.length).toBeGreaterThan(0);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.prompts).toBeGreaterThanOrEqual(seen[i - 1]!.prompts);
    const final = model.raw.generateProgress()!;
    expect(final.prompts).toBe(40);
    expect(final.tokens).toBe(r.tokens.reduce((s, t) => s + t.length, 0));
    model.dispose();
  });
});
