// A model's weights as numbers, for tests that compare weights across runs: written with
// saveModel (model.safetensors), or a run's checkpoint file, decoded here, F32 and BF16, every
// tensor in file order.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { saveModel } from '../../lib/model/io.js';
import type { Model } from '../../lib/native.js';

export interface Weights {
  /** Every weight, in file order, exactly (bf16 and f32 values are exact doubles). */
  values: Float64Array;
  /** The raw model.safetensors bytes (for bit-for-bit comparisons). */
  bytes: Buffer;
}

export async function modelWeights(model: Model): Promise<Weights> {
  const dir = mkdtempSync(path.join(tmpdir(), 'rpo-weights-'));
  try {
    await saveModel(model, dir);
    return fileWeights(path.join(dir, 'model.safetensors'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The weights of a model.safetensors file (a run's checkpoint), decoded here, not by the code under test. */
export function fileWeights(file: string): Weights {
  const bytes = readFileSync(file);
  const headerLen = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const base = 8 + headerLen;
  const tensors = Object.entries(header)
    .filter(([k]) => k !== '__metadata__')
    .sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
  const out: number[] = [];
  for (const [name, t] of tensors) {
    const [begin, end] = t.data_offsets;
    const raw = bytes.subarray(base + begin, base + end);
    const copy = new Uint8Array(raw); // aligned
    if (t.dtype === 'F32') {
      for (const v of new Float32Array(copy.buffer)) out.push(v);
    } else if (t.dtype === 'BF16') {
      const u16 = new Uint16Array(copy.buffer);
      const u32 = new Uint32Array(u16.length);
      for (let i = 0; i < u16.length; i++) u32[i] = u16[i]! << 16;
      for (const v of new Float32Array(u32.buffer)) out.push(v);
    } else {
      throw new Error(`${name}: dtype ${t.dtype} not decoded here`);
    }
  }
  return { values: Float64Array.from(out), bytes };
}

/** Round-to-nearest-even to bfloat16 (as torch's float -> bf16 cast), returned as a double. */
export function roundBf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  const v = u[0]!;
  if ((v & 0x7f800000) === 0x7f800000) return x; // inf / nan
  const lsb = (v >>> 16) & 1;
  u[0] = ((v + 0x7fff + lsb) >>> 16) << 16;
  return f[0]!;
}
