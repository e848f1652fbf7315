// Tokenization of formatted examples and batching into the engine's RowBatch.
//
// One sequence = formatted prompt + response, encoded ONCE as one string (never two encodings
// concatenated: "\nWell" is not "\n" + "Well" in a BPE vocabulary), without the tokenizer's
// special tokens; then:
//  - BOS: put first when the tokenizer adds one (tokenizer.addBosToken) and the text does not
//    already begin with it (a chat template that writes bos_token itself): never two.
//  - EOS: appended after the response unless the response already ends with it (an
//    assistant_suffix that is the EOS text): exactly one.
//  - The prompt/response boundary comes from the tokens' character spans: the response starts at
//    the first token whose span reaches past the end of the prompt text. A token straddling the
//    boundary (prompt ending in a space, response starting with a word: byte-level BPE makes
//    " Sure" one token) therefore belongs to the response: it is a label, so the response's first
//    word is trained on; the prompt's trailing space it absorbed is not masked out of the loss.
//    (HALOs masked len(encode(prompt)) tokens of encode(prompt + response), which is off by the
//    merges at the boundary.)
//  - Truncation (HALOs' order and rule): when prompt + response + EOS > max_length and the prompt
//    (BOS included) > max_prompt_length, the prompt is cut to max_prompt_length tokens —
//    keep_end keeps BOS and the last max_prompt_length − 1 tokens, keep_start the first
//    max_prompt_length; then, if still too long, the response is cut to
//    max_length − prompt − 1 tokens and EOS appended. EOS is always kept, as HALOs appends it after
//    truncating; unlike HALOs it counts toward max_length, so no row is ever longer than
//    max_length (HALOs' rows could exceed it by the EOS and by re-tokenizing decoded text).
//    Truncation works on the ids of the one encoding: no decode and re-encode (HALOs decoded with
//    skip_special_tokens and lost the template's special tokens).
//  - A sequence whose response keeps no token (the prompt fills max_length) is dropped; an example
//    is dropped when a sequence the batches use is dropped, and counted (tokenStats).
import type { RowBatch } from '../../native.js';
import type { PreferenceRow } from '../types.js';
import { formatExample, formatPair, type FormatConfig } from '../format/index.js';
import type { EncodingWithOffsets, Tokenizer } from '../tokenize/index.js';
import { shuffleInPlace } from './shuffle.js';

export { seededUint32, randomBelow, shuffleInPlace, shuffledIndices } from './shuffle.js';

export type TruncationMode = 'keep_end' | 'keep_start';

export interface TokenizeConfig extends FormatConfig {
  /** Prompt + response + EOS tokens, BOS included. */
  max_length: number;
  /** Prompt tokens kept when truncating (BOS included). */
  max_prompt_length: number;
  /** Default keep_end (HALOs' default). */
  truncation_mode?: TruncationMode;
  /** Tokenize the rationale (when the row has one). Default true. */
  rationale?: boolean;
}

/** What tokenization needs of a tokenizer. */
export type SequenceTokenizer = Pick<Tokenizer, 'encodeWithOffsets' | 'bosTokenId' | 'eosTokenId' | 'addBosToken' | 'applyChatTemplate' | 'maxTokenChars'>;

export interface TokenizedSequence {
  /** [BOS] prompt… response… EOS (after truncation). */
  ids: number[];
  /** Tokens before the response (BOS included): ids[promptLength..] are the labels. */
  promptLength: number;
  /** Length before truncation (a text cut before encoding, encodeBounded: the cut text's, still past max_length). */
  fullLength: number;
  /** Prompt length before truncation (a prompt cut before encoding: the cut prompt's). */
  fullPromptLength: number;
  promptTruncated: boolean;
  responseTruncated: boolean;
  /** promptTruncated || responseTruncated. */
  truncated: boolean;
  /** The response kept no token: the sequence cannot be trained on (its ids are not meaningful). */
  dropped: boolean;
}

