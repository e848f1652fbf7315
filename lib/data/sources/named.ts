// The datasets known by name: where they live on the hub, which split names they use, and how
// their records map to rows (following the seed's get_<name> loaders in dataloader.py).
import { mapOrca, mapRationale, mapUltrabin, type RecordMapper } from './mapping.js';

export interface NamedPreferenceDataset {
  kind: 'preference';
  name: string;
  /** Hub dataset repository. */
  repo: string;
  /** The repository's split name for our train split. */
  trainSplit: string;
  /** The repository's split name for our test split; undefined: it has none, a held-out part of train is used. */
  testSplit: string | undefined;
  /** Columns read (parquet reads only these). */
  columns: readonly string[];
  map: RecordMapper;
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

export const NAMED_DATASETS: Readonly<Record<string, NamedDataset>> = {
  orca: {
    kind: 'preference',
    name: 'orca',
    repo: 'Intel/orca_dpo_pairs',
    trainSplit: 'train',
    testSplit: undefined,
    columns: ['system', 'question', 'chosen', 'rejected'],
    map: mapOrca,
    description: 'Intel/orca_dpo_pairs (orca_rlhf.jsonl): system + question → prompt; train only, test held out',
  },
  orcaratgen: {
    kind: 'preference',
    name: 'orcaratgen',
    repo: 'redsgnaoh/orcaratgen',
    trainSplit: 'train',
    testSplit: 'test',
    columns: ['prompt', 'chosen', 'rejected', 'rationale'],
    map: mapRationale,
    description: 'redsgnaoh/orcaratgen: Orca pairs with general rationales (train, test)',
  },
  orcaratspec: {
    kind: 'preference',
    name: 'orcaratspec',
    repo: 'redsgnaoh/orcaratspec',
    trainSplit: 'train',
    testSplit: 'test',
    columns: ['prompt', 'chosen', 'rejected', 'rationale'],
    map: mapRationale,
    description: 'redsgnaoh/orcaratspec: Orca pairs with detailed rationales (train, test)',
  },
  ultrabin: {
    kind: 'preference',
    name: 'ultrabin',
    repo: 'HuggingFaceH4/ultrafeedback_binarized',
    trainSplit: 'train_prefs',
    testSplit: 'test_prefs',
    columns: ['prompt', 'chosen', 'rejected'],
    map: mapUltrabin,
    description: 'HuggingFaceH4/ultrafeedback_binarized: train_prefs / test_prefs, last assistant message',
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
