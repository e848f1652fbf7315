// The product end to end on a tiny model: init → train → checkpoint → resume → eval → samples →
// AlpacaEval export, through the CLI in child processes (real exit codes, real signals).
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadConfig } from '../../lib/config/index.js';
import { train } from '../../lib/train/loop.js';
import { startHubServer, type HubServer } from '../fixtures/data/hub_server.js';
import type { SamplingRecord } from '../../lib/eval/record.js';
import { REPO, rpo, rpoAsync, rpoLive } from './cli.js';

const PAIRS = path.join(REPO, 'test', 'fixtures', 'data', 'pairs');
let work: string;
let modelDir: string;

function lines(file: string): Record<string, number>[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
}

function digest(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Overrides shared by the runs: the tiny model, the fixture pairs, small batches. */
function base(exp: string, extra: string[] = []): string[] {
  return [
    'model=tiny',
    `model.name_or_path=${modelDir}`,
    `datasets=[${PAIRS}]`,
    `exp_name=${exp}`,
    `cache_dir=${work}`,
    `samples_dir=${path.join(work, 'samples')}`,
    'model.batch_size=4',
    'model.gradient_accumulation_steps=2',
    'model.eval_batch_size=4',
    'warmup_steps=2',
    'lr=1e-3',
    'eval_every=8',
    ...extra,
  ];
}

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-e2e-'));
  modelDir = path.join(work, 'tiny-model');
  const r = rpo(['init', modelDir, '--preset', 'tiny', '--seed', '3']);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('rpo train', () => {
  it('trains rdpo, writes metrics, a loadable checkpoint and its config', () => {
    const r = rpo(['train', 'loss=rdpo', ...base('rdpo-run', ['n_epochs=3'])]);
    expect(r.code, r.stderr).toBe(0);
    const run = path.join(work, 'rdpo-run');
    for (const f of ['config.yaml', 'metrics.jsonl', 'LATEST/config.json', 'LATEST/model.safetensors', 'LATEST/tokenizer.json', 'LATEST/trainer_state.json', 'LATEST/optimizer.pt']) {
      expect(existsSync(path.join(run, f)), f).toBe(true);
    }
    const m = lines(path.join(run, 'metrics.jsonl'));
    const steps = m.filter((x) => x.loss !== undefined);
    const evals = m.filter((x) => x.eval_loss !== undefined);
    expect(steps.length).toBeGreaterThan(2);
    expect(evals.length).toBeGreaterThanOrEqual(2); // first eval + periodic / final
    for (const k of ['loss', 'rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected', 'logps/rationale', 'nll_loss', 'grad_norm', 'learning_rate', 'tokens_per_second', 'step', 'examples', 'peak_memory_bytes']) {
      expect(steps[0]![k], k).toBeTypeOf('number');
    }
    expect(evals[0]!['eval_rewards/accuracies']).toBeTypeOf('number');
    // warmup: lr · min(1, (step+1)/(warmup+1)) with warmup 2
    expect(steps[0]!.learning_rate).toBeCloseTo(1e-3 / 3, 12);
    expect(steps[2]!.learning_rate).toBeCloseTo(1e-3, 12);
    // the config saved reloads (the seed's eval does this)
    const reloaded = loadConfig({ configPath: run, configName: 'config' }).config;
    expect(reloaded.loss.name).toBe('rdpo');
    expect(reloaded.model.name_or_path).toBe(modelDir);
  });

  it('intermediate_checkpoints keeps a step-N directory at every evaluation', () => {
    // 20 examples in full batches of 4 (drop_last): evaluations at 8 and 16 examples, the final one at 20
    const r = rpo(['train', 'loss=sft', ...base('steps', ['n_examples=20', 'eval_every=8', 'intermediate_checkpoints=true', 'do_first_eval=false'])]);
    expect(r.code, r.stderr).toBe(0);
    // periodic evaluations (every 8 examples) are the eval records before the final one
    const evalSteps = lines(path.join(work, 'steps', 'metrics.jsonl')).filter((m) => m.eval_loss !== undefined).map((m) => m.step!);
    const periodic = evalSteps.slice(0, -1);
    expect(periodic.length).toBeGreaterThanOrEqual(1);
    const dirs = readdirSync(path.join(work, 'steps')).filter((d) => d.startsWith('step-')).sort();
    expect(dirs).toEqual(periodic.map((s) => `step-${s}`).sort());
    for (const d of dirs) expect(existsSync(path.join(work, 'steps', d, 'model.safetensors')), d).toBe(true);
    expect(existsSync(path.join(work, 'steps', 'LATEST', 'trainer_state.json'))).toBe(true);
  });

  it('rpo data shows formatted, tokenized RDPO examples and length statistics', () => {
    // room for the whole rationale context with the seed's (long) prefixes: nothing cut from its start
    const r = rpo(['data', 'loss=rdpo', ...base('data-preview', ['model.max_length=256', 'model.max_prompt_length=192']), '--n', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\[chosen\] \d+ tokens/);
    expect(r.stdout).toMatch(/\[rationale\] \d+ tokens/);
    expect(r.stdout).toContain('Given the prompt:');
    expect(r.stdout).toMatch(/train: 5 rows, 5 tokenized, \d+ truncated, \d+ dropped/);
    expect(r.stdout).toMatch(/p50=\d+ p90=\d+ p99=\d+ max=\d+/);
  });

  it('rpo info reports versions and devices', () => {
    const r = rpo(['info', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout) as { libtorch: string; cuda: boolean; rpo: string };
    expect(info.libtorch).toMatch(/^2\.\d+\.\d+$/);
    expect(typeof info.cuda).toBe('boolean');
  });

  it('--cfg job prints the resolved config and runs nothing', () => {
    const r = rpo(['train', 'loss=dpo', ...base('cfg-only'), '--cfg', 'job']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/name: dpo/);
    expect(existsSync(path.join(work, 'cfg-only'))).toBe(false);
  });

  it('config errors exit 2 with the key named', () => {
    const r = rpo(['train', 'loss=dpo', ...base('bad'), 'lrr=1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/lrr/);
    expect(r.stderr).toMatch(/lr/);
  });
});

describe('precomputed reference log-probs', () => {
  it('give the live reference\'s losses, and a second run reuses the cache', () => {
    const live = rpo(['train', 'loss=dpo', ...base('dpo-live', ['n_examples=8', 'do_first_eval=false'])]);
    expect(live.code, live.stderr).toBe(0);
    const pre = rpo(['train', 'loss=dpo', ...base('dpo-pre', ['n_examples=8', 'do_first_eval=false', 'precompute_reference=true'])]);
    expect(pre.code, pre.stderr).toBe(0);
    expect(pre.stderr).toMatch(/reference log-probs: computing/);
    const a = lines(path.join(work, 'dpo-live', 'metrics.jsonl')).filter((x) => x.loss !== undefined);
    const b = lines(path.join(work, 'dpo-pre', 'metrics.jsonl')).filter((x) => x.loss !== undefined);
    expect(b.length).toBe(a.length);
    a.forEach((x, i) => {
      expect(b[i]!.loss).toBeCloseTo(x.loss!, 5);
      expect(b[i]!['rewards/margins']).toBeCloseTo(x['rewards/margins']!, 5);
    });
    const again = rpo(['train', 'loss=dpo', ...base('dpo-pre-2', ['n_examples=8', 'do_first_eval=false', 'precompute_reference=true', '++loss.beta=0.2'])]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/reference log-probs: reusing/);
  });
});

describe('checkpoints and resume', () => {
  it('an interrupted-then-resumed run ends with the same weights as an uninterrupted one', async () => {
    const overrides = (exp: string, extra: string[] = []) => base(exp, ['loss=dpo', 'n_examples=24', 'do_first_eval=false', ...extra]);
    const full = await train(loadConfig({ overrides: overrides('full') }).config);
    expect(full.interrupted).toBe(false);
    const first = await train(loadConfig({ overrides: overrides('split') }).config, { stopAfterSteps: 3 });
    expect(first.interrupted).toBe(true);
    expect(first.step).toBe(3);
    const resumed = await train(loadConfig({ overrides: overrides('split', [`resume=${path.join(work, 'split')}`]) }).config);
    expect(resumed.step).toBe(full.step);
    expect(digest(path.join(work, 'split', 'LATEST', 'model.safetensors'))).toBe(digest(path.join(work, 'full', 'LATEST', 'model.safetensors')));
  });

  it('Ctrl-C saves a checkpoint, prints the resume command and exits 130', async () => {
    let sent = false;
    const r = await rpoLive(['train', 'loss=sft', ...base('sigint', ['n_epochs=50', 'do_first_eval=false'])], (line, child) => {
      if (!sent && /^train \d+\/\d+/.test(line)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/resume with: npx rpo train .*resume=/);
    const state = JSON.parse(readFileSync(path.join(work, 'sigint', 'LATEST', 'trainer_state.json'), 'utf8')) as { step: number };
    expect(state.step).toBeGreaterThan(0);
  });

  it('a non-finite loss stops the run with the step and examples, and keeps the last checkpoint', () => {
    const ok = rpo(['train', 'loss=sft', ...base('nonfinite', ['n_examples=8', 'do_first_eval=false'])]);
    expect(ok.code, ok.stderr).toBe(0);
    const weights = path.join(work, 'nonfinite', 'LATEST', 'model.safetensors');
    const before = digest(weights);
    const mtime = statSync(weights).mtimeMs;
    const r = rpo(['train', 'loss=sft', ...base('nonfinite', ['n_examples=400', 'do_first_eval=false', 'lr=1e38', 'model.max_grad_norm=0', `resume=${path.join(work, 'nonfinite')}`])]);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/non-finite .* at step \d+; the batch held examples /);
    expect(digest(weights)).toBe(before);
    expect(statSync(weights).mtimeMs).toBe(mtime);
  });
});

describe('rpo eval', () => {
  let hub: HubServer;
  beforeAll(async () => {
    hub = await startHubServer();
    const { fakeCommit } = await import('../fixtures/data/hub_server.js');
    const alpaca = readFileSync(path.join(REPO, 'test', 'fixtures', 'data', 'prompts', 'alpaca_like.json'));
    hub.addRepo({ repo: 'tatsu-lab/alpaca_eval', type: 'dataset', commit: fakeCommit('alpaca'), files: new Map([['alpaca_eval.json', { content: alpaca }]]) });
  });
  afterAll(async () => {
    await hub.close();
  });

  it('mode=eval writes the loss\'s metrics over the test split', () => {
    const r = rpo(['eval', '--config-path', path.join(work, 'rdpo-run'), '--config-name', 'config', '++mode=eval']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(readFileSync(path.join(work, 'samples', 'eval_rdpo-run.json'), 'utf8')) as Record<string, number>;
    expect(out['eval_rewards/accuracies']).toBeGreaterThanOrEqual(0);
    expect(out.eval_loss).toBeTypeOf('number');
    expect(out['eval_logps/rationale']).toBeTypeOf('number');
  });

  it('mode=sample writes prompts, chosen responses and the policy\'s samples', () => {
    const r = rpo(['eval', '--config-path', path.join(work, 'rdpo-run'), '--config-name', 'config', '++mode=sample', '++n_samples=3']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(readFileSync(path.join(work, 'samples', 'rdpo-run.json'), 'utf8')) as { prompt: string; chosen: string; policy: string }[];
    expect(out).toHaveLength(2); // the fixture's whole test split (n_samples caps at 3)
    for (const s of out) {
      expect(s.prompt.length).toBeGreaterThan(0);
      expect(typeof s.chosen).toBe('string');
      expect(typeof s.policy).toBe('string');
    }
  });

  it('the seed\'s AlpacaEval command works verbatim and writes what alpaca_eval reads', async () => {
    const samples = path.join(work, 'alpaca-samples');
    const r = await rpoAsync(
      ['eval', `--config-path=${path.join(work, 'rdpo-run')}`, '--config-name=config', '++mode=alpacaeval', '++n_samples=805', '++model.eval_batch_size=35', `++samples_dir=${samples}`, '++exp_name=my_exp'],
      { env: { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: path.join(work, 'hub-cache'), HF_HUB_OFFLINE: '' } },
    );
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(readFileSync(path.join(samples, 'alpaca_my_exp.json'), 'utf8')) as Record<string, unknown>[];
    const all = JSON.parse(readFileSync(path.join(REPO, 'test', 'fixtures', 'data', 'prompts', 'alpaca_like.json'), 'utf8')) as { instruction: string; dataset: string }[];
    // one output per distinct instruction, in the file's order (the fixture repeats one)
    const source = all.filter((x, i) => all.findIndex((y) => y.instruction === x.instruction) === i);
    expect(out).toHaveLength(source.length);
    out.forEach((o, i) => {
      expect(Object.keys(o).sort()).toEqual(['dataset', 'generator', 'instruction', 'output']);
      expect(o.instruction).toBe(source[i]!.instruction);
      expect(o.dataset).toBe(source[i]!.dataset);
      expect(o.generator).toBe('my_exp');
      expect(typeof o.output).toBe('string');
    });
    // The sidecar: how the samples were made and what came out, consistent with the samples.
    const record = JSON.parse(readFileSync(path.join(samples, 'alpaca_my_exp.sampling.json'), 'utf8')) as SamplingRecord;
    expect(record.samples_file).toBe('alpaca_my_exp.json');
    expect(record.prompts).toBe(source.length);
    expect(record.decoding).toMatchObject({ do_sample: true, top_p: 0.95, repetition_penalty: 1, slots: 35 });
    expect(record.checkpoint).toContain('rdpo-run');
    expect(record.finish_reasons.stop + record.finish_reasons.length).toBe(source.length);
    expect(record.output_tokens.p50).toBeLessThanOrEqual(record.output_tokens.p90);
    expect(record.output_tokens.p90).toBeLessThanOrEqual(record.output_tokens.max);
    expect(record.wall_seconds).toBeGreaterThan(0);
    expect(record.tokens_per_second).toBeCloseTo(record.output_tokens.total / record.wall_seconds, 6);
    // The progress line: prompts done, tokens/s and an ETA.
    expect(r.stderr).toMatch(/alpacaeval \d+\/\d+ prompts \| \d+ tok\/s \| ETA/);
  });
});
