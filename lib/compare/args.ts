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
export function checkCompareNumbers(args: CompareNumbers): void {
  integer('-s/--seed', args.seed, 0);
  integer('-mc/--max_comp', args.maxComp, 1);
  integer('--batch-size', args.batchSize, 1);
  integer('--concurrency', args.concurrency, 1);
  positive('--timeout', args.timeout, false);
  integer('--retries', args.retries, 0);
  positive('--backoff-ms', args.backoffMs, true);
}
