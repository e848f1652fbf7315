// What a rationale generator (local engine or OpenAI-compatible server) does for the driver.
import type { JournalEntry } from './journal.js';

/** One row to generate for: its index in the split (dataset order), id and rendered request text. */
export interface WorkRow {
  i: number;
  id: string;
  /** The rendered rationale template (the user message). */
  request: string;
}

/** A row's outcome, as journaled. */
export type GeneratorOutcome = JournalEntry;

export interface Generator {
  /**
   * Generates for every row whose index is not in `done`, calling `emit` as outcomes arrive (a
   * batch's outcomes in one call). Stops early, without throwing, when `signal` aborts. Throws
   * only when the run cannot go on (the rows emitted so far stay valid).
   */
  run(rows: readonly WorkRow[], done: ReadonlySet<number>, emit: (outcomes: GeneratorOutcome[]) => void, signal: AbortSignal): Promise<void>;
  close(): void;
}
