// Generation throughput, rpo: a batch of AlpacaEval-like prompts (the seed's eval: 35 prompts per
// batch, greedy, prompt lengths spread like AlpacaEval's instructions under a chat template:
// median ~40 tokens, a long tail to ~500), every row forced to `--new-tokens` (no stop token, so
// rpo and transformers do the same work). Batched KV-cache generation. Prints a JSON line.
//
//   node --import tsx bench/gpu/generate.ts --model llama-1b [--batch 35] [--new-tokens 256] [--out f.json]
//   node --import tsx bench/gpu/generate.ts --tiny        (CPU smoke test)
import { parseArgs } from 'node:util';

import { Model, cudaAvailable, cudaInfo, cudaMemoryStats, resetCudaPeakMemory, type Dtype } from '../../lib/native.js';
import { HERE, modelShape, rng, writeResult } from './common.js';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string', default: 'llama-1b' },
    tiny: { type: 'boolean', default: false },
    batch: { type: 'string' },
    'new-tokens': { type: 'string' },
    sample: { type: 'boolean', default: false },
    dtype: { type: 'string', default: 'bfloat16' },
    out: { type: 'string' },
  },
});

/**
 * Prompt lengths like AlpacaEval's: log-normal (median e^3.7 ≈ 40 tokens, sigma 0.7), clipped
 * to [8, 512]; ids 3..vocab-1. hf_generate.py draws the same ones (the same mulberry32).
 */
export function alpacaLikePrompts(n: number, vocab: number, seed = 805): Int32Array[] {
  const r = rng(seed);
  const out: Int32Array[] = [];
  for (let i = 0; i < n; i++) {
    // Box-Muller from two uniforms.
    const u1 = Math.max(r(), 1e-12);
    const u2 = r();
    const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    const len = Math.min(512, Math.max(8, Math.round(Math.exp(3.7 + 0.7 * z))));
    out.push(Int32Array.from({ length: len }, () => 3 + Math.floor(r() * (vocab - 3))));
  }
  return out;
}

async function main() {
  const tiny = a.tiny;
  const name = tiny ? 'tiny' : a.model!;
  const batch = Number(a.batch ?? (tiny ? 4 : 35));
  const newTokens = Number(a['new-tokens'] ?? (tiny ? 16 : 256));
  const cuda = cudaAvailable();
  const device = cuda ? 'cuda' : 'cpu';
  const { config } = modelShape(name);
  const prompts = alpacaLikePrompts(batch, config.vocab_size);
  const base = {
    bench: 'generate', impl: 'rpo', model: name, device, gpu: cuda ? cudaInfo().devices[0]?.name ?? null : null,
    dtype: a.dtype, batch, newTokens, sample: a.sample,
    promptTokens: prompts.reduce((s, p) => s + p.length, 0), longestPrompt: Math.max(...prompts.map((p) => p.length)),
  };
  let model: Model | undefined;
  try {
    model = await Model.create(config, { seed: 1, device, dtype: a.dtype as Dtype });
    const options = { maxNewTokens: newTokens, doSample: a.sample, topP: 0.95, temperature: 1, stopTokenIds: [], padTokenId: 0, seed: 1 };
    await model.generate(prompts.slice(0, Math.min(4, batch)), { ...options, maxNewTokens: 8 }); // warm-up
    if (cuda) resetCudaPeakMemory(0);
    const t = performance.now();
    const r = await model.generate(prompts, options);
    const seconds = (performance.now() - t) / 1e3;
    const generated = r.tokens.reduce((s, x) => s + x.length, 0);
    const mem = cuda ? cudaMemoryStats(0) : null;
    writeResult(a.out, {
      ...base, params: model.numParameters, seconds, generatedTokens: generated,
      tokensPerSecond: generated / seconds, msPerStep: (1e3 * seconds) / newTokens,
      peakAllocatedBytes: mem?.peakAllocated ?? null, peakReservedBytes: mem?.peakReserved ?? null,
    });
    console.error(`rpo generate ${name}: ${batch} prompts x ${newTokens} new tokens in ${seconds.toFixed(2)} s, ${(generated / seconds).toFixed(0)} tokens/s`);
    if (generated !== batch * newTokens) console.error(`rpo generate: expected ${batch * newTokens} tokens, got ${generated}`);
  } catch (err) {
    writeResult(a.out, { ...base, error: (err as Error).message.split('\n')[0] });
    process.exitCode = 1;
  } finally {
    model?.dispose();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
void HERE;
