// The packing benchmark (npm run bench -- --packing; issue 24): rows whose lengths follow a stated
// mix, as real preference data has them, trained three ways on the same rows:
//   rpo packed            `rpo train` with padding_free=true and token-budget micro-batches
//                         (model.tokens_per_micro_batch)
//   rpo padded            `rpo train` with padding_free=false (where the key exists) and
//                         gradient_accumulation_steps micro-batches of equal pair counts, each
//                         padded to its longest row
//   PyTorch eager padded  transformers + PyTorch eager (bench/pytorch_case.py, train-pairs): the
//                         same micro-batches of pairs, padded the same way
// in real (non-padding) tokens per second and peak RSS, with each step's loss compared.
//
// The length mix, lognormal per field (median, p90), in tokens:
//   prompts       120, 600
//   chosen and rejected responses  180, 700
//   rationales     90, 250
// Rows are capped at max_length 1024 (max_prompt_length 512) as `rpo train` cuts them. The bench
// prints the padding fraction a padded batch of 16 pairs sees with this mix (over many batches,
// and for the bench's own global batch).
//
// The dataset is text rpo tokenizes with its own byte-level tokenizer (written into the model
// directory): each field a run of '~', one token per character (no merge joins them), so a field
// of n characters is n tokens, and rpo's prompt format adds its turn markers. The PyTorch side
// reads the token ids rpo made (bench/packing_case.ts, tokenize): the same rows. The speed of a
// step does not depend on which ids it reads.
//
// Every side runs 1 warmup + RPO_BENCH_STEPS optimizer steps over one global batch of all the
// dataset's pairs (RPO_BENCH_PAIRS, 16), AdamW lr 1e-6 (no warmup), clip 10, reference log-probs
// computed once before the steps from the starting weights; tokens/s is of the fastest timed step.
//   RPO_BENCH_PAIRS=16          pairs in the dataset and the global batch
//   RPO_BENCH_ACCUMULATION=4    the padded sides' micro-batches (gradient_accumulation_steps)
//   RPO_BENCH_BUDGET=4096       rpo packed's tokens_per_micro_batch
//   RPO_BENCH_MAX_LENGTH=1024   max_length; the mix scales with it (a quick check: 128)
//   --only llama-100m/dpo,...   cases (shapes llama-100m, smollm2-135m; llama-tiny for checks)
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { isKnownKey } from '../lib/config/schema.js';
import { writeByteLevelTokenizer } from '../lib/model/byte_tokenizer.js';
import { attempt, log, mib, modelDir, ratio, runNode, runPython, SEED, steps, threads } from './cases.js';
import { CACHE, HERE, SHAPES, python } from './common.js';
import type { PackingRun } from './packing_case.js';
import { drawLengths, LENGTH_MIX, type PairLengths } from './gpu/length_mix.js';

const PAIRS = Number(process.env.RPO_BENCH_PAIRS ?? 16);
const ACCUMULATION = Number(process.env.RPO_BENCH_ACCUMULATION ?? 4);
const BUDGET = Number(process.env.RPO_BENCH_BUDGET ?? 4096);
const MAX_LENGTH = Number(process.env.RPO_BENCH_MAX_LENGTH ?? 1024);
const MAX_PROMPT_LENGTH = MAX_LENGTH / 2;
const LR = 1e-6;
const MAX_GRAD_NORM = 10;
/** The batch the padding fraction is stated for. */
const PADDED_BATCH = 16;

/** The bench's pairs: the length mix's draw (bench/gpu/length_mix.ts, shared with the GPU bench), uncut; rowLength cuts. */
const drawPairs = (seed: number, n: number): PairLengths[] => drawLengths(seed, n, MAX_LENGTH);

/**
 * A row's tokens as `rpo train` cuts prompt + response (+ BOS and EOS) to max_length: the prompt
 * to max_prompt_length first when the row is too long, then the response (the seed's rule).
 */
