// Datasets by name (orca, orcaratgen, orcaratspec, ultrabin, alpacaeval: through the hub cache),
// by local path (a .jsonl / .json / .parquet file, or a directory split by file names as HF
// datasets does), or by hub id ("org/name", any dataset in the prompt/chosen/rejected shape).
//
// Split rules: a source with train and test files uses them; a source with only train data (a
// single file, a directory without test files, Intel/orca_dpo_pairs) holds out a deterministic
// test split from it: the prompts whose hash falls below `testFraction` (5% by default; see
// heldOutSplit). Row ids are "<spec>:<split>:<index of the row in its source split>".
import { existsSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { HubClient, defaultHubClient } from '../../hub/client.js';
import { DataFileError, dataFormatOf, readRecords, type SourceRecord } from '../read/index.js';
import type { PreferenceRow, PromptRow, Split } from '../types.js';
import { genericMapper, optionalString, promptColumnOf, requireString, type ColumnMap, type MappedRow, type RecordMapper } from './mapping.js';
import { KNOWN_DATASETS, NAMED_DATASETS, type NamedPreferenceDataset, type NamedPromptDataset } from './named.js';
import { DEFAULT_TEST_FRACTION, heldOutSplit, splitsByFileName, type HeldOutOptions } from './splits.js';

export { DEFAULT_TEST_FRACTION, SPLIT_KEYWORDS, heldOutScore, heldOutSplit, splitsByFileName, type HeldOutOptions } from './splits.js';
export {
  ORCA_SYSTEM_SEPARATOR,
  genericMapper,
  lastAssistantContent,
  orcaPrompt,
  removeExtraSpaces,
  type ColumnMap,
  type PreferenceField,
} from './mapping.js';
export { KNOWN_DATASETS, NAMED_DATASETS, type NamedDataset } from './named.js';

/** A dataset that cannot be loaded as asked (unknown name, no such split, empty result, ...). */
export class DatasetError extends Error {
  override name = 'DatasetError';
}

export interface SourceOptions extends HeldOutOptions {
  /** Hub cache directory (default: HF_HUB_CACHE / HF_HOME/hub / ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** Column names of local / hub-id sources (named datasets have fixed mappings and ignore this). */
  columns?: ColumnMap;
  /** The cache only (default: HF_HUB_OFFLINE or HF_DATASETS_OFFLINE). */
  offline?: boolean;
  /** A hub client (default: one from the environment, with cacheDir / offline applied). */
  hub?: HubClient;
  /** Hub revision of named / hub-id datasets (default 'main'). */
  revision?: string;
}

/** Files of a source, by split, opened lazily (hub files are downloaded only for the split used). */
interface SplitSource {
  /** Shown in ids and messages. */
  name: string;
  /** Where the data lives, for messages. */
  origin: string;
  splits: Map<string, string[]>;
  /** The local path of a file key, and the name it is shown under in errors. */
  open(key: string): Promise<{ local: string; shown: string }>;
}

const HF_LIKE_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*\/[A-Za-z0-9_.-]+$/;

function truthy(v: string | undefined): boolean {
  return v !== undefined && ['1', 'true', 'yes', 'on'].includes(v.trim().toLowerCase());
}

function hubFor(opts: SourceOptions): HubClient {
  if (opts.hub) return opts.hub;
  const offline = opts.offline ?? (truthy(process.env['HF_DATASETS_OFFLINE']) ? true : undefined);
  if (opts.cacheDir === undefined && offline === undefined) return defaultHubClient();
  return new HubClient({ cacheDir: opts.cacheDir, offline });
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

function unknownName(spec: string): DatasetError {
  return new DatasetError(
    `unknown dataset "${spec}": not a known name (${KNOWN_DATASETS.join(', ')}), not an existing file or ` +
      `directory, nor a hub id ("org/name"); for a local path write ./${spec}`,
  );
}

type Classified =
  | { kind: 'named'; def: NamedPreferenceDataset | NamedPromptDataset }
  | { kind: 'path'; path: string }
  | { kind: 'hub'; repo: string };

/**
 * How a dataset spec is read: a known name first (a local directory of that name needs "./name"),
 * then an existing path, then a hub id "org/name".
 */
function classify(spec: string): Classified {
  const s = spec.trim();
  if (s.length === 0) throw new DatasetError('empty dataset name');
  const def = NAMED_DATASETS[s];
  if (def) return { kind: 'named', def };
  const local = path.resolve(expandHome(s));
  if (existsSync(local)) return { kind: 'path', path: local };
  const pathLike = s.startsWith('.') || s.startsWith('/') || s.startsWith('~') || s.includes('\\') || dataFormatOf(s) !== undefined;
  if (pathLike) throw new DatasetError(`dataset "${spec}": no such file or directory ${local}`);
  if (HF_LIKE_RE.test(s)) return { kind: 'hub', repo: s };
  throw unknownName(spec);
}

/** Data files under a directory (relative, '/'), skipping dot-entries. */
function walkDataFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, prefix: string): void => {
    for (const name of readdirSync(dir).sort()) {
      if (name.startsWith('.')) continue;
      const full = path.join(dir, name);
      const st = statSync(full);
      if (st.isDirectory()) walk(full, `${prefix}${name}/`);
      else if (dataFormatOf(name) !== undefined) out.push(`${prefix}${name}`);
    }
  };
  walk(root, '');
  return out;
}

