// `rpo rationales`: any preference dataset rpo reads becomes an RDPO-ready one. For each split,
// every (prompt, chosen, rejected) pair goes to a generator (the local engine or an
// OpenAI-compatible server) with a prompt that says which response was preferred and asks why;
// the answers that pass the filters become the `rationale` column of a dataset in the
// orcaratspec schema (output.ts), with a sidecar recording how it was made.
//
// Resumable (journal.ts): outcomes are journaled as they arrive; a restart with the same
// arguments continues where the last run stopped; the split's file is written atomically at the
// end and the journal removed. A completed split is not generated again (--overwrite does).
//
// Nothing a user owns is lost or exposed:
// - --out may not be, sit inside, or contain the dataset (paths.ts), and --overwrite removes only
//   the files rpo wrote (output.ts: surveyOutDir decides by content, not by name).
// - The API key and the hub token are masked (lib/util/redact.ts) in everything that leaves
//   this module: notices, progress and warning lines, thrown errors, the journal, the sidecar, and
//   the generated rationales themselves (a server can echo the key in its completion).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';

import { writeFileAtomic } from '../util/files.js';
import { hubToken } from '../hub/index.js';
import { packageVersion } from '../util/package.js';
import { makeRedactor, redactDeep, redactError, type Redactor } from '../util/redact.js';
import { loadPreferenceSplit, type ColumnMap } from '../data/sources/index.js';
import type { PreferenceRow, Split } from '../data/types.js';
import type { Dtype } from '../native.js';
import { FILTER_REASONS, filterReason, type FilterOptions } from './filters.js';
import type { Generator, GeneratorOutcome, WorkRow } from './generator.js';
import { Journal, ResumeMismatchError, differingKeys, hashArgs, type JournalEntry } from './journal.js';
import {
  SIDECAR,
  encodeRows,
  journalFile,
  readSidecar,
  sha256Hex,
  splitFile,
  surveyOutDir,
  writeSidecar,
  type OutputFormat,
  type RationaleRow,
  type Sidecar,
  type SplitSummary,
} from './output.js';
import { checkOutAgainstSource } from './paths.js';
import { listNames, overwriteNotice } from '../util/out_dir.js';
import { UsageError } from '../util/usage_error.js';
import { TemplateError, loadTemplate, type RationaleTemplate } from './prompts.js';
import { RowProgress } from './progress.js';

export { BUILTIN_STYLES, BUILTIN_TEMPLATES, DETAILED_TEMPLATE, GENERAL_TEMPLATE, compileTemplate, loadTemplate, TemplateError } from './prompts.js';
export { FILTER_REASONS, filterReason, prefersRejected, type FilterReason } from './filters.js';
export { SIDECAR, OUTPUT_FORMATS, type OutputFormat, type Sidecar, type SplitSummary } from './output.js';

/** Arguments that cannot work (exit code 2: nothing was generated). */
export class RationalesUsageError extends UsageError {
  override readonly name: string = 'RationalesUsageError';
}

/** Ctrl-C / SIGTERM: the journal holds every finished row; the same command resumes. */
export class RationalesInterrupted extends Error {
  override name = 'RationalesInterrupted';
}

export type GeneratorSpec = { kind: 'local'; model: string } | { kind: 'openai'; baseUrl: string };

