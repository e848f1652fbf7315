// A run's data, from a resolved config: the model directory and its tokenizer, every dataset's
// train and test rows, formatted and tokenized. `rpo train`, `rpo eval` and `rpo data` share it.
import { createHash } from 'node:crypto';

import type { RunConfig } from '../config/index.js';
import { loadPreferenceSplit, type SourceOptions } from '../data/sources/index.js';
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

/** model.name_or_path (or load_from) and model.tokenizer_name_or_path, downloaded when hub ids. */
export async function resolveRunModel(config: RunConfig, override?: string | null): Promise<ResolvedModel> {
  const weights = override ?? config.model.load_from ?? config.model.name_or_path;
  const modelDir = await resolveModelDir(weights);
  const tokenizerSource = config.model.tokenizer_name_or_path;
  const tokenizerDir = tokenizerSource ? await resolveModelDir(tokenizerSource, { weights: false }) : modelDir;
  return { modelDir, tokenizerDir, tokenizer: await loadTokenizer(tokenizerDir) };
}

/** A `datasets` entry: a name or path, or a mapping with `path`/`name` and optional `columns`. */
export function datasetSpec(ref: RunConfig['datasets'][number]): { spec: string; options: Pick<SourceOptions, 'columns'> } {
  if (typeof ref === 'string') return { spec: ref, options: {} };
  const spec = ref.path ?? ref.name;
  if (typeof spec !== 'string') throw new Error(`datasets: an entry must be a name, a path, or a mapping with "path" (got ${JSON.stringify(ref)})`);
  const columns = ref.columns;
  if (columns !== undefined && (typeof columns !== 'object' || columns === null)) {
    throw new Error(`datasets: "columns" of ${spec} must be a mapping like {prompt: question, chosen: good}`);
  }
  return { spec, options: columns ? { columns: columns as SourceOptions['columns'] } : {} };
}

/** Every dataset's rows of one split, concatenated in the config's order. */
export async function loadRows(config: RunConfig, split: Split): Promise<PreferenceRow[]> {
  const rows: PreferenceRow[] = [];
  for (const ref of config.datasets) {
    const { spec, options } = datasetSpec(ref);
    rows.push(...(await loadPreferenceSplit(spec, split, options)));
  }
  return rows;
}

export function tokenizeConfig(config: RunConfig, withRationale: boolean): TokenizeConfig {
  return {
    human_prefix: config.human_prefix,
    human_suffix: config.human_suffix,
    assistant_prefix: config.assistant_prefix,
    assistant_suffix: config.assistant_suffix,
    template: config.template,
    max_length: config.model.max_length,
    max_prompt_length: config.model.max_prompt_length,
    truncation_mode: config.truncation_mode,
    rationale: withRationale,
  };
}

export interface RunData {
  model: ResolvedModel;
  train: TokenizedExample[];
  test: TokenizedExample[];
  /** Rows read before tokenization, per split. */
  rowCounts: { train: number; test: number };
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

/**
 * Loads and tokenizes the splits a run needs. The test split is cut to n_eval_examples (its
 * first rows, in the dataset's order, as the seed evaluated).
 */
export async function buildRunData(
  config: RunConfig,
  opts: { splits?: Split[]; withRationale: boolean; model?: ResolvedModel; onStage?: (message: string) => void },
): Promise<RunData> {
  const model = opts.model ?? (await resolveRunModel(config));
  const splits = opts.splits ?? ['train', 'test'];
  const cfg = tokenizeConfig(config, opts.withRationale);
  const out = { train: [] as TokenizedExample[], test: [] as TokenizedExample[] };
  const rowCounts = { train: 0, test: 0 };
  for (const split of splits) {
    opts.onStage?.(`reading ${split} split of ${config.datasets.map((d) => datasetSpec(d).spec).join(', ')}`);
    let rows = await loadRows(config, split);
    if (split === 'test' && config.n_eval_examples !== null) rows = rows.slice(0, config.n_eval_examples);
    rowCounts[split] = rows.length;
    opts.onStage?.(`tokenizing ${rows.length} ${split} examples`);
    out[split] = await tokenizeExamples(rows, model.tokenizer, cfg);
  }
  return { model, ...out, rowCounts, fingerprint: dataFingerprint(out.train, out.test) };
}
