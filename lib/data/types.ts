// The shapes data takes between sources, formatting and batching.

/** One preference example, as every source maps it (DESIGN.md: {prompt, chosen, rejected, rationale?}). */
export interface PreferenceRow {
  /** Stable within a dataset: "<dataset>:<split>:<row index>" unless the source has ids. */
  id: string;
  prompt: string;
  chosen: string;
  rejected: string;
  rationale?: string;
}

export type Split = 'train' | 'test';

/** A prompt-only example (AlpacaEval and sampling). */
export interface PromptRow {
  id: string;
  prompt: string;
  /** AlpacaEval's `dataset` field, carried into the exported samples. */
  dataset?: string;
}
