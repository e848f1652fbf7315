// A run's data, from a resolved config: the model directory and its tokenizer, every dataset's
// train and test rows, formatted and tokenized. `rpo train`, `rpo eval` and `rpo data` share it.
//
// Each dataset is formatted and truncated as the seed treated it (its DatasetTraits: keep_start
// for shp, ultrabin and the orca family, keep_end otherwise; the seed's text cleaning; the
// orcarat rationale question), unless the dataset's entry or the config says otherwise:
//   datasets=[{path: x.jsonl, truncation_mode: keep_start, remove_extra_spaces: false}]  one dataset
//   truncation_mode=keep_end                                                           every dataset
// (an entry's own setting wins over the config's; the config's default, null, means per dataset).
import { createHash } from 'node:crypto';

import { ConfigError, type RunConfig } from '../config/index.js';
import { datasetTraits, loadPreferenceSplit, type DatasetTraits, type SourceOptions } from '../data/sources/index.js';
import { loadTokenizer, type Tokenizer } from '../data/tokenize/index.js';
import { tokenizeExamples, type TokenizeConfig, type TokenizedExample } from '../data/batch/index.js';
import type { PreferenceRow, Split } from '../data/types.js';
import { resolveModelDir } from '../hub/index.js';

export interface ResolvedModel {
  /** Local directory of the weights (a hub snapshot or the user's directory). */
  modelDir: string;
  /** Local directory of the tokenizer files. */
  tokenizerDir: string;
  tokenizer: Tokenizer;
}

export interface ResolveRunModelOptions {
  /**
   * Fetch the weights too (default true). false: config.json, the tokenizer and
   * generation_config.json only: what `rpo data` needs, and `rpo eval` when the checkpoint it
   * evaluates has its own weights. A hub model's weights can be tens of GB.
   */
  weights?: boolean;
}

/** model.name_or_path (or load_from) and model.tokenizer_name_or_path, downloaded when hub ids. */
export async function resolveRunModel(config: RunConfig, opts: ResolveRunModelOptions = {}): Promise<ResolvedModel> {
  const weights = config.model.load_from ?? config.model.name_or_path;
  const modelDir = await resolveModelDir(weights, { weights: opts.weights ?? true });
  const tokenizerSource = config.model.tokenizer_name_or_path;
  const tokenizerDir = tokenizerSource ? await resolveModelDir(tokenizerSource, { weights: false }) : modelDir;
  return { modelDir, tokenizerDir, tokenizer: await loadTokenizer(tokenizerDir) };
}

/** The keys a `datasets` mapping entry may have. */
export const DATASET_ENTRY_KEYS = ['path', 'name', 'columns', 'truncation_mode', 'remove_extra_spaces'] as const;

/** A dataset entry's own settings of its traits. */
export type TraitOverrides = Partial<Pick<DatasetTraits, 'truncation_mode' | 'remove_extra_spaces'>>;

/**
 * A `datasets` entry: a name or path, or a mapping with `path`/`name` and optional `columns`,
 * `truncation_mode` (keep_end / keep_start) and `remove_extra_spaces` (true / false).
 */
