// The datasets known by name (the seed's get_<name> loaders in dataloader.py): where they live,
// which split names they use, how their records become rows, and how the seed treated them
// (truncation end, text cleaning, which rationale question).
//
// Where: the seed read the orca family with datasets.load_from_disk (../orca, ../rationalorca,
// ../data/<name>, relative to its code directory); rpo looks, relative to the working directory,
// for such a save_to_disk directory at `local` (data/<name> first) and uses it when it exists;
// otherwise the hub repository, when there is one.
import type { RationalePrompt } from '../format/index.js';
import { genericMapper, mapOrca, mapRationale, mapUltrabin, type Located, type MappedRow, type RecordMapper } from './mapping.js';
import { hhRows, oasstRows, shpRows, type RowContext, type SplitRowsBuilder } from './seed.js';

export type TruncationMode = 'keep_end' | 'keep_start';

/** How the seed treated a dataset's rows; rpo's per-dataset defaults. */
export interface DatasetTraits {
  /** Which end of an over-long prompt is kept (the seed's Example.truncation_mode). */
  truncation_mode: TruncationMode;
  /** The seed's remove_extra_spaces on prompts and responses. */
  remove_extra_spaces: boolean;
  /** Which rationale question the rationales answer. */
  rationale_prompt: RationalePrompt;
}

/** A local path, a hub id: the seed's Example defaults (keep_end), cleaned as every seed loader cleaned. */
export const GENERIC_TRAITS: Readonly<DatasetTraits> = { truncation_mode: 'keep_end', remove_extra_spaces: true, rationale_prompt: 'above-below' };

const KEEP_START: DatasetTraits = { ...GENERIC_TRAITS, truncation_mode: 'keep_start' };

export interface NamedPreferenceDataset {
  kind: 'preference';
  name: string;
  /** Hub dataset repository; undefined: the dataset is read only from a local directory. */
  repo: string | undefined;
  /** Only the files under this directory of the repository (HF datasets' data_dir). */
  dataDir?: string;
  /** The repository's split name for our train split. */
  trainSplit: string;
  /** The repository's split name for our test split; undefined: it has none, a held-out part of train is used. */
  testSplit: string | undefined;
  /** Columns read from the hub files (parquet and Arrow read only these); undefined: all. */
  columns: readonly string[] | undefined;
  /** Records → rows of the hub files, one record at a time (or `rows`, for the whole split). */
  map: RecordMapper;
  rows?: SplitRowsBuilder;
  /**
   * Directories (relative to the working directory) holding the seed's datasets.save_to_disk
   * copy, in order; the first that exists is read instead of the hub, its `train` and `test`
   * splits with `localMap`.
   */
  local: readonly string[];
  localMap: RecordMapper;
  traits: DatasetTraits;
  description: string;
}

export interface NamedPromptDataset {
  kind: 'prompt';
  name: string;
  repo: string;
  /** The one file holding the prompts. */
  file: string;
  description: string;
}

export type NamedDataset = NamedPreferenceDataset | NamedPromptDataset;

const RATIONALE_COLUMNS = ['prompt', 'chosen', 'rejected', 'rationale'] as const;

/** A row builder that maps one record at a time. */
export function perRecord(map: RecordMapper): SplitRowsBuilder {
  return async (records: AsyncIterable<Located>, _ctx: RowContext): Promise<MappedRow[]> => {
    const rows: MappedRow[] = [];
    for await (const at of records) {
      const row = map(at);
      if (row) rows.push(row);
    }
    return rows;
  };
}

const skip: RecordMapper = () => null;

/** An orca-family dataset with rationales, read from data/<name> or (when published) the hub. */
function rationaleSet(name: string, repo: string | undefined, local: readonly string[], rationalePrompt: RationalePrompt, what: string): NamedPreferenceDataset {
  return {
    kind: 'preference',
    name,
    repo,
    trainSplit: 'train',
    testSplit: 'test',
    columns: RATIONALE_COLUMNS,
    map: mapRationale,
    local,
    localMap: mapRationale,
    traits: { ...KEEP_START, rationale_prompt: rationalePrompt },
    description: `${what}: ${local.join(' or ')} (datasets.save_to_disk)${repo ? `, else hf://datasets/${repo}` : ', not on the hub'}`,
  };
}

