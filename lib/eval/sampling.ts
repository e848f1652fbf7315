// Text in, text out: formatted prompts through the engine's batched generation.
import { existsSync, readFileSync } from 'node:fs';
import { freemem } from 'node:os';
import path from 'node:path';

import type { RunConfig } from '../config/index.js';
import { formatPrompt, type FormatConfig } from '../data/format/index.js';
import type { Tokenizer } from '../data/tokenize/index.js';
import type { Turn } from '../data/types.js';
import { lossUsesControlTokens } from '../loss/table.js';
import { cudaMemoryStats, type GenerateOptions, type Model } from '../native.js';
import { shapeOf } from '../plan/estimate.js';
import { slotsThatFit } from '../plan/generation.js';

/** Sampling settings: the model's generation_config.json, then the run config (top_p as the seed). */
export function generationSettings(modelDir: string, config: RunConfig, tok: Tokenizer, seed: number): GenerateOptions {
  let fromModel: Record<string, unknown> = {};
  const file = path.join(modelDir, 'generation_config.json');
  if (existsSync(file)) fromModel = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const num = (k: string): number | undefined => (typeof fromModel[k] === 'number' ? (fromModel[k] as number) : undefined);
  return {
    // The seed sampled (do_sample=True) with max_length = model.max_length, prompt included.
    doSample: true,
    maxLength: config.model.max_length,
    temperature: num('temperature') ?? 1.0,
    topK: num('top_k') ?? 0,
    topP: config.top_p,
    stopTokenIds: [...tok.stopTokenIds],
    padTokenId: tok.padTokenId ?? 0,
    seed,
  };
}

/**
 * The slots a sampling run decodes at once: model.eval_batch_size, or for 'auto' as many as fit
 * in the memory free now (the weights loaded) by lib/plan/generation.ts's arithmetic, at most
 * one per prompt.
 */
export function sampleSlots(config: RunConfig, model: Model, prompts: number): number {
  const b = config.model.eval_batch_size;
  if (b !== 'auto') return b;
  const cuda = /^cuda(?::(\d+))?$/.exec(model.device);
  const freeBytes = cuda ? cudaMemoryStats(Number(cuda[1] ?? 0)).free : freemem();
  const e = model.dtype === 'float32' ? 4 : 2;
  return slotsThatFit(shapeOf(model.config), { maxLength: config.model.max_length, e, freeBytes, prompts: Math.max(1, prompts) });
}

/**
 * What to sample a response to: a prompt's text, or a row with it and, for a multi-turn row (hh,
 * oasst), the conversation before the response (PreferenceRow.turns), which training formats turn
 * by turn instead of the text.
 */
export type SamplePrompt = string | { prompt: string; turns?: readonly Turn[]; remove_extra_spaces?: boolean };

/** A dataset row as a sample prompt: its text, its turns and its dataset's cleaning trait. */
export function rowPrompt(row: { prompt: string; turns?: readonly Turn[] }, removeExtraSpaces: boolean): SamplePrompt {
  return { prompt: row.prompt, ...(row.turns ? { turns: row.turns } : {}), remove_extra_spaces: removeExtraSpaces };
}

/** The run config, and whether the prompts' dataset is cleaned (its remove_extra_spaces trait, as in training). */
export type SampleConfig = RunConfig & Pick<FormatConfig, 'remove_extra_spaces'>;

/**
 * Prompt token ids for generation: the prompt formatted as in training (prefixes or chat
 * template; a row's turns as training formats them), encoded with the tokenizer's special tokens
 * (one BOS), cut to max_prompt_length keeping its end (the part next to the response).
 */
export async function encodePrompt(prompt: SamplePrompt, config: SampleConfig, tok: Tokenizer): Promise<Int32Array> {
  const p = typeof prompt === 'string' ? { prompt } : prompt;
  // Prompts of several datasets in one call: each is cleaned by its own dataset's trait.
  const cfg = 'remove_extra_spaces' in p && p.remove_extra_spaces !== undefined ? { ...config, remove_extra_spaces: p.remove_extra_spaces } : config;
  const text = formatPrompt(p.prompt, cfg, tok, p.turns);
  // Encode bare, then put exactly one BOS first when the tokenizer uses one: a chat template
  // may already spell it out, and encoding with special tokens would then add a second.
  let ids = await tok.encode(text, { addSpecialTokens: false });
  if (tok.addBosToken && tok.bosTokenId !== null && ids[0] !== tok.bosTokenId) ids = [tok.bosTokenId, ...ids];
  // csft samples desirable outputs: the chosen control token after the prompt (the seed's recipe).
  const control = lossUsesControlTokens(config.loss.name) ? controlTokenId(config, tok) : null;
  const max = config.model.max_prompt_length - (control === null ? 0 : 1);
  if (ids.length > max) {
    const bos = tok.bosTokenId !== null && ids[0] === tok.bosTokenId;
    ids = bos ? [ids[0]!, ...ids.slice(ids.length - (max - 1))] : ids.slice(ids.length - max);
  }
  if (control !== null) ids.push(control);
  return Int32Array.from(ids);
}

function controlTokenId(config: RunConfig, tok: Tokenizer): number {
  const token = config.loss.chosen_control_token ?? '';
  const id = tok.tokenToId(token);
  if (id === null) throw new Error(`loss=csft: the tokenizer in ${tok.dir} has no ${JSON.stringify(token)} token (sample from a csft checkpoint, whose tokenizer has it)`);
  return id;
}

export interface Completion {
  prompt: string;
  output: string;
  finishReason: 'stop' | 'length';
  tokens: number;
}

/** Progress of a complete() call: prompts finished of `total`, their tokens, seconds so far. */
export interface SampleProgress {
  done: number;
  total: number;
  tokens: number;
  seconds: number;
}

/**
 * Generates for every prompt in one continuous batch of `batchSize` slots (a finished prompt's
 * slot takes the next); outputs decoded without special tokens. Prompt i samples from the stream
 * of (seed, firstPromptIndex + i), so its output depends on neither the slots nor the split of the
 * prompts over calls or ranks.
 */
export async function complete(
  model: Model,
  tok: Tokenizer,
  config: SampleConfig,
  prompts: readonly SamplePrompt[],
  opts: { batchSize: number; settings: GenerateOptions; firstPromptIndex?: number; onProgress?: (p: SampleProgress) => void },
): Promise<Completion[]> {
  if (prompts.length === 0) return [];
  const encoded = await Promise.all(prompts.map((p) => encodePrompt(p, config, tok)));
  const started = performance.now();
  const progress = (done: number, tokens: number) => opts.onProgress?.({ done, total: prompts.length, tokens, seconds: (performance.now() - started) / 1000 });
  const r = await model.generate(
    encoded,
    { ...opts.settings, slots: opts.batchSize, firstPromptIndex: opts.firstPromptIndex ?? 0 },
    (p) => progress(p.prompts, p.tokens),
  );
  const out: Completion[] = [];
  let tokens = 0;
  for (let j = 0; j < prompts.length; j++) {
    const ids = Array.from(r.tokens[j]!);
    tokens += ids.length;
    const p = prompts[j]!;
    out.push({ prompt: typeof p === 'string' ? p : p.prompt, output: (await tok.decode(ids, { skipSpecialTokens: true })).trim(), finishReason: r.finishReasons[j]!, tokens: ids.length });
  }
  progress(prompts.length, tokens);
  return out;
}
