// Logged mfu on CUDA (issue 24, item 4): a short sft run of a tiny model on the GPU with
// bf16_peak_tflops given logs, at every step, mfu = 6·N·(real tokens per second) / peak (sft has
// no reference forward), N the policy's parameters, and says nothing of a missing peak. On the
// CPU dry run no mfu is logged (the CPU has no bf16 peak to be a share of).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadConfig } from '../../lib/config/index.js';
import { initModelDir } from '../../lib/model/init.js';
import { loadModel } from '../../lib/model/io.js';
import { train } from '../../lib/train/loop.js';
import { CUDA, DEVICE, DRY_RUN, REPO_ROOT, announce } from './gpu.js';

announce('throughput');

const PEAK = 100; // TFLOP/s: any given peak; the check is the arithmetic over it
let dir: string;
let modelDir: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'rpo-gpu-throughput-'));
  modelDir = path.join(dir, 'tiny-model');
  await initModelDir(modelDir, { preset: 'tiny', seed: 3 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!CUDA)('mfu on CUDA', () => {
  it('every step logs mfu = 6·N·tokens_per_second / peak, with the peak given', async () => {
    const config = loadConfig({
      overrides: [
        'loss=sft', 'model=tiny', `model.name_or_path=${modelDir}`, `datasets=[${path.join(REPO_ROOT, 'test', 'fixtures', 'data', 'pairs')}]`,
        'exp_name=mfu', `cache_dir=${dir}`, 'model.batch_size=2', 'model.eval_batch_size=2', 'n_examples=4', 'do_first_eval=false',
        `device=${DEVICE}`, `bf16_peak_tflops=${PEAK}`,
      ],
    }).config;
    const messages: string[] = [];
    await train(config, { onMessage: (m) => messages.push(m) });
    const steps = readFileSync(path.join(dir, 'mfu', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>).filter((m) => typeof m.loss === 'number');
    expect(steps).toHaveLength(2);
    const model = await loadModel(modelDir);
    const N = model.numParameters;
    model.dispose();
    for (const s of steps) {
      if (DRY_RUN) {
        expect(s).not.toHaveProperty('mfu');
        continue;
      }
      expect(s.mfu! / ((6 * N * s.tokens_per_second!) / (PEAK * 1e12)), `step ${s.step}`).toBeCloseTo(1, 9);
    }
    expect(messages.some((m) => m.startsWith('mfu: not logged'))).toBe(false);
  });
});
