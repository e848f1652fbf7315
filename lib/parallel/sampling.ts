// Evaluation samples (sample_during_eval), sharded over the ranks: the prompts are cut into the
// batches one process would run (eval_batch_size prompts, in order), rank r generates batches
// r, r + world, ... with the seed the single process gives that batch (its settings' seed + the
// batch's first index, as complete() does), so each batch's padding, seed and numbers are the
// single process's; rank 0 gathers the outputs through the rendezvous store, in prompt order.
import type { RunConfig } from '../config/index.js';
import { complete, generationSettings, type Completion, type SamplePrompt, type SampleConfig } from '../eval/sampling.js';
import type { Tokenizer } from '../data/tokenize/index.js';
import type { Model } from '../native.js';
import type { Parallel } from './context.js';

export interface ShardedSampleSetup {
  config: RunConfig;
  policy: Model;
  tokenizer: Tokenizer;
  /** The model directory (its generation_config.json, if any). */
  modelDir: string;
}

/**
 * Greedy completions of `prompts`: all of them, in order, on rank 0 (and in a single process);
 * null on the other ranks. Every rank must call it with the same prompts and the same `tag`
 * (unique per call within the job: the store keys are never reused).
 */
export async function sampleSharded(par: Parallel, s: ShardedSampleSetup, prompts: readonly SamplePrompt[], tag: string): Promise<Completion[] | null> {
  const settings = { ...generationSettings(s.modelDir, s.config, s.tokenizer, s.config.seed), doSample: false };
  const batchSize = s.config.model.eval_batch_size;
  const config: SampleConfig = s.config;
  if (!par.distributed) return complete(s.policy, s.tokenizer, config, prompts, { batchSize, settings });
  const mine: { start: number; out: Completion[] }[] = [];
  for (let start = 0, b = 0; start < prompts.length; start += batchSize, b++) {
    if (b % par.worldSize !== par.rank) continue;
    const batch = prompts.slice(start, start + batchSize);
    const out = await complete(s.policy, s.tokenizer, config, batch, { batchSize, settings: { ...settings, seed: (settings.seed ?? 0) + start } });
    mine.push({ start, out });
  }
  const key = (rank: number) => `rpo/samples/${tag}/${rank}`;
  if (!par.isMain) {
    await par.group!.storeSet(key(par.rank), JSON.stringify(mine));
    return null;
  }
  const all = new Array<Completion | undefined>(prompts.length);
  const place = (parts: { start: number; out: Completion[] }[]) => {
    for (const p of parts) p.out.forEach((c, j) => (all[p.start + j] = c));
  };
  place(mine);
  for (let r = 1; r < par.worldSize; r++) place(JSON.parse(await par.group!.storeGet(key(r))) as { start: number; out: Completion[] }[]);
  const missing = all.findIndex((c) => c === undefined);
  if (missing >= 0) throw new Error(`sample_during_eval: no rank returned a sample for prompt ${missing} of ${prompts.length}`);
  return all as Completion[];
}
