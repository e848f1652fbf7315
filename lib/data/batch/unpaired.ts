// The data side of the seed's unpaired and conditional losses (dataloader.py's
// UnpairedPreferenceDataLoader for KTO, SimpleKTODataLoader for kto-simple,
// ConditionalSFTDataLoader for csft): which examples a preference dataset gives them, how they
// are batched, and each example's weight. Pure functions of formatted text; the losses that
// read them come later.
//
// Every loader here yields full batches only, as the seed's did (each epoch's remainder is left
// out), with each epoch's order a function of (seed, epoch) as the paired batches are.
import type { RowBatch } from '../../native.js';
import { examplesPerEpoch, layoutRows, shuffleInPlace, tokenizeSequence, type SequenceTokenizer, type TokenizeConfig, type TokenizedSequence, type TruncationMode } from './index.js';

/** One preference pair, formatted (the prompt ends with assistant_prefix; responses carry assistant_suffix). */
export interface PairTexts {
  id: string;
  prompt: string;
  chosen: string;
  rejected: string;
  /** Its dataset's truncation end (default: the tokenize config's). */
  truncation_mode?: TruncationMode;
}

/** One example of an unpaired loss: a prompt with one response, desirable (a pair's chosen) or not (its rejected). */
export interface UnpairedExample {
  /** `<pair id>:chosen` or `<pair id>:rejected`. */
  id: string;
  pairId: string;
  prompt: string;
  response: string;
  desirable: boolean;
  truncation_mode?: TruncationMode;
}

export interface UnpairedOptions {
  /** Share of the pairs whose chosen response is kept as a desirable example (the seed's frac_unique_desirable). Default 1. */
  fracUniqueDesirable?: number;
  /** Share of the pairs whose rejected response is kept as an undesirable example (frac_unique_undesirable). Default 1. */
  fracUniqueUndesirable?: number;
}

function checkFraction(name: string, v: number): void {
  if (!(Number.isFinite(v) && v >= 0 && v <= 1)) throw new Error(`${name} must be in [0, 1], got ${v}`);
}

function example(pair: PairTexts, desirable: boolean, prompt = pair.prompt): UnpairedExample {
  const out: UnpairedExample = {
    id: `${pair.id}:${desirable ? 'chosen' : 'rejected'}`,
    pairId: pair.id,
    prompt,
    response: desirable ? pair.chosen : pair.rejected,
    desirable,
  };
  if (pair.truncation_mode !== undefined) out.truncation_mode = pair.truncation_mode;
  return out;
}

/**
 * Each pair → a desirable example (its chosen response) and an undesirable one (its rejected),
 * in pair order. With fractions below 1, only the first ⌈n·frac⌉ pairs give a desirable
 * (undesirable) example — the seed's way of making an imbalanced dataset from paired data
 * (its counts compared `seen < n·frac`).
 */
export function unpairedExamples(pairs: readonly PairTexts[], o: UnpairedOptions = {}): UnpairedExample[] {
  const fd = o.fracUniqueDesirable ?? 1;
  const fu = o.fracUniqueUndesirable ?? 1;
  checkFraction('fracUniqueDesirable', fd);
  checkFraction('fracUniqueUndesirable', fu);
  const allowedDesirable = pairs.length * fd;
  const allowedUndesirable = pairs.length * fu;
  let desirable = 0;
  let undesirable = 0;
  const out: UnpairedExample[] = [];
  for (const p of pairs) {
    if (desirable < allowedDesirable) {
      out.push(example(p, true));
      desirable++;
    }
    if (undesirable < allowedUndesirable) {
      out.push(example(p, false));
      undesirable++;
    }
  }
  return out;
}

export interface UnpairedWeights {
  /** The loss weight of desirable examples (the seed's loss.desirable_weight). Default 1. */
  desirableWeight?: number;
  /** The loss weight of undesirable examples (loss.undesirable_weight). Default 1. */
  undesirableWeight?: number;
}

/** Each example's loss weight: desirableWeight or undesirableWeight by its kind. */
export function exampleWeights(examples: readonly Pick<UnpairedExample, 'desirable'>[], w: UnpairedWeights = {}): Float32Array {
  const d = w.desirableWeight ?? 1;
  const u = w.undesirableWeight ?? 1;
  for (const [name, v] of [['desirableWeight', d], ['undesirableWeight', u]] as const) {
    if (!(Number.isFinite(v) && v >= 0)) throw new Error(`${name} must be a finite number ≥ 0, got ${v}`);
  }
  return Float32Array.from(examples, (e) => (e.desirable ? d : u));
}

