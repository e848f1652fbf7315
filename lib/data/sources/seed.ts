// The seed's loaders with rules of their own (dataloader.py's get_shp, get_hh, get_oasst): which
// records become pairs, and how a conversation becomes turns. Formatting (prefixes, cleaning) is
// not here: rows carry raw text and `turns`, and lib/data/format formats them.
import { createHash } from 'node:crypto';

import { shuffledIndices } from '../batch/shuffle.js';
import { turnsText } from '../format/index.js';
import { recordLocation } from '../read/index.js';
import type { Split, Turn } from '../types.js';
import { optionalNumber, optionalString, requireNumber, requireString, type Located, type MappedRow } from './mapping.js';

/** What a source's rows are made with, besides the records. */
export interface RowContext {
  split: Split;
  /** Seeds the subsampling of sources that subsample (SHP's pair cap). */
  seed: number;
  warn: (message: string) => void;
}

/** Turns the records of one split into rows. */
export type SplitRowsBuilder = (records: AsyncIterable<Located>, ctx: RowContext) => Promise<MappedRow[]>;

// ---------------------------------------------------------------------------------------------
// SHP (stanfordnlp/SHP)

/** SHP train pairs whose score ratio is below this are left out (the seed's MIN_SCORE_RATIO, as SHP's authors advise). */
export const SHP_MIN_SCORE_RATIO = 2;
/** At most this many train pairs per prompt (the seed's MAX_PAIRS_PER_PROMPT). */
export const SHP_MAX_PAIRS_PER_PROMPT = 5;

/**
 * One SHP record: history → prompt; human_ref_A / human_ref_B ordered by `labels` (1: A is
 * preferred). In the train split a pair whose score ratio max(A/B, B/A) is below 2 is left out.
 */
export function shpRow(at: Located, split: Split): MappedRow | null {
  const a = requireNumber(at, 'score_A');
  const b = requireNumber(at, 'score_B');
  const ratio = Math.max(a / b, b / a);
  if (split === 'train' && ratio < SHP_MIN_SCORE_RATIO) return null;
  const refA = requireString(at, 'human_ref_A');
  const refB = requireString(at, 'human_ref_B');
  const aWins = requireNumber(at, 'labels') === 1;
  return { prompt: requireString(at, 'history'), chosen: aWins ? refA : refB, rejected: aWins ? refB : refA };
}

/** A salt for one prompt's subsample: the first 32 bits of its sha256. */
function promptSalt(prompt: string): number {
  return createHash('sha256').update(prompt).digest().readUInt32BE(0);
}

/**
 * At most `max` rows per prompt (the seed's per-prompt pair cap against over-fitting). Which
 * rows are kept is a seeded random choice per prompt, as the seed's random.sample, drawn with
 * rpo's own generator (so not the seed's choice); kept rows stay in their order.
 */
export function capPairsPerPrompt<T extends { prompt: string }>(rows: readonly T[], max: number, seed: number): T[] {
  const byPrompt = new Map<string, number[]>();
  rows.forEach((r, i) => {
    const list = byPrompt.get(r.prompt);
    if (list) list.push(i);
    else byPrompt.set(r.prompt, [i]);
  });
  const keep = new Set<number>();
  for (const [prompt, idx] of byPrompt) {
    if (idx.length <= max) {
      for (const i of idx) keep.add(i);
      continue;
    }
    for (const k of shuffledIndices(idx.length, seed, promptSalt(prompt)).slice(0, max)) keep.add(idx[k]!);
  }
  return rows.filter((_, i) => keep.has(i));
}

export const shpRows: SplitRowsBuilder = async (records, ctx) => {
  const rows: MappedRow[] = [];
  for await (const at of records) {
    const row = shpRow(at, ctx.split);
    if (row) rows.push(row);
  }
  return ctx.split === 'train' ? capPairsPerPrompt(rows, SHP_MAX_PAIRS_PER_PROMPT, ctx.seed) : rows;
};

// ---------------------------------------------------------------------------------------------
// Anthropic HH (Anthropic/hh-rlhf)

// Python's \s on str (what the seed's re.split used): str.isspace() characters.
const PY_SPACE = '[\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const HH_TURN_SPLIT = new RegExp(`${PY_SPACE}*(Human:|Assistant:)${PY_SPACE}+`);
/** Where the last assistant turn, the one the responses answer, begins. */
export const HH_RESPONSE_MARK = '\n\nAssistant: ';

/**
 * An HH transcript ("\n\nHuman: …\n\nAssistant: …\n\nHuman: …\n\nAssistant: ") as turns, split
 * where the seed split it (whitespace, "Human:" or "Assistant:", whitespace). The final empty
 * assistant turn (the one to be answered) is left out: formatting ends every prompt with
 * assistant_prefix. Text before the first marker, if any, is a user turn.
 */
