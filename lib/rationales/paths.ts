// --out against the dataset: rpo writes into --out and, with --overwrite, removes files there, so
// --out must be neither the dataset's directory, nor inside it, nor around it. Paths are compared
// as the filesystem sees them: relative paths resolved, trailing slashes dropped, symlinks
// followed (an alias of the dataset directory is the dataset directory), and an --out that does
// not exist yet is placed under the real path of its nearest existing parent.
import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';

import { NAMED_DATASETS } from '../data/sources/index.js';
import { expandHome } from '../util/paths.js';

/**
 * The local path a dataset spec reads, or null for a named or hub dataset. Mirrors the loader
 * (lib/data/sources/index.ts classify): a built-in name wins over a file of that name.
 */
export function localDatasetPath(spec: string): string | null {
  const s = spec.trim();
  if (s.length === 0 || Object.prototype.hasOwnProperty.call(NAMED_DATASETS, s)) return null;
  const local = path.resolve(expandHome(s));
  return existsSync(local) ? local : null;
}

/**
 * The real path of `p` (absolute, symlinks resolved). For a path that does not exist (yet), the
 * real path of its nearest existing ancestor joined with the rest, so `new/../x` and
 * `alias/new` compare correctly with their targets.
 */
export function realPathOf(p: string): string {
  const abs = path.resolve(expandHome(p));
  const rest: string[] = [];
  let cur = abs;
  for (;;) {
    try {
      return path.join(realpathSync.native(cur), ...rest.reverse());
    } catch {
      const up = path.dirname(cur);
      if (up === cur) return abs;
      rest.push(path.basename(cur));
      cur = up;
    }
  }
}

/** Whether `inner` is strictly inside `outer` (both absolute, normalized). */
export function isInside(inner: string, outer: string): boolean {
  const rel = path.relative(outer, inner);
  return rel !== '' && !rel.startsWith(`..${path.sep}`) && rel !== '..' && !path.isAbsolute(rel);
}

export type Overlap = 'same' | 'out-inside-source' | 'source-inside-out';

/** How two real paths overlap, or null when they are apart. */
export function overlapOf(out: string, source: string): Overlap | null {
  if (out === source) return 'same';
  if (isInside(out, source)) return 'out-inside-source';
  if (isInside(source, out)) return 'source-inside-out';
  return null;
}

/**
 * A usage error message when --out overlaps the local dataset (naming both, as given and as
 * resolved), else null. Named and hub datasets have no local path to overlap.
 */
export function checkOutAgainstSource(out: string, dataset: string): string | null {
  const local = localDatasetPath(dataset);
  if (local === null) return null;
  const src = realPathOf(local);
  const dst = realPathOf(out);
  const kind = overlapOf(dst, src);
  if (kind === null) return null;
  const shownOut = `--out ${out}${dst !== out ? ` (${dst})` : ''}`;
  const shownSrc = `the dataset ${dataset}${src !== dataset ? ` (${src})` : ''}`;
  const what =
    kind === 'same'
      ? `${shownOut} is ${shownSrc}`
      : kind === 'out-inside-source'
        ? `${shownOut} is inside ${shownSrc}`
        : `${shownSrc} is inside ${shownOut}`;
  return (
    `${what}: rpo writes its files into --out (and --overwrite removes them there), which must not touch ` +
    `the data it reads; choose an --out outside the dataset`
  );
}
