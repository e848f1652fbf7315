// One rpo case of the packing benchmark (bench/packing.ts) in a process of its own, so its peak
// RSS is its own; prints one JSON line. Kinds:
//   tokenize  the bench's dataset as `rpo train` tokenizes it, written to a pairs file that the
//             PyTorch side (bench/pytorch_case.py, kind train-pairs) reads: the same token ids
//   loop      `rpo train`'s own loop (lib/train/loop.ts) on the dataset: 1 warmup + `steps` timed
//             optimizer steps over the same global batch (all the dataset's pairs), the run
//             config's overrides deciding the side (padded micro-batches of pairs, or packed
//             token-budget micro-batches); reports each step's loss, seconds and real tokens
//             from its metrics.jsonl
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { loadConfig } from '../lib/config/index.js';
import { peakRssBytes } from '../lib/memory.js';
import { setNumThreads } from '../lib/native.js';
import { buildRunData } from '../lib/train/data.js';
import { train } from '../lib/train/loop.js';

/** What both kinds share: the model, the data and the run's fixed settings. */
export interface PackingRun {
  modelDir: string;
  dataDir: string;
  loss: 'dpo' | 'rdpo';
  pairs: number;
  maxLength: number;
  maxPromptLength: number;
  threads: number;
  lr: number;
  /** Where the run directory goes. */
  workDir: string;
}

interface TokenizeCase extends PackingRun {
  kind: 'tokenize';
  out: string;
}

interface LoopCase extends PackingRun {
  kind: 'loop';
  /** The side's own overrides (micro-batches, padding_free). */
  side: string[];
  exp: string;
  steps: number;
}

/**
 * The run's overrides: the bench's model with the tiny preset's fp32 dtypes, one global batch of
 * every pair, AdamW at a constant lr (no warmup), max grad norm 10 (the default), reference
 * log-probs computed once before the steps (as the PyTorch side computes them), no evaluation and
 * no checkpoint.
 */
export function runOverrides(c: PackingRun, exp: string, epochs: number): string[] {
  return [
    'model=tiny',
    `model.name_or_path=${c.modelDir}`,
    `model.max_length=${c.maxLength}`,
    `model.max_prompt_length=${c.maxPromptLength}`,
    `model.batch_size=${c.pairs}`,
    'model.activation_checkpointing=false',
    `datasets=[${c.dataDir}]`,
    `exp_name=${exp}`,
    `cache_dir=${c.workDir}`,
    `loss=${c.loss}`,
    `lr=${c.lr}`,
    'warmup_steps=0',
    `n_epochs=${epochs}`,
    'do_first_eval=false',
    'eval_every=1000000000',
    'n_eval_examples=0',
    'precompute_reference=true',
    'debug=true',
    'overwrite=true',
    'device=cpu',
    'precision=fp32',
    `threads=${c.threads}`,
  ];
}

async function tokenize(c: TokenizeCase) {
  const config = loadConfig({ overrides: runOverrides(c, 'tokenize', 1) }).config;
  const data = await buildRunData(config, { splits: ['train'], withRationale: c.loss === 'rdpo', weights: false });
  const seq = (s: { ids: number[]; promptLength: number }) => ({ ids: s.ids, promptLength: s.promptLength });
  const pairs = data.train.map((ex) => ({ chosen: seq(ex.chosen), rejected: seq(ex.rejected), ...(ex.rationale ? { rationale: seq(ex.rationale) } : {}) }));
  if (pairs.length !== c.pairs) throw new Error(`tokenize: ${pairs.length} pairs, expected ${c.pairs}`);
  // Atomically: the driver reuses the file when it exists.
  writeFileSync(`${c.out}.tmp-${process.pid}`, JSON.stringify({ loss: c.loss, pairs }));
  renameSync(`${c.out}.tmp-${process.pid}`, c.out);
  return { pairs: pairs.length, padTokenId: data.model.tokenizer.padTokenId ?? 0 };
}

async function loop(c: LoopCase) {
  const config = loadConfig({ overrides: [...runOverrides(c, c.exp, 1 + c.steps), ...c.side] }).config;
  mkdirSync(c.workDir, { recursive: true });
  const result = await train(config);
  if (result.step !== 1 + c.steps) throw new Error(`the run trained ${result.step} steps, expected ${1 + c.steps}`);
  const records = readFileSync(path.join(config.local_run_dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>)
    .filter((r) => r.loss !== undefined);
  const timed = records.slice(1);
  const stepTimes = timed.map((r) => r.step_seconds!);
  const stepSeconds = Math.min(...stepTimes); // the machine may be shared: interference only adds time
  // Real tokens of a step: every step trains the same pairs (one global batch of all of them).
  const tokens = Math.round(records[0]!.tokens_per_second! * records[0]!.step_seconds!);
  return {
    impl: 'rpo',
    tokens,
    warmupSeconds: records[0]!.step_seconds,
    stepTimes,
    stepSeconds,
    tokensPerSecond: tokens / stepSeconds,
    losses: records.map((r) => r.loss!),
    gradNorms: records.map((r) => r.grad_norm!),
    // The share of computed positions that were padding, over all the steps (each epoch shuffles the pairs into other micro-batches).
    paddingFraction: records.reduce((a, r) => a + r.padding_fraction!, 0) / records.length,
    microBatches: records.map((r) => r.micro_batches ?? null),
    peakRssBytes: peakRssBytes(),
  };
}

const c = JSON.parse(process.argv[2]!) as TokenizeCase | LoopCase;
if (c.threads) setNumThreads(c.threads);
try {
  console.log(JSON.stringify(c.kind === 'tokenize' ? await tokenize(c) : await loop(c)));
} catch (err) {
  // The driver's table shows the message in the side's FAILED cell (e.g. a config key this
  // checkout does not have yet).
  const message = (err as Error).message.split('\n').slice(0, 3).join(' ');
  process.stderr.write(`${message}\n`);
  console.log(JSON.stringify({ error: message }));
}
