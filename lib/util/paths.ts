// Paths as users type them, and an output path against the inputs of a command.
import { realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** `~` and `~/...` to the home directory; anything else unchanged. */
export function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

// Output against input: a command that writes (and with --overwrite removes) files in an output
// directory must not be pointed at what it reads. Paths are compared as the filesystem sees them:
// relative paths resolved, trailing slashes dropped, symlinks followed (an alias of a directory is
// that directory), and a path that does not exist yet placed under the real path of its nearest
// existing parent.

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

/** An input of a command, for overlapMessage: what it is ("the dataset", "the adapter") and its path as given. */
export interface NamedPath {
  what: string;
  path: string;
}

/**
 * "OUT is INPUT" / "OUT is inside INPUT" / "INPUT is inside OUT" (each as given and, where it
 * differs, as resolved) for the first input `out` overlaps, or null when it overlaps none.
 */
export function overlapMessage(out: NamedPath, inputs: readonly NamedPath[]): string | null {
  const dst = realPathOf(out.path);
  for (const input of inputs) {
    const src = realPathOf(input.path);
    const kind = overlapOf(dst, src);
    if (kind === null) continue;
    const shownOut = `${out.what} ${out.path}${dst !== out.path ? ` (${dst})` : ''}`;
    const shownSrc = `${input.what} ${input.path}${src !== input.path ? ` (${src})` : ''}`;
    return kind === 'same' ? `${shownOut} is ${shownSrc}` : kind === 'out-inside-source' ? `${shownOut} is inside ${shownSrc}` : `${shownSrc} is inside ${shownOut}`;
  }
  return null;
}
