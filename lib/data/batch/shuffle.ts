// Deterministic shuffling: xoshiro128** seeded through splitmix32, unbiased bounded integers by
// rejection, Fisher–Yates. Only 32-bit integer arithmetic (Math.imul, >>>), so the same seed gives
// the same order on every machine and Node version.

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * A uint32 generator for (seed, stream). `seed` is any safe integer (negative too); `stream`
 * separates independent sequences of one seed (e.g. the epoch).
 */
export function seededUint32(seed: number, stream = 0): () => number {
  if (!Number.isSafeInteger(seed)) throw new Error(`seed must be a safe integer, got ${seed}`);
  if (!Number.isSafeInteger(stream)) throw new Error(`stream must be a safe integer, got ${stream}`);
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 0x100000000) >>> 0;
  // Fold all four 32-bit halves of (seed, stream) into one splitmix state before drawing any
  // state word: every word, and so the first output (which reads s1 only), depends on both.
  const st = { s: lo | 0 };
  for (const half of [hi, stream >>> 0, Math.floor(stream / 0x100000000) >>> 0]) st.s = (splitmix32(st) ^ half) | 0;
  let s0 = splitmix32(st);
  let s1 = splitmix32(st);
  let s2 = splitmix32(st);
  let s3 = splitmix32(st);
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1; // xoshiro's one forbidden state
  const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;
  return () => {
    const result = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    s2 = (s2 ^ s0) >>> 0;
    s3 = (s3 ^ s1) >>> 0;
    s1 = (s1 ^ s2) >>> 0;
    s0 = (s0 ^ s3) >>> 0;
    s2 = (s2 ^ t) >>> 0;
    s3 = rotl(s3, 11);
    return result;
  };
}

/** An unbiased integer in [0, n), n ≤ 2^32. */
export function randomBelow(next: () => number, n: number): number {
  if (!Number.isInteger(n) || n <= 0 || n > 0x100000000) throw new Error(`randomBelow: bad bound ${n}`);
  const limit = 0x100000000 - (0x100000000 % n);
  let x = next();
  while (x >= limit) x = next();
  return x % n;
}

/** Fisher–Yates in place with the generator of (seed, stream); returns `items`. */
export function shuffleInPlace<T>(items: T[], seed: number, stream = 0): T[] {
  const next = seededUint32(seed, stream);
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomBelow(next, i + 1);
    const t = items[i] as T;
    items[i] = items[j] as T;
    items[j] = t;
  }
  return items;
}

/** The permutation of 0..n-1 that shuffleInPlace applies for (seed, stream). */
export function shuffledIndices(n: number, seed: number, stream = 0): number[] {
  return shuffleInPlace(
    Array.from({ length: n }, (_, i) => i),
    seed,
    stream,
  );
}