export interface TokenizedExample {
  id: string;
  chosen: TokenizedSequence;
  rejected: TokenizedSequence;
  rationale?: TokenizedSequence;
  /** Some sequence was truncated. */
  truncated: boolean;
  /** Some sequence was dropped. */
  dropped: boolean;
}

function checkLimits(cfg: TokenizeConfig): void {
  const { max_length: L, max_prompt_length: P } = cfg;
  if (!Number.isInteger(L) || L < 2) throw new Error(`max_length must be an integer ≥ 2, got ${L}`);
  if (!Number.isInteger(P) || P < 1) throw new Error(`max_prompt_length must be an integer ≥ 1, got ${P}`);
  const mode = cfg.truncation_mode ?? 'keep_end';
  if (mode !== 'keep_end' && mode !== 'keep_start') throw new Error(`truncation_mode must be keep_end or keep_start, got ${String(mode)}`);
}

/**
 * Tokens kept between a cut response's last kept token and the cut. A cut changes only the tokens
 * near it: pre-tokenizers split text by local rules (a regex with one character of lookahead,
 * whitespace, Metaspace) and BPE merges adjacent symbols within a piece, so what lies far after
 * a token cannot change it. 64 whole tokens is far beyond the reach of either.
 */
export const CUT_MARGIN_TOKENS = 64;

/**
 * The response text a sequence can need, cut before encoding (a 20 MB response is otherwise
 * encoded whole, gigabytes of ids and offsets, to keep max_length tokens of it). Only the
 * response's first max_length − 1 tokens can be kept, and each covers at most maxTokenChars
 * characters, so they lie within its first (max_length − 1) · maxTokenChars characters; the cut
 * is (max_length + CUT_MARGIN_TOKENS) · maxTokenChars characters in, twice over (the response's
 * first token may start in the prompt). tokenizeSequence checks that the encoding of the cut text
 * still has CUT_MARGIN_TOKENS response tokens past the ones kept, and otherwise encodes the
 * whole text: the tokens kept are the untruncated path's (test/unit/batch_cut.test.ts).
 */
export function responseCharBound(tok: Pick<SequenceTokenizer, 'maxTokenChars'>, maxLength: number): number {
  return 2 * (maxLength + CUT_MARGIN_TOKENS) * tok.maxTokenChars;
}

/**
 * The encoding of prompt + response, or of a shorter text with the same kept tokens: a response
 * longer than responseCharBound keeps its first that many characters; a prompt longer than
 * twice that keeps as many at each end (keep_start keeps the prompt's first tokens, keep_end
 * BOS, decided by the prompt's start, and its last ones; the response's first tokens follow its
 * end). Each part left must still hold CUT_MARGIN_TOKENS tokens more than any truncation keeps
 * of it, else the whole text is encoded. `cut`: where the response starts in the encoded text.
 */
async function encodeBounded(
  prompt: string,
  response: string,
  tok: SequenceTokenizer,
  cfg: TokenizeConfig,
): Promise<EncodingWithOffsets & { cut: number }> {
  const bound = responseCharBound(tok, cfg.max_length);
  const cutResponse = response.length > bound;
  const cutPrompt = prompt.length > 2 * bound;
  if (!cutResponse && !cutPrompt) return { ...(await tok.encodeWithOffsets(prompt + response)), cut: prompt.length };
  const p = cutPrompt ? prompt.slice(0, bound) + prompt.slice(prompt.length - bound) : prompt;
  const enc = await tok.encodeWithOffsets(p + (cutResponse ? response.slice(0, bound) : response));
  const keep = Math.max(cfg.max_length, cfg.max_prompt_length) + CUT_MARGIN_TOKENS;
  const count = (from: number, to: number) => enc.offsets.filter((o) => o[0] >= from && o[1] <= to).length;
  const whole =
    (cutResponse && count(p.length, Infinity) < keep) ||
    (cutPrompt && (count(0, bound) < keep || count(bound, p.length) < keep));
  if (whole) return { ...(await tok.encodeWithOffsets(prompt + response)), cut: prompt.length };
  return { ...enc, cut: p.length };
}

