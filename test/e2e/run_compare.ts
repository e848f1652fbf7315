// Comparing two training runs' outputs, read here (not by the code under test): the tensors of a
// checkpoint's safetensors file and the records of metrics.jsonl. The data-parallel and ZeRO tests
// use it to hold a run of N ranks against the one-process run it must equal.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';

export type MetricRecord = Record<string, number>;

/** A run directory's metrics.jsonl records. */
export function metrics(runDir: string): MetricRecord[] {
  return readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as MetricRecord);
}

/** The tensors (float32 or bfloat16, as float32) of a safetensors file, by name, and their dtypes. */
export function safetensorsWeights(file: string): { tensors: Map<string, Float32Array>; dtypes: Map<string, string> } {
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const tensors = new Map<string, Float32Array>();
  const dtypes = new Map<string, string>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [b, e] = t.data_offsets;
    const raw = bytes.buffer.slice(bytes.byteOffset + 8 + n + b, bytes.byteOffset + 8 + n + e);
    dtypes.set(name, t.dtype);
    if (t.dtype === 'F32') tensors.set(name, new Float32Array(raw));
    else {
      // bfloat16: the high half of a float32's bits
      expect(t.dtype).toBe('BF16');
      const u16 = new Uint16Array(raw);
      tensors.set(name, new Float32Array(Uint32Array.from(u16, (h) => h << 16).buffer));
    }
    expect(tensors.get(name)!.length, name).toBe(t.shape.reduce((a, x) => a * x, 1));
  }
  return { tensors, dtypes };
}

/** The tensors of a safetensors file, by name (as float32). */
export function safetensors(file: string): Map<string, Float32Array> {
  return safetensorsWeights(file).tensors;
}

/** A run's LATEST checkpoint weights. */
export function weights(runDir: string): Map<string, Float32Array> {
  return safetensors(path.join(runDir, 'LATEST', 'model.safetensors'));
}

/** The largest element-wise difference between two tensor maps holding the same tensors. */
function maxDiff(wa: Map<string, Float32Array>, wb: Map<string, Float32Array>): number {
  expect([...wb.keys()].sort()).toEqual([...wa.keys()].sort());
  let max = 0;
  for (const [k, x] of wa) {
    const y = wb.get(k)!;
    expect(y.length, k).toBe(x.length);
    for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i]! - y[i]!));
  }
  return max;
}

/** The largest element-wise difference between two safetensors files holding the same tensors. */
export function maxTensorDiff(fileA: string, fileB: string): number {
  return maxDiff(safetensors(fileA), safetensors(fileB));
}

/** The largest element-wise difference between two runs' LATEST weights. */
export function maxWeightDiff(runA: string, runB: string): number {
  return maxDiff(weights(runA), weights(runB));
}

/** Keys of metrics.jsonl that measure time or memory: they differ between any two runs. */
export const TIMING = new Set(['tokens_per_second', 'step_seconds', 'peak_memory_bytes', 'eval_seconds', 'comm_wait_seconds']);

/**
 * Largest difference over the records' non-timing values, relative to max(|value|, 1): margins and
 * rewards are differences of float32 log-prob sums (~50 here), so their rounding is absolute, not
 * relative to their own small size. The records must match key for key.
 */
export function maxMetricDiff(a: MetricRecord[], b: MetricRecord[]): number {
  expect(b.length).toBe(a.length);
  let max = 0;
  a.forEach((x, i) => {
    const y = b[i]!;
    const keys = Object.keys(x).filter((k) => !TIMING.has(k)).sort();
    expect(Object.keys(y).filter((k) => !TIMING.has(k)).sort()).toEqual(keys);
    for (const k of keys) max = Math.max(max, Math.abs(x[k]! - y[k]!) / Math.max(Math.abs(x[k]!), 1));
  });
  return max;
}
