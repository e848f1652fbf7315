// Evaluation samples (sample_during_eval), sharded over the ranks: rank r takes the r-th of
// `world` contiguous parts of the prompts and generates them in one continuous batch, each prompt
// with its index in the whole list (firstPromptIndex), so a prompt's output is the single
// process's whatever the world size; rank 0 gathers the outputs through the rendezvous store, in
// prompt order.
import type { RunConfig } from '../config/index.js';
import { complete, generationSettings, sampleSlots, type Completion, type SamplePrompt, type SampleConfig } from '../eval/sampling.js';
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
  const config: SampleConfig = s.config;
  if (!par.distributed) return complete(s.policy, s.tokenizer, config, prompts, { batchSize: sampleSlots(s.config, s.policy, prompts.length), settings });
  const part = (r: number) => Math.floor((prompts.length * r) / par.worldSize);
  const start = part(par.rank);
  const mine = prompts.slice(start, part(par.rank + 1));
  const out = await complete(s.policy, s.tokenizer, config, mine, { batchSize: sampleSlots(s.config, s.policy, mine.length), settings, firstPromptIndex: start });
  const key = (rank: number) => `rpo/samples/${tag}/${rank}`;
  if (!par.isMain) {
    await par.group!.storeSet(key(par.rank), JSON.stringify(out));
    return null;
  }
  const all: Completion[] = [...out];
  for (let r = 1; r < par.worldSize; r++) all.push(...(JSON.parse(await par.group!.storeGet(key(r))) as Completion[]));
  if (all.length !== prompts.length) throw new Error(`sample_during_eval: the ranks returned ${all.length} samples for ${prompts.length} prompts`);
  return all;
}
