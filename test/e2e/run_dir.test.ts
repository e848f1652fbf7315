// A run directory belongs to one run, and nothing in it is lost: re-runs, concurrent runs,
// Ctrl-C before the first step, full and read-only disks (real tmpfs mounts), kills midway
// through a checkpoint write, and the printed resume command. Issue 9, items 1–6, 12, 13.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadConfig } from '../../lib/config/index.js';
import { train } from '../../lib/train/loop.js';
import { EventWriter } from '../../lib/train/tensorboard.js';
import { runPython } from '../reference/python.js';
import { REPO, rpo, rpoLive } from './cli.js';

const PAIRS = path.join(REPO, 'test', 'fixtures', 'data', 'pairs');
let work: string;
let modelDir: string;
const mounts: string[] = [];

function digest(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function records(file: string): Record<string, number>[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
}

function base(exp: string, extra: string[] = [], cacheDir = work): string[] {
  return [
    'model=tiny',
    `model.name_or_path=${modelDir}`,
    `datasets=[${PAIRS}]`,
    `exp_name=${exp}`,
    `cache_dir=${cacheDir}`,
    `samples_dir=${path.join(work, 'samples')}`,
    // one pair per step: step counts equal example counts
    'model.batch_size=1',
    'model.gradient_accumulation_steps=1',
    'model.eval_batch_size=4',
    'warmup_steps=1',
    'lr=1e-3',
    'eval_every=1000',
    'do_first_eval=false',
    'loss=sft',
    ...extra,
  ];
}

const config = (exp: string, extra: string[] = [], cacheDir = work) => loadConfig({ overrides: base(exp, extra, cacheDir) }).config;

/** A real tmpfs of `size` (root only, as in CI); unmounted after the file's tests. */
function tmpfs(size: string, options = ''): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'rpo-tmpfs-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}${options ? `,${options}` : ''}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mount tmpfs failed (these tests need root): ${r.stderr}`);
  mounts.push(dir);
  return dir;
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) total += statSync(path.join(dir, name)).size;
  return total;
}

