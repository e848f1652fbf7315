// GPTNeoX through the product: `rpo init --preset tiny-neox`, `rpo train` (rdpo, activation
// checkpointing on, the model group's default) to a checkpoint, and that checkpoint read back by
// transformers as a GPTNeoXForCausalLM whose logits agree with rpo's.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel } from '../../lib/model/io.js';
import { runPython } from '../reference/python.js';
import { normRelError } from '../native/helpers.js';
import { REPO, rpo } from './cli.js';

const PAIRS = path.join(REPO, 'test', 'fixtures', 'data', 'pairs');
let work: string;
let modelDir: string;

const CHECK_PY = `
import json, sys, torch
from transformers import AutoModelForCausalLM
m = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32, attn_implementation="eager").eval()
ids = torch.tensor([json.loads(sys.argv[2])])
with torch.no_grad():
    logits = m(input_ids=ids).logits[0]
print(json.dumps({"class": type(m).__name__, "logits": logits.flatten().tolist()}))
`;

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-e2e-neox-'));
  modelDir = path.join(work, 'tiny-neox');
  const r = rpo(['init', modelDir, '--preset', 'tiny-neox', '--seed', '5']);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('rpo train on a GPTNeoX model', () => {
  it('trains rdpo with activation checkpointing to a checkpoint transformers runs as GPTNeoX', async () => {
    const r = rpo([
      'train',
      'loss=rdpo',
      'model=tiny',
      `model.name_or_path=${modelDir}`,
      `datasets=[${PAIRS}]`,
      'exp_name=neox',
      `cache_dir=${work}`,
      `samples_dir=${path.join(work, 'samples')}`,
      'model.batch_size=4',
      'model.gradient_accumulation_steps=2',
      'model.eval_batch_size=4',
      'model.activation_checkpointing=true',
      'lr=1e-3',
      'n_epochs=2',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const ckpt = path.join(work, 'neox', 'LATEST');
    const steps = readFileSync(path.join(work, 'neox', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, number>)
      .filter((m) => m.loss !== undefined);
    expect(steps.length).toBeGreaterThan(1);
    for (const s of steps) expect(Number.isFinite(s.loss) && Number.isFinite(s.grad_norm), JSON.stringify(s)).toBe(true);
    const config = JSON.parse(readFileSync(path.join(ckpt, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ model_type: 'gpt_neox', rotary_pct: 0.25, use_parallel_residual: true });

    // The trained weights moved away from the initial ones, and transformers computes rpo's logits.
    const before = await loadModel(modelDir);
    const after = await loadModel(ckpt);
    try {
      const ids = [3, 70, 71, 72, 101, 33, 9, 250];
      const batch = { rows: 1, seqLen: ids.length, inputIds: Int32Array.from(ids), attentionMask: new Uint8Array(ids.length).fill(1), lossMask: new Uint8Array(ids.length) };
      const ours = await after.logits(batch);
      expect(normRelError(ours, await before.logits(batch))).toBeGreaterThan(1e-3);
      const script = path.join(work, 'check.py');
      writeFileSync(script, CHECK_PY);
      const ref = JSON.parse(runPython(script, [ckpt, JSON.stringify(ids)]).trim().split('\n').at(-1)!) as { class: string; logits: number[] };
      expect(ref.class).toBe('GPTNeoXForCausalLM');
      expect(normRelError(ours, ref.logits)).toBeLessThan(1e-4);
    } finally {
      before.dispose();
      after.dispose();
    }
  });
});
