// Where this package lives: the nearest directory above the running module (lib/ under tsx,
// dist/lib/ when compiled) whose package.json names "rpo".
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

export function packageRoot(): string {
  if (root) return root;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file) && (JSON.parse(readFileSync(file, 'utf8')) as { name?: string }).name === 'rpo') return (root = dir);
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`rpo: no package.json of rpo above ${path.dirname(fileURLToPath(import.meta.url))}`);
    dir = up;
  }
}

/** package.json's version. */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version?: string };
  return String(pkg.version ?? 'unknown');
}
