// Errors the config layer raises, and the "did you mean" suggestion they carry.
//
// Every problem a user can cause with a config file or a command-line override is a
// ConfigError: the CLI prints its message (no stack) and exits with the usage code. The
// message names the key and, where one is close, the key the user probably meant.

/** A problem with a config file, an override or a config value; the message is for the user. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Levenshtein edit distance (insert, delete, substitute: cost 1 each). */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  // One rolling row: prev[j] is the distance between a[0..i) and b[0..j).
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const sub = (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      row.push(Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, sub));
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/**
 * The candidate closest to `word`, if it is close enough to be a plausible typo: at most a
 * third of the longer string's length (and at least 2) edits away. Ties go to the first
 * candidate, so callers list the most likely ones first.
 */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  if (best === undefined) return undefined;
  const limit = Math.max(2, Math.floor(Math.max(word.length, best.length) / 3));
  return bestDistance <= limit ? best : undefined;
}

/** The last segment of a dotted key ("model.max_length" → "max_length"). */
function leafOf(key: string): string {
  return key.slice(key.lastIndexOf('.') + 1);
}

/**
 * The key a user probably meant by `key`, a dotted config key that does not exist where it was
 * written. Never `key` itself: the candidates may contain it (a `+key=` override has already
 * added it to the config whose paths are searched), and "did you mean 'precision'?" for an
 * unknown `precision` helps no one. In order:
 *  1. the same key in another section, as its full path (`max_length` → `model.max_length`,
 *     `model.beta` → `loss.beta`): the commonest mistake is the right name in the wrong place;
 *  2. the closest full path (a typo: `loss.gama` → `loss.gamma`);
 *  3. the full path of the closest leaf name (a typo in the wrong place: `max_lenght` →
 *     `model.max_length`).
 */
export function suggestKey(key: string, candidates: Iterable<string>): string | undefined {
  const others = [...new Set(candidates)].filter((c) => c !== key);
  const leaf = leafOf(key).toLowerCase();
  const sameLeaf = others.filter((c) => leafOf(c).toLowerCase() === leaf);
  if (sameLeaf.length > 0) {
    // Several sections may hold the leaf: the path closest to what was typed.
    return sameLeaf.reduce((best, c) => (editDistance(key, c) < editDistance(key, best) ? c : best));
  }
  const direct = closest(key, others);
  if (direct !== undefined) return direct;
  const byLeaf = new Map<string, string>();
  for (const c of others) if (!byLeaf.has(leafOf(c))) byLeaf.set(leafOf(c), c);
  const near = closest(leafOf(key), byLeaf.keys());
  return near === undefined ? undefined : byLeaf.get(near);
}

/** " (did you mean 'x'?)" or "" — appended to error messages (names: config files, group options). */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const c = closest(word, candidates);
  return c === undefined ? '' : ` (did you mean '${c}'?)`;
}

/** didYouMean for a dotted config key (suggestKey's rules). */
export function didYouMeanKey(key: string, candidates: Iterable<string>): string {
  const c = suggestKey(key, candidates);
  return c === undefined ? '' : ` (did you mean '${c}'?)`;
}