export function hhTurns(transcript: string): Turn[] {
  const parts = transcript.split(HH_TURN_SPLIT);
  const turns: Turn[] = [];
  let i = 0;
  if (parts[0] !== undefined && parts[0] !== '') turns.push({ role: 'user', content: parts[0] });
  i = 1;
  while (i < parts.length) {
    const role: Turn['role'] = parts[i] === 'Assistant:' ? 'assistant' : 'user';
    const content = parts[i + 1] ?? '';
    turns.push({ role, content });
    i += 2;
  }
  const last = turns[turns.length - 1];
  if (last && last.role === 'assistant' && last.content === '') turns.pop();
  return turns;
}

/**
 * One HH record: the prompt is the chosen transcript up to and including its last
 * "\n\nAssistant: "; the responses are what follows it in `chosen` and in `rejected` (cut at the
 * same length, as the seed cut them). A record without that mark is left out with a warning.
 */
export function hhRow(at: Located): MappedRow | null {
  const chosenAll = requireString(at, 'chosen');
  const rejectedAll = requireString(at, 'rejected');
  const mark = chosenAll.lastIndexOf(HH_RESPONSE_MARK);
  if (mark < 0) return null;
  const promptText = chosenAll.slice(0, mark + HH_RESPONSE_MARK.length);
  const turns = hhTurns(promptText);
  return { prompt: turnsText(turns), chosen: chosenAll.slice(promptText.length), rejected: rejectedAll.slice(promptText.length), turns };
}

export const hhRows: SplitRowsBuilder = async (records, ctx) => {
  const rows: MappedRow[] = [];
  const skipped: string[] = [];
  for await (const at of records) {
    const row = hhRow(at);
    if (row) rows.push(row);
    else skipped.push(recordLocation(at.file, at.rec));
  }
  if (skipped.length > 0) {
    ctx.warn(`hh: ${skipped.length} record(s) without "${HH_RESPONSE_MARK.trim()}" in "chosen" left out (${skipped.slice(0, 3).join(', ')}${skipped.length > 3 ? ', …' : ''})`);
  }
  return rows;
};

// ---------------------------------------------------------------------------------------------
// OpenAssistant (OpenAssistant/oasst1)

interface OasstMessage {
  id: string;
  parent: string | null;
  text: string;
  role: string;
  rank: number | null;
}

/**
 * oasst1's message trees as pairs, walked as the seed walks them: English messages only; every
 * message with a rank r ≥ 1 is the rejected response to its parent, and its first sibling (in
 * dataset order) of rank r − 1 the chosen one, so a ranking (a, b, c) gives the pairs (a, b) and
 * (b, c). The prompt is the path from the tree's root to the parent, oldest first (prompter
 * messages as user turns). A message whose better sibling or any ancestor is not English (not in
 * the filtered set) gives no pair, nor does one that is its parent's only English reply.
 */
export function oasstPairs(messages: readonly OasstMessage[]): MappedRow[] {
  const byId = new Map<string, OasstMessage>();
  const children = new Map<string | null, OasstMessage[]>();
  for (const m of messages) {
    byId.set(m.id, m);
    const list = children.get(m.parent);
    if (list) list.push(m);
    else children.set(m.parent, [m]);
  }
  const rows: MappedRow[] = [];
  for (const m of messages) {
    if (m.rank === null || m.rank === 0) continue;
    const siblings = children.get(m.parent) ?? [];
    // The seed looked siblings up in a parent-indexed table: a parent with one English reply
    // gave a row, not a table, and the lookup failed (KeyError): no pair.
    if (siblings.length < 2) continue;
    const better = siblings.find((s) => s.rank === m.rank! - 1);
    if (!better) continue;
    const path: OasstMessage[] = [];
    let parentId = better.parent;
    let broken = false;
    while (parentId !== null) {
      const p = byId.get(parentId);
      if (!p) {
        broken = true;
        break;
      }
      path.push(p);
      parentId = p.parent;
    }
    if (broken) continue;
    const turns: Turn[] = path.reverse().map((p) => ({ role: p.role === 'assistant' ? 'assistant' : 'user', content: p.text }));
    rows.push({ prompt: turnsText(turns), chosen: better.text, rejected: m.text, turns });
  }
  return rows;
}

export const oasstRows: SplitRowsBuilder = async (records) => {
  const messages: OasstMessage[] = [];
  for await (const at of records) {
    if (optionalString(at, 'lang') !== 'en') continue;
    messages.push({
      id: requireString(at, 'message_id'),
      parent: optionalString(at, 'parent_id') ?? null,
      text: requireString(at, 'text'),
      role: requireString(at, 'role'),
      rank: optionalNumber(at, 'rank'),
    });
  }
  return oasstPairs(messages);
};