function localSource(spec: string, p: string): SplitSource {
  const name = spec.trim();
  const open = async (key: string) => ({ local: key, shown: key });
  if (!statSync(p).isDirectory()) {
    if (dataFormatOf(p) === undefined) throw new DatasetError(`dataset "${spec}": ${p} is not a .jsonl, .json or .parquet file`);
    return { name, origin: p, splits: new Map([['train', [p]]]), open };
  }
  if (existsSync(path.join(p, 'dataset_dict.json')) || existsSync(path.join(p, 'state.json'))) {
    throw new DatasetError(
      `dataset "${spec}": ${p} is a datasets save_to_disk directory (Arrow files); write it out with ` +
        `ds.to_parquet(...) or ds.to_json(..., lines=True) per split and point at that instead`,
    );
  }
  const files = walkDataFiles(p);
  if (files.length === 0) throw new DatasetError(`dataset "${spec}": no .jsonl, .json or .parquet files under ${p}`);
  const splits = new Map([...splitsByFileName(files)].map(([k, v]) => [k, v.map((f) => path.join(p, ...f.split('/')))]));
  return { name, origin: p, splits, open };
}

async function hubSource(name: string, repo: string, opts: SourceOptions): Promise<SplitSource> {
  const hub = hubFor(opts);
  const listing = await hub.listFiles(repo, 'dataset', opts.revision ?? 'main');
  const data = listing.files.filter((f) => dataFormatOf(f) !== undefined && !f.split('/').some((part) => part.startsWith('.')));
  const at = `hf://datasets/${repo}@${listing.commit.slice(0, 7)}`;
  return {
    name,
    origin: `${at}${listing.fromCache ? ' (cached)' : ''}`,
    splits: splitsByFileName(data),
    open: async (key) => ({
      local: await hub.resolveFile({ repo, repoType: 'dataset', revision: listing.commit, filename: key }),
      shown: `${at}/${key}`,
    }),
  };
}

interface SplitChoice {
  /** Our split, as asked. */
  split: Split;
  /** The source's split name to read. */
  from: string;
  /** Hold out part of `from` (a train split) as the test split. */
  heldOut: boolean;
}

