// LoRA and loss=ppo under `rpo launch` (issue 25 item 4): 2 ranks × 2 micro-batches give the
// one-process run's trained weights (LoRA: the adapters; ppo: the policy and the value head) and
// metrics.jsonl, as 1 process × 4 micro-batches does, with ZeRO 0, 1 and 2. ppo whitens its
// advantages over the whole global batch, so the ranks sum the statistics, and sum the value
// head's gradients; LoRA's gradient sync and ZeRO shard cover the adapters (the frozen base has none).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { rpo, rpoAsync } from './cli.js';
import { dataParallelAvailable, PAIRS, RANK_ENV } from './ranks_fixture.js';
import { maxMetricDiff, maxTensorDiff, metrics, safetensors } from './run_compare.js';

const ENV = RANK_ENV;
const available = dataParallelAvailable('data_parallel_losses.test.ts');

let work: string;
let modelDir: string;

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-dp-losses-'));
  modelDir = path.join(work, 'tiny-model');
  const r = rpo(['init', modelDir, '--preset', 'tiny', '--seed', '5']);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(() => {
  if (!process.env.RPO_KEEP_TEST_DIR) rmSync(work, { recursive: true, force: true });
  else console.log(work);
});

function base(exp: string, extra: string[]): string[] {
  return [
    'model=tiny', `model.name_or_path=${modelDir}`, `datasets=[${PAIRS}]`, `exp_name=${exp}`, `cache_dir=${work}`,
    'model.batch_size=4', 'model.eval_batch_size=1', 'warmup_steps=2', 'lr=1e-3', 'n_examples=12', 'eval_every=100000', ...extra,
  ];
}

const ckpt = (run: string, file: string) => path.join(work, run, 'LATEST', file);

/** The largest |x| over a safetensors file's tensors. */
function maxAbs(file: string): number {
  let m = 0;
  for (const t of safetensors(file).values()) for (const x of t) m = Math.max(m, Math.abs(x));
  return m;
}

const CASES = [
  {
    name: 'LoRA (rdpo, rationale rows, adapter dropout)',
    tag: 'lora',
    args: ['loss=rdpo', '++lora.enabled=true', '++lora.r=4', '++lora.alpha=8', '++lora.dropout=0.1'],
    // The trained tensors; the first must have moved from where it started (LoRA's B from zero).
    files: ['adapter_model.safetensors'],
    moved: (run: string) => maxAbs(ckpt(run, 'adapter_model.safetensors')),
  },
  {
    name: 'ppo (the policy and the value head)',
    tag: 'ppo',
    args: ['loss=ppo'],
    files: ['model.safetensors', 'value_head.safetensors'],
    moved: (run: string) => maxTensorDiff(path.join(modelDir, 'model.safetensors'), ckpt(run, 'model.safetensors')),
  },
] as const;

describe.skipIf(!available)('rpo launch: LoRA and ppo = one process', () => {
  for (const c of CASES) {
    for (const stage of [0, 1, 2] as const) {
      it(`${c.name}: 2 ranks x 2 micro-batches = 1 process x 4, ZeRO-${stage}`, async () => {
        const one = `${c.tag}-one`;
        // The one-process run is the same for every stage: made once.
        if (!existsSync(ckpt(one, c.files[0]))) {
          const r = rpo(['train', ...base(one, [...c.args, 'model.gradient_accumulation_steps=4'])], { env: ENV });
          expect(r.code, r.stderr).toBe(0);
        }
        const two = `${c.tag}-two-z${stage}`;
        const r = await rpoAsync(['launch', '--nproc-per-node', '2', ...(stage > 0 ? ['--zero', String(stage)] : []), '--', 'train', ...base(two, [...c.args, 'model.gradient_accumulation_steps=2'])], { env: ENV });
        expect(r.code, r.stderr).toBe(0);
        if (stage > 0) expect(r.stderr).toMatch(new RegExp(`ZeRO-${stage}: optimizer state`));
        // Training moved the weights well past the bound below, so equality is not trivial.
        expect(c.moved(one)).toBeGreaterThan(1e-4);
        // The bounds of the data-parallel rdpo test (data_parallel.test.ts): the four micro-batches'
        // gradients (and ppo's advantage statistics) regrouped as (g1 + g2) + (g3 + g4), a float32
        // rounding apart per step, carried by AdamW's normalised update of size lr = 1e-3.
        for (const f of c.files) expect(maxTensorDiff(ckpt(one, f), ckpt(two, f)), f).toBeLessThan(1e-6);
        expect(maxMetricDiff(metrics(path.join(work, one)), metrics(path.join(work, two)))).toBeLessThan(1e-5);
      });
    }
  }
});
