// Datasets by name (the seed's: orca, orcarat, orcaratgen, orcaratspec, orcaratgen_llama3_8it,
// orcaratspec_llama3_8it, ultrabin, shp, hh, hh_helpful, hh_harmless, oasst, alpacaeval: from the
// seed's datasets.save_to_disk directory under data/ when there is one, else through the hub
// cache), by local path (a .jsonl / .json / .parquet / .arrow file, gzipped JSON lines, a
// directory split by file names as HF datasets does, or a directory written by
// datasets.save_to_disk), or by hub id ("org/name", any dataset in the prompt/chosen/rejected shape).
//
// Split rules: a source with train and test files uses them; a source with only train data (a
// single file, a directory without test files, Intel/orca_dpo_pairs) holds out a deterministic
// test split from it: the prompts whose hash falls below `testFraction` (5% by default; see
// heldOutSplit). Row ids are "<spec>:<split>:<index of the row in its source split>".
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

import { HubClient, defaultHubClient } from '../../hub/client.js';
import { DataFileError, dataFormatOf, defaultWarn, readRecords, type SourceRecord } from '../read/index.js';
import type { PreferenceRow, PromptRow, Split } from '../types.js';
import { genericMapper, optionalString, promptColumnOf, requireString, type ColumnMap, type Located, type MappedRow, type RecordMapper } from './mapping.js';
import { GENERIC_TRAITS, KNOWN_DATASETS, NAMED_DATASETS, perRecord, type DatasetTraits, type NamedPreferenceDataset, type NamedPromptDataset } from './named.js';
import type { SplitRowsBuilder } from './seed.js';
import { DEFAULT_TEST_FRACTION, heldOutSplit, splitsByFileName, type HeldOutOptions } from './splits.js';
import { expandHome } from '../../util/paths.js';

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
export { GENERIC_TRAITS, KNOWN_DATASETS, NAMED_DATASETS, type DatasetTraits, type NamedDataset, type TruncationMode } from './named.js';
export {
  HH_RESPONSE_MARK,
  SHP_MAX_PAIRS_PER_PROMPT,
  SHP_MIN_SCORE_RATIO,
  capPairsPerPrompt,
  hhRow,
  hhTurns,
  oasstPairs,
  shpRow,
  type RowContext,
  type SplitRowsBuilder,
} from './seed.js';

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
  /** Warnings about the data files (invalid UTF-8, with file:line or rows); default: stderr. */
  onWarning?: (message: string) => void;
  /** Seeds the subsampling of sources that subsample (SHP's at most 5 pairs per prompt). Default 0. */
  subsampleSeed?: number;
  /** The directory relative paths and the named datasets' local copies (data/<name>) are found from. Default: the working directory. */
  cwd?: string;
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

function unknownName(spec: string): DatasetError {
  return new DatasetError(
    `unknown dataset "${spec}": not a known name (${KNOWN_DATASETS.join(', ')}), not an existing file or ` +
      `directory, nor a hub id ("org/name"); for a local path write ./${spec}`,
  );
}

type Classified =
  | { kind: 'named'; def: NamedPreferenceDataset | NamedPromptDataset; local?: string }
  | { kind: 'path'; path: string }
  | { kind: 'hub'; repo: string };

/** Is `dir` a directory written by datasets' save_to_disk (a DatasetDict or a single Dataset)? */
export function isSaveToDiskDir(dir: string): boolean {
  try {
    return statSync(dir).isDirectory() && (existsSync(path.join(dir, 'dataset_dict.json')) || existsSync(path.join(dir, 'state.json')));
  } catch {
    return false;
  }
}

/** The first of a named dataset's local save_to_disk directories that exists (relative to the working directory). */
export function localCopyOf(def: NamedPreferenceDataset, cwd = process.cwd()): string | undefined {
  for (const rel of def.local) {
    const dir = path.resolve(cwd, rel);
    if (isSaveToDiskDir(dir)) return dir;
  }
  return undefined;
}

/**
 * How a dataset spec is read: a known name first (its save_to_disk copy under data/ when there
 * is one, else the hub; any other local directory of that name needs "./name"), then an
 * existing path, then a hub id "org/name".
 */
function classify(spec: string, cwd = process.cwd()): Classified {
  const s = spec.trim();
  if (s.length === 0) throw new DatasetError('empty dataset name');
  const def = NAMED_DATASETS[s];
  if (def?.kind === 'preference') {
    const local = localCopyOf(def, cwd);
    if (local) return { kind: 'named', def, local };
    if (def.repo === undefined) {
      throw new DatasetError(
        `dataset "${def.name}" is read from the seed's datasets.save_to_disk directory, and none was found: ` +
          `looked for ${def.local.map((d) => path.resolve(cwd, d)).join(', ')} (it is not published on the hub; ` +
          `the seed read it from ${def.name === 'orcarat' ? '../rationalorca' : `../data/${def.name}`})`,
      );
    }
    return { kind: 'named', def };
  }
  if (def) return { kind: 'named', def };
  const local = path.resolve(cwd, expandHome(s));
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
  if (isSaveToDiskDir(p)) return { name, origin: p, splits: saveToDiskSplits(spec, p), open };
  const files = walkDataFiles(p);
  if (files.length === 0) throw new DatasetError(`dataset "${spec}": no .jsonl, .json or .parquet files under ${p}`);
  const splits = new Map([...splitsByFileName(files)].map(([k, v]) => [k, v.map((f) => path.join(p, ...f.split('/')))]));
  return { name, origin: p, splits, open };
}

