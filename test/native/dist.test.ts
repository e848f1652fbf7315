// c10d in the engine (native/parallel): two real processes, a TCPStore rendezvous on loopback and
// ProcessGroupGloo. Collectives against hand-computed values; the bucketed gradient all-reduce
// (launched from autograd hooks during backward) against one process accumulating both ranks'
// micro-batches; a rendezvous nobody serves fails within its timeout with a clear error.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import { freePort } from '../../lib/parallel/launch.js';
import { distInfo } from '../../lib/parallel/native.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(here, '..', '..');

function runRank(rank: number, port: number, extraEnv: NodeJS.ProcessEnv = {}, worker = 'dist_worker.ts'): Promise<{ code: number | null; stdout: string; stderr: string; seconds: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, worker)], {
      cwd: REPO,
      env: { ...process.env, RANK: String(rank), WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), RPO_NUM_THREADS: '1', RPO_DIST_TIMEOUT_S: '60', ...extraEnv },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr, seconds: (Date.now() - t0) / 1000 }));
  });
}

// The setup provides gloo's headers (scripts/gloo-headers.mjs): in CI a build without them is a
// failure, not a skip.
const available = distInfo().available;
if (!available && process.env.CI) throw new Error(`data parallelism is not built: ${distInfo().reason}`);
if (!available) console.warn(`dist.test.ts: skipping the data-parallel tests: ${distInfo().reason}`);

