// The error that stops a run on a NaN or infinite loss or gradient (exit code 3).

/** A NaN or infinite loss or gradient: the run stops without touching the last checkpoint. */
export class NonFiniteError extends Error {
  override name = 'NonFiniteError';
  constructor(
    readonly step: number,
    readonly exampleIds: readonly string[],
    what: string,
  ) {
    super(`${what} at step ${step + 1}; the batch held examples ${exampleIds.join(', ')}. The last good checkpoint is kept.`);
  }
}