function rowLength(prompt: number, response: number): number {
  let p = prompt + 1;
  let a = response + 1;
  if (p + a > MAX_LENGTH) p = Math.min(p, MAX_PROMPT_LENGTH);
  if (p + a > MAX_LENGTH) a = MAX_LENGTH - p;
  return p + a;
}

/** Real and computed positions of one padded batch: its response rows padded to their longest, its rationale rows to theirs. */
function paddedPositions(rowsByForward: number[][]): { real: number; computed: number } {
  let real = 0;
  let computed = 0;
  for (const rows of rowsByForward) {
    if (rows.length === 0) continue;
    real += rows.reduce((a, b) => a + b, 0);
    computed += rows.length * Math.max(...rows);
  }
  return { real, computed };
}

/** The padding fraction padded batches of `PADDED_BATCH` pairs of the mix see, over `batches` draws (rows by the length rule above, without rpo's turn markers). */
export function mixPadding(rationale: boolean, batches = 2000): number {
  let real = 0;
  let computed = 0;
  for (let b = 0; b < batches; b++) {
    const pairs = drawPairs(SEED + 1000 + b, PADDED_BATCH);
    const response = pairs.flatMap((p) => [rowLength(p.prompt, p.chosen), rowLength(p.prompt, p.rejected)]);
    const rats = rationale ? pairs.map((p) => rowLength(p.prompt, p.rationale)) : [];
    const x = paddedPositions([response, rats]);
    real += x.real;
    computed += x.computed;
  }
  return 1 - real / computed;
}

