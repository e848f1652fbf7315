// The throughput a run logs (lib/train/throughput.ts), against counts worked out by hand for a
// small known batch: which positions are real, which are computed (the response rows and the
// rationale rows each padded to their own longest row, as the engine runs them), the FLOPs and
// the MFU, the peak's sources, and the progress line.
import { describe, expect, it } from 'vitest';

import { ConfigError } from '../../lib/config/index.js';
import { makeBatches, type TokenizedExample, type TokenizedSequence } from '../../lib/data/batch/index.js';
import { describeProgress } from '../../lib/train/progress.js';
import { bf16Peak, batchPositions, modelFlopsUtilization, paddingFraction, stepFlops } from '../../lib/train/throughput.js';
import { unpairedItems, unpairedMicroBatches } from '../../lib/train/unpaired.js';

/** A sequence of `n` tokens whose first `prompt` are the prompt. */
function seq(n: number, prompt = 1): TokenizedSequence {
  return { ids: Array.from({ length: n }, (_, i) => 10 + i), promptLength: prompt, fullLength: n, fullPromptLength: prompt, promptTruncated: false, responseTruncated: false, truncated: false, dropped: false };
}

function pair(id: string, chosen: number, rejected: number, rationale?: number): TokenizedExample {
  return { id, chosen: seq(chosen), rejected: seq(rejected), ...(rationale !== undefined ? { rationale: seq(rationale) } : {}), truncated: false, dropped: false };
}

// Two pairs: chosen 5 and 3 tokens, rejected 4 and 6, rationale 2 and 7.
const PAIRS = [pair('a', 5, 4, 2), pair('b', 3, 6, 7)];

describe('batchPositions', () => {
  it('rdpo: response rows padded to their longest (6), rationale rows to theirs (7), not to the batch\'s 7', () => {
    const batch = makeBatches(PAIRS, { batchSize: 2, groups: 3, seed: 0, shuffle: false })[0]!;
    expect(batch.seqLen).toBe(7); // the batch as laid out: 6 rows × 7
    // real: 5 + 3 + 4 + 6 + 2 + 7 = 27; computed: 4 response rows × 6 + 2 rationale rows × 7 = 38
    // the reference reads the response rows only: 5 + 3 + 4 + 6 = 18
    expect(batchPositions(batch, true)).toEqual({ real: 27, computed: 38, reference: 18 });
    expect(batchPositions(batch, false)).toEqual({ real: 27, computed: 38, reference: 0 });
    expect(paddingFraction({ real: 27, computed: 38 })).toBeCloseTo(11 / 38, 15);
  });

  it('packed (padding_free): every computed position is real, so padding_fraction is 0', () => {
    const batch = makeBatches(PAIRS, { batchSize: 2, groups: 3, seed: 0, shuffle: false })[0]!;
    expect(batchPositions(batch, true, true)).toEqual({ real: 27, computed: 27, reference: 18 });
    expect(paddingFraction(batchPositions(batch, false, true))).toBe(0);
  });

  it('dpo: chosen and rejected rows are one forward: 4 rows × 6', () => {
    const batch = makeBatches(PAIRS, { batchSize: 2, groups: 2, seed: 0, shuffle: false })[0]!;
    expect(batchPositions(batch, true)).toEqual({ real: 18, computed: 24, reference: 18 });
  });

  it('kto: the target rows and the KL rows are one forward (response rows), the reference reads both', () => {
    // items: a:chosen 5, a:rejected 4, b:chosen 3, b:rejected 6 (each prompt 1 token);
    // KL row i = item i's prompt (1) + item i+1's response (its length - 1): 1+3, 1+2, 1+5, 1+4
    const items = unpairedItems([pair('a', 5, 4), pair('b', 3, 6)]);
    const [batch] = unpairedMicroBatches('kto', items, [4], { padTokenId: 0, maxLength: 64 });
    // real: (5 + 4 + 3 + 6) + (4 + 3 + 6 + 5) = 36; computed: 8 rows × 6 = 48
    expect(batchPositions(batch!, true)).toEqual({ real: 36, computed: 48, reference: 36 });
  });

  it('no padding when every row has the same length', () => {
    const batch = makeBatches([pair('a', 4, 4), pair('b', 4, 4)], { batchSize: 2, groups: 2, seed: 0, shuffle: false })[0]!;
    expect(paddingFraction(batchPositions(batch, false))).toBe(0);
    expect(paddingFraction({ real: 0, computed: 0 })).toBe(0);
  });
});

describe('stepFlops and mfu', () => {
  it('full fine-tuning: 6·N per trained token and 2·N per reference token', () => {
    // N = 1000: 6 · 1000 · 27 + 2 · 1000 · 18 = 162000 + 36000
    expect(stepFlops({ params: 1000, trainableParams: 1000, trainedPasses: 1, extraForwards: 0 }, { real: 27, reference: 18 })).toBe(198_000);
  });

  it('LoRA: 4·N for the frozen weights plus 2·N of the adapters; ppo: its passes and its gradient-free forward', () => {
    // (4 · 1000 + 2 · 10) · 27 = 108540
    expect(stepFlops({ params: 1000, trainableParams: 10, trainedPasses: 1, extraForwards: 0 }, { real: 27, reference: 0 })).toBe(108_540);
    // 2 passes · 6000 · 10 + 1 forward · 2000 · 10 + the reference 2000 · 10 = 120000 + 20000 + 20000
    expect(stepFlops({ params: 1000, trainableParams: 1000, trainedPasses: 2, extraForwards: 1 }, { real: 10, reference: 10 })).toBe(160_000);
  });

  it('MFU is FLOP/s over the peak of every device', () => {
    // 400 TFLOP in 2 s on a 400 TFLOP/s device: half its peak; over two devices, a quarter
    expect(modelFlopsUtilization(400e12, 2, 400)).toBeCloseTo(0.5, 15);
    expect(modelFlopsUtilization(400e12, 2, 400, 2)).toBeCloseTo(0.25, 15);
  });
});

describe('bf16Peak', () => {
  it('the key wins over the env var; neither: no peak', () => {
    expect(bf16Peak(700, { RPO_BF16_PEAK_TFLOPS: '900' })).toEqual({ tflops: 700, source: 'bf16_peak_tflops' });
    expect(bf16Peak(null, { RPO_BF16_PEAK_TFLOPS: '900' })).toEqual({ tflops: 900, source: 'RPO_BF16_PEAK_TFLOPS' });
    expect(bf16Peak(null, {})).toBeNull();
    expect(bf16Peak(null, { RPO_BF16_PEAK_TFLOPS: ' ' })).toBeNull();
  });

  it('an env value that is not a positive number is a ConfigError naming it', () => {
    for (const v of ['fast', '0', '-5']) {
      expect(() => bf16Peak(null, { RPO_BF16_PEAK_TFLOPS: v })).toThrow(ConfigError);
      expect(() => bf16Peak(null, { RPO_BF16_PEAK_TFLOPS: v })).toThrow(`RPO_BF16_PEAK_TFLOPS="${v}"`);
    }
  });
});

describe('the progress line', () => {
  it('shows the padding and, when logged, the MFU', () => {
    const line = describeProgress('train', { step: 1, total: 2, tokensPerSecond: 1000, paddingFraction: 11 / 38, mfu: 0.4567 }, 1);
    expect(line).toContain('1000 tok/s | pad 28.9% | MFU 45.7% |');
    expect(describeProgress('train', { step: 1, total: 2, paddingFraction: 0 }, 1)).not.toContain('MFU');
  });
});
