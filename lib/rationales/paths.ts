// --out against the dataset: rpo writes into --out and, with --overwrite, removes files there, so
// --out must be neither the dataset's directory, nor inside it, nor around it (compared as
// lib/util/paths.ts overlapMessage does: real paths, symlinks followed).
import { existsSync } from 'node:fs';
import path from 'node:path';

import { NAMED_DATASETS } from '../data/sources/index.js';
import { expandHome, overlapMessage } from '../util/paths.js';

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
 * A usage error message when --out overlaps the local dataset (naming both, as given and as
 * resolved), else null. Named and hub datasets have no local path to overlap.
 */
export function checkOutAgainstSource(out: string, dataset: string): string | null {
  const local = localDatasetPath(dataset);
  if (local === null) return null;
  const what = overlapMessage({ what: '--out', path: out }, [{ what: 'the dataset', path: dataset.trim() }]);
  if (what === null) return null;
  return (
    `${what}: rpo writes its files into --out (and --overwrite removes them there), which must not touch ` +
    `the data it reads; choose an --out outside the dataset`
  );
}
