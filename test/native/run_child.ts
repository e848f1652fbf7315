// Runs a scenario of child.ts in a fresh Node process and reads its one JSON line.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

export interface ChildOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** The scenario's report; undefined when the process died before printing it. */
  result?: { ok: boolean; name?: string; message?: string; threads?: number };
}

export function runChild(args: string[], env: NodeJS.ProcessEnv = {}): ChildOutcome {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(here, 'child.ts'), ...args], {
    cwd: path.resolve(here, '..', '..'),
    env: { ...process.env, RPO_NUM_THREADS: '2', ...env },
    encoding: 'utf8',
    timeout: 120_000, // a hung child (a wedged thread pool) fails the test instead of stalling it
  });
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  return {
    code: r.status,
    signal: r.signal,
    stderr: r.stderr.slice(-2000),
    result: line ? (JSON.parse(line) as ChildOutcome['result']) : undefined,
  };
}
