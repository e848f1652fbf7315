// Generation on the GPU: batched (continuous batching over slots), with the KV cache. In fp32 (TF32 off) greedy
// decoding must give the CPU's tokens, the cache must give what recomputing the whole sequence
// gives, and a batch must decode each prompt as it decodes alone; bf16 must run to the lengths
// asked and honour stop tokens. (initializer_range 0.2: peaked logits, no near-ties to flip.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Model, allowTF32, setAllowTF32 } from '../../lib/native.js';
import { rng, tinyConfig } from '../native/helpers.js';
import { CUDA, DEVICE, DRY_RUN, GRAPHS, announce, withGraphs } from './gpu.js';

announce('generate');
if (CUDA && !GRAPHS) {
  console.warn('test/gpu/generate: the CUDA graph test skipped: the addon was built without CUDA graphs (incomplete CUDA headers at build time: see `npm run build:native` output)');
}

const config = tinyConfig({ initializer_range: 0.2, num_hidden_layers: 3 });

function prompts(seed: number, lengths: number[]): Int32Array[] {
  const r = rng(seed);
  return lengths.map((n) => Int32Array.from({ length: n }, () => 1 + Math.floor(r() * (config.vocab_size - 1))));
}
const asArrays = (ts: Int32Array[]) => ts.map((t) => Array.from(t));