/** Tokenizes one prompt + response pair as described at the top of this file. */
export async function tokenizeSequence(prompt: string, response: string, tok: SequenceTokenizer, cfg: TokenizeConfig): Promise<TokenizedSequence> {
  checkLimits(cfg);
  const eos = tok.eosTokenId;
  if (eos === null) throw new Error('The tokenizer has no eos_token: rpo needs one to end responses');
  const bos = tok.bosTokenId;
  const { ids, offsets, cut } = await encodeBounded(prompt, response, tok, cfg);
  let split = ids.length;
  for (let i = 0; i < ids.length; i++) {
    if ((offsets[i]?.[1] ?? 0) > cut) {
      split = i;
      break;
    }
  }
  let promptIds = ids.slice(0, split);
  let respIds = ids.slice(split);
  if (tok.addBosToken && bos !== null && promptIds[0] !== bos) promptIds.unshift(bos);
  if (respIds.length > 0 && respIds[respIds.length - 1] === eos) respIds.pop();

  const fullPromptLength = promptIds.length;
  const fullLength = promptIds.length + respIds.length + 1;
  const L = cfg.max_length;
  const M = cfg.max_prompt_length;
  let promptTruncated = false;
  let responseTruncated = false;
  let dropped = false;
  if (promptIds.length + respIds.length + 1 > L && promptIds.length > M) {
    promptTruncated = true;
    if ((cfg.truncation_mode ?? 'keep_end') === 'keep_start') {
      promptIds = promptIds.slice(0, M);
    } else if (bos !== null && promptIds[0] === bos) {
      promptIds = M > 1 ? [bos, ...promptIds.slice(promptIds.length - (M - 1))] : [bos];
    } else {
      promptIds = promptIds.slice(promptIds.length - M);
    }
  }
  if (promptIds.length + respIds.length + 1 > L) {
    responseTruncated = true;
    const budget = L - promptIds.length - 1;
    if (budget <= 0) {
      dropped = true;
      respIds = [];
    } else {
      respIds = respIds.slice(0, budget);
    }
  }
  return {
    ids: [...promptIds, ...respIds, eos],
    promptLength: promptIds.length,
    fullLength,
    fullPromptLength,
    promptTruncated,
    responseTruncated,
    truncated: promptTruncated || responseTruncated,
    dropped,
  };
}

/**
 * A raw prompt and response, formatted (prefixes or chat template: formatPair) and tokenized
 * (tokenizeSequence): what training makes of a row's chosen or rejected response. Scoring a
 * response outside training (Policy.logprob) goes through here to see the same tokens.
 */
export async function tokenizePair(prompt: string, response: string, tok: SequenceTokenizer, cfg: TokenizeConfig): Promise<TokenizedSequence> {
  const f = formatPair(prompt, response, cfg, tok);
  return tokenizeSequence(f.prompt, f.response, tok, cfg);
}

/** Formats (FormatConfig) and tokenizes one row: chosen, rejected and, when present, rationale. */
export async function tokenizeExample(row: PreferenceRow, tok: SequenceTokenizer, cfg: TokenizeConfig): Promise<TokenizedExample> {
  checkLimits(cfg);
  const f = formatExample(row, cfg, tok);
  const wantRationale = f.rationale !== undefined && cfg.rationale !== false;
  const [chosen, rejected, rationale] = await Promise.all([
    tokenizeSequence(f.chosen.prompt, f.chosen.response, tok, cfg),
    tokenizeSequence(f.rejected.prompt, f.rejected.response, tok, cfg),
    wantRationale && f.rationale ? tokenizeSequence(f.rationale.prompt, f.rationale.response, tok, cfg) : Promise.resolve(undefined),
  ]);
  const seqs = rationale ? [chosen, rejected, rationale] : [chosen, rejected];
  const out: TokenizedExample = {
    id: row.id,
    chosen,
    rejected,
    truncated: seqs.some((s) => s.truncated),
    dropped: seqs.some((s) => s.dropped),
  };
  if (rationale) out.rationale = rationale;
  return out;
}

