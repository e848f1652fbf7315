// One engine thread: every addon call runs its tensor work on one dedicated thread ("rpo-engine"),
// whatever libuv worker picked the call up. OpenMP keeps a worker team per thread that opens
// parallel regions (and glibc a malloc arena per thread), so calls spread over libuv's pool used
// to start a team on each worker (4 x (N - 1) threads for N intra-op threads) and let freed
// activations sit in one arena while the next step grew another. Here: after concurrent calls on
// four models the process has exactly N more threads (the engine and its N - 1 OpenMP workers,
// which inherit its name), and a thread count set later reaches the engine's team.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import { defaultNumThreads, maxNumThreads } from '../../lib/native.js';

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'engine_threads.ts');

interface Report { before: number; beforeEngine: number; after: number; afterEngine: number; afterSecond: number; threads: number }

function run(first: number, second: number): Report {
  const out = execFileSync(process.execPath, ['--import', 'tsx', script, String(first), String(second)], {
    encoding: 'utf8',
    env: { ...process.env, RPO_NUM_THREADS: undefined },
  });
  return JSON.parse(out.trim().split('\n').pop()!) as Report;
}

describe.skipIf(process.platform !== 'linux')('the engine runs on one thread with one OpenMP team', () => {
  it('concurrent calls on four models add exactly the engine thread and its N - 1 OpenMP workers', () => {
    const r = run(3, 4);
    expect(r.beforeEngine).toBe(0); // no engine call had run yet
    expect(r.afterEngine).toBe(3);
    expect(r.after - r.before).toBe(3);
    // setNumThreads(4) after the engine's team exists: the engine applies it before its next call
    expect(r.afterSecond).toBe(4);
    expect(r.threads).toBe(4);
  });

  it('defaults to the physical cores, within the cap', () => {
    expect(defaultNumThreads()).toBeGreaterThanOrEqual(1);
    expect(defaultNumThreads()).toBeLessThanOrEqual(maxNumThreads());
  });
});