describe.skipIf(!CUDA)('generation on CUDA', () => {
  let tf32 = false;
  beforeAll(() => {
    tf32 = allowTF32();
    setAllowTF32(false);
  });
  afterAll(() => setAllowTF32(tf32));

  it('fp32 greedy: the CPU tokens, cache or no cache, batched or one at a time', async () => {
    const cpu = await Model.create(config, { seed: 61 });
    const gpu = await Model.create(config, { seed: 61, device: DEVICE });
    try {
      const ps = prompts(1, [5, 11, 3, 8]);
      const opts = { doSample: false, maxNewTokens: 12 };
      const onCpu = await cpu.generate(ps, opts);
      const cached = await gpu.generate(ps, opts);
      const full = await gpu.generate(ps, { ...opts, useCache: false });
      expect(asArrays(cached.tokens)).toEqual(asArrays(onCpu.tokens));
      expect(asArrays(full.tokens)).toEqual(asArrays(cached.tokens));
      for (let i = 0; i < ps.length; i++) {
        const alone = await gpu.generate([ps[i]!], opts);
        expect(Array.from(alone.tokens[0]!), `prompt ${i}`).toEqual(Array.from(cached.tokens[i]!));
      }
      expect(cached.finishReasons).toEqual(['length', 'length', 'length', 'length']);
    } finally {
      cpu.dispose();
      gpu.dispose();
    }
  });

  it('bf16: batched sampling runs to the lengths asked and is seeded; greedy stops at stop tokens', async () => {
    const model = await Model.create(config, { seed: 62, device: DEVICE, dtype: 'bfloat16' });
    try {
      const ps = prompts(2, [4, 9, 6, 13, 2]);
      const opts = { doSample: true, topP: 0.95, temperature: 1, maxNewTokens: 16, seed: 7 };
      const a = await model.generate(ps, opts);
      const b = await model.generate(ps, opts);
      expect(asArrays(a.tokens)).toEqual(asArrays(b.tokens)); // the same seed, the same tokens
      expect(a.tokens.every((t) => t.length === 16)).toBe(true);
      for (const t of a.tokens) for (const id of t) expect(id >= 0 && id < config.vocab_size).toBe(true);
      // Stop tokens, greedy (sampling would draw differently once a row has stopped).
      const greedy = { doSample: false, maxNewTokens: 16 };
      const free = await model.generate(ps, greedy);
      const stop = free.tokens[1]![3]!;
      const stopped = await model.generate(ps, { ...greedy, stopTokenIds: [stop] });
      const first = Array.from(free.tokens[1]!).indexOf(stop);
      expect(Array.from(stopped.tokens[1]!)).toEqual(Array.from(free.tokens[1]!.subarray(0, first)));
      expect(stopped.finishReasons[1]).toBe('stop');
    } finally {
      model.dispose();
    }
  });

  it('continuous batching, fp32: 40 prompts on 8 slots, rows ending at varied steps and refilled, give the CPU\'s tokens and each prompt\'s tokens alone', async () => {
    const cpu = await Model.create(config, { seed: 63 });
    const gpu = await Model.create(config, { seed: 63, device: DEVICE });
    try {
      const r = rng(63);
      const ps = Array.from({ length: 40 }, () => Int32Array.from({ length: 2 + Math.floor(r() * 27) }, () => 1 + Math.floor(r() * (config.vocab_size - 1))));
      const free = asArrays((await gpu.generate(ps, { doSample: false, maxNewTokens: 24, slots: 8 })).tokens);
      // Stop tokens: two tokens of the free outputs (rows then end at varied steps), and
      // per-prompt budgets from maxLength.
      const stops = [free[0]![5]!, free[1]![9]!];
      const opts = { doSample: false, maxNewTokens: 24, maxLength: 40, stopTokenIds: stops, slots: 8 };
      const onGpu = await gpu.generate(ps, opts);
      const onCpu = await cpu.generate(ps, opts);
      expect(asArrays(onGpu.tokens)).toEqual(asArrays(onCpu.tokens));
      expect(onGpu.finishReasons).toEqual(onCpu.finishReasons);
      expect(new Set(onGpu.tokens.map((t) => t.length)).size).toBeGreaterThan(4);
      for (let i = 0; i < ps.length; i += 5) {
        const alone = await gpu.generate([ps[i]!], { ...opts, slots: 1 });
        expect(Array.from(alone.tokens[0]!), `prompt ${i}`).toEqual(Array.from(onGpu.tokens[i]!));
      }
      // Sampling: each prompt's stream is the same on any device and for any slot count.
      const sampling = { maxNewTokens: 16, temperature: 1.0, topP: 0.9, repetitionPenalty: 1.2, seed: 3 };
      const s1 = await gpu.generate(ps, { ...sampling, slots: 1 });
      const s7 = await gpu.generate(ps, { ...sampling, slots: 7 });
      expect(asArrays(s7.tokens)).toEqual(asArrays(s1.tokens));
      const sCpu = await cpu.generate(ps, { ...sampling, slots: 7 });
      const same = sCpu.tokens.filter((t, i) => Array.from(t).join() === Array.from(s7.tokens[i]!).join()).length;
      // fp32 logits differ in the last bits between devices; a draw can land on the other side of
      // a boundary, rarely.
      expect(same).toBeGreaterThanOrEqual(36);
    } finally {
      cpu.dispose();
      gpu.dispose();
    }
  });

  it.skipIf(!GRAPHS)('CUDA graphs: replayed decode steps give the eager steps\' tokens (fp32 and bf16, greedy and sampling), rows ending at varied steps and refilled', async () => {
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const model = await Model.create(config, { seed: 66, device: DEVICE, dtype });
      try {
        const r = rng(66);
        const ps = Array.from({ length: 40 }, () => Int32Array.from({ length: 2 + Math.floor(r() * 27) }, () => 1 + Math.floor(r() * (config.vocab_size - 1))));
        const free = asArrays((await withGraphs(false, () => model.generate(ps, { doSample: false, maxNewTokens: 24, slots: 8 }))).tokens);
        const stops = [free[0]![5]!, free[1]![9]!, free[2]![14]!];
        const cases = [
          { name: '8 slots, refilled', doSample: false, maxNewTokens: 24, maxLength: 40, stopTokenIds: stops, slots: 8 },
          { name: 'all at once, compacted', doSample: false, maxNewTokens: 24, maxLength: 40, stopTokenIds: stops },
          { name: 'sampling, 7 slots', doSample: true, topP: 0.9, temperature: 1, repetitionPenalty: 1.2, seed: 3, maxNewTokens: 16, stopTokenIds: stops, slots: 7 },
        ];
        for (const { name, ...opts } of cases) {
          const eager = await withGraphs(false, () => model.generate(ps, opts));
          const graphed = await withGraphs(true, () => model.generate(ps, opts));
          const what = `${dtype}, ${name}`;
          expect(asArrays(graphed.tokens), what).toEqual(asArrays(eager.tokens));
          expect(graphed.finishReasons, what).toEqual(eager.finishReasons);
          // The same shapes ran (CUDA rounds a step's rows and columns up either way), the
          // graphed call from graphs: each shape's first step is eager, its second captured and
          // replayed, the rest replayed.
          expect(graphed.steps, what).toBe(eager.steps);
          expect(graphed.rowSteps, what).toBe(eager.rowSteps);
          expect(eager.graphReplays, what).toBe(0);
          if (!DRY_RUN) expect(graphed.graphReplays, what).toBeGreaterThan(graphed.steps / 2);
          expect(new Set(graphed.tokens.map((t) => t.length)).size, what).toBeGreaterThan(4);
          expect(graphed.finishReasons.filter((f) => f === 'stop').length, what).toBeGreaterThan(3);
        }
      } finally {
        model.dispose();
      }
    }
  });
});
