// `rpo compare`: the seed's compare.py for Node. A judge (an OpenAI-compatible chat endpoint)
// picks the better of a candidate's and a baseline's response to each prompt of a samples file;
// the win counts, the binomial test's p-value, the responses' token lengths and the samples'
// config are appended as one JSON line to the results file.
//
// Each comparison shows the two responses in a random order drawn from (seed, comparison index),
// so a judge that prefers a position cannot favour either model, and a restart draws the same
// orders. Every judged comparison is journaled (fsync'd) beside the results file; the same
// command after an interruption judges only what is missing.
import { appendFileSync, closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';

import { seededUint32 } from '../data/batch/shuffle.js';
import type { Tokenizer } from '../data/tokenize/index.js';
import { hashArgs } from '../rationales/journal.js';
import { OpenAIError, OpenAIGenerator } from '../rationales/openai.js';
import { readSamples, textOf } from './samples.js';
import { binomialTwoSidedP } from './stats.js';
import { countTokens } from './token_count.js';
import { DEFAULT_PREFIXES, judgeMessages, parseChoice } from './template.js';

export interface CompareOptions {
  file: string;
  candidateKey: string;
  baselineKey: string;
  historyKey: string;
  labels: string;
  seed: number;
  maxComparisons: number | null;
  resultsFile: string;
  /** The judge's model name (the seed's -j), or local:<model dir or hub id> (the engine, greedy). */
  judge: string;
  /** local judge: auto, cpu, cuda, cuda:N; comparisons per generation batch. */
  device?: string;
  batchSize?: number;
  /** The judge's server root (OpenAI-compatible). */
  baseUrl: string;
  apiKey?: string;
  /** Other secrets to mask in messages. */
  secrets?: readonly string[];
  concurrency: number;
  timeoutMs: number;
  retries: number;
  backoffMs: number;
  /** Counts each response's tokens (with the tokenizer's special tokens, as the seed's tokenizer.encode). */
  tokenizer: Pick<Tokenizer, 'encode'>;
  signal?: AbortSignal;
  onProgress?(done: number, total: number, wins: { candidate: number; baseline: number }): void;
  onReply?(i: number, reply: string): void;
  onRetry?(id: string, message: string, delayMs: number): void;
}

export interface SideResult {
  name: string;
  wins: number;
  lengths: number[];
}

/** The result line: the seed's fields, plus the p-value, the undecided and failed counts. */
export interface CompareResult {
  date: string;
  total: number;
  seed: number;
  exp_name: string;
  judge: string;
  candidate: SideResult;
  baseline: SideResult;
  /** Two-sided exact binomial test of candidate wins among decided comparisons, against 1/2. */
  p_value: number;
  /** Comparisons whose reply named neither response (they count for neither, as the seed's). */
  undecided: number;
  /** Comparisons whose request failed after its retries (counted as undecided, as the seed did). */
  failed: number;
  config: Record<string, unknown> | null;
}

export class CompareInterrupted extends Error {
  override name = 'CompareInterrupted';
}

type Outcome = { i: number; choice: 'candidate' | 'baseline' | null; reply: string } | { i: number; error: string };

/** Whether a journal line is an outcome rpo writes for one of `n` comparisons. */
function isOutcome(v: unknown, n: number): v is Outcome {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  if (typeof o.i !== 'number' || !Number.isInteger(o.i) || o.i < 0 || o.i >= n) return false;
  if ('error' in o) return typeof o.error === 'string';
  return (o.choice === 'candidate' || o.choice === 'baseline' || o.choice === null) && typeof o.reply === 'string';
}

/** The journal of one comparison run: a header line, then one outcome per line. */
class CompareJournal {
  private constructor(
    readonly file: string,
    private readonly fd: number,
    readonly previous: Map<number, Outcome>,
  ) {}

  /**
   * Opens (or starts) the journal of `n` comparisons. A line cut short by a kill (the last one,
   * with no newline) is dropped; any other line that is not what rpo writes is an error naming
   * the file and the line, since counting it would report comparisons that never happened.
   */
  static open(file: string, hash: string, args: Record<string, unknown>, n: number): CompareJournal {
    const previous = new Map<number, Outcome>();
    if (existsSync(file)) {
      const text = readFileSync(file, 'utf8');
      const end = text.lastIndexOf('\n') + 1;
      const lines = text.slice(0, end).split('\n');
      lines.pop(); // after the last newline
      const damaged = (line: number, what: string): Error =>
        new Error(`${file}: line ${line} ${what}; the journal is damaged: remove it to start over (its comparisons are judged again)`);
      const parse = (line: number): unknown => {
        try {
          return JSON.parse(lines[line - 1]!) as unknown;
        } catch {
          throw damaged(line, `is not JSON (${JSON.stringify(lines[line - 1]!.slice(0, 60))})`);
        }
      };
      const header = lines.length > 0 ? (parse(1) as { journal?: unknown; hash?: unknown } | null) : null;
      if (header !== null && (typeof header !== 'object' || header.journal !== 'rpo-compare' || header.hash !== hash)) {
        throw new Error(`${file} is not the journal of this comparison; remove it to start over`);
      }
      for (let line = 2; line <= lines.length; line++) {
        const o = parse(line);
        if (!isOutcome(o, n)) throw damaged(line, `is not a comparison's outcome (an "i" from 0 to ${n - 1} with a "choice" and "reply", or an "error")`);
        previous.set(o.i, o);
      }
      // A line cut short by a kill is dropped; appends go after the last whole line.
      if (end !== text.length) {
        const fd = openSync(file, 'r+');
        ftruncateSync(fd, Buffer.byteLength(text.slice(0, end)));
        closeSync(fd);
      }
      if (!header) appendFileSync(file, JSON.stringify({ journal: 'rpo-compare', hash, args }) + '\n');
      return new CompareJournal(file, openSync(file, 'a'), previous);
    }
    const fd = openSync(file, 'wx');
    writeSync(fd, JSON.stringify({ journal: 'rpo-compare', hash, args }) + '\n');
    fsyncSync(fd);
    return new CompareJournal(file, fd, previous);
  }

  append(outcome: Outcome): void {
    writeSync(this.fd, JSON.stringify(outcome) + '\n');
    fsyncSync(this.fd);
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** Which model sits at each position in comparison i: a fair coin from the generator of (seed, i). */
export function presentationOrder(seed: number, i: number): Array<'candidate' | 'baseline'> {
  const next = seededUint32(seed, i);
  return next() >>> 31 === 1 ? ['baseline', 'candidate'] : ['candidate', 'baseline'];
}

/**
 * The judge as a local model through the engine (greedy, 10 new tokens, batches of
 * o.batchSize): the two user messages joined by a blank line as one user turn of its chat
 * template (or the seed's prefixes), since not every template takes two user turns in a row.
 */
async function judgeLocally(
  model: string,
  queue: readonly number[],
  messagesOf: (i: number) => ReturnType<typeof judgeMessages>,
  o: CompareOptions,
  record: (outcome: Outcome) => void,
  signal: AbortSignal,
): Promise<void> {
  const { LocalGenerator } = await import('../rationales/local.js');
  const gen = await LocalGenerator.open({ model, device: o.device ?? 'auto', dtype: 'auto', batchSize: o.batchSize ?? 8, maxNewTokens: 10, temperature: 0, topP: 1, topK: 0, seed: o.seed });
  try {
    const work = queue.map((i) => ({ i, id: `comparison ${i}`, request: messagesOf(i).map((m) => m.content).join('\n\n') }));
    await gen.run(work, new Set(), (outs) => {
      for (const out of outs) {
        if ('text' in out) {
          const pos = parseChoice(out.text, o.labels);
          o.onReply?.(out.i, out.text);
          record({ i: out.i, choice: pos === null ? null : presentationOrder(o.seed, out.i)[pos]!, reply: out.text });
        } else record({ i: out.i, error: 'error' in out ? out.error : 'the request is longer than the judge model\'s context' });
      }
    }, signal);
  } finally {
    gen.close();
  }
}

export async function runCompare(options: CompareOptions): Promise<CompareResult> {
  const samples = readSamples(options.file);
  if (options.candidateKey === options.baselineKey) throw new Error(`-ck and -bk are both "${options.candidateKey}": compare two different keys`);
  if (samples.rows.length === 0) throw new Error(`${options.file} holds no samples: nothing to compare`);
  const n = options.maxComparisons === null ? samples.rows.length : Math.min(options.maxComparisons, samples.rows.length);
  const rows = samples.rows.slice(0, n).map((r, i) => ({
    history: textOf(options.file, r, i, options.historyKey),
    candidate: textOf(options.file, r, i, options.candidateKey),
    baseline: textOf(options.file, r, i, options.baselineKey),
  }));
  const cfg = samples.config;
  const prefixes = {
    humanPrefix: typeof cfg?.human_prefix === 'string' ? cfg.human_prefix : DEFAULT_PREFIXES.humanPrefix,
    assistantPrefix: typeof cfg?.assistant_prefix === 'string' ? cfg.assistant_prefix : DEFAULT_PREFIXES.assistantPrefix,
  };
  const template = { labels: options.labels, ...prefixes };
  if (options.labels.length < 2 || new Set(options.labels).size !== options.labels.length) throw new Error(`--labels needs two distinct labels, got ${JSON.stringify(options.labels)}`);

  // Everything that decides the outcomes: a restart with other arguments starts its own journal.
  const args = { file: readFileSync(options.file, 'utf8'), ck: options.candidateKey, bk: options.baselineKey, hk: options.historyKey, labels: options.labels, seed: options.seed, n, judge: options.judge, baseUrl: options.baseUrl };
  const hash = hashArgs(args);
  const journal = CompareJournal.open(`${options.resultsFile}.progress-${hash.slice(0, 12)}.jsonl`, hash, { ...args, file: options.file }, n);
  const outcomes = new Map<number, Outcome>([...journal.previous].filter(([, v]) => !('error' in v)));

  const local = options.judge.startsWith('local:') ? options.judge.slice('local:'.length) : null;
  const judge = new OpenAIGenerator({
    baseUrl: options.baseUrl,
    model: options.judge,
    apiKey: options.apiKey,
    secrets: options.secrets,
    concurrency: Math.max(1, options.concurrency),
    timeoutMs: options.timeoutMs,
    retries: options.retries,
    backoffMs: options.backoffMs,
    maxNewTokens: 10, // the seed's max_tokens
    temperature: 0,
    topP: 1,
    topK: 0,
    seed: options.seed,
    onRetry: options.onRetry,
  });
  const wins = () => {
    const w = { candidate: 0, baseline: 0 };
    for (const v of outcomes.values()) if ('choice' in v && v.choice) w[v.choice] += 1;
    return w;
  };
  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let fatal: Error | null = null;
  try {
    const queue = rows.map((_, i) => i).filter((i) => !outcomes.has(i));
    const record = (outcome: Outcome): void => {
      journal.append(outcome);
      outcomes.set(outcome.i, outcome);
      options.onProgress?.(outcomes.size, rows.length, wins());
    };
    if (local !== null) {
      await judgeLocally(local, queue, (i) => judgeMessages(rows[i]!.history, presentationOrder(options.seed, i).map((m) => rows[i]![m]), template), options, record, stop.signal);
    }
    let next = local !== null ? queue.length : 0;
    const worker = async (): Promise<void> => {
      while (!stop.signal.aborted) {
        const i = queue[next++];
        if (i === undefined) return;
        const order = presentationOrder(options.seed, i);
        const r = rows[i]!;
        const messages = judgeMessages(r.history, order.map((m) => r[m]), template);
        let outcome: Outcome;
        try {
          // The seed sent the same seed with every request.
          const c = await judge.complete(`comparison ${i}`, messages, options.seed, stop.signal);
          const pos = parseChoice(c.text, options.labels);
          outcome = { i, choice: pos === null ? null : order[pos]!, reply: c.text };
          options.onReply?.(i, c.text);
        } catch (err) {
          if (stop.signal.aborted) return;
          const e = err as OpenAIError;
          if (e.kind === 'fatal') {
            fatal ??= e;
            stop.abort();
            return;
          }
          outcome = { i, error: e.message };
        }
        record(outcome);
      }
    };
    await Promise.all(Array.from({ length: Math.min(Math.max(1, options.concurrency), Math.max(1, queue.length)) }, worker));
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    journal.close();
  }
  if (fatal) throw fatal;
  if (options.signal?.aborted) throw new CompareInterrupted(`interrupted after ${outcomes.size} of ${rows.length} comparisons; the same command resumes`);

  const w = wins();
  const failed = [...outcomes.values()].filter((v) => 'error' in v).length;
  // A result needs at least one judged comparison: "0 vs 0, p = 1" from a judge that never
  // answered would read as a tie. The journal stays; the same command tries the failed ones again.
  if (failed === rows.length) {
    const first = [...outcomes.values()].find((v): v is Extract<Outcome, { error: string }> => 'error' in v);
    throw new Error(
      `no comparison was judged: all ${rows.length} request(s) to the judge failed (first: ${first?.error ?? '?'}); ` +
        `nothing was appended to ${options.resultsFile}; ${journal.file} keeps them and the same command tries them again`,
    );
  }
  const decided = w.candidate + w.baseline;
  const result: CompareResult = {
    date: new Date().toISOString(),
    total: rows.length,
    seed: options.seed,
    exp_name: samples.expName,
    judge: options.judge,
    candidate: { name: options.candidateKey, wins: w.candidate, lengths: [] },
    baseline: { name: options.baselineKey, wins: w.baseline, lengths: [] },
    p_value: binomialTwoSidedP(w.candidate, decided),
    undecided: rows.length - decided,
    failed,
    config: cfg,
  };
  for (const r of rows) {
    result.candidate.lengths.push(await countTokens(options.tokenizer, r.candidate));
    result.baseline.lengths.push(await countTokens(options.tokenizer, r.baseline));
  }
  appendFileSync(options.resultsFile, JSON.stringify(result) + '\n');
  rmSync(journal.file, { force: true });
  return result;
}