/** The dataset directory: PAIRS rows of '~' runs drawn from the mix (train), one short row (test, unused). */
function dataDir(): string {
  const dir = path.join(CACHE, `packing-rows-n${PAIRS}-L${MAX_LENGTH}-seed${SEED}`);
  if (existsSync(path.join(dir, 'train.jsonl'))) return dir;
  // Written beside, then renamed: a dataset directory is whole or absent.
  const tmp = `${dir}.tmp-${process.pid}`;
  mkdirSync(tmp, { recursive: true });
  const tilde = (n: number) => '~'.repeat(n);
  const rows = drawPairs(SEED, PAIRS).map((p) => ({ prompt: tilde(p.prompt), chosen: tilde(p.chosen), rejected: tilde(p.rejected), rationale: tilde(p.rationale) }));
  writeFileSync(path.join(tmp, 'test.jsonl'), JSON.stringify({ prompt: '~', chosen: '~', rejected: '~~', rationale: '~' }) + '\n');
  writeFileSync(path.join(tmp, 'train.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  renameSync(tmp, dir);
  return dir;
}

/** The model directory of a shape with rpo's byte-level tokenizer beside the weights (for `rpo train`; the other benches read only the weights). */
function modelWithTokenizer(shape: string): string {
  const dir = modelDir(shape);
  if (!existsSync(path.join(dir, 'tokenizer.json'))) writeByteLevelTokenizer(dir, { modelMaxLength: MAX_LENGTH });
  return dir;
}

interface SideResult {
  error?: string;
  tokens: number;
  stepTimes: number[];
  stepSeconds: number;
  tokensPerSecond: number;
  losses: number[];
  paddingFraction: number;
  microBatches?: (number | null)[];
  peakRssBytes: number | null;
}

const SIDES = ['rpo packed', 'rpo padded', 'PyTorch eager padded'] as const;
type Side = (typeof SIDES)[number];

/** Whether this checkout's config knows padding_free (the packed path's key): until it does, the padded side leaves it out (padding is then the only path). */
const knowsPaddingFree = (): boolean => isKnownKey('padding_free');

/** The padded batch of the bench's own pairs: one global batch of all of them, padded as one. */
function ownBatchPadding(pairsFile: string): number {
  const f = JSON.parse(readFileSync(pairsFile, 'utf8')) as { pairs: { chosen: { ids: number[] }; rejected: { ids: number[] }; rationale?: { ids: number[] } }[] };
  const response = f.pairs.flatMap((p) => [p.chosen.ids.length, p.rejected.ids.length]);
  const rats = f.pairs.flatMap((p) => (p.rationale ? [p.rationale.ids.length] : []));
  const x = paddedPositions([response, rats]);
  return 1 - x.real / x.computed;
}

export function packingBench(only: string | undefined): void {
  const wall0 = performance.now();
  const wanted = only ? new Set(only.split(',').map((s) => s.trim())) : null;
  const names = ['llama-100m', 'smollm2-135m', 'llama-tiny'].flatMap((shape) => (['dpo', 'rdpo'] as const).map((loss) => ({ shape, loss, name: `${shape}/${loss}` })));
  // llama-tiny only when asked for (a quick check of the bench itself).
  const selected = names.filter((c) => (wanted ? wanted.has(c.name) || wanted.has(c.shape) : c.shape !== 'llama-tiny'));
  if (selected.length === 0) throw new Error(`--only matched no case (cases: ${names.map((c) => c.name).join(', ')})`);
  const paddedKey = knowsPaddingFree() ? ['padding_free=false'] : [];
  const data = dataDir();
  const work = path.join(CACHE, 'packing-runs');
  log(`python: ${python()}; cache: ${CACHE}; ${threads} threads; ${steps} timed steps (+1 warmup); ${PAIRS} pairs a step; padded: ${ACCUMULATION} micro-batches; packed: ≤ ${BUDGET} tokens a micro-batch`);
  if (paddedKey.length === 0) log('padding_free is not a config key in this checkout: rpo padded runs without it (the only path), rpo packed fails on it');

  const results: { name: string; label: string; tokenized: string; sides: Partial<Record<Side, SideResult>>; first: Side }[] = [];
  selected.forEach((c, i) => {
    const dir = modelWithTokenizer(c.shape);
    const run: PackingRun = { modelDir: dir, dataDir: data, loss: c.loss, pairs: PAIRS, maxLength: MAX_LENGTH, maxPromptLength: MAX_PROMPT_LENGTH, threads, lr: LR, workDir: work };
    const pairsFile = path.join(CACHE, `packing-pairs-${c.loss}-n${PAIRS}-L${MAX_LENGTH}-seed${SEED}.json`);
    log(`${c.name}:`);
    const tok = existsSync(pairsFile) ? {} : attempt('tokenize', () => runNode({ kind: 'tokenize', ...run, out: pairsFile }, path.join(HERE, 'packing_case.ts')));
    const padTokenId = 0; // rpo's byte-level tokenizer: <pad> is id 0 (lib/model/byte_tokenizer.ts)
    const spec: Record<Side, () => Record<string, unknown>> = {
      'rpo packed': () => runNode({ kind: 'loop', ...run, exp: `${c.shape}-${c.loss}-packed`, steps, side: ['padding_free=true', `model.tokens_per_micro_batch=${BUDGET}`] }, path.join(HERE, 'packing_case.ts')),
      'rpo padded': () => runNode({ kind: 'loop', ...run, exp: `${c.shape}-${c.loss}-padded`, steps, side: [...paddedKey, `model.gradient_accumulation_steps=${ACCUMULATION}`] }, path.join(HERE, 'packing_case.ts')),
      'PyTorch eager padded': () => runPython({ kind: 'train-pairs', modelDir: dir, pairsFile, loss: c.loss === 'rdpo' ? { name: 'rdpo', beta: 0.1, gamma: 0.1 } : { name: 'dpo', beta: 0.1 }, steps, threads, lr: LR, maxGradNorm: MAX_GRAD_NORM, accumulation: ACCUMULATION, padTokenId }),
    };
    // The order rotates from case to case.
    const order = SIDES.map((_, k) => SIDES[(k + i) % SIDES.length]!);
    const sides: Partial<Record<Side, SideResult>> = {};
    if ('error' in tok) {
      for (const s of order) sides[s] = { error: `tokenize: ${String(tok.error)}` } as SideResult;
    } else {
      for (const s of order) sides[s] = attempt(s, spec[s]) as unknown as SideResult;
    }
    const label = `${SHAPES[c.shape]!.label} ${c.loss.toUpperCase()}`;
    results.push({ name: c.name, label, tokenized: pairsFile, sides, first: order[0]! });
  });
  const wall = (performance.now() - wall0) / 1e3;

  console.log(`\nPacking on the CPU: rpo packed (padding_free, ≤ ${BUDGET} tokens a micro-batch) vs rpo padded vs PyTorch eager padded (${ACCUMULATION} micro-batches of ${PAIRS / ACCUMULATION} pairs), fp32, ${threads} threads each, the same rows`);
  console.log(
    `\nLength mix (lognormal; median / p90 tokens at max_length 1024, scaled to ${MAX_LENGTH}): prompts ${LENGTH_MIX.prompt.median} / ${LENGTH_MIX.prompt.p90}, ` +
      `chosen and rejected ${LENGTH_MIX.response.median} / ${LENGTH_MIX.response.p90}, rationales ${LENGTH_MIX.rationale.median} / ${LENGTH_MIX.rationale.p90}; rows capped at ${MAX_LENGTH} (prompt first to ${MAX_PROMPT_LENGTH})`,
  );
  console.log(`A padded batch of ${PADDED_BATCH} pairs of this mix computes ${(100 * mixPadding(false)).toFixed(1)}% padding (chosen + rejected rows), ${(100 * mixPadding(true)).toFixed(1)}% with the rationale rows (mean over 2000 batches)`);
  for (const r of results) if (existsSync(r.tokenized)) console.log(`  ${r.name}: the bench's ${PAIRS} pairs as one padded batch (rpo's tokenization, turn markers included): ${(100 * ownBatchPadding(r.tokenized)).toFixed(1)}% padding`);
  console.log(`\nA step: ${PAIRS} pairs, forward, loss, backward over its micro-batches, clip ${MAX_GRAD_NORM}, AdamW lr ${LR}; real tokens/s of the fastest of ${steps} timed steps after 1 warmup step; losses of every step (warmup first) compared\n`);
  console.log('| case | side | real tokens/s | vs PyTorch | padding computed | micro-batches | peak RSS | vs PyTorch | losses |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  const agree = (a: number, b: number) => Math.abs(a - b) <= 2e-4 + 1e-5 * Math.abs(b);
  for (const r of results) {
    const base = r.sides['PyTorch eager padded'];
    for (const s of SIDES) {
      const x = r.sides[s];
      if (!x || x.error) {
        console.log(`| ${r.label} | ${s} | FAILED | | | | | | ${x?.error ?? ''} |`);
        continue;
      }
      const ok = base && !base.error ? x.losses.every((l, k) => agree(l, base.losses[k]!)) : null;
      const micro = x.microBatches?.every((m) => m !== null) ? x.microBatches.join(', ') : String(ACCUMULATION);
      console.log(
        `| ${r.label} | ${s} | ${x.tokensPerSecond.toFixed(0)} | ${base && !base.error ? ratio(x.tokensPerSecond, base.tokensPerSecond) : 'n/a'} | ${(100 * x.paddingFraction).toFixed(1)}% | ${micro} | ` +
          `${mib(x.peakRssBytes)} | ${base && !base.error ? ratio(x.peakRssBytes, base.peakRssBytes) : 'n/a'} | ${ok === null ? '' : ok ? 'ok' : 'DIFFER'}: ${x.losses.map((l) => l.toPrecision(6)).join('; ')} |`,
      );
    }
  }
  console.log(`\nwall time ${wall.toFixed(0)} s`);
  const outFile = path.join(HERE, 'out', `packing-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(path.dirname(outFile), { recursive: true });
  writeFileSync(outFile, JSON.stringify({ steps, threads, pairs: PAIRS, accumulation: ACCUMULATION, budget: BUDGET, maxLength: MAX_LENGTH, lengthMix: LENGTH_MIX, wallSeconds: wall, results }, null, 1) + '\n');
  log(`results: ${outFile}`);
}
