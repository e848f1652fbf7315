// The training-side batches of the unpaired losses and csft (lib/train/unpaired.ts,
// lib/train/csft.ts) on hand-made token sequences: KL rows, balanced kto-simple batches, the
// engine's row layout with each example's kind, and the control token after the prompt.
import { describe, expect, it } from 'vitest';

import type { TokenizedExample, TokenizedSequence } from '../../lib/data/batch/index.js';
import { csftExamples, withControlToken } from '../../lib/train/csft.js';
import { balancedEpochOrder, klSequence, unpairedEpochOrder, unpairedItems, unpairedMicroBatches, withKlRows } from '../../lib/train/unpaired.js';

const EOS = 2;

/** prompt ids, then response ids and EOS. */
function seq(prompt: number[], response: number[]): TokenizedSequence {
  const ids = [...prompt, ...response, EOS];
  return { ids, promptLength: prompt.length, fullLength: ids.length, fullPromptLength: prompt.length, promptTruncated: false, responseTruncated: false, truncated: false, dropped: false };
}

function pair(id: string, k: number): TokenizedExample {
  return { id, chosen: seq([1, 10 + k], [100 + k, 101 + k]), rejected: seq([1, 10 + k], [200 + k]), truncated: false, dropped: false };
}

describe('unpaired examples', () => {
  it('each pair gives a desirable and an undesirable example, in pair order', () => {
    const items = unpairedItems([pair('a', 0), pair('b', 1)]);
    expect(items.map((e) => [e.id, e.desirable, e.chosen.ids])).toEqual([
      ['a:chosen', true, [1, 10, 100, 101, EOS]],
      ['a:rejected', false, [1, 10, 200, EOS]],
      ['b:chosen', true, [1, 11, 101, 102, EOS]],
      ['b:rejected', false, [1, 11, 201, EOS]],
    ]);
  });

  it("a KL row is the example's prompt with the next example's response, cut before EOS to max_length", () => {
    expect(klSequence(seq([1, 5, 6], [7]), seq([1, 9], [40, 41, 42]), 100).ids).toEqual([1, 5, 6, 40, 41, 42, EOS]);
    const cut = klSequence(seq([1, 5, 6], [7]), seq([1, 9], [40, 41, 42]), 5);
    expect(cut.ids).toEqual([1, 5, 6, 40, EOS]);
    expect([cut.promptLength, cut.responseTruncated, cut.dropped]).toEqual([3, true, false]);
    const items = unpairedItems([pair('a', 0), pair('b', 1)]);
    const kl = withKlRows(items, 100);
    // example i's prompt [1, 10 + k] with example (i + 1) mod n's response
    expect(kl.map((e) => e.rejected.ids)).toEqual([
      [1, 10, 200, EOS],
      [1, 10, 101, 102, EOS],
      [1, 11, 201, EOS],
      [1, 11, 100, 101, EOS],
    ]);
  });

  it('kto-simple batches: half of each kind, interleaved; an odd batch size is refused', () => {
    const items = unpairedItems(Array.from({ length: 10 }, (_, k) => pair(`p${k}`, k)));
    const batches = balancedEpochOrder(items, { batchSize: 4, seed: 3, epoch: 0 });
    expect(batches.length).toBe(5);
    for (const b of batches) expect(b.map((e) => e.desirable)).toEqual([true, false, true, false]);
    expect(new Set(batches.flat().map((e) => e.id)).size).toBe(20);
    expect(() => balancedEpochOrder(items, { batchSize: 3, seed: 0, epoch: 0 })).toThrow(/even model\.batch_size/);
    // kto / kto-zero: shuffled full batches only
    expect(unpairedEpochOrder('kto', items, { batchSize: 8, seed: 1, epoch: 0 }).map((b) => b.length)).toEqual([8, 8]);
  });

  it("micro-batches lay kto's rows out as [target × n, KL × n] with each example's kind", () => {
    const items = unpairedItems([pair('a', 0), pair('b', 1)]);
    const [b1, b2] = unpairedMicroBatches('kto', items, [2, 2], { padTokenId: 0, maxLength: 100 });
    expect(b1!.rows).toBe(4);
    expect(b1!.nPairs).toBe(2);
    expect(Array.from(b1!.desirable!)).toEqual([1, 0]);
    expect(Array.from(b2!.desirable!)).toEqual([1, 0]);
    // Row 2 (the first KL row) of the first micro-batch: a's prompt with a:rejected's response.
    const T = b1!.seqLen;
    expect(Array.from(b1!.inputIds.slice(2 * T, 2 * T + 4))).toEqual([1, 10, 200, EOS]);
    const [z] = unpairedMicroBatches('kto-zero', items, [4], { padTokenId: 0, maxLength: 100 });
    expect([z!.rows, z!.nPairs]).toEqual([4, 4]);
  });
});

describe('csft examples', () => {
  it('the control token goes right after the prompt; a response token is cut before EOS to keep max_length', () => {
    expect(withControlToken(seq([1, 5], [7, 8]), 300, 100).ids).toEqual([1, 5, 300, 7, 8, EOS]);
    const cut = withControlToken(seq([1, 5], [7, 8]), 300, 5);
    expect([cut.ids, cut.promptLength, cut.truncated]).toEqual([[1, 5, 300, 7, EOS], 3, true]);
    expect(withControlToken(seq([1, 5], [7]), 300, 3).dropped).toBe(true);
    const ex = csftExamples([pair('a', 0)], { chosenId: 300, rejectedId: 301 }, 100);
    expect(ex.map((e) => [e.id, e.chosen.ids])).toEqual([
      ['a:chosen', [1, 10, 300, 100, 101, EOS]],
      ['a:rejected', [1, 10, 301, 200, EOS]],
    ]);
  });
});
