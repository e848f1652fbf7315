// Training batches of the unpaired losses (kto, kto-simple, kto-zero) from the run's tokenized
// pairs, as the seed's UnpairedPreferenceDataLoader and SimpleKTODataLoader made them: each
// pair gives a desirable example (its chosen response) and an undesirable one (its rejected).
// An example goes to the engine in the `chosen` slot of a TokenizedExample; kto's KL row (the
// example's prompt with the next example's response, within the global batch) in the
// `rejected` slot, so the engine's [chosen × n, rejected × n] layout is [target × n, KL × n].
import { epochOrder, makeBatches, type Batch, type TokenizedExample, type TokenizedSequence } from '../data/batch/index.js';
import { lossBalancesKinds, lossGroups, lossRow } from '../loss/table.js';
import type { LossName } from '../native.js';

/** One example of an unpaired loss, shaped as the loop's examples are. */
export interface UnpairedItem extends TokenizedExample {
  desirable: boolean;
}

export function isUnpairedItem(ex: TokenizedExample): ex is UnpairedItem {
  return typeof (ex as Partial<UnpairedItem>).desirable === 'boolean';
}

/**
 * Each pair → `<id>:chosen` (desirable) and `<id>:rejected` (undesirable), in pair order; a
 * response whose tokens were all cut away is left out. `rejected` holds the example's own
 * sequence until its batch gives it a KL row (klRows).
 */
export function unpairedItems(pairs: readonly TokenizedExample[]): UnpairedItem[] {
  const out: UnpairedItem[] = [];
  const item = (id: string, seq: TokenizedSequence, desirable: boolean): UnpairedItem => ({
    id,
    chosen: seq,
    rejected: seq,
    truncated: seq.truncated,
    dropped: seq.dropped,
    desirable,
  });
  for (const p of pairs) {
    if (!p.chosen.dropped) out.push(item(`${p.id}:chosen`, p.chosen, true));
    if (!p.rejected.dropped) out.push(item(`${p.id}:rejected`, p.rejected, false));
  }
  return out;
}

/**
 * The mismatched (prompt, response) of the KL estimate: `own`'s prompt tokens, then `other`'s
 * response tokens and EOS, the response cut to fit maxLength. The seed encoded prompt and
 * response separately and joined the ids, as here.
 */
export function klSequence(own: TokenizedSequence, other: TokenizedSequence, maxLength: number): TokenizedSequence {
  const prompt = own.ids.slice(0, own.promptLength);
  const response = other.ids.slice(other.promptLength); // response tokens + EOS
  const budget = Math.max(0, maxLength - prompt.length);
  const kept = response.length > budget ? [...response.slice(0, Math.max(0, budget - 1)), response[response.length - 1]!] : response;
  const dropped = budget < 2; // no response token left before EOS
  return {
    ids: [...prompt, ...kept],
    promptLength: prompt.length,
    fullLength: prompt.length + response.length,
    fullPromptLength: own.fullPromptLength,
    promptTruncated: own.promptTruncated,
    responseTruncated: kept.length < response.length,
    truncated: own.promptTruncated || kept.length < response.length,
    dropped,
  };
}

/** A global batch with kto's KL rows: example i's prompt with example (i + 1) mod n's response. */
export function withKlRows(batch: readonly UnpairedItem[], maxLength: number): UnpairedItem[] {
  return batch.map((ex, i) => ({ ...ex, rejected: klSequence(ex.chosen, batch[(i + 1) % batch.length]!.chosen, maxLength) }));
}

/**
 * kto-simple's epoch (SimpleKTODataLoader): the shuffled examples queued by kind; whenever both
 * queues hold batchSize / 2, a batch [desirable, undesirable, desirable, …] is taken from their
 * fronts. What is left at the end of the epoch is not trained. An even batch size keeps every
 * micro-batch of an even size balanced.
 */
export function balancedEpochOrder(items: readonly UnpairedItem[], o: { batchSize: number; seed: number; epoch: number }): UnpairedItem[][] {
  const B = o.batchSize;
  if (B < 2 || B % 2 !== 0) throw new Error(`loss=kto-simple needs an even model.batch_size ≥ 2 (half desirable, half undesirable), got ${B}`);
  const [shuffled] = epochOrder(items, { batchSize: Math.max(1, items.length), seed: o.seed, epoch: o.epoch, dropLast: false });
  const good: UnpairedItem[] = [];
  const bad: UnpairedItem[] = [];
  const out: UnpairedItem[][] = [];
  for (const e of shuffled ?? []) {
    (e.desirable ? good : bad).push(e);
    if (good.length >= B / 2 && bad.length >= B / 2) {
      const batch: UnpairedItem[] = [];
      while (batch.length < B) batch.push(good.shift()!, bad.shift()!);
      out.push(batch);
    }
  }
  return out;
}

/** One epoch's global batches for a loss: kto-simple's balanced ones, else the shuffled full batches. */
export function unpairedEpochOrder(loss: LossName, items: readonly UnpairedItem[], o: { batchSize: number; seed: number; epoch: number }): UnpairedItem[][] {
  if (lossBalancesKinds(loss)) return balancedEpochOrder(items, o);
  // The seed's unpaired loaders yielded full batches only.
  return epochOrder(items, { ...o, dropLast: true });
}

/**
 * A global batch of unpaired examples as the engine's micro-batches: KL rows first (over the
 * whole global batch, as the seed paired them), then each micro-batch laid out with its kinds.
 */
export function unpairedMicroBatches(
  loss: LossName,
  examples: readonly UnpairedItem[],
  sizes: readonly number[],
  o: { padTokenId: number; maxLength: number },
): Batch[] {
  const groups = lossGroups(loss);
  const rows = lossRow(loss).layout === 'unpaired-kl' ? withKlRows(examples, o.maxLength) : [...examples];
  const out: Batch[] = [];
  let start = 0;
  for (const n of sizes) {
    const part = rows.slice(start, start + n);
    // makeBatches would leave out a dropped KL row's example; keep the example and its row.
    const b = makeBatches(part.map((e) => ({ ...e, rejected: { ...e.rejected, dropped: false } })), { batchSize: n, groups, seed: 0, shuffle: false, padTokenId: o.padTokenId })[0]!;
    out.push({ ...b, desirable: Uint8Array.from(part, (e) => (e.desirable ? 1 : 0)) });
    start += n;
  }
  return out;
}

/** Evaluation batches of unpaired examples, in order (pair order keeps chunks of even size balanced). */
export function unpairedEvalBatches(loss: LossName, items: readonly UnpairedItem[], batchSize: number, o: { padTokenId: number; maxLength: number }): Batch[] {
  const out: Batch[] = [];
  for (let i = 0; i < items.length; i += batchSize) {
    const chunk = items.slice(i, i + batchSize);
    // kto-simple needs both kinds in a batch: a last chunk of one kind is left out.
    if (lossBalancesKinds(loss) && (chunk.every((e) => e.desirable) || chunk.every((e) => !e.desirable))) continue;
    out.push(...unpairedMicroBatches(loss, chunk, [chunk.length], o));
  }
  return out;
}