/** The pid of a process that has exited (for stale locks and temp directories). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-rundir-'));
  modelDir = path.join(work, 'tiny-model');
  const r = rpo(['init', modelDir, '--preset', 'tiny', '--seed', '5']);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(() => {
  for (const m of mounts) spawnSync('umount', ['-l', m]);
  rmSync(work, { recursive: true, force: true });
});

describe('a run directory belongs to one run (item 1)', () => {
  it('a plain re-run of a finished run is refused and leaves it untouched; the error names resume= and overwrite=true', () => {
    const first = rpo(['train', ...base('rerun', ['n_examples=4'])]);
    expect(first.code, first.stderr).toBe(0);
    const run = path.join(work, 'rerun');
    const before = ['LATEST/model.safetensors', 'LATEST/optimizer.pt', 'metrics.jsonl', 'config.yaml'].map((f) => digest(path.join(run, f)));
    const again = rpo(['train', ...base('rerun', ['n_examples=8', 'lr=5e-3'])]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`resume=${run}`);
    expect(again.stderr).toContain('overwrite=true');
    const after = ['LATEST/model.safetensors', 'LATEST/optimizer.pt', 'metrics.jsonl', 'config.yaml'].map((f) => digest(path.join(run, f)));
    expect(after).toEqual(before);
  });

  it('overwrite=true deletes what rpo wrote and nothing else; metrics.jsonl holds the new run only', () => {
    const run = path.join(work, 'overwrite');
    expect(rpo(['train', ...base('overwrite', ['n_examples=8'])]).code).toBe(0);
    writeFileSync(path.join(run, 'notes.txt'), 'mine');
    mkdirSync(path.join(run, 'my-analysis'));
    const r = rpo(['train', ...base('overwrite', ['n_examples=4', 'overwrite=true'])]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(path.join(run, 'notes.txt'), 'utf8')).toBe('mine');
    expect(existsSync(path.join(run, 'my-analysis'))).toBe(true);
    const steps = records(path.join(run, 'metrics.jsonl')).filter((m) => m.loss !== undefined).map((m) => m.step);
    expect(steps).toEqual([1, 2, 3, 4]);
    // the saved config reloads as this run, never as an order to delete it
    expect(readFileSync(path.join(run, 'config.yaml'), 'utf8')).toMatch(/^overwrite: false$/m);
  });

  it('no checkpoint is written before the first optimizer step (fresh or resumed)', async () => {
    const fresh = await train(config('stop-at-once', ['n_examples=8']), { stopAfterSteps: 0 });
    expect(fresh.interrupted).toBe(true);
    expect(fresh.checkpoint).toBeNull();
    expect(existsSync(path.join(work, 'stop-at-once', 'LATEST'))).toBe(false);

    const done = await train(config('stop-resumed', ['n_examples=4']));
    const weights = path.join(done.runDir, 'LATEST', 'model.safetensors');
    const before = digest(weights);
    const mtime = statSync(weights).mtimeMs;
    const resumed = await train(config('stop-resumed', ['n_examples=8', `resume=${done.runDir}`]), { stopAfterSteps: 0 });
    expect(resumed.interrupted).toBe(true);
    expect(digest(weights)).toBe(before);
    expect(statSync(weights).mtimeMs).toBe(mtime);
  });

  it('Ctrl-C before the first step exits 130 without a checkpoint and without a resume command', async () => {
    let sent = false;
    // the first evaluation runs before any step: interrupt it there
    const r = await rpoLive(['train', ...base('sigint-early', ['n_epochs=20', 'do_first_eval=true'])], (line, child) => {
      if (!sent && /data: \d+ train examples/.test(line)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/no checkpoint was written/);
    expect(r.stderr).not.toMatch(/resume with/);
    expect(existsSync(path.join(work, 'sigint-early', 'LATEST'))).toBe(false);
  });

  it('two concurrent runs with one exp_name: the second is refused, naming the first one\'s pid', async () => {
    let second: ReturnType<typeof rpo> | null = null;
    let firstPid = 0;
    const first = await rpoLive(['train', ...base('concurrent', ['n_epochs=200'])], (line, child) => {
      if (second === null && /^train \d+\/\d+/.test(line.replace(/^\r/, ''))) {
        firstPid = child.pid ?? 0;
        second = rpo(['train', ...base('concurrent', ['n_examples=4', 'overwrite=true'])]);
        child.kill('SIGINT');
      }
    });
    expect(first.code, first.stderr).toBe(130);
    expect(second).not.toBeNull();
    const s = second as unknown as ReturnType<typeof rpo>;
    expect(s.code).toBe(2);
    expect(s.stderr).toContain(`in use by another run (pid ${firstPid}`);
    // the first run's checkpoint is its own, and the lock is gone with it
    const state = JSON.parse(readFileSync(path.join(work, 'concurrent', 'LATEST', 'trainer_state.json'), 'utf8')) as { step: number };
    expect(state.step).toBeGreaterThan(0);
    expect(existsSync(path.join(work, 'concurrent', '.rpo.lock'))).toBe(false);
  });

  it('a stale lock of a dead process is taken over; a lock from another host is reported', async () => {
    const run = path.join(work, 'stale-lock');
    mkdirSync(run, { recursive: true });
    writeFileSync(path.join(run, '.rpo.lock'), JSON.stringify({ pid: deadPid(), host: hostname(), started: 'then', command: 'rpo train' }));
    const messages: string[] = [];
    const r = await train(config('stale-lock', ['n_examples=2']), { onMessage: (m) => messages.push(m) });
    expect(r.checkpoint).not.toBeNull();
    expect(messages.join('\n')).toMatch(/took over the lock of a run that is gone/);
    expect(existsSync(path.join(run, '.rpo.lock'))).toBe(false);

    writeFileSync(path.join(run, '.rpo.lock'), JSON.stringify({ pid: 1, host: 'other-machine', started: 'then', command: 'rpo train' }));
    await expect(train(config('stale-lock', ['n_examples=4', `resume=${run}`]))).rejects.toThrow(/locked by pid 1 on host other-machine/);
    rmSync(path.join(run, '.rpo.lock'));
  });
});

describe('a full disk while a checkpoint is written (item 2, real tmpfs)', () => {
  it('exits 1 naming the file, removes the temp directory and keeps the previous LATEST', () => {
    // Size the file system from a real checkpoint: one fits, a second one (written beside the
    // first before the rename) runs out of space in optimizer.safetensors (AdamW's moments), the
    // largest file.
    const probe = rpo(['train', ...base('probe', ['n_examples=2'])]);
    expect(probe.code, probe.stderr).toBe(0);
    const checkpointBytes = dirBytes(path.join(work, 'probe', 'LATEST'));
    const weightsBytes = statSync(path.join(work, 'probe', 'LATEST', 'model.safetensors')).size;
    const fs = tmpfs(`${Math.ceil((checkpointBytes + weightsBytes + 256 * 1024) / 1024)}k`);
    const first = rpo(['train', ...base('full', ['n_examples=2'], fs)]);
    expect(first.code, first.stderr).toBe(0);
    const latest = path.join(fs, 'full', 'LATEST');
    const before = digest(path.join(latest, 'model.safetensors'));
    const r = rpo(['train', ...base('full', ['n_examples=6', `resume=${path.join(fs, 'full')}`], fs)]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/no space left on device writing \S*optimizer\.safetensors/);
    expect(r.stderr).not.toMatch(/terminate called|Aborted|\bat::|c10::/);
    expect(readdirSync(path.join(fs, 'full')).filter((n) => n.includes('.tmp-'))).toEqual([]);
    expect(digest(path.join(latest, 'model.safetensors'))).toBe(before);
    expect(JSON.parse(readFileSync(path.join(latest, 'trainer_state.json'), 'utf8')).step).toBe(2);
  });
});

describe('what killed runs leave behind (items 3, 4, 5)', () => {
  it('stale temp directories of dead pids are removed; resume finds a step-N or LATEST.prev checkpoint', async () => {
    const done = await train(config('orphans', ['n_examples=2', 'eval_every=2', 'intermediate_checkpoints=true']));
    const run = done.runDir;
    const dead = deadPid();
    for (const name of [`.checkpoint.tmp-${dead}`, `step-9.tmp-${dead}`]) {
      mkdirSync(path.join(run, name));
      writeFileSync(path.join(run, name, 'model.safetensors'), Buffer.alloc(1024));
    }
    // a kill before the first LATEST existed: only the step copy is left
    rmSync(path.join(run, 'LATEST'), { recursive: true });
    expect(readdirSync(run).filter((n) => n.startsWith('step-')).sort()).toContain('step-2');
    const messages: string[] = [];
    const resumed = await train(config('orphans', ['n_examples=3', `resume=${run}`]), { onMessage: (m) => messages.push(m) });
    expect(messages.join('\n')).toMatch(/resuming from .*step-2 at step 2/);
    expect(resumed.step).toBe(3);
    expect(readdirSync(run).filter((n) => n.includes('.tmp-'))).toEqual([]);

    // a kill between the two renames of a save: only LATEST.prev
    renameSync(path.join(run, 'LATEST'), path.join(run, 'LATEST.prev'));
    for (const d of readdirSync(run).filter((n) => /^step-\d+$/.test(n))) rmSync(path.join(run, d), { recursive: true });
    const again: string[] = [];
    const r = await train(config('orphans', ['n_examples=4', `resume=${run}`]), { onMessage: (m) => again.push(m) });
    expect(again.join('\n')).toMatch(/resuming from .*LATEST\.prev at step 3/);
    expect(r.step).toBe(4);
    expect(existsSync(path.join(run, 'LATEST', 'trainer_state.json'))).toBe(true);
    expect(existsSync(path.join(run, 'LATEST.prev'))).toBe(false);
  });

  it('metrics.jsonl after resume: each step once, one valid JSON object per line (torn line dropped)', async () => {
    const full = await train(config('metrics-full', ['n_examples=5']));
    const part = await train(config('metrics-split', ['n_examples=5']), { stopAfterSteps: 2 });
    const file = path.join(part.runDir, 'metrics.jsonl');
    // what a run killed after its checkpoint at step 2 leaves: steps 3 and 4 logged, a torn line
    const last = records(file).at(-1)!;
    writeFileSync(file, readFileSync(file, 'utf8') + JSON.stringify({ ...last, step: 3 }) + '\n' + JSON.stringify({ ...last, step: 4 }) + '\n{"step": 5, "lo');
    // ... and in TensorBoard, steps 3 and 4 with values the resumed run must replace
    const stale = new EventWriter(path.join(part.runDir, 'tb'));
    stale.scalars(3, { loss: 123 });
    stale.scalars(4, { loss: 123 });
    stale.close();
    await train(config('metrics-split', ['n_examples=5', `resume=${part.runDir}`]));
    const text = readFileSync(file, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    const lines = text.trim().split('\n');
    for (const l of lines) expect(() => JSON.parse(l)).not.toThrow();
    const steps = lines.map((l) => JSON.parse(l) as Record<string, number>).filter((m) => m.loss !== undefined);
    expect(steps.map((m) => m.step)).toEqual([1, 2, 3, 4, 5]);
    const reference = records(path.join(full.runDir, 'metrics.jsonl')).filter((m) => m.loss !== undefined);
    steps.forEach((m, i) => expect(m.loss).toBeCloseTo(reference[i]!.loss!, 6));
    // TensorBoard (both of its readers) shows each step once, with the resumed run's values
    const tb = JSON.parse(runPython('tb_events.py', [path.join(part.runDir, 'tb')])) as { scalars: Record<string, [number, number][]>; served: Record<string, [number, number][]> };
    const want = steps.map((m) => [m.step, Math.fround(m.loss!)]);
    expect(tb.scalars.loss).toEqual(want);
    expect(tb.served.loss).toEqual(want);
  });

  it('the printed resume command is shell-quoted, names the run directory, and works after a kill between the renames', async () => {
    let sent = false;
    const r = await rpoLive(['train', ...base('my run', ['n_epochs=200'])], (line, child) => {
      if (!sent && /^train \d+\/\d+/.test(line.replace(/^\r/, ''))) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    expect(r.code, r.stderr).toBe(130);
    const printed = /resume with: (.*)$/m.exec(r.stderr)?.[1];
    expect(printed).toBeDefined();
    const run = path.join(work, 'my run');
    const stopped = (JSON.parse(readFileSync(path.join(run, 'LATEST', 'trainer_state.json'), 'utf8')) as { step: number }).step;
    // the kill between the two renames of a save
    renameSync(path.join(run, 'LATEST'), path.join(run, 'LATEST.prev'));
    // the words a POSIX shell makes of the printed line
    const words = spawnSync('bash', ['-c', `printf '%s\\0' ${printed!}`], { encoding: 'utf8' }).stdout.split('\0').slice(0, -1);
    expect(words.slice(0, 3)).toEqual(['npx', 'rpo', 'train']);
    expect(words).toContain(`--config-path=${run}`);
    // a short continuation (the saved config trains 200 epochs): two more steps
    const resumed = rpo([...words.slice(2), 'n_epochs=null', `n_examples=${stopped + 2}`]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/resuming from .*LATEST\.prev/);
    expect(JSON.parse(readFileSync(path.join(run, 'LATEST', 'trainer_state.json'), 'utf8')).step).toBe(stopped + 2);
  });
});

describe('exp_name stays inside cache_dir (item 6)', () => {
  for (const name of ['../../x', '..', '.', '/abs', 'a/b', 'a\\b']) {
    it(`exp_name=${name} is a usage error naming the rule`, () => {
      const r = rpo(['train', ...base('placeholder', ['n_examples=2']).map((o) => (o.startsWith('exp_name=') ? `exp_name="${name.replace(/\\/g, '\\\\')}"` : o))]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/exp_name=.*(single path segment|inside cache_dir)/);
    });
  }
  it('nothing was created outside cache_dir', () => {
    expect(existsSync(path.join(work, '..', '..', 'x'))).toBe(false);
    expect(existsSync('/abs')).toBe(false);
  });
});

describe('checkpoint files (item 12)', () => {
  it('copies chat_template.json and takes generation_config.json from the model directory', async () => {
    const model = path.join(work, 'model-with-files');
    const tok = path.join(work, 'separate-tokenizer');
    cpSync(modelDir, model, { recursive: true });
    mkdirSync(tok);
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) if (existsSync(path.join(modelDir, f))) cpSync(path.join(modelDir, f), path.join(tok, f));
    const template = JSON.stringify({ chat_template: "{% for m in messages %}{{ m['content'] }}{% endfor %}" });
    writeFileSync(path.join(tok, 'chat_template.json'), template);
    const modelGen = JSON.stringify({ bos_token_id: 1, eos_token_id: 2, max_new_tokens: 77, do_sample: false });
    writeFileSync(path.join(model, 'generation_config.json'), modelGen);
    writeFileSync(path.join(tok, 'generation_config.json'), JSON.stringify({ max_new_tokens: 5 }));
    const r = await train(config('files', ['n_examples=2', `model.name_or_path=${model}`, `model.tokenizer_name_or_path=${tok}`]));
    expect(readFileSync(path.join(r.checkpoint!, 'chat_template.json'), 'utf8')).toBe(template);
    expect(readFileSync(path.join(r.checkpoint!, 'generation_config.json'), 'utf8')).toBe(modelGen);
  });
});

describe('smaller faults (item 13)', () => {
  it('a trainer_state.json with a negative step is refused, naming the file and the key', async () => {
    const done = await train(config('neg-step', ['n_examples=2']));
    const file = path.join(done.checkpoint!, 'trainer_state.json');
    const state = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify({ ...state, step: -3 }));
    await expect(train(config('neg-step', ['n_examples=4', `resume=${done.runDir}`]))).rejects.toThrow(
      new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: "step" must be a non-negative integer, got -3`),
    );
  });

  it('a read-only cache_dir is reported as read-only, with the path, not ENOENT', () => {
    const ro = tmpfs('1m', 'ro');
    const r = rpo(['train', ...base('ro-run', ['n_examples=2'], path.join(ro, 'cache'))]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/read-only file system/);
    expect(r.stderr).toContain(path.join(ro, 'cache'));
    expect(r.stderr).not.toMatch(/ENOENT/);
  });

  it('no space for metrics.jsonl names the file', async () => {
    const { MetricsLog } = await import('../../lib/train/metrics.js');
    const fs = tmpfs('64k');
    // fill the file system, then log
    const filler = path.join(fs, 'filler');
    spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=4k', 'count=64'], { encoding: 'utf8' });
    const log = new MetricsLog(path.join(fs, 'run', 'metrics.jsonl'));
    expect(() => log.append({ step: 1, loss: 0.5, text: 'x'.repeat(8192) })).toThrow(`no space left on device writing ${path.join(fs, 'run', 'metrics.jsonl')}`);
  });
});