function chooseSplit(src: SplitSource, split: Split, train: string, tests: readonly string[], allowHeldOut: boolean): SplitChoice {
  const have = [...src.splits.keys()];
  const listHave = have.length > 0 ? have.join(', ') : 'none';
  if (split === 'train') {
    if (src.splits.has(train)) return { split, from: train, heldOut: false };
    throw new DatasetError(`dataset "${src.name}" has no ${train} split (${src.origin}; splits: ${listHave})`);
  }
  for (const t of tests) if (src.splits.has(t)) return { split, from: t, heldOut: false };
  if (allowHeldOut && src.splits.has(train)) return { split, from: train, heldOut: true };
  throw new DatasetError(`dataset "${src.name}" has no ${tests.join(' or ')} split (${src.origin}; splits: ${listHave})`);
}

async function readMapped(
  src: SplitSource,
  choice: SplitChoice,
  map: RecordMapper,
  columns: readonly string[] | undefined,
): Promise<PreferenceRow[]> {
  const rows: PreferenceRow[] = [];
  for (const key of src.splits.get(choice.from) ?? []) {
    const { local, shown } = await src.open(key);
    for await (const rec of readRecordsShown(local, shown, columns)) {
      rows.push({ id: `${src.name}:${choice.split}:${rows.length}`, ...map({ file: shown, rec }) });
    }
  }
  return rows;
}

/** Reads a file and re-labels reader errors with the name the file is shown under. */
async function* readRecordsShown(local: string, shown: string, columns: readonly string[] | undefined): AsyncGenerator<SourceRecord> {
  try {
    yield* readRecords(local, { columns });
  } catch (err) {
    if (err instanceof DataFileError && local !== shown) {
      throw new DataFileError(err.message.split(local).join(shown), shown, { line: err.where?.line, row: err.where?.row });
    }
    throw err;
  }
}

function finish(rows: PreferenceRow[], src: SplitSource, choice: SplitChoice, opts: SourceOptions): PreferenceRow[] {
  const out = choice.heldOut ? heldOutSplit(rows, 'test', opts) : rows;
  if (out.length === 0) {
    const why = choice.heldOut
      ? `the held-out test split (${((opts.testFraction ?? DEFAULT_TEST_FRACTION) * 100).toFixed(1)}% of ${rows.length} train rows) is empty`
      : `no rows in its ${choice.from} split`;
    throw new DatasetError(`dataset "${src.name}" ${choice.split}: ${why} (${src.origin})`);
  }
  return out;
}

/** Train rows of a train-only source exclude the held-out prompts. */
function trainRows(rows: PreferenceRow[], src: SplitSource, hasTest: boolean, opts: SourceOptions): PreferenceRow[] {
  const out = hasTest ? rows : heldOutSplit(rows, 'train', opts);
  if (out.length === 0) throw new DatasetError(`dataset "${src.name}" train: no rows (${src.origin})`);
  return out;
}

/**
 * The rows of one split of a preference dataset.
 *
 * @param spec a known name (orca, orcaratgen, orcaratspec, ultrabin), a local .jsonl / .json /
 *   .parquet file or directory, or a hub dataset id "org/name".
 */
export async function loadPreferenceSplit(spec: string, split: Split, opts: SourceOptions = {}): Promise<PreferenceRow[]> {
  if (split !== 'train' && split !== 'test') throw new DatasetError(`split must be "train" or "test", got "${String(split)}"`);
  const c = classify(spec);
  let src: SplitSource;
  let train: string;
  let tests: readonly string[];
  let allowHeldOut: boolean;
  let map: RecordMapper;
  let columns: readonly string[] | undefined;
  if (c.kind === 'named') {
    if (c.def.kind === 'prompt') {
      throw new DatasetError(`dataset "${c.def.name}" has prompts only (no chosen / rejected): it is for evaluation (loadPromptSplit)`);
    }
    const def = c.def;
    src = await hubSource(def.name, def.repo, opts);
    train = def.trainSplit;
    tests = def.testSplit !== undefined ? [def.testSplit] : [];
    allowHeldOut = def.testSplit === undefined;
    map = def.map;
    columns = def.columns;
  } else {
    src = c.kind === 'path' ? localSource(spec, c.path) : await hubSource(spec.trim(), c.repo, opts);
    train = 'train';
    tests = ['test', 'validation'];
    allowHeldOut = true;
    map = genericMapper(opts.columns);
    columns = undefined;
  }
  const choice = chooseSplit(src, split, train, tests, allowHeldOut);
  const rows = await readMapped(src, choice, map, columns);
  if (split === 'test') return finish(rows, src, choice, opts);
  const hasTest = tests.some((t) => src.splits.has(t)) || !allowHeldOut;
  return trainRows(rows, src, hasTest, opts);
}