export function datasetSpec(ref: RunConfig['datasets'][number]): { spec: string; options: Pick<SourceOptions, 'columns'>; traits: TraitOverrides } {
  if (typeof ref === 'string') return { spec: ref, options: {}, traits: {} };
  const spec = ref.path ?? ref.name;
  if (typeof spec !== 'string') throw new ConfigError(`datasets: an entry must be a name, a path, or a mapping with "path" (got ${JSON.stringify(ref)})`);
  const unknown = Object.keys(ref).filter((k) => !(DATASET_ENTRY_KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) throw new ConfigError(`datasets: entry ${spec} has unknown key(s) ${unknown.join(', ')} (known: ${DATASET_ENTRY_KEYS.join(', ')})`);
  const columns = ref.columns;
  if (columns !== undefined && (typeof columns !== 'object' || columns === null)) {
    throw new ConfigError(`datasets: "columns" of ${spec} must be a mapping like {prompt: question, chosen: good}`);
  }
  const traits: TraitOverrides = {};
  const tm = ref.truncation_mode;
  if (tm !== undefined && tm !== null) {
    if (tm !== 'keep_end' && tm !== 'keep_start') throw new ConfigError(`datasets: "truncation_mode" of ${spec} must be keep_end or keep_start, got ${JSON.stringify(tm)}`);
    traits.truncation_mode = tm;
  }
  const clean = ref.remove_extra_spaces;
  if (clean !== undefined && clean !== null) {
    if (typeof clean !== 'boolean') throw new ConfigError(`datasets: "remove_extra_spaces" of ${spec} must be true or false, got ${JSON.stringify(clean)}`);
    traits.remove_extra_spaces = clean;
  }
  return { spec, options: columns ? { columns: columns as SourceOptions['columns'] } : {}, traits };
}

/**
 * A dataset's traits in this run: the dataset's own (datasetTraits), then the config's
 * truncation_mode when set (not null), then the entry's own settings.
 */
export function effectiveTraits(config: Pick<RunConfig, 'truncation_mode'>, spec: string, overrides: TraitOverrides = {}): DatasetTraits {
  const traits = datasetTraits(spec);
  if (config.truncation_mode !== null && config.truncation_mode !== undefined) traits.truncation_mode = config.truncation_mode;
  return { ...traits, ...overrides };
}

/** One dataset's rows of one split. */
export interface DatasetRows {
  /** The dataset as the config names it (a name, a path or a hub id). */
  spec: string;
  rows: PreferenceRow[];
  /** How its rows are formatted and truncated in this run. */
  traits: DatasetTraits;
}

/** Each dataset's rows of one split, in the config's order. */
export async function loadDatasetRows(config: RunConfig, split: Split): Promise<DatasetRows[]> {
  const out: DatasetRows[] = [];
  for (const ref of config.datasets) {
    const { spec, options, traits } = datasetSpec(ref);
    const rows = await loadPreferenceSplit(spec, split, { ...options, subsampleSeed: config.seed });
    out.push({ spec, rows, traits: effectiveTraits(config, spec, traits) });
  }
  return out;
}

/** Every dataset's rows of one split, concatenated in the config's order. */
export async function loadRows(config: RunConfig, split: Split): Promise<PreferenceRow[]> {
  return (await loadDatasetRows(config, split)).flatMap((d) => d.rows);
}

/** The rows of one dataset that cannot give a loss its rationale. */
export interface RationaleGap {
  spec: string;
  /** Rows of the dataset in the split (after the n_eval_examples cut). */
  rows: number;
  /** Ids of rows without a rationale (no column, or null). */
  missing: string[];
  /** Ids of rows whose rationale is empty or only whitespace. */
  empty: string[];
}

/** Per dataset, the rows without a usable rationale; datasets with none are left out. */
export function rationaleGaps(datasets: readonly DatasetRows[]): RationaleGap[] {
  const gaps: RationaleGap[] = [];
  for (const { spec, rows } of datasets) {
    const missing = rows.filter((r) => r.rationale === undefined).map((r) => r.id);
    const empty = rows.filter((r) => r.rationale !== undefined && r.rationale.trim() === '').map((r) => r.id);
    if (missing.length + empty.length > 0) gaps.push({ spec, rows: rows.length, missing, empty });
  }
  return gaps;
}

function someIds(ids: readonly string[], max = 5): string {
  return ids.length <= max ? ids.join(', ') : `${ids.slice(0, max).join(', ')} and ${ids.length - max} more`;
}

function describeGap(g: RationaleGap): string {
  const lacking = g.missing.length + g.empty.length;
  if (g.missing.length === g.rows) return `${g.spec}: ${lacking} of ${g.rows} rows: it has no "rationale" column`;
  const parts: string[] = [];
  if (g.missing.length > 0) parts.push(`${g.missing.length} without a "rationale" value (${someIds(g.missing)})`);
  if (g.empty.length > 0) parts.push(`${g.empty.length} with an empty one (${someIds(g.empty)})`);
  return `${g.spec}: ${lacking} of ${g.rows} rows: ${parts.join('; ')}`;
}

/**
 * The error for a loss that trains on rationales (rdpo, rorpo-simple) given rows without one.
 * Such a row cannot be trained on as the loss is defined, and leaving it out silently would
 * shrink the data (with `datasets=[orcaratspec,ultrabin]`, all of ultrabin) and change a mix's
 * proportions behind the user's back. An empty rationale is refused too: its target would be the
 * EOS token alone, teaching the model to say nothing when asked why. The fix is the user's to
 * choose: a dataset with rationales, `rpo rationales` to write them, or a loss without them.
 */
export function rationaleError(loss: string, split: Split, datasets: readonly DatasetRows[], gaps: readonly RationaleGap[]): ConfigError {
  const lines = gaps.map((g) => `  ${describeGap(g)}`);
  const whole = gaps.filter((g) => g.missing.length === g.rows).map((g) => g.spec);
  const head =
    datasets.length === 1
      ? `loss=${loss} trains on a rationale for every pair, and the ${split} split of dataset "${gaps[0]!.spec}" has rows without one:`
      : `loss=${loss} trains on a rationale for every pair, and ${gaps.length} of the ${datasets.length} datasets ${gaps.length === 1 ? 'has' : 'have'} ${split} rows without one:`;
  const fixes = [
    whole.length > 0
      ? `write rationales with \`rpo rationales ${whole[0]} --out DIR --generator ...\` and use datasets=[DIR]`
      : 'fill in or remove those rows',
    'use datasets with rationales (orcaratgen, orcaratspec)',
    'or a loss without rationales (loss=dpo)',
  ];
  return new ConfigError(`${head}\n${lines.join('\n')}\nrpo does not leave such rows out silently; ${fixes.join(', ')}.`);
}

/**
 * How one dataset's rows are formatted and tokenized: the config's prefixes, template and
 * lengths with the dataset's traits (without `traits`: the config's truncation_mode, keep_end
 * when that is null, and no cleaning).
 */
export function tokenizeConfig(config: RunConfig, withRationale: boolean, traits?: DatasetTraits): TokenizeConfig {
  return {
    human_prefix: config.human_prefix,
    human_suffix: config.human_suffix,
    assistant_prefix: config.assistant_prefix,
    assistant_suffix: config.assistant_suffix,
    template: config.template,
    max_length: config.model.max_length,
    max_prompt_length: config.model.max_prompt_length,
    truncation_mode: traits?.truncation_mode ?? config.truncation_mode ?? 'keep_end',
    remove_extra_spaces: traits?.remove_extra_spaces ?? false,
    rationale_prompt: traits?.rationale_prompt ?? 'above-below',
    rationale: withRationale,
  };
}

export interface RunData {
  model: ResolvedModel;
  train: TokenizedExample[];
  test: TokenizedExample[];
  /** Rows read before tokenization, per split. */
  rowCounts: { train: number; test: number };
  /** Each dataset as the config names it, with how its rows were formatted and truncated. */
  datasets: Array<{ spec: string; traits: DatasetTraits; rows: { train: number; test: number } }>;
  /** Hash of every token id of both splits: a resumed run must see the same data. */
  fingerprint: string;
}

export function dataFingerprint(train: readonly TokenizedExample[], test: readonly TokenizedExample[]): string {
  const hash = createHash('sha256');
  for (const ex of [...train, ...test]) {
    hash.update(ex.id);
    for (const seq of [ex.chosen, ex.rejected, ex.rationale]) {
      if (!seq) continue;
      hash.update(`|${seq.promptLength}|`);
      hash.update(Buffer.from(Int32Array.from(seq.ids).buffer));
    }
  }
  return hash.digest('hex').slice(0, 32);
}

/** The first `n` rows over the datasets in order (the test split is cut to n_eval_examples). */
function evalCut(datasets: readonly DatasetRows[], n: number | null): DatasetRows[] {
  if (n === null) return [...datasets];
  let left = n;
  return datasets.map((d) => {
    const rows = d.rows.slice(0, Math.max(0, left));
    left -= rows.length;
    return { ...d, rows };
  });
}

/**
 * Loads and tokenizes the splits a run needs. The test split is cut to n_eval_examples (its
 * first rows, in the dataset's order, as the seed evaluated). With `withRationale` (a loss that
 * trains on rationales) every row of every dataset must have a non-empty rationale, or a
 * ConfigError names the datasets and rows that lack one (rationaleError): `rpo train`, `rpo eval`
 * and `rpo data` all stop there, before tokenizing.
 */
export async function buildRunData(
  config: RunConfig,
  opts: {
    splits?: Split[];
    withRationale: boolean;
    model?: ResolvedModel;
    /** When `model` is not given: fetch the weights too (default true; `rpo data` needs only the tokenizer). */
    weights?: boolean;
    onStage?: (message: string) => void;
  },
): Promise<RunData> {
  const splits = opts.splits ?? ['train', 'test'];
  // Every split is read and checked before the model is resolved: a data problem is reported
  // before a hub download of the weights, not after.
  const rowsOf = new Map<Split, DatasetRows[]>();
  for (const split of splits) {
    opts.onStage?.(`reading ${split} split of ${config.datasets.map((d) => datasetSpec(d).spec).join(', ')}`);
    const datasets = evalCut(await loadDatasetRows(config, split), split === 'test' ? config.n_eval_examples : null);
    if (opts.withRationale) {
      const gaps = rationaleGaps(datasets);
      if (gaps.length > 0) throw rationaleError(config.loss.name, split, datasets, gaps);
    }
    rowsOf.set(split, datasets);
  }
  const model = opts.model ?? (await resolveRunModel(config, { weights: opts.weights ?? true }));
  const out = { train: [] as TokenizedExample[], test: [] as TokenizedExample[] };
  const rowCounts = { train: 0, test: 0 };
  const described = new Map<string, RunData['datasets'][number]>();
  for (const [split, datasets] of rowsOf) {
    const n = datasets.reduce((k, d) => k + d.rows.length, 0);
    rowCounts[split] = n;
    opts.onStage?.(`tokenizing ${n} ${split} examples`);
    for (const d of datasets) {
      out[split].push(...(await tokenizeExamples(d.rows, model.tokenizer, tokenizeConfig(config, opts.withRationale, d.traits))));
      const entry = described.get(d.spec) ?? { spec: d.spec, traits: d.traits, rows: { train: 0, test: 0 } };
      entry.rows[split] += d.rows.length;
      described.set(d.spec, entry);
    }
  }
  return { model, ...out, rowCounts, datasets: [...described.values()], fingerprint: dataFingerprint(out.train, out.test) };
}
