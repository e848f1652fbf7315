// Loading a checkpoint costs the weights' memory and little else: Model.create({ init: false })
// allocates without a random draw (it used to draw an fp32 init of every weight on the CPU, then
// convert), and load reads each tensor's bytes straight into the parameter (or through one
// bounded buffer when the dtype changes), never a whole file. Each load runs in a fresh process
// so its peak RSS is its own.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'load_peak.ts');
const run = (...args: string[]) =>
  JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', script, ...args], { encoding: 'utf8' }).trim().split('\n').pop()!) as {
    before: number; peak: number; seconds: number; params: number;
  };

describe.skipIf(process.platform !== 'linux')('loadModel memory', () => {
  let dir = '';
  let bytes = 0;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'rpo-load-'));
    run('write', dir);
    bytes = statSync(path.join(dir, 'model.safetensors')).size;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a bf16 checkpoint into a bf16 model: the peak grows by the checkpoint bytes, not twice or three times them', () => {
    const r = run('load', dir, 'bfloat16');
    expect(r.params * 2).toBeLessThan(bytes);
    // was ~2.2x (an fp32 random init, its bf16 copy, then a whole-tensor read buffer)
    expect((r.peak - r.before) / bytes).toBeLessThan(1.15);
  });

  it('a bf16 checkpoint into a float32 model: the fp32 weights plus one bounded conversion buffer', () => {
    const r = run('load', dir, 'float32');
    expect((r.peak - r.before) / (2 * bytes)).toBeLessThan(1.15);
  });
});
