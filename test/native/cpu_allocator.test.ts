// The engine's CPU allocator (native/model/cpu_allocator.h): tensors of 1 MiB and more are mapped
// on their own and a few freed ones are kept per size for reuse within a call; whatever is kept is
// unmapped when the call ends. So between calls the process holds its live tensors only: a call
// whose temporaries are large leaves the RSS where it was. (glibc's heap, which served these
// blocks before, kept freed activations and fragmented: the ~100M benchmark's train step peaked
// 0.45 GiB higher.) Each case runs in a fresh process so its RSS is its own.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'rss_after_calls.ts');
const MB = 2 ** 20;

function run(env: NodeJS.ProcessEnv = {}) {
  const out = execFileSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', env: { ...process.env, ...env } });
  return JSON.parse(out.trim().split('\n').pop()!) as { before: number; after: number[]; peak: number };
}

describe.skipIf(process.platform !== 'linux')('the engine CPU allocator', () => {
  it('leaves the RSS where it was after calls whose temporaries are large', () => {
    const r = run();
    expect(r.peak - r.before).toBeGreaterThan(50 * MB); // the calls did hold large temporaries
    for (const a of r.after) expect(a - r.before).toBeLessThan(16 * MB);
  });

  it('is not installed when glibc\'s mmap threshold is fixed (the memory planner measures live tensors that way)', () => {
    // Same calls, glibc's allocator with every block over 64 KiB mapped: also back to where it was.
    const r = run({ MALLOC_MMAP_THRESHOLD_: '65536' });
    for (const a of r.after) expect(a - r.before).toBeLessThan(16 * MB);
  });
});
