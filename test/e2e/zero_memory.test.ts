// Per-rank peak memory of ZeRO stages (issue 25): a ~50M-parameter Llama, fp32 with AdamW, 2 ranks
// of one micro-batch each, measured with rank_memory.ts (each rank's VmHWM over its whole run).
// ZeRO-2 frees each gradient bucket during backward (when it leaves for its owner; the buffer
// when the reduce completes), so its peak is below ZeRO-1's, which holds every gradient and the
// all-reduce buffers after backward. ZeRO-3 shards the weights as well, so its peak is below the
// unsharded run's by the 35% of the weight + gradient + AdamW bytes. The measured table is
// in docs/memory.md.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { distInfo } from '../../lib/parallel/native.js';
import { REPO, rpo } from './cli.js';
import { measureRankPeaks } from './rank_memory.js';

const available = distInfo().available;
if (!available && process.env.CI) throw new Error(`data parallelism is not built: ${distInfo().reason}`);

let work: string;
let modelDir: string;
/** The model's gradient bytes (fp32: 4 per parameter), from its safetensors file's size. */
let gradientBytes: number;

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-zero-mem-'));
  // The tiny preset's config.json with a ~50M-parameter shape (10 layers, hidden 640).
  const tiny = path.join(work, 'tiny');
  expect(rpo(['init', tiny, '--preset', 'tiny', '--seed', '5']).code).toBe(0);
  const config = JSON.parse(readFileSync(path.join(tiny, 'config.json'), 'utf8')) as Record<string, unknown>;
  Object.assign(config, { hidden_size: 640, intermediate_size: 1728, num_hidden_layers: 10, num_attention_heads: 10, num_key_value_heads: 10, head_dim: 64 });
  writeFileSync(path.join(work, 'config.json'), JSON.stringify(config));
  modelDir = path.join(work, 'm50');
  const r = rpo(['init', modelDir, '--config', path.join(work, 'config.json'), '--seed', '5']);
  expect(r.code, r.stderr).toBe(0);
  const bytes = readFileSync(path.join(modelDir, 'model.safetensors'));
  gradientBytes = bytes.length - 8 - Number(bytes.readBigUInt64LE(0));
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

/** Each rank's peak (bytes) of a 2-rank sft run of the ~50M model at ZeRO stage `zero`. */
async function peaks(zero: number): Promise<number[]> {
  const args = [
    'loss=sft', 'model=tiny', `model.name_or_path=${modelDir}`, `datasets=[${path.join(REPO, 'test', 'fixtures', 'data', 'pairs')}]`,
    `cache_dir=${work}`, 'exp_name=mem', 'overwrite=true', 'model.batch_size=2', 'model.gradient_accumulation_steps=1',
    'n_examples=4', 'eval_every=100000', 'do_first_eval=false', 'debug=true', 'warmup_steps=1', 'lr=1e-4',
  ];
  return (await measureRankPeaks({ world: 2, args, env: { RPO_NUM_THREADS: '1', RPO_ZERO: String(zero) } })).peaks;
}

const mib = (ps: number[]): string => ps.map((p) => (p / 2 ** 20).toFixed(1)).join(' / ');

describe.skipIf(!available)('ZeRO per-rank peak memory, ~50M parameters, fp32 AdamW, world 2', () => {
  it("ZeRO-2's peak is below ZeRO-1's on every rank", async () => {
    expect(gradientBytes / 4).toBeGreaterThan(45e6);
    const z1 = await peaks(1);
    const z2 = await peaks(2);
    console.log(`per-rank peak MiB: ZeRO-1 ${mib(z1)}, ZeRO-2 ${mib(z2)}; gradients ${(gradientBytes / 2 ** 20).toFixed(1)} MiB`);
    // Measured 166 MiB lower on each rank (of 192 MiB of gradients); before the buckets were freed
    // during backward, the two peaks were within 4 MiB. A third of the gradient bytes leaves
    // room for the run-to-run noise of a process's peak (~10 MiB).
    for (let r = 0; r < 2; r++) expect(z1[r]! - z2[r]!, `rank ${r}`).toBeGreaterThan(gradientBytes / 3);
  });

  it("ZeRO-3's peak is below the unsharded run's by 35% of the weight + gradient + AdamW bytes", async () => {
    // fp32 AdamW: weights, gradients and two moments, 4 bytes each per parameter; ZeRO-3 keeps
    // 1/2 of each at world 2 (the bar is 35% of them, ideally 50%).
    const stateBytes = 4 * gradientBytes;
    const z0 = await peaks(0);
    const z3 = await peaks(3);
    console.log(`per-rank peak MiB: no ZeRO ${mib(z0)}, ZeRO-3 ${mib(z3)}; weights + gradients + AdamW ${(stateBytes / 2 ** 20).toFixed(1)} MiB`);
    for (let r = 0; r < 2; r++) expect(z0[r]! - z3[r]!, `rank ${r}`).toBeGreaterThan(0.35 * stateBytes);
    // ZeRO-2 clears this bar as well (measured 1097–1148 MiB): at this size the weights' own
    // half (96 MiB) is mostly spent again on the two gathered layers and the gradients awaiting
    // their reduce (78 MiB planned), within the ~50 MiB run-to-run spread of ZeRO-2's peak, so
    // ZeRO-3 against ZeRO-2 is not asserted here.
  });
});