export function parseGeneratorSpec(spec: string): GeneratorSpec {
  const m = /^(local|openai):(.+)$/.exec(spec.trim());
  if (!m) {
    throw new RationalesUsageError(
      `--generator ${JSON.stringify(spec)}: expected local:<model dir or hub id> or openai:<base url> (e.g. openai:http://127.0.0.1:8000)`,
    );
  }
  if (m[1] === 'local') return { kind: 'local', model: m[2]! };
  const base = m[2]!;
  if (!/^https?:\/\//i.test(base)) throw new RationalesUsageError(`--generator openai:${base}: the base URL must start with http:// or https://`);
  return { kind: 'openai', baseUrl: base };
}

export interface RationalesOptions {
  dataset: string;
  out: string;
  /** local:<model dir or hub id> | openai:<base url> */
  generator: string;
  /** The `model` of OpenAI requests (required there; not used by local generators). */
  model?: string;
  /** general | detailed | a Jinja file. */
  style: string;
  splits: Split[];
  /** The first N rows of each split. */
  limit?: number;
  format: OutputFormat;
  columns?: ColumnMap;
  maxNewTokens: number;
  /** 0: greedy. */
  temperature: number;
  topP: number;
  topK: number;
  seed: number;
  maxRationaleChars: number;
  keepTruncated: boolean;
  // local
  batchSize: number;
  device: string;
  dtype: 'auto' | Dtype;
  maxPromptTokens?: number;
  // openai
  concurrency: number;
  timeoutMs: number;
  retries: number;
  backoffMs: number;
  /** The environment variable holding the API key. */
  apiKeyEnv: string;
  /** --api-key-env was given: its variable must be set. */
  apiKeyEnvExplicit?: boolean;
  overwrite: boolean;
}

export interface RationalesEvents {
  /** Notices (stderr). */
  onMessage?: (message: string) => void;
  /** Aborting stops the run after the outcomes in flight are journaled. */
  signal?: AbortSignal;
  /** Where progress goes (default stderr). */
  stream?: NodeJS.WriteStream;
  /** Seconds between plain progress lines when not a TTY (default 10). */
  plainEverySeconds?: number;
}

export interface RationalesResult {
  out: string;
  sidecar: string;
  /** Splits generated (or finalized) by this run. */
  written: Record<string, SplitSummary>;
  /** Splits found complete and left as they were. */
  skipped: string[];
}

/** The rpo version (package.json of this package). */
export function rpoVersion(): string {
  return packageVersion();
}

/** A digest of the rows a split generates for (their order and text). */
export function dataDigest(rows: readonly PreferenceRow[]): string {
  const h = createHash('sha256');
  for (const r of rows) h.update(JSON.stringify([r.prompt, r.chosen, r.rejected])).update('\n');
  return h.digest('hex');
}

function check(cond: boolean, message: string): void {
  if (!cond) throw new RationalesUsageError(message);
}

function validate(options: RationalesOptions, spec: GeneratorSpec): void {
  const int = (v: number | undefined, name: string, min: number): void =>
    check(v === undefined || (Number.isInteger(v) && v >= min), `${name} must be an integer >= ${min} (got ${v})`);
  check(options.splits.length > 0, '--split: name at least one split (train, test)');
  for (const s of options.splits) check(s === 'train' || s === 'test', `--split: unknown split "${s}" (train, test)`);
  check(new Set(options.splits).size === options.splits.length, '--split: a split is named twice');
  int(options.limit, '--limit', 1);
  int(options.maxNewTokens, '--max-new-tokens', 1);
  check(Number.isFinite(options.temperature) && options.temperature >= 0, `--temperature must be >= 0 (got ${options.temperature})`);
  check(Number.isFinite(options.topP) && options.topP > 0 && options.topP <= 1, `--top-p must be in (0, 1] (got ${options.topP})`);
  int(options.topK, '--top-k', 0);
  int(options.seed, '--seed', 0);
  int(options.maxRationaleChars, '--max-rationale-chars', 1);
  int(options.batchSize, '--batch-size', 1);
  int(options.maxPromptTokens, '--max-prompt-tokens', 1);
  int(options.concurrency, '--concurrency', 1);
  int(options.retries, '--retries', 0);
  check(Number.isFinite(options.timeoutMs) && options.timeoutMs > 0, `--timeout must be > 0 seconds`);
  check(Number.isFinite(options.backoffMs) && options.backoffMs >= 0, `--backoff-ms must be >= 0`);
  check(options.format === 'parquet' || options.format === 'jsonl', `--format must be parquet or jsonl (got ${options.format})`);
  if (spec.kind === 'openai') {
    check(options.model !== undefined && options.model.length > 0, '--model NAME is required with an openai: generator (the model the server should run)');
  } else {
    check(options.model === undefined, '--model is for openai: generators; a local: generator takes its model from the spec (local:<dir or hub id>)');
  }
  check(/^[A-Za-z_][A-Za-z0-9_]*$/.test(options.apiKeyEnv), `--api-key-env must be an environment variable name (got ${JSON.stringify(options.apiKeyEnv)})`);
}

/** The arguments that decide the output (what a later run into the same --out must repeat). */
function outputArgs(options: RationalesOptions, spec: GeneratorSpec, template: RationaleTemplate): Record<string, unknown> {
  const dataset = existsSync(options.dataset) ? path.resolve(options.dataset) : options.dataset.trim();
  const generator = spec.kind === 'local' ? `local:${existsSync(spec.model) ? path.resolve(spec.model) : spec.model}` : `openai:${spec.baseUrl}`;
  const args: Record<string, unknown> = {
    dataset,
    columns: options.columns ?? null,
    limit: options.limit ?? null,
    generator,
    model: options.model ?? null,
    style: template.style,
    template: template.source,
    max_new_tokens: options.maxNewTokens,
    temperature: options.temperature,
    top_p: options.topP,
    top_k: options.topK,
    seed: options.seed,
    max_rationale_chars: options.maxRationaleChars,
    keep_truncated: options.keepTruncated,
    format: options.format,
  };
  if (spec.kind === 'local') {
    // Batches decide the local generator's sampling streams and numerics.
    args.batch_size = options.batchSize;
    args.dtype = options.dtype;
    args.max_prompt_tokens = options.maxPromptTokens ?? null;
  }
  return args;
}

/** The arguments that decide a split's generated texts (the journal's). */
function generationArgs(outArgs: Record<string, unknown>, split: Split, rows: readonly PreferenceRow[]): Record<string, unknown> {
  const { max_rationale_chars: _c, keep_truncated: _k, format: _f, ...rest } = outArgs;
  return { ...rest, split, rows: rows.length, data: dataDigest(rows) };
}

interface SplitWork {
  split: Split;
  rows: PreferenceRow[];
  genArgs: Record<string, unknown>;
  genHash: string;
}

/**
 * The secrets whose text must never leave the process: the API key (from --api-key-env, and
 * OPENAI_API_KEY as well, which a user may have set for other tools) and the hub token.
 */
export function secretsOf(options: Pick<RationalesOptions, 'apiKeyEnv'>, env: NodeJS.ProcessEnv = process.env): string[] {
  return [env[options.apiKeyEnv], env['OPENAI_API_KEY'], hubToken(env)].filter((s): s is string => typeof s === 'string' && s.length > 0);
}

export async function generateRationales(options: RationalesOptions, ev: RationalesEvents = {}): Promise<RationalesResult> {
  const secrets = secretsOf(options);
  const redact = makeRedactor(secrets);
  try {
    return await generate(options, ev, secrets, redact);
  } catch (err) {
    // Whatever the error carries (a server's words, a hub message, a path), the keys do not leave.
    throw redactError(err, redact);
  }
}

async function generate(options: RationalesOptions, ev: RationalesEvents, secrets: readonly string[], redact: Redactor): Promise<RationalesResult> {
  const rawSay = ev.onMessage ?? (() => undefined);
  const say = (m: string): void => rawSay(redact(m));
  const signal = ev.signal ?? new AbortController().signal;
  const spec = parseGeneratorSpec(options.generator);
  validate(options, spec);
  const apiKey = process.env[options.apiKeyEnv] || undefined;
  if (spec.kind === 'openai' && options.apiKeyEnvExplicit && !apiKey) {
    throw new RationalesUsageError(`--api-key-env ${options.apiKeyEnv}: the environment variable ${options.apiKeyEnv} is not set`);
  }

  let template: RationaleTemplate;
  try {
    const t = loadTemplate(options.style);
    template = t.template;
    if (t.unused.includes('prompt')) say(`notice: template ${template.style} does not show the prompt ({{ prompt }})`);
  } catch (err) {
    if (err instanceof TemplateError) throw new RationalesUsageError(err.message);
    throw err;
  }

  const out = path.resolve(options.out);
  // --out must not overlap the dataset: writing there mixes the rationales into the source, and
  // --overwrite there used to delete it.
  const overlap = checkOutAgainstSource(options.out, options.dataset);
  if (overlap !== null) throw new RationalesUsageError(overlap);
  const foreignMessage = (foreign: readonly string[]): string =>
    `--out ${out} holds files rpo did not write (${listNames(foreign)}): ` +
    `data files the directory loader would mix with the rationales, or files at the names rpo writes ` +
    `(train/test.parquet|jsonl, ${SIDECAR}, .progress-<split>.jsonl); rpo never removes them, not even with --overwrite: ` +
    `move them away or choose an empty or new directory`;
  if (existsSync(out) && !statSync(out).isDirectory()) throw new RationalesUsageError(`--out ${out} is a file, not a directory`);
  const before = surveyOutDir(out);
  if (before.foreign.length > 0) throw new RationalesUsageError(foreignMessage(before.foreign));

  // The data first: a dataset error should come before a model is loaded.
  const outArgs = outputArgs(options, spec, template);
  const argsHash = hashArgs(outArgs);
  const work: SplitWork[] = [];
  for (const split of options.splits) {
    let rows = await loadPreferenceSplit(options.dataset, split, { columns: options.columns });
    if (options.limit !== undefined) rows = rows.slice(0, options.limit);
    const genArgs = generationArgs(outArgs, split, rows);
    work.push({ split, rows, genArgs, genHash: hashArgs(genArgs) });
  }

  if (options.overwrite) {
    // Only the files rpo wrote (surveyOutDir decides by content); anything else stays.
    const now = surveyOutDir(out);
    if (now.foreign.length > 0) throw new RationalesUsageError(foreignMessage(now.foreign));
    for (const name of now.ours) rmSync(path.join(out, name), { force: true });
    const notice = overwriteNotice(out, now.ours, now.others);
    if (notice !== null) say(notice);
  }
  const existing = readSidecar(out);
  if (existing && existing.args_hash !== argsHash) {
    const diff = differingKeys(existing.args ?? {}, outArgs);
    throw new RationalesUsageError(
      `--out ${out} holds rationales made with other arguments (${diff.length > 0 ? `they differ in: ${diff.join(', ')}` : 'see its rationales.json'}); ` +
        `rerun with the same arguments, choose another --out, or pass --overwrite to replace them`,
    );
  }

  const skipped: string[] = [];
  const todo: SplitWork[] = [];
  for (const w of work) {
    const file = splitFile(out, w.split, options.format);
    if (!existsSync(journalFile(out, w.split)) && existsSync(file)) {
      const done = existing?.splits?.[w.split];
      if (done && done.generation_hash === w.genHash) {
        say(`${w.split}: ${path.basename(file)} is complete (${done.kept} of ${done.rows} rows kept); nothing to do (--overwrite regenerates it)`);
        skipped.push(w.split);
        continue;
      }
      throw new RationalesUsageError(
        `${file} exists but ${SIDECAR} does not record it as made from these arguments and data; pass --overwrite to regenerate it`,
      );
    }
    todo.push(w);
  }
  const written: Record<string, SplitSummary> = {};
  if (todo.length === 0) return { out, sidecar: path.join(out, SIDECAR), written, skipped };

  // Refuse a journal from other arguments before loading a model. The journal's copy of the
  // arguments is masked (a key in a URL or path); the hash, of the real ones, decides.
  for (const w of todo) {
    try {
      Journal.check(journalFile(out, w.split), { split: w.split, hash: w.genHash, args: redactDeep(w.genArgs, redact) });
    } catch (err) {
      if (err instanceof ResumeMismatchError) throw new RationalesUsageError(err.message);
      throw err;
    }
  }

  let generator: Generator;
  let generatorInfo: Record<string, unknown>;
  let modelName: string;
  if (spec.kind === 'local') {
    const { LocalGenerator } = await import('./local.js');
    const g = await LocalGenerator.open(
      {
        model: spec.model,
        device: options.device,
        dtype: options.dtype,
        batchSize: options.batchSize,
        maxNewTokens: options.maxNewTokens,
        temperature: options.temperature,
        topP: options.topP,
        topK: options.topK,
        seed: options.seed,
        maxPromptTokens: options.maxPromptTokens,
      },
      say,
    );
    generator = g;
    modelName = g.modelDir;
    generatorInfo = {
      kind: 'local',
      spec: options.generator,
      model_dir: g.modelDir,
      device: g.device,
      dtype: g.dtype,
      prompt_format: g.promptFormat,
      batch_size: options.batchSize,
      max_prompt_tokens: g.maxPromptTokens,
    };
  } else {
    const { OpenAIGenerator } = await import('./openai.js');
    let retriesShown = 0;
    const g = new OpenAIGenerator({
      baseUrl: spec.baseUrl,
      model: options.model!,
      apiKey,
      secrets,
      concurrency: options.concurrency,
      timeoutMs: options.timeoutMs,
      retries: options.retries,
      backoffMs: options.backoffMs,
      maxNewTokens: options.maxNewTokens,
      temperature: options.temperature,
      topP: options.topP,
      topK: options.topK,
      seed: options.seed,
      onRetry: (id, message, delayMs) => {
        if (retriesShown < 20) say(`retry: ${id} in ${(delayMs / 1000).toFixed(2)} s: ${message}`);
        else if (retriesShown === 20) say('retry: (further retries are not shown)');
        retriesShown++;
      },
    });
    generator = g;
    modelName = options.model!;
    generatorInfo = {
      kind: 'openai',
      spec: options.generator,
      url: g.url,
      model: options.model,
      concurrency: options.concurrency,
      timeout_s: options.timeoutMs / 1000,
      retries: options.retries,
      backoff_ms: options.backoffMs,
      api_key_env: options.apiKeyEnv,
      api_key_sent: apiKey !== undefined,
    };
    if (!apiKey) say(`no API key ($${options.apiKeyEnv} is not set): requests are sent without Authorization`);
  }

  mkdirSync(out, { recursive: true });
  const filters: FilterOptions = { maxChars: options.maxRationaleChars, keepTruncated: options.keepTruncated };
  const sidecar: Sidecar = {
    rpo_version: rpoVersion(),
    args_hash: argsHash,
    args: outArgs,
    dataset: options.dataset,
    generator: generatorInfo,
    model: modelName,
    style: template.style,
    template: template.source,
    sampling: {
      max_new_tokens: options.maxNewTokens,
      temperature: options.temperature,
      do_sample: options.temperature > 0,
      top_p: options.topP,
      top_k: options.topK,
      seed: options.seed,
    },
    filters: {
      max_rationale_chars: options.maxRationaleChars,
      keep_truncated: options.keepTruncated,
      prefers_rejected: 'lexical check, see README "Rationales for any dataset"',
      reasons: [...FILTER_REASONS],
    },
    format: options.format,
    splits: { ...(existing?.splits ?? {}) },
  };

  try {
    for (const w of todo) {
      const done = await runSplit(w, { out, o: options, generator, template, filters, signal, ev, say, redact });
      written[w.split] = done.summary;
      sidecar.splits[w.split] = done.summary;
      // The record (with the file's sha256) goes first: the file it names is then provably rpo's
      // for --overwrite, even after a crash between the two writes (the journal still resumes).
      writeSidecar(out, redactDeep(sidecar, redact));
      writeFileAtomic(done.file, [done.bytes]);
      // The split's file and its record are in place: the journal has done its job.
      rmSync(journalFile(out, w.split), { force: true });
    }
  } finally {
    generator.close();
  }
  return { out, sidecar: path.join(out, SIDECAR), written, skipped };
}

interface SplitContext {
  out: string;
  o: RationalesOptions;
  generator: Generator;
  template: RationaleTemplate;
  filters: FilterOptions;
  signal: AbortSignal;
  ev: RationalesEvents;
  say: (m: string) => void;
  /** Masks the secrets (lib/util/redact.ts). */
  redact: Redactor;
}

/** What masking leaves of an outcome: every text a generator or server produced. */
function redactEntry(e: JournalEntry, redact: Redactor): JournalEntry {
  if ('error' in e) return { ...e, error: redact(e.error) };
  if ('text' in e) return { ...e, text: redact(e.text) };
  return e;
}

function kindOf(e: JournalEntry, filters: FilterOptions): 'kept' | 'filtered' | 'failed' {
  if ('error' in e) return 'failed';
  if ('skip' in e) return 'filtered';
  return filterReason(e.text, e.finish, filters) === null ? 'kept' : 'filtered';
}

interface SplitDone {
  summary: SplitSummary;
  file: string;
  bytes: Uint8Array;
}

async function runSplit(w: SplitWork, c: SplitContext): Promise<SplitDone> {
  const { out, o, filters, redact } = c;
  const journal = Journal.open(journalFile(out, w.split), { split: w.split, hash: w.genHash, args: redactDeep(w.genArgs, redact) });
  const outcomes = new Map<number, JournalEntry>();
  // Masked again on the way in: a journal written before masking existed must not leak either.
  for (const [i, e] of journal.previous) outcomes.set(i, redactEntry(e, redact));
  const done = new Set<number>();
  for (const [i, e] of outcomes) if (!('error' in e) && i < w.rows.length) done.add(i);
  const retrying = [...outcomes.values()].filter((e) => 'error' in e).length;
  const progress = new RowProgress(w.split, w.rows.length, done.size, c.ev.stream ?? process.stderr, c.ev.plainEverySeconds ?? 10);
  for (const i of done) progress.addResumed(kindOf(outcomes.get(i)!, filters));
  if (done.size > 0 || retrying > 0) {
    c.say(`${w.split}: resuming from ${path.basename(journal.file)}: ${done.size} of ${w.rows.length} rows done${retrying > 0 ? `, ${retrying} failed row(s) tried again` : ''}`);
  }
  let failuresShown = 0;
  const emit = (batch: GeneratorOutcome[]): void => {
    // Masked before anything is written or shown: the journal, the warnings, and later the
    // split's file and the sidecar all come from these entries.
    const fresh = batch.filter((e) => !done.has(e.i)).map((e) => redactEntry(e, redact));
    journal.append(fresh);
    for (const e of fresh) {
      outcomes.set(e.i, e);
      if (!('error' in e)) done.add(e.i);
      const kind = kindOf(e, filters);
      progress.add(kind, 'tokens' in e && e.tokens !== null ? e.tokens : 0);
      if ('error' in e) {
        if (failuresShown < 10) progress.log(redact(`rpo: warning: ${e.id} failed: ${e.error}`));
        else if (failuresShown === 10) progress.log(`rpo: warning: further failures are listed in ${SIDECAR}`);
        failuresShown++;
      }
    }
    progress.render();
  };
  const work: WorkRow[] = w.rows.map((r, i) => ({ i, id: r.id, request: c.template.render(r) }));
  progress.render(true);
  try {
    await c.generator.run(work, done, emit, c.signal);
  } finally {
    progress.render(true);
    progress.finish();
    journal.close();
  }
  if (c.signal.aborted) {
    throw new RationalesInterrupted(`${w.split}: stopped after ${done.size} of ${w.rows.length} rows; they are in ${journal.file}`);
  }

  // Finalize: the dataset's order, the filters, one atomic write.
  const kept: RationaleRow[] = [];
  const filtered: Record<string, number> = Object.fromEntries(FILTER_REASONS.map((r) => [r, 0]));
  const filteredIds: Record<string, string[]> = Object.fromEntries(FILTER_REASONS.map((r) => [r, [] as string[]]));
  const failures: { id: string; error: string }[] = [];
  let tokens = 0;
  for (let i = 0; i < w.rows.length; i++) {
    const row = w.rows[i]!;
    const e = outcomes.get(i);
    if (!e) throw new Error(`internal error: ${w.split} row ${row.id} has no outcome after generation`);
    if ('error' in e) {
      failures.push({ id: row.id, error: e.error });
      continue;
    }
    if ('skip' in e) {
      filtered[e.skip]!++;
      filteredIds[e.skip]!.push(row.id);
      continue;
    }
    tokens += e.tokens ?? 0;
    const reason = filterReason(e.text, e.finish, filters);
    if (reason !== null) {
      filtered[reason]!++;
      filteredIds[reason]!.push(row.id);
      continue;
    }
    kept.push({ prompt: row.prompt, chosen: row.chosen, rejected: row.rejected, rationale: e.text });
  }
  const file = splitFile(out, w.split, o.format);
  const bytes = encodeRows(kept, o.format);
  const summary: SplitSummary = {
    file: path.basename(file),
    rows: w.rows.length,
    kept: kept.length,
    filtered,
    failed: failures.length,
    generated_tokens: tokens,
    failures,
    filtered_ids: filteredIds,
    generation_hash: w.genHash,
    finished_at: new Date().toISOString(),
    sha256: sha256Hex(bytes),
  };
  return { summary, file, bytes };
}
