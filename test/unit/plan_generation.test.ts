// Generation's memory per slot and the slots that fit (model.eval_batch_size=auto), by hand.
import { describe, expect, it } from 'vitest';

import { noGradLayerBytes, type ModelShape } from '../../lib/plan/estimate.js';
import { PACKED_PREFILL_TOKENS, prefillBytes, slotBytes, slotsThatFit } from '../../lib/plan/generation.js';

// Llama-2-7B's shape.
const llama7b: ModelShape = { vocab: 32000, hidden: 4096, intermediate: 11008, layers: 32, heads: 32, kvHeads: 32, headDim: 128, tied: false, qkvBias: false, oBias: false };

describe('generation slots', () => {
  it("a slot is every layer's K and V at max_length, plus its per-row vocabulary work", () => {
    // bf16, 2048 tokens: K and V = 2 x 32 layers x 4096 x 2048 x 2 bytes = 1 GiB.
    const kv = 2 * 32 * 32 * 128 * 2048 * 2;
    expect(kv).toBe(2 ** 30);
    const rest = 8 * 2048 + 32000 + 20 * 32000 + 8 * 4096 * 2 + 4 * 11008 * 2;
    expect(slotBytes(llama7b, 2048, 2)).toBe(kv + rest);
    // Grouped heads shrink the cache by the group size (Mistral-7B: 8 KV heads).
    expect(slotBytes({ ...llama7b, kvHeads: 8 }, 2048, 2)).toBe(kv / 4 + rest);
  });

  it('the slots that fit: free memory less 10% and a packed prefill, over the slot size, within [1, prompts]', () => {
    const prefill = noGradLayerBytes(llama7b, { rows: 1, seqLen: PACKED_PREFILL_TOKENS, labels: 0, masked: true, plain: false }, 2) + PACKED_PREFILL_TOKENS ** 2;
    expect(prefillBytes(llama7b, 2)).toBe(prefill);
    const slot = slotBytes(llama7b, 2048, 2);
    const free = 60 * 2 ** 30; // an 80 GB GPU with 13.5 GB of bf16 weights and some runtime loaded
    const expected = Math.floor((free * 0.9 - prefill) / slot);
    expect(expected).toBeGreaterThan(40);
    expect(expected).toBeLessThan(60);
    expect(slotsThatFit(llama7b, { maxLength: 2048, e: 2, freeBytes: free, prompts: 805 })).toBe(expected);
    expect(slotsThatFit(llama7b, { maxLength: 2048, e: 2, freeBytes: free, prompts: 10 })).toBe(10);
    expect(slotsThatFit(llama7b, { maxLength: 2048, e: 2, freeBytes: 2 ** 20, prompts: 805 })).toBe(1);
  });
});
