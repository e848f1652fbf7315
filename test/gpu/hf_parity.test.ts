// rpo on CUDA against HF transformers on the same GPU, in float32 and bfloat16: the tiny Llama,
// Mistral (sliding window 5), Qwen2 and GPTNeoX models transformers builds (test/reference/
// hf_make_model.py: non-trivial norm weights and biases), loaded by rpo, on right-padded
// batches. transformers runs eager attention; rpo runs scaled_dot_product_attention.
//
// Error: ||rpo - hf|| / ||hf|| over the logits of every non-padded position (METHOD.md):
//   float32, TF32 off in rpo:   per position ≤ 1e-4 (fp32 rounding only)
//   float32, TF32 on (rpo's GPU default; transformers stays IEEE): overall ≤ 1e-3
//   bfloat16 (both cast the same fp32 weights): overall ≤ 2e-2, per position ≤ 5e-2
// A real bug (mask, window, RoPE, bias) gives ≫ 5e-2.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { allowTF32, setAllowTF32, type Dtype, type RowBatch } from '../../lib/native.js';
import { loadModel } from '../../lib/model/io.js';
import { readFloat32 } from '../reference/python.js';
import { normRelError, rng } from '../native/helpers.js';
import { CUDA, DEVICE, REFERENCE_DIR, announce, runGpuPython } from './gpu.js';

announce('hf_parity');

const T = 16;
const LENGTHS = [16, 11, 7];
const VOCAB = 256; // hf_make_model.py's default

const ARCHS: Record<string, { arch: string; config?: Record<string, unknown> }> = {
  llama: { arch: 'llama' },
  'mistral-window5': { arch: 'mistral', config: { sliding_window: 5 } },
  qwen2: { arch: 'qwen2' },
  // Pythia's layout with the sequential residual: fused per-head qkv, rotary on a quarter of each head.
  'gpt_neox-sequential-rot25': { arch: 'gpt_neox', config: { use_parallel_residual: false, rotary_pct: 0.25 } },
};

function paddedBatch(seed: number): RowBatch {
  const r = rng(seed);
  const rows = LENGTHS.length;
  const inputIds = new Int32Array(rows * T);
  const attentionMask = new Uint8Array(rows * T);
  const lossMask = new Uint8Array(rows * T);
  LENGTHS.forEach((len, row) => {
    for (let t = 0; t < len; t++) {
      inputIds[row * T + t] = Math.floor(r() * VOCAB);
      attentionMask[row * T + t] = 1;
      lossMask[row * T + t] = t > 0 ? 1 : 0;
    }
  });
  return { rows, seqLen: T, inputIds, attentionMask, lossMask };
}

/** Per position and overall norm-wise errors over the non-padded positions. */
function errors(a: Float32Array, b: Float32Array, batch: RowBatch): { maxPosition: number; overall: number } {
  expect(a.length).toBe(b.length);
  let maxPosition = 0;
  const ours: number[] = [];
  const ref: number[] = [];
  for (let row = 0; row < batch.rows; row++) {
    for (let t = 0; t < batch.seqLen; t++) {
      if (!batch.attentionMask[row * batch.seqLen + t]) continue;
      const off = (row * batch.seqLen + t) * VOCAB;
      const x = a.subarray(off, off + VOCAB);
      const y = b.subarray(off, off + VOCAB);
      const e = normRelError(x, y);
      if (!(e <= maxPosition)) maxPosition = e; // NaN sticks
      ours.push(...x);
      ref.push(...y);
    }
  }
  return { maxPosition, overall: normRelError(ours, ref) };
}

// One Python process runs every reference job (each script's main(), as model_parity does).
const DRIVER = `
import contextlib, io, json, sys
sys.path.insert(0, sys.argv[1])
import hf_make_model, hf_logits
mods = {"hf_make_model.py": hf_make_model, "hf_logits.py": hf_logits}
results = []
for job in json.load(sys.stdin):
    mod = mods[job["script"]]
    sys.argv = [mod.__file__, *job["args"]]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = mod.main()
    if rc:
        raise SystemExit(f"{job['script']} {' '.join(job['args'])} exited {rc}")
    results.append(json.loads(buf.getvalue().strip().splitlines()[-1]))
print(json.dumps(results))
`;

