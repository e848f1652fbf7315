// Data-parallel training through the CLI (issue 11), CPU ranks on Gloo over loopback: 2 ranks ×
// half the micro-batches give the weights and metrics.jsonl of 1 process × the whole global batch;
// two "machines" (node ranks, each its own `rpo launch --node-rank`) do too; Ctrl-C on one rank
// stops all after one save, and a resume with 1 or 2 ranks continues as the uninterrupted run; a
// rank that dies makes the other exit within a bounded time, naming it.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { freePort } from '../../lib/parallel/launch.js';
import { REPO, rpo, rpoAsync } from './cli.js';
import { dataParallelAvailable, PAIRS, RANK_ENV, tinyRunArgs } from './ranks_fixture.js';
import { maxMetricDiff, maxTensorDiff, metrics as runMetrics, type MetricRecord } from './run_compare.js';

const entry = path.join(REPO, 'test', 'e2e', 'cli_entry.ts');
let work: string;
let modelDir: string;

const available = dataParallelAvailable('data_parallel.test.ts');

const ENV = RANK_ENV;
const base = (exp: string, extra: string[] = []): string[] => tinyRunArgs(work, modelDir, exp, extra);

type Record_ = MetricRecord;
function metrics(run: string): Record_[] {
  return runMetrics(path.join(work, run));
}

/** The weights of two runs' LATEST checkpoints: the largest difference. */
function maxWeightDiff(a: string, b: string): number {
  return maxTensorDiff(path.join(work, a, 'LATEST', 'model.safetensors'), path.join(work, b, 'LATEST', 'model.safetensors'));
}

function launchArgs(n: number, exp: string, extra: string[]): string[] {
  return ['launch', '--nproc-per-node', String(n), '--', 'train', ...base(exp, extra)];
}