function uniquePrompts(rows: readonly { id: string; prompt: string; dataset?: string }[]): PromptRow[] {
  const seen = new Set<string>();
  const out: PromptRow[] = [];
  for (const r of rows) {
    if (seen.has(r.prompt)) continue;
    seen.add(r.prompt);
    out.push(r.dataset !== undefined ? { id: r.id, prompt: r.prompt, dataset: r.dataset } : { id: r.id, prompt: r.prompt });
  }
  return out;
}

async function alpacaEval(def: NamedPromptDataset, opts: SourceOptions): Promise<PromptRow[]> {
  const hub = hubFor(opts);
  const local = await hub.resolveFile({ repo: def.repo, repoType: 'dataset', revision: opts.revision ?? 'main', filename: def.file });
  const shown = `hf://datasets/${def.repo}/${def.file}`;
  const rows: { id: string; prompt: string; dataset?: string }[] = [];
  for await (const rec of readRecordsShown(local, shown, undefined)) {
    const at = { file: shown, rec };
    const dataset = optionalString(at, 'dataset');
    rows.push({ id: `${def.name}:test:${rec.row}`, prompt: requireString(at, 'instruction'), ...(dataset !== undefined ? { dataset } : {}) });
  }
  if (rows.length === 0) throw new DatasetError(`dataset "${def.name}": ${shown} has no rows`);
  return uniquePrompts(rows);
}

/** A single local file without a chosen column: every row is a prompt (an AlpacaEval-style file). */
async function promptFile(spec: string, file: string, opts: SourceOptions): Promise<PromptRow[] | undefined> {
  const chosen = opts.columns?.chosen ?? 'chosen';
  const rows: { id: string; prompt: string; dataset?: string }[] = [];
  let column: string | undefined;
  for await (const rec of readRecords(file)) {
    if (column === undefined) {
      if (chosen in rec.data) return undefined; // a preference file: its test split's prompts
      column = promptColumnOf(rec.data, opts.columns);
    }
    const at = { file, rec };
    const dataset = optionalString(at, 'dataset');
    rows.push({ id: `${spec.trim()}:test:${rec.row}`, prompt: requireString(at, column, 'prompt'), ...(dataset !== undefined ? { dataset } : {}) });
  }
  if (rows.length === 0) throw new DatasetError(`dataset "${spec}": ${file} has no rows`);
  return uniquePrompts(rows);
}

/**
 * Prompts to sample from: AlpacaEval's instructions (`alpacaeval`, test split only, with their
 * `dataset` field), a prompt-only local file (all its rows; column prompt / instruction / question
 * or the mapped one), or the distinct prompts of a preference dataset's split. Duplicates are
 * dropped, keeping the first (the seed keyed its examples by prompt).
 */
export async function loadPromptSplit(spec: string, split: Split = 'test', opts: SourceOptions = {}): Promise<PromptRow[]> {
  const c = classify(spec);
  if (c.kind === 'named' && c.def.kind === 'prompt') {
    if (split !== 'test') throw new DatasetError(`dataset "${c.def.name}" is only for evaluation: it has a test (eval) split only`);
    return alpacaEval(c.def, opts);
  }
  if (c.kind === 'path' && !statSync(c.path).isDirectory()) {
    const prompts = await promptFile(spec, c.path, opts);
    if (prompts) return prompts;
  }
  return uniquePrompts(await loadPreferenceSplit(spec, split, opts));
}

export type { MappedRow, RecordMapper };