function readJsonFile(spec: string, file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as unknown;
  } catch (err) {
    throw new DatasetError(`dataset "${spec}": cannot read ${file} (${err instanceof Error ? err.message : String(err)})`);
  }
}

/** The Arrow files of one save_to_disk Dataset directory, in order (state.json's _data_files). */
function saveToDiskFiles(spec: string, dir: string): string[] {
  const stateFile = path.join(dir, 'state.json');
  if (!existsSync(stateFile)) throw new DatasetError(`dataset "${spec}": ${dir} has no state.json (not a datasets save_to_disk split)`);
  const state = readJsonFile(spec, stateFile) as { _data_files?: unknown };
  const files = Array.isArray(state._data_files) ? state._data_files : undefined;
  if (!files || files.length === 0) throw new DatasetError(`dataset "${spec}": ${stateFile} lists no data files (_data_files)`);
  return files.map((f: unknown) => {
    const name = (f as { filename?: unknown }).filename;
    if (typeof name !== 'string' || name.includes('/') || name.includes('\\')) {
      throw new DatasetError(`dataset "${spec}": ${stateFile}: a _data_files entry without a plain filename (${JSON.stringify(f)})`);
    }
    const file = path.join(dir, name);
    if (!existsSync(file)) throw new DatasetError(`dataset "${spec}": ${file}, listed in ${stateFile}, does not exist`);
    return file;
  });
}

/**
 * The splits of a datasets.save_to_disk directory: a DatasetDict (dataset_dict.json names the
 * splits, each a subdirectory) or a single Dataset (state.json at the top: its rows are the
 * train split, and a test split is held out as for a single file).
 */
export function saveToDiskSplits(spec: string, dir: string): Map<string, string[]> {
  const dict = path.join(dir, 'dataset_dict.json');
  if (!existsSync(dict)) return new Map([['train', saveToDiskFiles(spec, dir)]]);
  const splits = (readJsonFile(spec, dict) as { splits?: unknown }).splits;
  if (!Array.isArray(splits) || !splits.every((x) => typeof x === 'string' && x !== '' && !x.includes('/') && !x.includes('\\') && x !== '.' && x !== '..')) {
    throw new DatasetError(`dataset "${spec}": ${dict} has no list of split names ("splits")`);
  }
  return new Map((splits as string[]).map((split) => [split, saveToDiskFiles(spec, path.join(dir, split))]));
}

/** A named dataset's save_to_disk copy. */
function namedLocalSource(def: NamedPreferenceDataset, dir: string): SplitSource {
  return { name: def.name, origin: dir, splits: saveToDiskSplits(def.name, dir), open: async (key) => ({ local: key, shown: key }) };
}

