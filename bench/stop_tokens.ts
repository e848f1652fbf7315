// Stop tokens that end random-weight models' greedy answers at chosen lengths, for the
// continuous-batching case of `npm run bench`: the same EOS ids go to rpo and to transformers, so
// both stop each row at the same step, by the ordinary EOS check.
//
// From a free run (every prompt's greedy answer, no stop token), prompt i is given a target
// length; a token that first appears in its answer near the target, and in no other answer before
// that answer's own target, joins the stop set. Random models loop, so a late target can be out of
// reach (every later token appeared before); such a prompt runs to the length limit.

/** Where each answer ends with `stops`: the index of its first stop token, else its length. */
export function stopLengths(answers: readonly number[][], stops: readonly number[]): number[] {
  const set = new Set(stops);
  return answers.map((a) => {
    const k = a.findIndex((t) => set.has(t));
    return k < 0 ? a.length : k;
  });
}

/** Stop tokens that end answer i as near `targets[i]` as the answers allow. */
export function chooseStopTokens(answers: readonly number[][], targets: readonly number[]): number[] {
  const first = answers.map((a) => {
    const m = new Map<number, number>();
    a.forEach((t, k) => {
      if (!m.has(t)) m.set(t, k);
    });
    return m;
  });
  const stops: number[] = [];
  const order = targets.map((t, i) => [t, i] as const).sort((x, y) => x[0] - y[0]);
  for (const [target, i] of order) {
    const a = answers[i]!;
    // Positions nearest the target first; the token there must be new in its own answer and must
    // not stop any other answer before that one's target.
    const positions = Array.from({ length: a.length }, (_, k) => k).sort((x, y) => Math.abs(x - target) - Math.abs(y - target) || x - y);
    for (const k of positions) {
      const t = a[k]!;
      if (first[i]!.get(t) !== k) continue;
      if (answers.some((_, j) => j !== i && (first[j]!.get(t) ?? Infinity) < targets[j]!)) continue;
      stops.push(t);
      break;
    }
  }
  return stops;
}
