// Paths as users type them.
import os from 'node:os';
import path from 'node:path';

/** `~` and `~/...` to the home directory; anything else unchanged. */
export function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}