/** A rank started by hand with the torchrun environment (what torchrun or srun would do). */
function startRank(rank: number, world: number, port: number, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): { child: ChildProcess; done: Promise<{ code: number | null; stderr: string; seconds: number }> } {
  const t0 = Date.now();
  // tsx by its path: a rank's own working directory need not see the repository's node_modules.
  const child = spawn(process.execPath, ['--import', pathToFileURL(path.join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href, entry, 'train', ...args], {
    cwd: opts.cwd ?? REPO,
    env: { ...process.env, ...ENV, RANK: String(rank), WORLD_SIZE: String(world), LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), ...opts.env },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; stderr: string; seconds: number }>((resolve) => child.on('close', (code) => resolve({ code, stderr, seconds: (Date.now() - t0) / 1000 })));
  return { child, done };
}

async function waitForStep(run: string, step: number): Promise<void> {
  const file = path.join(work, run, 'metrics.jsonl');
  for (let i = 0; i < 1200; i++) {
    if (existsSync(file) && readFileSync(file, 'utf8').split('\n').some((l) => l.includes(`"step":${step},`) && l.includes('"loss"'))) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${run}: step ${step} never logged`);
}

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-dp-'));
  modelDir = path.join(work, 'tiny-model');
  const r = rpo(['init', modelDir, '--preset', 'tiny', '--seed', '5']);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(() => {
  if (!process.env.RPO_KEEP_TEST_DIR) rmSync(work, { recursive: true, force: true });
  else console.log(work);
});

describe.skipIf(!available)('data parallel = one process', () => {
  // dpo, 4 steps of 4 pairs, evaluations sharded over the ranks.
  const dpo = ['loss=dpo', 'n_examples=16', 'eval_every=8'];

  it('2 ranks x 1 micro-batch = 1 process x 2 micro-batches (dpo): same weights and metrics.jsonl', async () => {
    const one = rpo(['train', ...base('one', [...dpo, 'model.gradient_accumulation_steps=2'])], { env: ENV });
    expect(one.code, one.stderr).toBe(0);
    const two = await rpoAsync(launchArgs(2, 'two', [...dpo, 'model.gradient_accumulation_steps=1']), { env: ENV });
    expect(two.code, two.stderr).toBe(0);
    expect(two.stderr).toMatch(/data parallel: 2 ranks/);
    // Each rank's micro-step is the one the single process runs, and the all-reduce of two
    // float32 gradients is the accumulation's a + b (addition commutes exactly): the runs agree
    // bit for bit (measured 0). The bounds leave one float32 rounding (2^-24 relative) per step
    // should Gloo ever add in another order; metrics are float64 sums of the same terms.
    expect(maxWeightDiff('one', 'two')).toBeLessThanOrEqual(4 * 2 ** -24);
    const m1 = metrics('one');
    const m2 = metrics('two');
    expect(m2.filter((r) => r.loss !== undefined).every((r) => typeof r.comm_wait_seconds === 'number')).toBe(true);
    expect(m1.some((r) => r.eval_loss !== undefined)).toBe(true);
    expect(maxMetricDiff(m1, m2)).toBeLessThanOrEqual(1e-12);
    // only rank 0 wrote: one metrics line per step and evaluation
    expect(m2.filter((r) => r.loss !== undefined).map((r) => r.step)).toEqual([1, 2, 3, 4]);
  });

  it('2 ranks x 2 micro-batches = 1 process x 4 (rdpo, rationale rows)', async () => {
    const args = ['loss=rdpo', 'n_examples=12', 'eval_every=100000'];
    const one = rpo(['train', ...base('rdpo-one', [...args, 'model.gradient_accumulation_steps=4'])], { env: ENV });
    expect(one.code, one.stderr).toBe(0);
    const two = await rpoAsync(launchArgs(2, 'rdpo-two', [...args, 'model.gradient_accumulation_steps=2']), { env: ENV });
    expect(two.code, two.stderr).toBe(0);
    // Four float32 gradients summed as (g1 + g2) + (g3 + g4) instead of ((g1 + g2) + g3) + g4:
    // a rounding apart per step; AdamW's normalised update carries that relative error into a
    // step of size lr = 1e-3, so 3 steps move the weights apart by well under 1e-6.
    // Metrics: float32 log-probs of weights that far apart agree to ~1e-7 of their size (measured
    // 2e-7 on rewards/margins, a difference of two ~55-nat sums).
    expect(maxWeightDiff('rdpo-one', 'rdpo-two')).toBeLessThan(1e-6);
    expect(maxMetricDiff(metrics('rdpo-one'), metrics('rdpo-two'))).toBeLessThan(1e-5);
  });

  it('the reference precompute, sharded by batch over 2 ranks, gives the single process\'s table and run', async () => {
    const args = ['loss=dpo', 'n_examples=16', 'eval_every=8', 'precompute_reference=true'];
    const one = rpo(['train', ...base('ref-one', [...args, 'model.gradient_accumulation_steps=2'])], { env: ENV });
    expect(one.code, one.stderr).toBe(0);
    // Its own cache_dir, so the 2-rank run computes the table instead of reading the first one's.
    const two = await rpoAsync(launchArgs(2, 'ref-two', [...args, 'model.gradient_accumulation_steps=1', `cache_dir=${path.join(work, 'other')}`]), { env: ENV });
    expect(two.code, two.stderr).toBe(0);
    expect(two.stderr).toMatch(/reference log-probs: computing for 7 examples/);
    const table = (dir: string) => {
      const files = readdirSync(path.join(dir, 'reference_logps'));
      expect(files.length).toBe(1);
      return JSON.parse(readFileSync(path.join(dir, 'reference_logps', files[0]!), 'utf8')) as { key: string; ids: string[]; values: number[] };
    };
    // Each batch runs on one rank exactly as in the single process: the same numbers, bit for bit.
    expect(table(path.join(work, 'other'))).toEqual(table(work));
    expect(maxWeightDiff('ref-one', path.join('other', 'ref-two'))).toBe(0);
    expect(maxMetricDiff(metrics('ref-one'), metrics(path.join('other', 'ref-two')))).toBeLessThanOrEqual(1e-12);
  });

  it('sample_during_eval: each rank generates its batches of prompts, rank 0 writes the single process\'s samples files', async () => {
    // Two sample prompts at eval_batch_size=1: rank 0 generates prompt 0, rank 1 prompt 1.
    const args = ['loss=dpo', 'n_examples=8', 'eval_every=4', 'sample_during_eval=true', 'n_eval_model_samples=2'];
    const one = rpo(['train', ...base('samp-one', [...args, 'model.gradient_accumulation_steps=2'])], { env: ENV });
    expect(one.code, one.stderr).toBe(0);
    const two = await rpoAsync(launchArgs(2, 'samp-two', [...args, 'model.gradient_accumulation_steps=1']), { env: ENV });
    expect(two.code, two.stderr).toBe(0);
    const files = (run: string) => readdirSync(path.join(work, run, 'samples')).sort();
    expect(files('samp-one')).toEqual(['step-0.json', 'step-1.json', 'step-2.json']);
    expect(files('samp-two')).toEqual(files('samp-one'));
    // Greedy, and each batch runs on one rank exactly as in the single process (same padding,
    // same weights bit for bit: the dpo test above): the same text, file for file.
    for (const f of files('samp-one')) {
      const read = (run: string) => JSON.parse(readFileSync(path.join(work, run, 'samples', f), 'utf8')) as { step: number; samples: { prompt: string; output: string; chosen: string }[] };
      const a = read('samp-one');
      expect(a.samples.length).toBe(2);
      expect(a.samples[0]!.prompt).not.toBe(a.samples[1]!.prompt);
      expect(read('samp-two')).toEqual(a);
    }
  });

  it('two machines: two node ranks on loopback, each with its own --node-rank', async () => {
    const port = await freePort();
    const node = (k: number) =>
      rpoAsync(['launch', '--nnodes', '2', '--node-rank', String(k), '--nproc-per-node', '1', '--master-addr', '127.0.0.1', '--master-port', String(port), '--', 'train', ...base('nodes', [...dpo, 'model.gradient_accumulation_steps=1'])], { env: ENV });
    const [a, b] = await Promise.all([node(0), node(1)]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(maxWeightDiff('one', 'nodes')).toBeLessThanOrEqual(4 * 2 ** -24);
    expect(maxMetricDiff(metrics('one'), metrics('nodes'))).toBeLessThanOrEqual(1e-12);
  });
});

describe.skipIf(!available)('interrupts, resume and dead ranks', () => {
  const long = ['loss=dpo', 'n_examples=240', 'eval_every=100000', 'do_first_eval=false'];

  it('Ctrl-C on one rank: all stop, rank 0 saves once, both exit 130; resuming with 1 or 2 ranks gives the uninterrupted run', async () => {
    const full = rpo(['train', ...base('full', [...long, 'model.gradient_accumulation_steps=2'])], { env: ENV });
    expect(full.code, full.stderr).toBe(0);

    const port = await freePort();
    const args = base('cut', [...long, 'model.gradient_accumulation_steps=1']);
    const ranks = [0, 1].map((r) => startRank(r, 2, port, args));
    await waitForStep('cut', 3);
    ranks[1]!.child.kill('SIGINT');
    const [r0, r1] = await Promise.all(ranks.map((r) => r.done));
    expect(r0!.code, r0!.stderr).toBe(130);
    expect(r1!.code, r1!.stderr).toBe(130);
    expect(r0!.stderr.match(/rpo: checkpoint: /g)?.length).toBe(1);
    expect(r1!.stderr).not.toMatch(/checkpoint/);
    const state = JSON.parse(readFileSync(path.join(work, 'cut', 'LATEST', 'trainer_state.json'), 'utf8')) as { step: number };
    expect(state.step).toBeGreaterThanOrEqual(3);
    expect(state.step).toBeLessThan(60);

    // The checkpoint holds the whole (replicated) optimizer state: any world size resumes it.
    const cutDir = path.join(work, 'cut');
    const one = rpo(['train', ...base('resume-one', [...long, 'model.gradient_accumulation_steps=2', `resume=${cutDir}`])], { env: ENV });
    expect(one.code, one.stderr).toBe(0);
    const two = await rpoAsync(launchArgs(2, 'resume-two', [...long, 'model.gradient_accumulation_steps=1', `resume=${cutDir}`]), { env: ENV });
    expect(two.code, two.stderr).toBe(0);
    expect(maxWeightDiff('full', 'resume-one')).toBeLessThanOrEqual(60 * 2 ** -24);
    expect(maxWeightDiff('full', 'resume-two')).toBeLessThanOrEqual(60 * 2 ** -24);
  });

  it('a rank killed mid-run: the other exits within a bounded time, naming it', async () => {
    const port = await freePort();
    const args = base('dead', [...long, 'model.gradient_accumulation_steps=1']);
    const ranks = [0, 1].map((r) => startRank(r, 2, port, args));
    await waitForStep('dead', 2);
    const t0 = Date.now();
    ranks[1]!.child.kill('SIGKILL');
    const r0 = await ranks[0]!.done;
    expect(r0.code).toBe(1);
    expect(r0.stderr).toMatch(/distributed: .* failed on rank 0 of 2: rank\(s\) 1 did not answer/);
    expect((Date.now() - t0) / 1000).toBeLessThan(30);
  });

  it('rank 0 killed mid-run: the other says the store is gone, without c10\'s warning and stack dump (D9)', async () => {
    const port = await freePort();
    const args = base('dead-main', [...long, 'model.gradient_accumulation_steps=1']);
    const ranks = [0, 1].map((r) => startRank(r, 2, port, args));
    await waitForStep('dead-main', 2);
    ranks[0]!.child.kill('SIGKILL');
    const r1 = await ranks[1]!.done;
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(/rank 0, which serves the rendezvous store at 127\.0\.0\.1:\d+, is gone/);
    // c10's own lines: "[W1207 ... TCPStore.cpp:138] [c10d] ..." and "frame #0: ..." (16 of them).
    expect(r1.stderr).not.toMatch(/frame #\d+/);
    expect(r1.stderr).not.toMatch(/^\[[WE]\d{4} /m);
  });
});

/** `args` with `key=value` in place of the key's own override (or appended). */
function withArg(args: readonly string[], override: string): string[] {
  const key = override.slice(0, override.indexOf('=') + 1);
  return args.some((a) => a.startsWith(key)) ? args.map((a) => (a.startsWith(key) ? override : a)) : [...args, override];
}

describe.skipIf(!available)('ranks that run different jobs stop at rendezvous (D1, D2, D15)', () => {
  const job = ['loss=dpo', 'n_examples=8', 'eval_every=100000'];

  /** Two ranks by hand, rank 1 with `other` in place of rank 0's setting; both results. */
  async function mismatched(exp: string, other: { override?: string; env?: NodeJS.ProcessEnv }) {
    const port = await freePort();
    const args = base(exp, job);
    const ranks = [startRank(0, 2, port, args), startRank(1, 2, port, other.override ? withArg(args, other.override) : args, { env: other.env })];
    return Promise.all(ranks.map((r) => r.done));
  }

  // What two machines typing different commands did: SIGABRT in Gloo (batch size, loss, ZeRO
  // stage: collectives of other sizes) or a run to the end with diverging weights (lr).
  it.each([
    ['model.batch_size', { override: 'model.batch_size=8' }, 'model.batch_size differs (rank 0: 4; rank 1: 8)'],
    ['loss', { override: 'loss=ipo' }, 'loss.name differs (rank 0: "dpo"; rank 1: "ipo")'],
    ['the ZeRO stage', { env: { RPO_ZERO: '1' } }, 'zero stage (RPO_ZERO / --zero) differs (rank 0: 0; rank 1: 1)'],
    ['lr', { override: 'lr=2e-3' }, 'lr differs (rank 0: 0.001; rank 1: 0.002)'],
  ])('%s: every rank exits 2 naming the key and the ranks', async (_name, other, differs) => {
    const exp = `mismatch-${_name.replace(/\W+/g, '-')}`;
    const results = await mismatched(exp, other);
    for (const r of results) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`config error: the ranks of this job disagree on the config: ${differs}`);
      expect(r.stderr).not.toMatch(/EnforceNotMet|frame #/);
    }
    expect(existsSync(path.join(work, exp, '.rpo.lock'))).toBe(false);
    expect(existsSync(path.join(work, exp, 'LATEST'))).toBe(false);
  });

  it('the same config on different data (two machines, one path): every rank exits 2 naming the split; rank 0\'s lock is released', async () => {
    // Each rank's working directory holds its own copy of the dataset under the same relative path.
    const dirs = [0, 1].map((r) => path.join(work, `machine-${r}`));
    for (const d of dirs) cpSync(PAIRS, path.join(d, 'data', 'pairs'), { recursive: true });
    const train1 = path.join(dirs[1]!, 'data', 'pairs', 'train.jsonl');
    writeFileSync(train1, readFileSync(train1, 'utf8').replace('"chosen": "2."', '"chosen": "two."'));
    const port = await freePort();
    const args = withArg(base('mismatch-data', job), 'datasets=[data/pairs]');
    const results = await Promise.all([0, 1].map((r) => startRank(r, 2, port, args, { cwd: dirs[r] }).done));
    for (const r of results) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/the ranks of this job disagree on the data or the model: data: train split \(tokenized examples\) differs \(rank 0: [0-9a-f]{32}; rank 1: [0-9a-f]{32}\)/);
    }
    expect(existsSync(path.join(work, 'mismatch-data', '.rpo.lock'))).toBe(false);
  });

  it('a run directory in use: every rank exits 2, and so does rpo launch (D15)', async () => {
    // Held by a live process on this host (this test's).
    const runDir = path.join(work, 'busy');
    mkdirSync(runDir, { recursive: true });
    const lock = JSON.stringify({ pid: process.pid, host: hostname(), started: new Date().toISOString(), command: 'test' });
    writeFileSync(path.join(runDir, '.rpo.lock'), lock);
    const port = await freePort();
    const ranks = await Promise.all([0, 1].map((r) => startRank(r, 2, port, base('busy', job)).done));
    for (const r of ranks) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/run directory \S+busy is in use by another run/);
    }
    const launched = await rpoAsync(launchArgs(2, 'busy', job), { env: ENV });
    expect(launched.code, launched.stderr).toBe(2);
    expect(readFileSync(path.join(runDir, '.rpo.lock'), 'utf8')).toBe(lock);
  });
});

describe('rpo launch checks before it starts ranks', () => {
  it('a config error is reported once, exit 2, no rank started', () => {
    const r = rpo(['launch', '--nproc-per-node', '2', '--', 'train', 'model=tiny', `model.name_or_path=${modelDir}`]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr.match(/config error: you must choose a 'loss'/g)?.length).toBe(1);
    expect(r.stderr).not.toMatch(/rank 0 pid/);
  });
  it('a usage error names the flag', () => {
    const r = rpo(['launch', '--nproc-per-node', 'two', '--', 'train']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--nproc-per-node needs a whole number in \[1, 1024\], not "two"/);
  });
});

describe.skipIf(!available)('rpo launch watches its ranks', () => {
  const long = ['loss=dpo', 'n_examples=240', 'eval_every=100000', 'do_first_eval=false', 'model.gradient_accumulation_steps=1'];

  /** Starts `rpo launch` and resolves with the pids of its ranks, as it logs them. */
  function startLaunch(exp: string) {
    const child = spawn(process.execPath, ['--import', 'tsx', entry, ...launchArgs(2, exp, long)], { cwd: REPO, env: { ...process.env, ...ENV } });
    let stderr = '';
    const pids = new Promise<number[]>((resolve) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /rank 0 pid (\d+), rank 1 pid (\d+)/.exec(stderr);
        if (m) resolve([Number(m[1]), Number(m[2])]);
      });
    });
    const done = new Promise<{ code: number | null; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stderr })));
    return { child, pids, done };
  }

  it('Ctrl-C on the launcher reaches every rank once: one checkpoint, exit 130', async () => {
    const l = startLaunch('launch-int');
    await l.pids;
    await waitForStep('launch-int', 2);
    l.child.kill('SIGINT');
    const r = await l.done;
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr.match(/rpo: checkpoint: /g)?.length).toBe(1);
    expect(r.stderr).not.toMatch(/quitting without a checkpoint/);
    expect(r.stderr).toMatch(/rpo: or with its 2 ranks: npx rpo launch --nproc-per-node 2 -- train --config-path=\S+launch-int --config-name=config resume=/);
  });

  it('a rank killed: the launcher names it and exits non-zero; the other rank is gone too', async () => {
    const l = startLaunch('launch-kill');
    const [pid0, pid1] = await l.pids;
    await waitForStep('launch-kill', 2);
    const t0 = Date.now();
    process.kill(pid1!, 'SIGKILL');
    const r = await l.done;
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBe(130);
    expect(r.stderr).toContain(`rank 1 (pid ${pid1}) was killed by SIGKILL`);
    expect(r.stderr).toMatch(/failed on rank 0 of 2: rank\(s\) 1 did not answer/);
    expect((Date.now() - t0) / 1000).toBeLessThan(40);
    expect(() => process.kill(pid0!, 0)).toThrow();
  });
});

describe.skipIf(!available)('ZeRO-1 and ZeRO-2: optimizer state (and gradients) sharded over the ranks', () => {
  const dpo = ['loss=dpo', 'n_examples=16', 'eval_every=8'];
  const planOf = (stderr: string, stage = 1) => {
    const m = new RegExp(`ZeRO-${stage}: optimizer state ([\\d.]+) [MG]iB unsharded; per rank: rank 0 ([\\d.]+) [MG]iB \\(([\\d.]+) %\\), rank 1 ([\\d.]+) [MG]iB \\(([\\d.]+) %\\)`).exec(stderr);
    expect(m, stderr).not.toBeNull();
    return { p0: Number(m![3]), p1: Number(m![5]) };
  };

  for (const [stage, precision] of [[1, 'fp32'], [1, 'bf16-mixed'], [2, 'fp32'], [2, 'bf16-mixed']] as const) {
    it(`ZeRO-${stage}: 2 ranks, each updating its half = 1 process x 2 micro-batches (${precision})`, async () => {
      const p = [`precision=${precision}`];
      // The one-process run is the same for both stages: made once.
      if (!existsSync(path.join(work, `z-one-${precision}`, 'LATEST'))) {
        const one = rpo(['train', ...base(`z-one-${precision}`, [...dpo, ...p, 'model.gradient_accumulation_steps=2'])], { env: ENV });
        expect(one.code, one.stderr).toBe(0);
      }
      const run = stage === 1 ? `z-two-${precision}` : `z${stage}-two-${precision}`;
      const two = await rpoAsync(['launch', '--nproc-per-node', '2', '--zero', String(stage), '--', 'train', ...base(run, [...dpo, ...p, 'model.gradient_accumulation_steps=1'])], { env: ENV });
      expect(two.code, two.stderr).toBe(0);
      // Each rank holds the state of about half the elements (whole tensors: not exactly half).
      const { p0, p1 } = planOf(two.stderr, stage);
      // ZeRO-2: and the gradients of its half after the reduce (float32 or bf16: 4 or 2 bytes
      // against the optimizer state's 8 or 12 per element).
      if (stage === 2) expect(two.stderr).toMatch(/; gradients [\d.]+ [MG]iB unsharded, kept after the reduce per rank: rank 0 [\d.]+ [MG]iB, rank 1 [\d.]+ [MG]iB/);
      expect(p0 + p1).toBeCloseTo(100, 0);
      expect(Math.min(p0, p1)).toBeGreaterThan(20);
      // The clip norm covers every gradient (ZeRO-2: from per-parameter norms summed over the
      // ranks, x + 0 = x) and each parameter is updated by one rank with the single process's
      // arithmetic, then broadcast: the same weights, bit for bit (the bound as in the
      // all-reduce test above), and the same grad_norm in metrics.jsonl.
      expect(maxWeightDiff(`z-one-${precision}`, run)).toBeLessThanOrEqual(4 * 2 ** -24);
      expect(maxMetricDiff(metrics(`z-one-${precision}`), metrics(run))).toBeLessThanOrEqual(1e-12);
    });
  }

  it('ZeRO-2 with 2 micro-batches per rank (rdpo, rationale rows) = 1 process x 4', async () => {
    // Earlier micro-steps accumulate locally on every rank; only the last one's backward reduces.
    const args = ['loss=rdpo', 'n_examples=12', 'eval_every=100000'];
    const one = rpo(['train', ...base('z2-rdpo-one', [...args, 'model.gradient_accumulation_steps=4'])], { env: ENV });
    expect(one.code, one.stderr).toBe(0);
    const two = await rpoAsync(['launch', '--nproc-per-node', '2', '--zero', '2', '--', 'train', ...base('z2-rdpo-two', [...args, 'model.gradient_accumulation_steps=2'])], { env: ENV });
    expect(two.code, two.stderr).toBe(0);
    // The bounds of the all-reduce rdpo test above: the four gradients regrouped as (g1 + g2) + (g3 + g4).
    expect(maxWeightDiff('z2-rdpo-one', 'z2-rdpo-two')).toBeLessThan(1e-6);
    expect(maxMetricDiff(metrics('z2-rdpo-one'), metrics('z2-rdpo-two'))).toBeLessThan(1e-5);
  });

  for (const stage of ['1', '2'] as const)
  it(`a 2-rank ZeRO-${stage} checkpoint resumes with 1 process and with 2 ZeRO-${stage} ranks as the uninterrupted run`, async () => {
    const long = ['loss=dpo', 'n_examples=240', 'eval_every=100000', 'do_first_eval=false'];
    // The uninterrupted one-process run is the same for both stages: made once.
    if (!existsSync(path.join(work, 'z-full', 'LATEST'))) {
      const full = rpo(['train', ...base('z-full', [...long, 'model.gradient_accumulation_steps=2'])], { env: ENV });
      expect(full.code, full.stderr).toBe(0);
    }
    const port = await freePort();
    const cut = stage === '1' ? 'z-cut' : `z${stage}-cut`;
    const args = base(cut, [...long, 'model.gradient_accumulation_steps=1']);
    const ranks = [0, 1].map((r) => {
      const t0 = Date.now();
      const child = spawn(process.execPath, ['--import', 'tsx', entry, 'train', ...args], {
        cwd: REPO,
        env: { ...process.env, ...ENV, RPO_ZERO: stage, RANK: String(r), WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) },
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      return { child, done: new Promise<{ code: number | null; stderr: string; t: number }>((res) => child.on('close', (code) => res({ code, stderr, t: Date.now() - t0 }))) };
    });
    await waitForStep(cut, 3);
    ranks[0]!.child.kill('SIGINT');
    const [r0, r1] = await Promise.all(ranks.map((r) => r.done));
    expect(r0!.code, r0!.stderr).toBe(130);
    expect(r1!.code, r1!.stderr).toBe(130);
    const cutDir = path.join(work, cut);
    const resumed = (n: number) => (stage === '1' ? `z-resume-${n}` : `z${stage}-resume-${n}`);
    const one = rpo(['train', ...base(resumed(1), [...long, 'model.gradient_accumulation_steps=2', `resume=${cutDir}`])], { env: ENV });
    expect(one.code, one.stderr).toBe(0);
    const two = await rpoAsync(['launch', '--nproc-per-node', '2', '--zero', stage, '--', 'train', ...base(resumed(2), [...long, 'model.gradient_accumulation_steps=1', `resume=${cutDir}`])], { env: ENV });
    expect(two.code, two.stderr).toBe(0);
    expect(maxWeightDiff('z-full', resumed(1))).toBeLessThanOrEqual(60 * 2 ** -24);
    expect(maxWeightDiff('z-full', resumed(2))).toBeLessThanOrEqual(60 * 2 ** -24);
  });
});
