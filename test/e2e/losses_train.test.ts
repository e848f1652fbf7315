// One short `rpo train loss=<name>` per loss issue 13 added, on the demo data with a tiny model:
// each runs end to end (unpaired batches, KL rows, rationale rows, a live reference) and moves
// its metric the right way between the first and the last evaluation on held-out pairs.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadConfig } from '../../lib/config/index.js';
import { loadTokenizer } from '../../lib/data/tokenize/index.js';
import { encodePrompt } from '../../lib/eval/sampling.js';
import { runPython } from '../reference/python.js';
import { REPO, rpo } from './cli.js';

const DEMO = path.join(REPO, 'assets', 'demo');
let work: string;
let modelDir: string;

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-losses-'));
  modelDir = path.join(work, 'tiny-model');
  const r = rpo(['init', modelDir, '--preset', 'tiny', '--seed', '5']);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

type Record_ = Record<string, number>;

function trainRun(exp: string, args: string[]): { steps: Record_[]; evals: Record_[] } {
  const r = rpo([
    'train',
    ...args,
    'model=tiny',
    `model.name_or_path=${modelDir}`,
    `datasets=[${DEMO}]`,
    `exp_name=${exp}`,
    `cache_dir=${work}`,
    'model.batch_size=8',
    'model.gradient_accumulation_steps=2',
    'model.eval_batch_size=16',
    'n_examples=160',
    'n_eval_examples=48',
    'eval_every=1000000',
    'warmup_steps=2',
    'lr=1e-3',
    'debug=true',
  ]);
  expect(r.code, r.stderr).toBe(0);
  const lines = readFileSync(path.join(work, exp, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record_);
  return { steps: lines.filter((x) => x.loss !== undefined), evals: lines.filter((x) => x.eval_loss !== undefined) };
}

describe('rpo train with the losses of issue 13', () => {
  for (const loss of ['kto', 'kto-simple', 'kto-zero']) {
    it(`${loss}: desirable rewards rise above undesirable ones on held-out pairs`, () => {
      const { steps, evals } = trainRun(loss, [`loss=${loss}`]);
      expect(steps).toHaveLength(20);
      for (const k of ['rewards/chosen', 'rewards/rejected', 'rewards/margins', 'logps/chosen', 'logps/rejected']) expect(steps[0]![k], k).toBeTypeOf('number');
      if (loss === 'kto') expect(steps[0]!['rewards/KL_estimate']).toBeGreaterThanOrEqual(0);
      expect(evals).toHaveLength(2);
      // At the start the policy is the reference: every reward is 0.
      expect(Math.abs(evals[0]!['eval_rewards/margins']!)).toBeLessThan(1e-6);
      expect(evals[1]!['eval_rewards/margins']).toBeGreaterThan(0.01);
      expect(evals[1]!.eval_loss).toBeLessThan(evals[0]!.eval_loss!);
    }, 300_000);
  }

  it('rpo eval ++mode=eval with kto on the untrained model: every example loses 1 − σ(0) = 0.5', () => {
    const samples = path.join(work, 'samples');
    const r = rpo([
      'eval', 'loss=kto', 'model=tiny', `model.name_or_path=${modelDir}`, `datasets=[${DEMO}]`, 'exp_name=kto-eval',
      `cache_dir=${work}`, `samples_dir=${samples}`, '++mode=eval', 'n_eval_examples=8', 'model.eval_batch_size=8',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(readFileSync(path.join(samples, 'eval_kto-eval.json'), 'utf8')) as Record_;
    // Policy = reference: every log-ratio and the KL estimate are 0.
    expect(m.eval_loss).toBeCloseTo(0.5, 6);
    expect(m['eval_rewards/margins']).toBeCloseTo(0, 6);
    expect(m['eval_rewards/KL_estimate']).toBeCloseTo(0, 6);
  }, 300_000);

  it('rorpo: the loss falls and the odds of the chosen response rise against the rejected', () => {
    const { steps, evals } = trainRun('rorpo', ['loss=rorpo']);
    expect(steps[0]!['logps/rationale']).toBeTypeOf('number');
    expect(evals[1]!.eval_loss).toBeLessThan(evals[0]!.eval_loss!);
    expect(evals[1]!['eval_rewards/margins']).toBeGreaterThan(evals[0]!['eval_rewards/margins']!);
    expect(evals[1]!['eval_logps/rationale']).toBeGreaterThan(evals[0]!['eval_logps/rationale']!);
  }, 300_000);

  it('dpo with loss.rationale=logsigmoid: margins rise and so does the rationale log-prob', () => {
    const { steps, evals } = trainRun('dpo-rationale', ['loss=dpo', 'loss.rationale=logsigmoid', '+loss.gamma=0.1']);
    expect(steps[0]!['logps/rationale']).toBeTypeOf('number');
    expect(evals[1]!['eval_rewards/margins']).toBeGreaterThan(evals[0]!['eval_rewards/margins']! + 0.01);
    expect(evals[1]!['eval_logps/rationale']).toBeGreaterThan(evals[0]!['eval_logps/rationale']!);
  }, 300_000);
});

describe('rpo train loss=csft', () => {
  it('adds the control tokens, grows the embeddings by their mean, trains, and transformers loads the checkpoint', async () => {
    // A model whose vocabulary is exactly its tokenizer's (509 tokens), so the two new tokens
    // need two new embedding rows (the tiny preset pads its vocabulary to 512).
    const config = JSON.parse(readFileSync(path.join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const exact = path.join(work, 'tiny-exact');
    writeFileSync(path.join(work, 'exact-config.json'), JSON.stringify({ ...config, vocab_size: 509 }));
    const init = rpo(['init', exact, '--config', path.join(work, 'exact-config.json'), '--seed', '5']);
    expect(init.code, init.stderr).toBe(0);
    const exp = 'csft';
    const r = rpo([
      'train', 'loss=csft', 'model=tiny', `model.name_or_path=${exact}`, `datasets=[${DEMO}]`, `exp_name=${exp}`, `cache_dir=${work}`,
      'model.batch_size=8', 'model.gradient_accumulation_steps=2', 'model.eval_batch_size=16', 'n_examples=160', 'n_eval_examples=48',
      'eval_every=1000000', 'warmup_steps=2', 'lr=1e-3',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const run = path.join(work, exp);
    const lines = readFileSync(path.join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record_);
    const evals = lines.filter((x) => x.eval_loss !== undefined);
    expect(evals[1]!.eval_loss).toBeLessThan(evals[0]!.eval_loss!);
    const out = JSON.parse(runPython('csft_check.py', [exact, path.join(run, 'csft_base'), path.join(run, 'LATEST'), '<|good|>', '<|bad|>'])) as {
      base_vocab: number; csft_vocab: number; checkpoint_vocab: number; token_ids: number[][];
      mean_row_error: Record<string, { new_rows: number; mean_error: number | null; old_rows_error: number }>; logits_shape: number[];
    };
    expect(out.csft_vocab).toBe(out.base_vocab + 2);
    expect(out.checkpoint_vocab).toBe(out.base_vocab + 2);
    expect(out.token_ids).toEqual([[out.base_vocab], [out.base_vocab + 1]]);
    for (const e of Object.values(out.mean_row_error)) {
      expect(e.new_rows).toBe(2);
      expect(e.mean_error!).toBeLessThan(1e-6); // float32 rounding of the float64 mean
      expect(e.old_rows_error).toBe(0);
    }
    expect(out.logits_shape).toEqual([1, 2, out.base_vocab + 2]);

    // Sampling from the checkpoint puts <|good|> after each prompt.
    const samples = path.join(work, 'csft-samples');
    const e = rpo(['eval', '--config-path', run, '--config-name', 'config', '++mode=sample', '++n_samples=2', `++samples_dir=${samples}`]);
    expect(e.code, e.stderr).toBe(0);
    expect(JSON.parse(readFileSync(path.join(samples, 'csft.json'), 'utf8'))).toHaveLength(2);
    const runConfig = loadConfig({ configPath: run, configName: 'config' }).config;
    const ids = await encodePrompt('Sort: 3 1 2', runConfig, await loadTokenizer(path.join(run, 'LATEST')));
    expect(ids[ids.length - 1]).toBe(out.base_vocab);
  }, 300_000);
});
