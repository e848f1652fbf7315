// The numeric flags of `rpo compare`, checked before anything runs: yargs reads `--mc abc` as
// NaN, which used to flow on into an empty result. A bad value is a usage error (exit 2) naming
// the flag and what it takes.
import { UsageError } from '../util/usage_error.js';

export interface CompareNumbers {
  seed: number;
  maxComp?: number;
  batchSize: number;
  concurrency: number;
  timeout: number;
  retries: number;
  backoffMs: number;
}

function integer(flag: string, v: number | undefined, min: number): void {
  if (v === undefined) return;
  if (!Number.isSafeInteger(v) || v < min) throw new UsageError(`${flag} must be an integer >= ${min} (got ${String(v)})`);
}

function positive(flag: string, v: number, orZero: boolean): void {
  if (!Number.isFinite(v) || v < 0 || (!orZero && v === 0)) throw new UsageError(`${flag} must be a number ${orZero ? '>= 0' : '> 0'} (got ${String(v)})`);
}

/** Throws a UsageError naming the first flag with a value it cannot take. */
export function checkCompareNumbers(a: CompareNumbers): void {
  integer('-s/--seed', a.seed, 0);
  integer('-mc/--max_comp', a.maxComp, 1);
  integer('--batch-size', a.batchSize, 1);
  integer('--concurrency', a.concurrency, 1);
  positive('--timeout', a.timeout, false);
  integer('--retries', a.retries, 0);
  positive('--backoff-ms', a.backoffMs, true);
}
