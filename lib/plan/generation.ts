// Generation's memory per slot and the slots that fit (model.eval_batch_size=auto): the engine's
// continuous batching (native/model/generate.cpp) preallocates, per slot, the KV cache of every
// layer at the longest prompt + response, and per decode step works on [slots, vocab] logits.
import { noGradLayerBytes, type ModelShape } from './estimate.js';

/** The engine packs prefills up to this many tokens (generate.cpp's kMaxPackedTokens). */
export const PACKED_PREFILL_TOKENS = 4096;

/**
 * Bytes one slot holds for a sequence of `maxLength` tokens: keys and values of every layer
 * (2·layers·kv_heads·head_dim·maxLength·e), its output tokens (8 bytes each) and the
 * repetition penalty's seen-token flags (vocab bytes), and the decode step's per-row vocabulary
 * work (fp32 logits, their warped copy and probabilities, the float64 cumulative sum: 20 bytes a
 * token) and activations (a few hidden-wide rows, small beside the rest).
 */
export function slotBytes(s: ModelShape, maxLength: number, e: number): number {
  const kv = 2 * s.layers * s.kvHeads * s.headDim * maxLength * e;
  return kv + 8 * maxLength + s.vocab + 20 * s.vocab + 8 * s.hidden * e + 4 * s.intermediate * e;
}

/** The peak of a packed prefill beyond the cache: one layer's no-grad working set and the [T, T] mask. */
export function prefillBytes(s: ModelShape, e: number): number {
  const T = PACKED_PREFILL_TOKENS;
  return noGradLayerBytes(s, { rows: 1, seqLen: T, labels: 0, masked: true, plain: false }, e) + T * T;
}

/**
 * Slots that fit in `freeBytes` (memory free with the weights loaded), keeping `headroom` of it
 * unused (allocator fragmentation, the runtime), at least 1 and at most `prompts`.
 */
export function slotsThatFit(s: ModelShape, o: { maxLength: number; e: number; freeBytes: number; prompts: number; headroom?: number }): number {
  const usable = o.freeBytes * (1 - (o.headroom ?? 0.1)) - prefillBytes(s, o.e);
  const n = Math.floor(usable / slotBytes(s, o.maxLength, o.e));
  return Math.max(1, Math.min(o.prompts, n));
}
