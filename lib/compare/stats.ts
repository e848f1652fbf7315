// The exact two-sided binomial test at p = 1/2 (scipy.stats.binomtest(k, n).pvalue): the
// probability, with no real preference, of a split at least as uneven as k of n.

/** log C(n, k) by summing logs (n is at most the number of comparisons: exact enough and simple). */
function logChoose(n: number, k: number): number {
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log(n - k + i) - Math.log(i);
  return s;
}

/** P(X ≤ m) for X ~ Binomial(n, 1/2), summed from the smallest term up. */
function lowerTail(m: number, n: number): number {
  let p = 0;
  for (let k = 0; k <= m; k++) p += Math.exp(logChoose(n, k) - n * Math.LN2);
  return p;
}

/**
 * Two-sided p-value of k successes in n trials against p = 1/2: 2·P(X ≤ min(k, n − k)), capped
 * at 1 (for p = 1/2 this is scipy's "outcomes no more likely than the observed one"). n = 0 → 1.
 */
export function binomialTwoSidedP(k: number, n: number): number {
  if (!Number.isInteger(k) || !Number.isInteger(n) || n < 0 || k < 0 || k > n) throw new Error(`binomial test: need integers 0 <= k <= n, got k=${k}, n=${n}`);
  if (n === 0) return 1;
  return Math.min(1, 2 * lowerTail(Math.min(k, n - k), n));
}