export interface EpochOptions {
  /** Examples per batch. */
  batchSize: number;
  seed: number;
  /** Mixed into the shuffle: each epoch its own order. Default 0. */
  epoch?: number;
  /** Default true; false keeps the examples' order (tests, and callers that shuffle themselves). */
  shuffle?: boolean;
}

/** The epoch's examples in order: shuffled by (seed, epoch) unless shuffle is false. */
function epochItems<T>(items: readonly T[], o: EpochOptions): T[] {
  return o.shuffle === false ? [...items] : shuffleInPlace([...items], o.seed, o.epoch ?? 0);
}

/** The epoch's full batches of batchSize (the seed's loaders yielded no smaller one). */
function fullBatches<T>(items: readonly T[], o: EpochOptions): T[][] {
  const order = epochItems(items, o);
  const end = examplesPerEpoch(order.length, o.batchSize, true);
  const out: T[][] = [];
  for (let i = 0; i < end; i += o.batchSize) out.push(order.slice(i, i + o.batchSize));
  return out;
}

/** A KTO batch: its examples, and for each the mismatched (prompt, response) of the KL estimate. */
export interface UnpairedBatchPlan {
  examples: UnpairedExample[];
  /**
   * KL[i] = example i's prompt with example (i + 1) mod n's response: an x with a y' that is not
   * its own, whatever either's kind (the seed's KL pairing within a batch).
   */
  kl: Array<{ prompt: string; response: string; truncation_mode?: TruncationMode }>;
  /** Per example: 1 desirable, 0 undesirable. */
  desirable: Uint8Array;
  /** Per example: its loss weight. */
  weights: Float32Array;
}

/** One epoch of UnpairedPreferenceDataLoader's batches: shuffled, full batches of batchSize, each with its KL pairing and weights. */
export function unpairedBatches(examples: readonly UnpairedExample[], o: EpochOptions & UnpairedWeights): UnpairedBatchPlan[] {
  return fullBatches(examples, o).map((batch) => ({
    examples: batch,
    kl: batch.map((e, i) => {
      const other = batch[(i + 1) % batch.length]!;
      return { prompt: e.prompt, response: other.response, ...(e.truncation_mode !== undefined ? { truncation_mode: e.truncation_mode } : {}) };
    }),
    desirable: Uint8Array.from(batch, (e) => (e.desirable ? 1 : 0)),
    weights: exampleWeights(batch, o),
  }));
}

/**
 * One epoch of SimpleKTODataLoader's batches (kto-simple): half desirable, half undesirable,
 * interleaved [desirable, undesirable, desirable, …]. The shuffled examples are queued by kind;
 * whenever both queues hold batchSize / 2, a batch is taken from their fronts. What is left in
 * the queues at the end of the epoch is not trained. batchSize must be even (the seed's loader
 * failed on an odd one).
 */
export function simpleKtoBatches(examples: readonly UnpairedExample[], o: EpochOptions): UnpairedExample[][] {
  const B = o.batchSize;
  if (!Number.isInteger(B) || B < 2 || B % 2 !== 0) throw new Error(`kto-simple needs an even batch size ≥ 2, got ${B}`);
  const shuffled = epochItems(examples, o);
  const quota = B / 2;
  const good: UnpairedExample[] = [];
  const bad: UnpairedExample[] = [];
  const out: UnpairedExample[][] = [];
  for (const e of shuffled) {
    (e.desirable ? good : bad).push(e);
    if (good.length >= quota && bad.length >= quota) {
      const batch: UnpairedExample[] = [];
      while (batch.length < B) batch.push(good.shift()!, bad.shift()!);
      out.push(batch);
    }
  }
  return out;
}

/** The control tokens of token-conditioned SFT (the seed's csft: Korbak et al. 2023). */
export interface ControlTokens {
  /** Appended to the prompt of a chosen response (the seed's "<|good|>"). */
  chosenControlToken: string;
  /** Appended to the prompt of a rejected response ("<|bad|>"). */
  rejectedControlToken: string;
}