describe.skipIf(!available)('c10d Gloo, two processes', () => {
  it.each(['0', '1'])('all-reduces, shares strings, and sums gradients bucket by bucket during backward (activation checkpointing %s)', async (ckpt) => {
    const port = await freePort();
    const env = { RPO_TEST_CHECKPOINTING: ckpt };
    const results = await Promise.all([runRank(0, port, env), runRank(1, port, env)]);
    const out = results.map((x) => {
      expect(x.code, x.stderr).toBe(0);
      return JSON.parse(x.stdout.trim().split('\n').pop()!) as {
        sum: number[]; max: number[]; min: number[]; greeting: string; maxAbs: number; maxRef: number; n: number;
        result: { buckets: number; launchedEarly: number; bytes: number; waitSeconds: number };
      };
    });
    for (const o of out) {
      // float64 end to end: 1 + 2, 2^-30 (1 + 2), 0 - 1, 1e300 - 1e300 exactly.
      expect(o.sum).toEqual([3, 3 * 2 ** -30, -1, 0]);
      expect(o.max).toEqual([1, 0]);
      expect(o.min).toEqual([0, -1]);
      expect(o.greeting).toBe('from rank 0');
      // Every parameter of the 2-layer model in buckets of a sixth of it: several, all launched from
      // backward's hooks (none left for finish), every float32 gradient sent once.
      expect(o.result.buckets).toBeGreaterThanOrEqual(6);
      expect(o.result.launchedEarly).toBe(o.result.buckets);
      expect(o.result.bytes).toBe(4 * o.n);
      expect(o.maxRef).toBeGreaterThan(0);
      // Two addends: Gloo's a + b and the accumulation's a + b are the same float32 sum (addition
      // commutes exactly), and each rank's micro-step is the one the single process runs. The
      // bound allows one float32 rounding of the largest gradient, should a future Gloo reduce
      // in another precision; measured: 0.
      expect(o.maxAbs).toBeLessThanOrEqual(o.maxRef * 2 ** -23);
    }
  });

  it.each(['0', '1'])('rdpo: the rationale forward\'s backward launches no bucket; each gradient is sent once, complete (activation checkpointing %s)', async (ckpt) => {
    const port = await freePort();
    const env = { RPO_TEST_CHECKPOINTING: ckpt, RPO_TEST_LOSS: 'rdpo' };
    const results = await Promise.all([runRank(0, port, env), runRank(1, port, env)]);
    for (const x of results) {
      expect(x.code, x.stderr).toBe(0);
      const o = JSON.parse(x.stdout.trim().split('\n').pop()!) as { maxAbs: number; maxRef: number; n: number; result: { buckets: number; launchedEarly: number; bytes: number; resent: number } };
      // launched from the response forward's backward, none resent by finish (a bucket launched
      // from the rationale forward's backward would have to go again, complete)
      expect(o.result.launchedEarly).toBe(o.result.buckets);
      expect(o.result.resent).toBe(0);
      expect(o.result.bytes).toBe(4 * o.n);
      expect(o.maxRef).toBeGreaterThan(0);
      // Four addends a parameter (two ranks × two forwards), associated differently by the single
      // process ((a + b) + c) + d and by Gloo (a + b) + (c + d): a few float32 roundings.
      expect(o.maxAbs).toBeLessThanOrEqual(o.maxRef * 2 ** -21);
    }
  });

  it('ZeRO-2: each gradient reduced to its owner only (freed on every rank during backward, the owner gets the sums), the clip norm and the step the single process\'s', async () => {
    const port = await freePort();
    const results = await Promise.all([runRank(0, port, {}, 'dist_zero2_worker.ts'), runRank(1, port, {}, 'dist_zero2_worker.ts')]);
    const out = results.map((x) => {
      expect(x.code, x.stderr).toBe(0);
      return JSON.parse(x.stdout.trim().split('\n').pop()!) as {
        rank: number; heldAfterBackward: number[]; heldParams: number[]; nParams: number; maxAbs: number; maxRef: number; gradNorm: number; refGradNorm: number; logitDiff: number;
        result: { buckets: number; launchedEarly: number; bytes: number; settledEarly: number };
        plan: { ownedParams: number; stage: number };
      };
    });
    const [a, b] = out as [(typeof out)[0], (typeof out)[0]];
    // Each parameter's gradient is held by exactly one rank, its owner, and by no other.
    expect(a.heldParams.length).toBeGreaterThan(0);
    expect(b.heldParams.length).toBeGreaterThan(0);
    expect(a.heldParams.filter((k) => b.heldParams.includes(k))).toEqual([]);
    expect([...a.heldParams, ...b.heldParams].sort((x, y) => x - y)).toEqual(Array.from({ length: a.nParams }, (_, k) => k));
    for (const o of out) {
      expect(o.plan.stage).toBe(2);
      expect(o.heldParams.length).toBe(o.plan.ownedParams);
      // Buckets of a sixth, cut at the owners' boundary too, all launched from backward.
      expect(o.result.buckets).toBeGreaterThanOrEqual(6);
      expect(o.result.launchedEarly).toBe(o.result.buckets);
      // Freed during backward: when backward returns, no rank holds a gradient of a parameter it
      // does not own (each went into its bucket's buffer at launch); only the owner's sums of
      // buckets whose reduce completed during backward may be back already.
      expect(o.heldAfterBackward.filter((k) => !o.heldParams.includes(k))).toEqual([]);
      // Buffers whose reduce finished while backward went on were dropped then (timing-dependent
      // which; at most all but the last bucket, launched by backward's last hook).
      expect(o.result.settledEarly).toBeLessThan(o.result.buckets);
      expect(o.maxRef).toBeGreaterThan(0);
      // The owner's sum is a + b as in the all-reduce test: one rounding allowed, measured 0.
      expect(o.maxAbs).toBeLessThanOrEqual(o.maxRef * 2 ** -23);
      // The clip norm from per-parameter norms summed over ranks (x + 0 = x) is the single
      // process's to the bit, and clipping acted (max_grad_norm 1e-3).
      expect(o.gradNorm).toBe(o.refGradNorm);
      expect(o.gradNorm).toBeGreaterThan(1e-3);
      // Each parameter stepped by its owner and broadcast: the single process's weights (logits
      // of the same batch equal; the bound leaves one float32 rounding of ~1-size logits).
      expect(o.logitDiff).toBeLessThanOrEqual(2 ** -20);
    }
  });

  it('a rendezvous nobody serves fails within its timeout, naming the address', async () => {
    const port = await freePort();
    const r = await runRank(1, port, { RPO_DIST_TIMEOUT_S: '3' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`rank 1 could not reach the rendezvous at 127\\.0\\.0\\.1:${port} within 3 s \\(check MASTER_ADDR and MASTER_PORT`));
    expect(r.seconds).toBeLessThan(30);
  });
});