function hh(name: string, dataDir: string | undefined, what: string): NamedPreferenceDataset {
  return {
    kind: 'preference',
    name,
    repo: 'Anthropic/hh-rlhf',
    ...(dataDir !== undefined ? { dataDir } : {}),
    trainSplit: 'train',
    testSplit: 'test',
    columns: ['chosen', 'rejected'],
    map: skip,
    rows: hhRows,
    local: [],
    localMap: skip,
    traits: { ...GENERIC_TRAITS },
    description: `Anthropic/hh-rlhf${dataDir ? ` (${dataDir}/)` : ''}: ${what}; multi-turn transcripts → turns`,
  };
}

export const NAMED_DATASETS: Readonly<Record<string, NamedDataset>> = {
  orca: {
    kind: 'preference',
    name: 'orca',
    repo: 'Intel/orca_dpo_pairs',
    trainSplit: 'train',
    testSplit: undefined,
    columns: ['system', 'question', 'chosen', 'rejected'],
    map: mapOrca,
    local: ['data/orca', 'orca'],
    localMap: genericMapper(),
    traits: { ...KEEP_START },
    description: 'data/orca or ./orca (the seed\'s datasets.save_to_disk copy: prompt, chosen, rejected), else Intel/orca_dpo_pairs (system + question → prompt; train only, test held out)',
  },
  orcarat: rationaleSet('orcarat', undefined, ['data/orcarat', 'rationalorca'], 'numbered', 'Orca pairs with rationales (the seed\'s ../rationalorca; "Assistant 1 / Assistant 2" rationale question)'),
  orcaratgen: rationaleSet('orcaratgen', 'redsgnaoh/orcaratgen', ['data/orcaratgen'], 'above-below', 'Orca pairs with general rationales'),
  orcaratspec: rationaleSet('orcaratspec', 'redsgnaoh/orcaratspec', ['data/orcaratspec'], 'above-below', 'Orca pairs with detailed rationales'),
  orcaratgen_llama3_8it: rationaleSet('orcaratgen_llama3_8it', undefined, ['data/orcaratgen_llama3_8it'], 'above-below', 'Orca pairs with general rationales by Llama-3-8B-Instruct'),
  orcaratspec_llama3_8it: rationaleSet('orcaratspec_llama3_8it', undefined, ['data/orcaratspec_llama3_8it'], 'above-below', 'Orca pairs with detailed rationales by Llama-3-8B-Instruct'),
  ultrabin: {
    kind: 'preference',
    name: 'ultrabin',
    repo: 'HuggingFaceH4/ultrafeedback_binarized',
    trainSplit: 'train_prefs',
    testSplit: 'test_prefs',
    columns: ['prompt', 'chosen', 'rejected'],
    map: mapUltrabin,
    local: [],
    localMap: mapUltrabin,
    traits: { ...KEEP_START },
    description: 'HuggingFaceH4/ultrafeedback_binarized: train_prefs / test_prefs, last assistant message',
  },
  shp: {
    kind: 'preference',
    name: 'shp',
    repo: 'stanfordnlp/SHP',
    trainSplit: 'train',
    testSplit: 'test',
    columns: ['history', 'human_ref_A', 'human_ref_B', 'score_A', 'score_B', 'labels'],
    map: skip,
    rows: shpRows,
    local: [],
    localMap: skip,
    traits: { ...KEEP_START },
    description: 'stanfordnlp/SHP: history → prompt; train pairs with score ratio ≥ 2, at most 5 per prompt',
  },
  hh: hh('hh', undefined, 'all of helpful-base, helpful-online, helpful-rejection-sampled, harmless-base'),
  hh_helpful: hh('hh_helpful', 'helpful-base', 'the helpfulness data'),
  hh_harmless: hh('hh_harmless', 'harmless-base', 'the harmlessness data'),
  oasst: {
    kind: 'preference',
    name: 'oasst',
    repo: 'OpenAssistant/oasst1',
    trainSplit: 'train',
    testSplit: 'validation',
    columns: ['message_id', 'parent_id', 'text', 'role', 'lang', 'rank'],
    map: skip,
    rows: oasstRows,
    local: [],
    localMap: skip,
    traits: { ...GENERIC_TRAITS },
    description: 'OpenAssistant/oasst1: English message trees, each ranking → consecutive pairs; train / validation',
  },
  alpacaeval: {
    kind: 'prompt',
    name: 'alpacaeval',
    repo: 'tatsu-lab/alpaca_eval',
    file: 'alpaca_eval.json',
    description: 'tatsu-lab/alpaca_eval (alpaca_eval.json): the 805 AlpacaEval instructions, eval only',
  },
};

/** The names datasets are known by. */
export const KNOWN_DATASETS: readonly string[] = Object.keys(NAMED_DATASETS);
