// Thread counts: a huge one used to kill the process inside libgomp (1e9: "Out of memory
// allocating ..."; 1e5: a segfault) at the first parallel region. Each case runs in a child
// process that then does real parallel work, so a crash is an exit status, not a dead runner.
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';

import { getNumThreads, maxNumThreads, setNumThreads } from '../../lib/native.js';
import { runChild } from './run_child.js';

const refused = /must be an integer from 1 to (\d+)/;

describe('setNumThreads and RPO_NUM_THREADS refuse counts the thread pool cannot take', () => {
  it('the cap is 4 x the hardware threads, at least every available core', () => {
    expect(maxNumThreads()).toBeGreaterThanOrEqual(4 * availableParallelism());
    expect(maxNumThreads() % 4).toBe(0);
  });

  it.each(['1000000000', '2147483648', '100000', '0', '-3', '2.5', 'NaN'])('setNumThreads(%s) is a RangeError naming the value; the process lives', (n) => {
    const out = runChild(['threads', n]);
    expect(out.signal, out.stderr).toBeNull();
    expect(out.code, out.stderr).toBe(0);
    expect(out.result?.ok).toBe(false);
    expect(out.result?.name).toBe('RangeError');
    expect(out.result?.message).toContain(`setNumThreads(${n})`);
    expect(out.result?.message).toMatch(refused);
    expect(Number(refused.exec(out.result?.message ?? '')?.[1])).toBe(maxNumThreads());
  });

  it.each(['1000000000', '100000', 'lots'])('RPO_NUM_THREADS=%s is an error naming the variable; the process lives', (n) => {
    const out = runChild(['load'], { RPO_NUM_THREADS: n });
    expect(out.signal, out.stderr).toBeNull();
    expect(out.code, out.stderr).toBe(0);
    expect(out.result?.ok).toBe(false);
    expect(out.result?.message).toContain(`RPO_NUM_THREADS=${n}`);
    expect(out.result?.message).toMatch(refused);
  });

  it('a count within the cap is taken, in this process and through the variable', () => {
    const before = getNumThreads();
    setNumThreads(maxNumThreads());
    expect(getNumThreads()).toBe(maxNumThreads());
    setNumThreads(before);
    expect(runChild(['load'], { RPO_NUM_THREADS: '3' }).result).toEqual({ ok: true, threads: 3 });
  });

  it.each(['1000000000', '2147483648'])('the binding refuses setNumThreads(%s) without the TypeScript layer', (n) => {
    const out = runChild(['raw-threads', n]);
    expect(out.signal, out.stderr).toBeNull();
    expect(out.result).toEqual({ ok: false, name: 'RangeError', message: `setNumThreads(n): n must be an integer from 1 to ${maxNumThreads()}, got ${n}` });
  });
});