describe.skipIf(!CUDA)('rpo on CUDA vs transformers on CUDA', () => {
  const work = CUDA ? mkdtempSync(path.join(tmpdir(), 'rpo-gpu-parity-')) : '';
  const batches = new Map<string, RowBatch>();
  const refFiles = new Map<string, string>(); // `${name}:${dtype}` -> logits file
  let tf32 = false;

  beforeAll(() => {
    tf32 = allowTF32();
    const jobs: { script: string; args: string[] }[] = [];
    let seed = 500;
    for (const [name, c] of Object.entries(ARCHS)) {
      const dir = path.join(work, name);
      const args = ['--arch', c.arch, '--out', dir, '--seed', String(++seed)];
      if (c.config) args.push('--config-json', JSON.stringify(c.config));
      jobs.push({ script: 'hf_make_model.py', args });
      const batch = paddedBatch(seed);
      batches.set(name, batch);
      const input = path.join(work, `${name}.in.json`);
      const rows = (a: Int32Array | Uint8Array) => Array.from({ length: batch.rows }, (_, r) => Array.from(a.subarray(r * T, (r + 1) * T)));
      writeFileSync(input, JSON.stringify({ input_ids: rows(batch.inputIds), attention_mask: rows(batch.attentionMask) }));
      for (const dtype of ['float32', 'bfloat16']) {
        const out = path.join(work, `${name}.${dtype}.bin`);
        refFiles.set(`${name}:${dtype}`, out);
        jobs.push({ script: 'hf_logits.py', args: ['--model', dir, '--input', input, '--out', out, '--dtype', dtype, '--device', DEVICE] });
      }
    }
    const driver = path.join(work, 'driver.py');
    writeFileSync(driver, DRIVER);
    const stdout = runGpuPython(driver, [REFERENCE_DIR], JSON.stringify(jobs));
    const results = JSON.parse(stdout.trim().split('\n').at(-1) ?? '[]') as { device?: string }[];
    expect(results).toHaveLength(jobs.length);
  }, 600_000); // Python's imports and model builds: the project's hookTimeout is the default 10 s

  afterAll(() => {
    setAllowTF32(tf32);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  async function compare(name: string, dtype: Dtype, tf32On: boolean) {
    setAllowTF32(tf32On);
    const model = await loadModel(path.join(work, name), { device: DEVICE, dtype });
    try {
      expect(model.device).toMatch(DEVICE === 'cuda' ? /^cuda/ : /^cpu$/);
      const batch = batches.get(name)!;
      const ours = await model.logits(batch);
      const ref = readFloat32(refFiles.get(`${name}:${dtype}`)!);
      const e = errors(ours, ref, batch);
      console.log(`[hf-gpu] ${name} ${dtype}${dtype === 'float32' ? (tf32On ? ' TF32' : ' IEEE') : ''}: overall ${e.overall.toExponential(2)}, worst position ${e.maxPosition.toExponential(2)}`);
      return e;
    } finally {
      model.dispose();
    }
  }

  for (const name of Object.keys(ARCHS)) {
    it(`${name}, float32 (TF32 off): every position within 1e-4`, async () => {
      const e = await compare(name, 'float32', false);
      expect(e.maxPosition).toBeLessThanOrEqual(1e-4);
    });
    it(`${name}, float32 with TF32 (the GPU default): within 1e-3 overall`, async () => {
      const e = await compare(name, 'float32', true);
      expect(e.overall).toBeLessThanOrEqual(1e-3);
    });
    it(`${name}, bfloat16: within 2e-2 overall, 5e-2 at every position`, async () => {
      const e = await compare(name, 'bfloat16', true);
      expect(e.overall).toBeLessThanOrEqual(2e-2);
      expect(e.maxPosition).toBeLessThanOrEqual(5e-2);
    });
  }
});