/** tokenizeExample over many rows, `concurrency` rows in flight at a time (order kept). */
export async function tokenizeExamples(
  rows: readonly PreferenceRow[],
  tok: SequenceTokenizer,
  cfg: TokenizeConfig,
  options: { concurrency?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<TokenizedExample[]> {
  const chunk = Math.max(1, options.concurrency ?? 128);
  const out: TokenizedExample[] = [];
  for (let i = 0; i < rows.length; i += chunk) {
    const part = await Promise.all(rows.slice(i, i + chunk).map((r) => tokenizeExample(r, tok, cfg)));
    out.push(...part);
    options.onProgress?.(out.length, rows.length);
  }
  return out;
}

/** A sequence's prompt and response decoded (special tokens kept): for previews and tests. */
export async function decodeSequence(seq: TokenizedSequence, tok: Pick<Tokenizer, 'decode'>): Promise<{ prompt: string; response: string }> {
  const [prompt, response] = await Promise.all([tok.decode(seq.ids.slice(0, seq.promptLength)), tok.decode(seq.ids.slice(seq.promptLength))]);
  return { prompt, response };
}

// ---------------------------------------------------------------------------------------------
// Batches

/** 1: chosen (sft); 2: chosen, rejected; 3: chosen, rejected, rationale (rdpo, rorpo-simple). */
export type Groups = 1 | 2 | 3;

export const ROW_KIND = { chosen: 0, rejected: 1, rationale: 2 } as const;

export interface BatchOptions {
  /** Pairs (examples) per batch. */
  batchSize: number;
  groups: Groups;
  seed: number;
  /** Default true. */
  shuffle?: boolean;
  /** Mixed into the shuffle seed: each epoch its own order. Default 0. */
  epoch?: number;
  /** Round each batch's seqLen up to a multiple of this. */
  padToMultipleOf?: number;
  /** The id in padded positions (masked everywhere). Default 0. */
  padTokenId?: number;
  /** Leave out a last batch smaller than batchSize (HALOs yielded full batches only). Default false. */
  dropLast?: boolean;
}

/**
 * The examples one epoch trains on: all `n`, or with dropLast only the whole batches (the seed's
 * loaders yielded full batches only, so an epoch's last smaller batch was never trained). Throws
 * when dropLast leaves no batch at all.
 */
export function examplesPerEpoch(n: number, batchSize: number, dropLast: boolean): number {
  if (!dropLast) return n;
  if (n < batchSize) {
    throw new Error(
      `model.batch_size=${batchSize} is more than the ${n} training examples: with drop_last=true (the seed's batching: full batches only) ` +
        `an epoch has no batch to train; lower model.batch_size or set drop_last=false`,
    );
  }
  return n - (n % batchSize);
}

/**
 * One epoch's global batches, in order: the items shuffled by (seed, epoch) — the same order
 * makeBatches uses — cut into batches of batchSize; with dropLast a last smaller batch is left
 * out. A function of (items, seed, epoch) alone, so a resumed run sees the same batches.
 */
export function epochOrder<T>(items: readonly T[], o: { batchSize: number; seed: number; epoch: number; dropLast: boolean }): T[][] {
  const shuffled = shuffleInPlace([...items], o.seed, o.epoch);
  const end = examplesPerEpoch(shuffled.length, o.batchSize, o.dropLast);
  const order: T[][] = [];
  for (let i = 0; i < end; i += o.batchSize) order.push(shuffled.slice(i, Math.min(i + o.batchSize, end)));
  return order;
}

export interface Batch extends RowBatch {
  /** Pairs in this batch: rows = nPairs × groups. */
  nPairs: number;
  /** The examples' ids, in pair order. */
  exampleIds: string[];
  /** Per row: ROW_KIND (0 chosen, 1 rejected, 2 rationale). */
  kinds: Uint8Array;
  /** Per row: real tokens (the rest is padding). */
  lengths: Int32Array;
}

function usedSequences(ex: TokenizedExample, groups: Groups): TokenizedSequence[] {
  if (groups === 1) return [ex.chosen];
  if (groups === 2) return [ex.chosen, ex.rejected];
  if (!ex.rationale) throw new Error(`Example ${ex.id} has no rationale, and the loss uses rationales (groups=3)`);
  return [ex.chosen, ex.rejected, ex.rationale];
}

/** The real (non-padding) tokens of the rows `groups` trains of an example: what a token budget counts. */
export function pairTokens(ex: TokenizedExample, groups: Groups): number {
  return usedSequences(ex, groups).reduce((n, s) => n + s.ids.length, 0);
}

/** Whether the batches of `groups` can use the example (no used sequence dropped). */
export function usableFor(ex: TokenizedExample, groups: Groups): boolean {
  return usedSequences(ex, groups).every((s) => !s.dropped);
}

/**
 * One epoch of batches: the usable examples (dropped ones left out), shuffled by (seed, epoch),
 * cut into batches of batchSize pairs, each laid out as rows [chosen × n, rejected × n,
 * rationale × n] for the groups used, right-padded to the batch's longest row.
 * lossMask is 1 on response tokens (EOS included), 0 on prompt and padding.
 */
export function makeBatches(examples: readonly TokenizedExample[], options: BatchOptions): Batch[] {
  const { batchSize, groups } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
  if (groups !== 1 && groups !== 2 && groups !== 3) throw new Error(`groups must be 1, 2 or 3, got ${String(groups)}`);
  const multiple = options.padToMultipleOf ?? 1;
  if (!Number.isInteger(multiple) || multiple < 1) throw new Error(`padToMultipleOf must be a positive integer, got ${multiple}`);
  const padId = options.padTokenId ?? 0;

  const usable = examples.filter((ex) => usableFor(ex, groups));
  const order = [...usable];
  if (options.shuffle ?? true) shuffleInPlace(order, options.seed, options.epoch ?? 0);

  const batches: Batch[] = [];
  for (let start = 0; start < order.length; start += batchSize) {
    const group = order.slice(start, start + batchSize);
    if (group.length < batchSize && options.dropLast) break;
    batches.push(layout(group, groups, multiple, padId));
  }
  return batches;
}

function layout(group: readonly TokenizedExample[], groups: Groups, multiple: number, padId: number): Batch {
  const n = group.length;
  const rows: TokenizedSequence[] = [];
  const kinds: number[] = [];
  const kindOrder: Array<'chosen' | 'rejected' | 'rationale'> = ['chosen', 'rejected', 'rationale'];
  for (let g = 0; g < groups; g++) {
    const kind = kindOrder[g]!;
    for (const ex of group) {
      const seq = ex[kind];
      if (!seq) throw new Error(`Example ${ex.id} has no ${kind}`);
      rows.push(seq);
      kinds.push(ROW_KIND[kind]);
    }
  }
  return { ...layoutRows(rows, multiple, padId), nPairs: n, exampleIds: group.map((ex) => ex.id), kinds: Uint8Array.from(kinds) };
}

/**
 * Sequences as the engine's rows, right-padded to the longest (rounded up to a multiple of
 * `multiple`); lossMask is 1 on response tokens (EOS included), 0 on prompt and padding.
 */
export function layoutRows(rows: readonly TokenizedSequence[], multiple = 1, padId = 0): RowBatch & { lengths: Int32Array } {
  let T = 0;
  for (const s of rows) T = Math.max(T, s.ids.length);
  T = Math.ceil(T / multiple) * multiple;
  const R = rows.length;
  const inputIds = new Int32Array(R * T).fill(padId);
  const attentionMask = new Uint8Array(R * T);
  const lossMask = new Uint8Array(R * T);
  const lengths = new Int32Array(R);
  rows.forEach((s, r) => {
    const base = r * T;
    lengths[r] = s.ids.length;
    for (let t = 0; t < s.ids.length; t++) {
      inputIds[base + t] = s.ids[t]!;
      attentionMask[base + t] = 1;
      // Token 0 has no position before it to be predicted from.
      if (t >= s.promptLength && t > 0) lossMask[base + t] = 1;
    }
  });
  return { rows: R, seqLen: T, inputIds, attentionMask, lossMask, lengths };
}

// ---------------------------------------------------------------------------------------------
// Statistics (rpo data)

export interface LengthStats {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface TokenStats {
  examples: number;
  /** Examples with a dropped sequence (any of those tokenized). */
  dropped: number;
  /** Examples with a truncated sequence. */
  truncated: number;
  droppedByKind: { chosen: number; rejected: number; rationale: number };
  truncatedByKind: { chosen: number; rejected: number; rationale: number };
  /** Lengths after truncation, over the sequences not dropped. */
  lengths: { chosen: LengthStats; rejected: LengthStats; rationale: LengthStats | null; prompt: LengthStats; all: LengthStats };
  /** Lengths before truncation, over all sequences (to choose max_length). */
  fullLengths: { chosen: LengthStats; rejected: LengthStats; rationale: LengthStats | null; prompt: LengthStats; all: LengthStats };
}

/** Nearest-rank percentiles (p in (0, 100]) of `values`; zeros for none. */
export function lengthStats(values: readonly number[]): LengthStats {
  const n = values.length;
  if (n === 0) return { count: 0, mean: 0, p50: 0, p90: 0, p99: 0, max: 0 };
  const sorted = Float64Array.from(values).sort();
  const at = (p: number): number => sorted[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))]!;
  let sum = 0;
  for (const v of values) sum += v;
  return { count: n, mean: sum / n, p50: at(50), p90: at(90), p99: at(99), max: sorted[n - 1]! };
}

export function tokenStats(examples: readonly TokenizedExample[]): TokenStats {
  const kinds = ['chosen', 'rejected', 'rationale'] as const;
  const after: Record<(typeof kinds)[number] | 'prompt', number[]> = { chosen: [], rejected: [], rationale: [], prompt: [] };
  const before: Record<(typeof kinds)[number] | 'prompt', number[]> = { chosen: [], rejected: [], rationale: [], prompt: [] };
  const droppedByKind = { chosen: 0, rejected: 0, rationale: 0 };
  const truncatedByKind = { chosen: 0, rejected: 0, rationale: 0 };
  let dropped = 0;
  let truncated = 0;
  for (const ex of examples) {
    if (ex.dropped) dropped++;
    if (ex.truncated) truncated++;
    for (const k of kinds) {
      const s = ex[k];
      if (!s) continue;
      before[k].push(s.fullLength);
      if (k === 'chosen') before.prompt.push(s.fullPromptLength);
      if (s.dropped) droppedByKind[k]++;
      else {
        after[k].push(s.ids.length);
        if (k === 'chosen') after.prompt.push(s.promptLength);
      }
      if (s.truncated) truncatedByKind[k]++;
    }
  }
  const pack = (m: typeof after): TokenStats['lengths'] => ({
    chosen: lengthStats(m.chosen),
    rejected: lengthStats(m.rejected),
    rationale: m.rationale.length > 0 ? lengthStats(m.rationale) : null,
    prompt: lengthStats(m.prompt),
    all: lengthStats([...m.chosen, ...m.rejected, ...m.rationale]),
  });
  return {
    examples: examples.length,
    dropped,
    truncated,
    droppedByKind,
    truncatedByKind,
    lengths: pack(after),
    fullLengths: pack(before),
  };
}
