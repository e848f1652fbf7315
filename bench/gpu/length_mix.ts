// The GPU training bench's rows on a stated length mix (issue 24), drawn once and written to a
// JSON file that the rpo side (train_step.ts --length-mix) and the PyTorch side
// (pytorch_train_step.py --length-mix) both read: the same rows, one author of the draw.
//
// The mix, lognormal per field (median, p90), in tokens, at max_length 1024 (scaled with it):
//   prompts                        120, 600
//   chosen and rejected responses  180, 700
//   rationales                      90, 250
// Rows are cut as `rpo train` cuts them: the prompt to max_prompt_length (max_length / 2), then
// each response or rationale to max_length less its prompt. A pair's rows are
// prompt + chosen, prompt + rejected, prompt + rationale; labels are the response tokens.
//
//   node --import tsx bench/gpu/length_mix.ts --pairs 32 [--max-length 1024] [--seed 24] --out mix.json
//
// The file also states the padding fraction the padded path sees: in micro-batches of
// --micro-pairs (each padded to its longest row, the three row groups of a micro-batch together)
// and in batches of 16 pairs.
import { parseArgs } from 'node:util';

import { mulberry32 } from '../../lib/util/random.js';
import { writeResult } from './common.js';

export const LENGTH_MIX = {
  prompt: { median: 120, p90: 600 },
  response: { median: 180, p90: 700 },
  rationale: { median: 90, p90: 250 },
} as const;

/** z of the standard normal's 90th percentile. */
const Z90 = 1.2815515655446004;

export interface PairLengths {
  prompt: number;
  chosen: number;
  rejected: number;
  rationale: number;
}

export interface LengthMixFile {
  maxLength: number;
  seed: number;
  pairs: PairLengths[];
}

/** `n` pairs' field lengths drawn from the mix at max_length (scaled with it), before any cut. */
export function drawLengths(seed: number, n: number, maxLength: number): PairLengths[] {
  const r = mulberry32(seed);
  const scale = maxLength / 1024;
  const lognormal = (mix: { median: number; p90: number }): number => {
    const sigma = Math.log(mix.p90 / mix.median) / Z90;
    const z = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()); // Box–Muller
    return Math.max(1, Math.round(scale * mix.median * Math.exp(sigma * z)));
  };
  return Array.from({ length: n }, () => ({ prompt: lognormal(LENGTH_MIX.prompt), chosen: lognormal(LENGTH_MIX.response), rejected: lognormal(LENGTH_MIX.response), rationale: lognormal(LENGTH_MIX.rationale) }));
}

/** `n` pairs' field lengths from the mix, cut to max_length as `rpo train` cuts them. */
export function drawPairs(seed: number, n: number, maxLength: number): PairLengths[] {
  return drawLengths(seed, n, maxLength).map((p) => {
    const prompt = Math.min(p.prompt, maxLength / 2);
    const cut = (x: number): number => Math.min(x, maxLength - prompt);
    return { prompt, chosen: cut(p.chosen), rejected: cut(p.rejected), rationale: cut(p.rationale) };
  });
}

/** The rows of pairs [from, from + count): chosen rows, rejected rows, rationale rows; [length, prompt]. */
export function microBatchRows(pairs: readonly PairLengths[], from: number, count: number): { length: number; prompt: number }[] {
  const ps = pairs.slice(from, from + count);
  return [
    ...ps.map((p) => ({ length: p.prompt + p.chosen, prompt: p.prompt })),
    ...ps.map((p) => ({ length: p.prompt + p.rejected, prompt: p.prompt })),
    ...ps.map((p) => ({ length: p.prompt + p.rationale, prompt: p.prompt })),
  ];
}

/** The share of computed positions that are padding when each micro-batch is padded to its longest row. */
export function paddingFraction(pairs: readonly PairLengths[], microPairs: number): number {
  let real = 0;
  let computed = 0;
  for (let i = 0; i < pairs.length; i += microPairs) {
    const rows = microBatchRows(pairs, i, microPairs);
    const longest = Math.max(...rows.map((r) => r.length));
    real += rows.reduce((s, r) => s + r.length, 0);
    computed += rows.length * longest;
  }
  return 1 - real / computed;
}

async function main(): Promise<void> {
  const { values: a } = parseArgs({
    options: {
      pairs: { type: 'string', default: '32' },
      'max-length': { type: 'string', default: '1024' },
      'micro-pairs': { type: 'string', default: '4' },
      seed: { type: 'string', default: '24' },
      out: { type: 'string' },
    },
  });
  const maxLength = Number(a['max-length']);
  const seed = Number(a.seed);
  const pairs = drawPairs(seed, Number(a.pairs), maxLength);
  const many = drawPairs(seed + 1, 16 * 64, maxLength);
  const file: LengthMixFile & Record<string, unknown> = {
    bench: 'length_mix',
    maxLength,
    seed,
    pairs,
    realTokens: pairs.reduce((s, p) => s + 3 * p.prompt + p.chosen + p.rejected + p.rationale, 0),
    paddingFractionMicroBatch: paddingFraction(pairs, Number(a['micro-pairs'])),
    microPairs: Number(a['micro-pairs']),
    paddingFraction16Pairs: paddingFraction(many, 16),
  };
  writeResult(a.out, file);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