async function hubSource(name: string, repo: string, opts: SourceOptions, dataDir?: string): Promise<SplitSource> {
  const hub = hubFor(opts);
  const listing = await hub.listFiles(repo, 'dataset', opts.revision ?? 'main');
  const under = dataDir !== undefined ? `${dataDir.replace(/\/+$/, '')}/` : '';
  const data = listing.files.filter((f) => f.startsWith(under) && dataFormatOf(f) !== undefined && !f.split('/').some((part) => part.startsWith('.')));
  // Splits are found from the paths below data_dir, as HF datasets does with data_dir=.
  const relSplits = splitsByFileName(data.map((f) => f.slice(under.length)));
  const splits = new Map([...relSplits].map(([k, v]) => [k, v.map((f) => `${under}${f}`)]));
  const at = `hf://datasets/${repo}@${listing.commit.slice(0, 7)}`;
  return {
    name,
    origin: `${at}${under ? `/${under}` : ''}${listing.fromCache ? ' (cached)' : ''}`,
    splits,
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

async function* splitRecords(
  src: SplitSource,
  choice: SplitChoice,
  columns: readonly string[] | undefined,
  onWarning: ((message: string) => void) | undefined,
): AsyncGenerator<Located> {
  for (const key of src.splits.get(choice.from) ?? []) {
    const { local, shown } = await src.open(key);
    for await (const rec of readRecordsShown(local, shown, columns, onWarning)) yield { file: shown, rec };
  }
}

async function readMapped(
  src: SplitSource,
  choice: SplitChoice,
  build: SplitRowsBuilder,
  columns: readonly string[] | undefined,
  opts: SourceOptions,
): Promise<PreferenceRow[]> {
  const mapped = await build(splitRecords(src, choice, columns, opts.onWarning), {
    split: choice.heldOut ? 'train' : choice.split,
    seed: opts.subsampleSeed ?? 0,
    warn: opts.onWarning ?? defaultWarn,
  });
  return mapped.map((row, i) => ({ id: `${src.name}:${choice.split}:${i}`, ...row }));
}

/** Reads a file and re-labels reader errors and warnings with the name the file is shown under. */
async function* readRecordsShown(
  local: string,
  shown: string,
  columns: readonly string[] | undefined,
  onWarning: ((message: string) => void) | undefined,
): AsyncGenerator<SourceRecord> {
  const warn = onWarning ?? defaultWarn;
  try {
    yield* readRecords(local, { columns, onWarning: (m) => warn(local === shown ? m : m.split(local).join(shown)) });
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
 * @param spec a known name (KNOWN_DATASETS), a local .jsonl / .json / .parquet / .arrow file or
 *   directory (a datasets.save_to_disk directory too), or a hub dataset id "org/name".
 */
export async function loadPreferenceSplit(spec: string, split: Split, opts: SourceOptions = {}): Promise<PreferenceRow[]> {
  if (split !== 'train' && split !== 'test') throw new DatasetError(`split must be "train" or "test", got "${String(split)}"`);
  const c = classify(spec, opts.cwd);
  let src: SplitSource;
  let train: string;
  let tests: readonly string[];
  let allowHeldOut: boolean;
  let build: SplitRowsBuilder;
  let columns: readonly string[] | undefined;
  if (c.kind === 'named') {
    if (c.def.kind === 'prompt') {
      throw new DatasetError(`dataset "${c.def.name}" has prompts only (no chosen / rejected): it is for evaluation (loadPromptSplit)`);
    }
    const def = c.def;
    if (c.local !== undefined) {
      // The seed's load_from_disk(...)[split]: its train and test splits.
      src = namedLocalSource(def, c.local);
      train = 'train';
      tests = ['test'];
      allowHeldOut = true;
      build = perRecord(def.localMap);
      columns = undefined;
    } else {
      src = await hubSource(def.name, def.repo!, opts, def.dataDir);
      train = def.trainSplit;
      tests = def.testSplit !== undefined ? [def.testSplit] : [];
      allowHeldOut = def.testSplit === undefined;
      build = def.rows ?? perRecord(def.map);
      columns = def.columns;
    }
  } else {
    src = c.kind === 'path' ? localSource(spec, c.path) : await hubSource(spec.trim(), c.repo, opts);
    train = 'train';
    tests = ['test', 'validation'];
    allowHeldOut = true;
    build = perRecord(genericMapper(opts.columns));
    columns = undefined;
  }
  const choice = chooseSplit(src, split, train, tests, allowHeldOut);
  const rows = await readMapped(src, choice, build, columns, opts);
  if (split === 'test') return finish(rows, src, choice, opts);
  const hasTest = tests.some((t) => src.splits.has(t)) || !allowHeldOut;
  return trainRows(rows, src, hasTest, opts);
}

function uniquePrompts(rows: readonly { id: string; prompt: string; dataset?: string; turns?: PreferenceRow['turns'] }[]): PromptRow[] {
  const seen = new Set<string>();
  const out: PromptRow[] = [];
  for (const r of rows) {
    if (seen.has(r.prompt)) continue;
    seen.add(r.prompt);
    const row: PromptRow = { id: r.id, prompt: r.prompt };
    if (r.dataset !== undefined) row.dataset = r.dataset;
    if (r.turns !== undefined) row.turns = r.turns;
    out.push(row);
  }
  return out;
}

async function alpacaEval(def: NamedPromptDataset, opts: SourceOptions): Promise<PromptRow[]> {
  const hub = hubFor(opts);
  const local = await hub.resolveFile({ repo: def.repo, repoType: 'dataset', revision: opts.revision ?? 'main', filename: def.file });
  const shown = `hf://datasets/${def.repo}/${def.file}`;
  const rows: { id: string; prompt: string; dataset?: string }[] = [];
  for await (const rec of readRecordsShown(local, shown, undefined, opts.onWarning)) {
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
  for await (const rec of readRecords(file, { onWarning: opts.onWarning })) {
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
  const c = classify(spec, opts.cwd);
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

/**
 * How the seed treated a dataset, rpo's per-dataset defaults: the named datasets' own (keep_start
 * for shp, ultrabin and the orca family; the orcarat rationale question), and for a path or a hub
 * id the seed's Example defaults (keep_end), cleaned as every seed loader cleaned its rows.
 */
export function datasetTraits(spec: string): DatasetTraits {
  const def = NAMED_DATASETS[spec.trim()];
  return def?.kind === 'preference' ? { ...def.traits } : { ...GENERIC_TRAITS };
}

/** Where a dataset spec is read from, in words (for `rpo data`). */
export function describeDatasetSource(spec: string, cwd?: string): string {
  const c = classify(spec, cwd);
  if (c.kind === 'named') {
    if (c.def.kind === 'prompt') return `hf://datasets/${c.def.repo}`;
    return c.local ?? `hf://datasets/${c.def.repo}${c.def.dataDir ? `/${c.def.dataDir}/` : ''}`;
  }
  return c.kind === 'path' ? c.path : `hf://datasets/${c.repo}`;
}

export type { MappedRow, RecordMapper };