/** The seed's csft control tokens. */
export const CSFT_CONTROL_TOKENS: Readonly<ControlTokens> = { chosenControlToken: '<|good|>', rejectedControlToken: '<|bad|>' };

function checkTokens(t: ControlTokens): void {
  for (const [name, v] of [['chosenControlToken', t.chosenControlToken], ['rejectedControlToken', t.rejectedControlToken]] as const) {
    if (typeof v !== 'string' || v === '') throw new Error(`token-conditioned SFT needs ${name} (the seed's ${name === 'chosenControlToken' ? 'chosen' : 'rejected'}_control_token)`);
  }
}

/**
 * ConditionalSFTDataLoader's examples: each pair → its chosen response after prompt +
 * chosenControlToken and its rejected response after prompt + rejectedControlToken (the token
 * follows the formatted prompt, after assistant_prefix), both trained as SFT targets. The tokens
 * must be tokens of the tokenizer (the seed added them as special tokens and resized the
 * embeddings) for the condition to be one token.
 */
export function conditionalSftExamples(pairs: readonly PairTexts[], tokens: ControlTokens = CSFT_CONTROL_TOKENS): UnpairedExample[] {
  checkTokens(tokens);
  const out: UnpairedExample[] = [];
  for (const p of pairs) {
    out.push(example(p, true, p.prompt + tokens.chosenControlToken));
    out.push(example(p, false, p.prompt + tokens.rejectedControlToken));
  }
  return out;
}

/** One epoch of ConditionalSFTDataLoader's batches: shuffled, full batches of batchSize. */
export function conditionalSftBatches(examples: readonly UnpairedExample[], o: EpochOptions): UnpairedExample[][] {
  return fullBatches(examples, o);
}

/** A prompt to sample from a csft model: the formatted prompt + the chosen control token (only desirable outputs). */
export function conditionalSamplingPrompt(prompt: string, tokens: ControlTokens = CSFT_CONTROL_TOKENS): string {
  checkTokens(tokens);
  return prompt + tokens.chosenControlToken;
}

// ---------------------------------------------------------------------------------------------
// Tokenized

/** A KTO batch as the engine's rows: [target × n, KL × n]. */
export interface UnpairedBatch extends RowBatch {
  nExamples: number;
  exampleIds: string[];
  /** Per row: 0 target, 1 KL. */
  kinds: Uint8Array;
  /** Per example (the first n rows): 1 desirable, 0 undesirable. */
  desirable: Uint8Array;
  /** Per example: its loss weight. */
  weights: Float32Array;
  lengths: Int32Array;
  /** The tokenized rows, in row order (dropped ones included: see `dropped`). */
  sequences: TokenizedSequence[];
  /** Some row kept no response token (its prompt fills max_length). */
  dropped: boolean;
}

export const UNPAIRED_ROW_KIND = { target: 0, kl: 1 } as const;

/**
 * Tokenizes a KTO batch plan (tokenizeSequence: one encoding, EOS appended, the example's own
 * truncation end) and lays it out: the examples' rows first, then their KL rows.
 */
export async function layoutUnpaired(plan: UnpairedBatchPlan, tok: SequenceTokenizer, cfg: TokenizeConfig, o: { padToMultipleOf?: number; padTokenId?: number } = {}): Promise<UnpairedBatch> {
  const withMode = (mode: TruncationMode | undefined): TokenizeConfig => (mode !== undefined ? { ...cfg, truncation_mode: mode } : cfg);
  const sequences = await Promise.all([
    ...plan.examples.map((e) => tokenizeSequence(e.prompt, e.response, tok, withMode(e.truncation_mode))),
    ...plan.kl.map((k) => tokenizeSequence(k.prompt, k.response, tok, withMode(k.truncation_mode))),
  ]);
  const n = plan.examples.length;
  return {
    ...layoutRows(sequences, o.padToMultipleOf ?? 1, o.padTokenId ?? 0),
    nExamples: n,
    exampleIds: plan.examples.map((e) => e.id),
    kinds: Uint8Array.from(sequences, (_, r) => (r < n ? UNPAIRED_ROW_KIND.target : UNPAIRED_ROW_KIND.kl)),
    desirable: plan.desirable,
    weights: plan.weights,
    sequences,
    dropped: sequences.some((s) => s.dropped),
  };
}
