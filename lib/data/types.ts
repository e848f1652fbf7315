// The shapes data takes between sources, formatting and batching.

/** One turn of a conversation that comes before the response (multi-turn sources: hh, oasst). */
export interface Turn {
  role: 'user' | 'assistant';
  content: string;
}

/** One preference example, as every source maps it (docs/design.md: {prompt, chosen, rejected, rationale?}). */
export interface PreferenceRow {
  /** Stable within a dataset: "<dataset>:<split>:<row index>" unless the source has ids. */
  id: string;
  /**
   * The prompt. For a row with `turns` it is a plain rendering of the conversation
   * ("Human: …\n\nAssistant: …"), used as the prompt's key (held-out split, distinct prompts);
   * formatting uses `turns`.
   */
  prompt: string;
  chosen: string;
  rejected: string;
  rationale?: string;
  /**
   * The conversation before the response, oldest first (hh's history, an oasst tree's path):
   * formatted turn by turn with the human / assistant prefixes and suffixes, then
   * assistant_prefix. Absent: a single user turn, `prompt`.
   */
  turns?: Turn[];
}

export type Split = 'train' | 'test';

/** A prompt-only example (AlpacaEval and sampling). */
export interface PromptRow {
  id: string;
  prompt: string;
  /** AlpacaEval's `dataset` field, carried into the exported samples. */
  dataset?: string;
  /** As PreferenceRow.turns. */
  turns?: Turn[];
}
