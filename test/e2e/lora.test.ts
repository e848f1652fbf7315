// LoRA end to end on the tiny model: `rpo train ++lora.enabled=true` writes PEFT adapter
// checkpoints, resumes exactly (dropout and activation checkpointing on), `rpo eval` takes the
// adapter checkpoint (base from adapter_config.json), `rpo merge` writes weights that give the
// adapter's logits, and `++lora.from=` starts from an adapter.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadConfig } from '../../lib/config/index.js';
import { loadModel } from '../../lib/model/io.js';
import { readAdapterConfig } from '../../lib/model/lora.js';
import { loadPolicyModel } from '../../lib/model/policy.js';
import { readSafetensorsHeader } from '../../lib/model/safetensors.js';
import { train } from '../../lib/train/loop.js';
import { normRelError, randomBatch } from '../native/helpers.js';
import { REPO, rpo } from './cli.js';

const PAIRS = path.join(REPO, 'test', 'fixtures', 'data', 'pairs');
let work: string;
let modelDir: string;

function digest(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function overrides(exp: string, extra: string[] = []): string[] {
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
    'lr=1e-2',
    'eval_every=8',
    'do_first_eval=false',
    '++lora.enabled=true',
    '++lora.r=4',
    '++lora.alpha=8',
    ...extra,
  ];
}

/** The adapter tensors' bytes by name. */
function adapterTensors(dir: string): Map<string, Buffer> {
  const file = path.join(dir, 'adapter_model.safetensors');
  const bytes = readFileSync(file);
  return new Map(readSafetensorsHeader(file).tensors.map((t) => [t.name, bytes.subarray(t.begin, t.end)]));
}

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-e2e-lora-'));
  modelDir = path.join(work, 'tiny-model');
  const r = rpo(['init', modelDir, '--preset', 'tiny', '--seed', '3']);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('LoRA training runs', () => {
  it('rpo train loss=rdpo with LoRA writes a PEFT adapter checkpoint with the tokenizer, and no reference model', () => {
    const r = rpo(['train', 'loss=rdpo', ...overrides('rdpo-lora', ['n_epochs=2'])]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/lora: r=4 alpha=8 on \d+ linears/);
    const latest = path.join(work, 'rdpo-lora', 'LATEST');
    for (const f of ['adapter_config.json', 'adapter_model.safetensors', 'tokenizer.json', 'trainer_state.json', 'optimizer.pt']) {
      expect(existsSync(path.join(latest, f)), f).toBe(true);
    }
    expect(existsSync(path.join(latest, 'model.safetensors'))).toBe(false);
    const cfg = readAdapterConfig(latest);
    expect(cfg.base_model_name_or_path).toBe(modelDir);
    expect(cfg.r).toBe(4);
    expect(cfg.target_modules).toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
    // The adapters trained: some lora_B is not zero.
    const moved = [...adapterTensors(latest)].some(([name, b]) => name.endsWith('lora_B.weight') && b.some((x) => x !== 0));
    expect(moved).toBe(true);
  });

  it('an interrupted-then-resumed LoRA run ends with the same adapters as an uninterrupted one', async () => {
    const o = (exp: string, extra: string[] = []) => overrides(exp, ['loss=dpo', 'n_examples=24', '++lora.dropout=0.1', 'model.activation_checkpointing=true', ...extra]);
    const full = await train(loadConfig({ overrides: o('lora-full') }).config);
    expect(full.interrupted).toBe(false);
    const first = await train(loadConfig({ overrides: o('lora-split') }).config, { stopAfterSteps: 3 });
    expect(first.step).toBe(3);
    const resumed = await train(loadConfig({ overrides: o('lora-split', [`resume=${path.join(work, 'lora-split')}`]) }).config);
    expect(resumed.step).toBe(full.step);
    const a = path.join(work, 'lora-split', 'LATEST', 'adapter_model.safetensors');
    const b = path.join(work, 'lora-full', 'LATEST', 'adapter_model.safetensors');
    expect(digest(a)).toBe(digest(b));
  });

  it('rpo eval takes the adapter checkpoint: mode=eval (reference = base, adapters off) and mode=sample', () => {
    const run = path.join(work, 'rdpo-lora');
    const r = rpo(['eval', '--config-path', run, '--config-name', 'config', '++mode=eval']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/eval_rewards\/accuracies/);
    const s = rpo(['eval', '--config-path', run, '--config-name', 'config', '++mode=sample', '++n_samples=2']);
    expect(s.code, s.stderr).toBe(0);
    const samples = JSON.parse(readFileSync(path.join(work, 'samples', 'rdpo-lora.json'), 'utf8')) as unknown[];
    expect(samples.length).toBe(2);
  });

  it('rpo merge writes HF weights that give the adapter policy\'s logits', async () => {
    const latest = path.join(work, 'rdpo-lora', 'LATEST');
    const out = path.join(work, 'merged');
    const r = rpo(['merge', latest, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) expect(existsSync(path.join(out, f)), f).toBe(true);
    const { model: adapted } = await loadPolicyModel(latest);
    const merged = await loadModel(out);
    const plain = await loadModel(modelDir);
    try {
      const batch = randomBatch(5, { rows: 2, seqLen: 10, vocab: adapted.config.vocab_size });
      const want = await adapted.logits(batch);
      expect(normRelError(await merged.logits(batch), want)).toBeLessThan(1e-5);
      expect(normRelError(await plain.logits(batch), want)).toBeGreaterThan(1e-4);
    } finally {
      adapted.dispose();
      merged.dispose();
      plain.dispose();
    }
    // A second merge into the same directory needs --overwrite.
    const again = rpo(['merge', latest, '--out', out]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/exists and is not empty .*pass --overwrite/);
  });

  it('++lora.from starts from an adapter (lr=0 keeps it exactly)', async () => {
    const from = path.join(work, 'rdpo-lora', 'LATEST');
    const res = await train(loadConfig({ overrides: overrides('from-run', ['loss=sft', 'n_examples=8', 'lr=0', '++lora.r=16', `++lora.from=${from}`]) }).config);
    expect(res.step).toBe(2);
    const saved = path.join(work, 'from-run', 'LATEST');
    // The adapter's own rank wins over lora.r.
    expect(readAdapterConfig(saved).r).toBe(4);
    expect(adapterTensors(saved)).toEqual(adapterTensors(from));
  });

  it('rpo rationales --generator local:<adapter dir> generates with the base and the adapter', () => {
    const latest = path.join(work, 'rdpo-lora', 'LATEST');
    const out = path.join(work, 'rationales-lora');
    const r = rpo(['rationales', PAIRS, '--out', out, '--generator', `local:${latest}`, '--max-new-tokens', '4', '--keep-truncated', '--split', 'train', '--format', 'jsonl']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`with the adapter ${latest}`);
    expect(existsSync(path.join(out, 'train.jsonl'))).toBe(true);
  });

  it('resuming a LoRA checkpoint as a full-weights run is a clear error', async () => {
    const run = path.join(work, 'rdpo-lora');
    const o = overrides('rdpo-lora', ['loss=rdpo', 'n_epochs=3', `resume=${run}`]).filter((x) => !x.startsWith('++lora.'));
    await expect(train(loadConfig({ overrides: [...o, '++lora.enabled=false'] }).config)).rejects.toThrow(/is a LoRA adapter checkpoint; resume it with lora\.enabled=true/);
  });
});
