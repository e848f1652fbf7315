// Non-finite weights in a written checkpoint: the first inf / NaN element of a safetensors
// checkpoint directory, read back from the files themselves (what a user would load), a tensor at
// a time in bounded chunks. `rpo merge` runs it on its output: a finite adapter can still
// overflow when merged (a huge lora_alpha / r scales B·A past the dtype's range), and a NaN in an
// adapter spreads over its whole module.
import { closeSync, openSync, readSync } from 'node:fs';

import type { TensorSpec } from '../native.js';
import { resolveCheckpoint } from './safetensors.js';

/** Bytes read at a time (a multiple of every element size). */
const CHUNK_BYTES = 16 * 1024 * 1024;

/** Per float dtype: element bytes and the exponent mask (all exponent bits set: inf or NaN). */
const FLOATS: Readonly<Record<string, { bytes: 2 | 4; exponent: number }>> = {
  F32: { bytes: 4, exponent: 0x7f800000 },
  BF16: { bytes: 2, exponent: 0x7f80 },
  F16: { bytes: 2, exponent: 0x7c00 },
};

export interface NonFinite {
  /** The tensor's name in the checkpoint. */
  tensor: string;
  file: string;
  /** The flat index of its first non-finite element. */
  index: number;
  /** 'inf', '-inf' or 'NaN'. */
  value: string;
}

/** The first non-finite element of one tensor (little-endian files, as safetensors are), or null. */
function scanTensor(fd: number, t: TensorSpec): NonFinite | null {
  const f = FLOATS[t.dtype];
  if (f === undefined) return null;
  const buf = new Uint8Array(Math.min(CHUNK_BYTES, Math.max(t.end - t.begin, f.bytes)));
  for (let pos = t.begin; pos < t.end; ) {
    const want = Math.min(buf.length, t.end - pos);
    let got = 0;
    while (got < want) {
      const n = readSync(fd, buf, got, want - got, pos + got);
      if (n === 0) throw new Error(`${t.file}: truncated inside tensor "${t.name}"`);
      got += n;
    }
    const words = f.bytes === 4 ? new Uint32Array(buf.buffer, 0, want / 4) : new Uint16Array(buf.buffer, 0, want / 2);
    const mask = f.exponent;
    for (let i = 0; i < words.length; i++) {
      if ((words[i]! & mask) !== mask) continue;
      const bits = words[i]!;
      const mantissa = f.bytes === 4 ? bits & 0x007fffff : bits & (f.exponent === 0x7c00 ? 0x03ff : 0x007f);
      const negative = f.bytes === 4 ? bits >>> 31 === 1 : bits >>> 15 === 1;
      const value = mantissa !== 0 ? 'NaN' : negative ? '-inf' : 'inf';
      return { tensor: t.name, file: t.file, index: (pos - t.begin) / f.bytes + i, value };
    }
    pos += want;
  }
  return null;
}

/** The first inf / NaN element among `tensors` (in their files), or null. */
export function firstNonFiniteOf(tensors: readonly TensorSpec[]): NonFinite | null {
  const byFile = new Map<string, TensorSpec[]>();
  for (const t of tensors) byFile.set(t.file, [...(byFile.get(t.file) ?? []), t]);
  for (const [file, list] of byFile) {
    const fd = openSync(file, 'r');
    try {
      for (const t of list) {
        const bad = scanTensor(fd, t);
        if (bad !== null) return bad;
      }
    } finally {
      closeSync(fd);
    }
  }
  return null;
}

/** The first inf / NaN weight of the checkpoint in `dir` (model.safetensors or shards), or null. */
export function firstNonFinite(dir: string): NonFinite | null {
  return firstNonFiniteOf(resolveCheckpoint(dir).tensors);
}
