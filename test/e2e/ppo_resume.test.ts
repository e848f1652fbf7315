// A resumed loss=ppo run is the uninterrupted one: 6 steps straight equal 3 steps, a checkpoint,
// and 3 more from it — the policy's weights, the value head's, and every metric in metrics.jsonl
// (timings aside). The bound is 0: one process on the CPU runs the same operations on the same
// inputs in the same order, so any difference is state the checkpoint lost. The mutation check:
// the same resume with value_head_optimizer.pt removed (the value head's AdamW moments restart,
// with a warning) ends elsewhere.
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadConfig } from '../../lib/config/index.js';
import { train } from '../../lib/train/loop.js';
import { REPO, rpo } from './cli.js';

const DEMO = path.join(REPO, 'assets', 'demo');
let work: string;
let modelDir: string;

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-ppo-resume-'));
  modelDir = path.join(work, 'tiny-model');
  const r = rpo(['init', modelDir, '--preset', 'tiny', '--seed', '5']);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function config(exp: string, extra: string[] = []) {
  return loadConfig({
    overrides: [
      'loss=ppo', 'model=tiny', `model.name_or_path=${modelDir}`, `datasets=[${DEMO}]`, `exp_name=${exp}`, `cache_dir=${work}`,
      'model.batch_size=8', 'model.gradient_accumulation_steps=2', 'model.eval_batch_size=8', 'n_eval_examples=16',
      'n_examples=48', 'do_first_eval=false', 'eval_every=1000000', 'warmup_steps=2', 'lr=1e-3', ...extra,
    ],
  }).config;
}

const digest = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
const latest = (exp: string, file: string): string => path.join(work, exp, 'LATEST', file);

/** metrics.jsonl without the wall-clock figures (tokens_per_second, step_seconds, eval_seconds, peak_memory_bytes). */
function metrics(exp: string): Record<string, number>[] {
  return readFileSync(path.join(work, exp, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>)
    .map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !/per_second|seconds|memory/.test(k))));
}

describe('rpo train loss=ppo: resume', () => {
  it('6 steps = 3 steps + resume + 3 steps (policy, value head, metrics); without the head\'s moments it is not', async () => {
    const full = await train(config('full'));
    expect(full.step).toBe(6);

    const first = await train(config('split'), { stopAfterSteps: 3 });
    expect(first.interrupted).toBe(true);
    expect(first.step).toBe(3);
    expect(existsSync(latest('split', 'value_head_optimizer.pt'))).toBe(true);
    // The mutant: the same checkpoint without the value head's optimizer state.
    cpSync(path.join(work, 'split'), path.join(work, 'mutant'), { recursive: true });
    rmSync(latest('mutant', 'value_head_optimizer.pt'));

    const messages: string[] = [];
    const resumed = await train(config('split', [`resume=${path.join(work, 'split')}`]), { onMessage: (m) => messages.push(m) });
    expect(resumed.step).toBe(6);
    expect(messages.filter((m) => m.startsWith('warning:'))).toEqual([]);
    expect(digest(latest('split', 'model.safetensors'))).toBe(digest(latest('full', 'model.safetensors')));
    expect(digest(latest('split', 'value_head.safetensors'))).toBe(digest(latest('full', 'value_head.safetensors')));
    const a = metrics('full'), b = metrics('split');
    expect(b.filter((r) => r.loss !== undefined)).toHaveLength(6);
    expect(Object.keys(b.find((r) => r.step === 6 && r.loss !== undefined)!)).toEqual(
      expect.arrayContaining(['loss', 'loss/critic', 'loss/policy', 'val/mean', 'returns/mean', 'logratio/margin', 'grad_norm', 'learning_rate']),
    );
    expect(b).toEqual(a);

    const mutantMessages: string[] = [];
    const mutant = await train(config('mutant', [`resume=${path.join(work, 'mutant')}`]), { onMessage: (m) => mutantMessages.push(m) });
    expect(mutant.step).toBe(6);
    expect(mutantMessages.filter((m) => m.startsWith('warning:')).join('\n')).toMatch(/value_head_optimizer\.pt is missing .* AdamW state restarts from zero/);
    expect(digest(latest('mutant', 'value_head.safetensors'))).not.toBe(digest(latest('full', 'value_head.safetensors')));
    // The head's step-4 update differs, so the values, advantages and policy of steps 5 and 6 do.
    expect(digest(latest('mutant', 'model.safetensors'))).not.toBe(digest(latest('full', 'model.safetensors')));
    const m = metrics('mutant').filter((r) => r.step === 6 && r.loss !== undefined)[0]!;
    const f = a.filter((r) => r.step === 6 && r.loss !== undefined)[0]!;
    expect(m['val/mean']).not.toBe(f['val/mean']);
  }, 600_000);
});
