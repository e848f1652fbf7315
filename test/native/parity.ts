// What the logits-parity tests share (model_parity, gpt_neox_parity, few_row_products, lora):
// right-padded random batches, their rows as the JSON the Python references read, and the
// per-position and per-row errors of two [rows, T, vocab] logits arrays over real positions.
import { expect } from 'vitest';

import type { RowBatch } from '../../lib/native.js';
import { normRelError, rng } from './helpers.js';

/** Right-padded rows of random tokens of the given lengths; every real token after the first is a label. */
export function paddedBatch(seed: number, vocab: number, lengths: readonly number[], seqLen = Math.max(...lengths)): RowBatch {
  const r = rng(seed);
  const rows = lengths.length;
  const inputIds = new Int32Array(rows * seqLen);
  const attentionMask = new Uint8Array(rows * seqLen);
  const lossMask = new Uint8Array(rows * seqLen);
  lengths.forEach((len, row) => {
    for (let t = 0; t < len; t++) {
      const i = row * seqLen + t;
      inputIds[i] = Math.floor(r() * vocab);
      attentionMask[i] = 1;
      lossMask[i] = t > 0 ? 1 : 0;
    }
  });
  return { rows, seqLen, inputIds, attentionMask, lossMask };
}

/** A [rows, T] array of the batch as nested rows. */
export function rowsOf(batch: RowBatch, a: Int32Array | Uint8Array): number[][] {
  return Array.from({ length: batch.rows }, (_, r) => Array.from(a.subarray(r * batch.seqLen, (r + 1) * batch.seqLen)));
}

/** The batch as hf_logits.py reads it: {"input_ids": [[...]], "attention_mask": [[...]]}. */
export function batchJson(batch: RowBatch): string {
  return JSON.stringify({ input_ids: rowsOf(batch, batch.inputIds), attention_mask: rowsOf(batch, batch.attentionMask) });
}

/** The largest per-position norm-wise relative error of the logits over non-padded positions. */
export function maxPositionError(a: Float32Array, b: Float32Array, batch: RowBatch, vocab: number): number {
  expect(a.length).toBe(batch.rows * batch.seqLen * vocab);
  expect(b.length).toBe(a.length);
  let max = 0;
  for (let i = 0; i < batch.rows * batch.seqLen; i++) {
    if (!batch.attentionMask[i]) continue;
    const e = normRelError(a.subarray(i * vocab, (i + 1) * vocab), b.subarray(i * vocab, (i + 1) * vocab));
    if (!(e <= max)) max = e; // NaN wins
  }
  return max;
}

/** Per row, the norm-wise relative error over the row's non-padded logits (rows are right-padded). */
export function rowErrors(a: Float32Array, b: Float32Array, batch: RowBatch, vocab: number): number[] {
  expect(a.length).toBe(b.length);
  return Array.from({ length: batch.rows }, (_, row) => {
    let len = 0;
    while (len < batch.seqLen && batch.attentionMask[row * batch.seqLen + len]) len++;
    const off = row * batch.seqLen * vocab;
    return normRelError(a.subarray(off, off + len * vocab), b.subarray(off, off + len * vocab));
  });
}
