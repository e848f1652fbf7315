// How a run's tokenized pairs become the engine's micro-batches: the examples its loss trains
// on, each epoch's global batches, and a global batch's micro-batches on this rank. The train
// loop walks them; `rpo data` lays them out to count the padding a run would compute.
import type { RunConfig } from '../config/index.js';
import { epochOrder, type Batch, type Groups, type TokenizedExample } from '../data/batch/index.js';
import { microBatchSizes } from '../data/batch/micro_batches.js';
import { Parallel } from '../parallel/context.js';
import { csftExamples } from './csft.js';
import { usable } from './evaluate.js';
import { addPositions, batchPositions, NO_POSITIONS, paddingFraction, type Positions } from './throughput.js';
import { isUnpairedItem, unpairedEpochOrder, unpairedItems, unpairedMicroBatches } from './unpaired.js';

/** How a run's examples are laid out: its loss's row groups, whether it trains unpaired examples, the pad id. */
export interface BatchLayout {
  groups: Groups;
  /** The loss trains on each response as an example of its own (lib/train/unpaired.ts). */
  unpaired: boolean;
  padTokenId: number;
}

/**
 * The examples a loss trains (or evaluates) on from tokenized pairs: unpaired losses each
 * response, csft each response after its control token (`csft`: the tokens' ids), the others
 * the pairs none of whose used sequences was dropped.
 */
export function lossExamples(config: RunConfig, pairs: readonly TokenizedExample[], layout: Pick<BatchLayout, 'groups' | 'unpaired'>, csft: { chosenId: number; rejectedId: number } | null): TokenizedExample[] {
  if (layout.unpaired) return unpairedItems(pairs);
  if (csft) return csftExamples(pairs, csft, config.model.max_length);
  return usable(pairs, layout.groups);
}

/** One epoch's global batches, in order: a function of (seed, epoch), so a resumed run sees the same ones. */
export function epochBatches(config: RunConfig, train: readonly TokenizedExample[], unpaired: boolean, epoch: number): TokenizedExample[][] {
  const batchSize = config.model.batch_size;
  // drop_last (the seed's batching): an epoch is its whole batches only.
  return unpaired
    ? unpairedEpochOrder(config.loss.name, train.filter(isUnpairedItem), { batchSize, seed: config.seed, epoch })
    : epochOrder(train, { batchSize, seed: config.seed, epoch, dropLast: config.drop_last });
}

/**
 * This rank's micro-batches of a global batch (all of them in a single process): equal pair
 * counts, or with model.tokens_per_micro_batch cut by real tokens (lib/data/batch/token_budget.ts;
 * the config refuses it for the unpaired losses).
 */
export function rankMicroBatches(config: RunConfig, examples: readonly TokenizedExample[], layout: BatchLayout, par: Parallel): Batch[] {
  const accumulation = config.model.gradient_accumulation_steps;
  // Unpaired: KL rows pair examples across the whole global batch, so every rank lays out
  // the global batch as one process would and keeps its own micro-batches.
  return layout.unpaired
    ? unpairedMicroBatches(config.loss.name, examples.filter(isUnpairedItem), microBatchSizes(examples.length, accumulation * par.worldSize), {
        padTokenId: layout.padTokenId,
        maxLength: config.model.max_length,
      }).slice(par.rank * accumulation, (par.rank + 1) * accumulation)
    : par.microBatches(examples, accumulation, layout.groups, layout.padTokenId, config.model.tokens_per_micro_batch);
}

/** What the padded path computes over an epoch (lib/train/throughput.ts's positions). */
export interface EpochPadding extends Positions {
  /** paddingFraction of the sums. */
  fraction: number;
  batches: number;
  microBatches: number;
}

/**
 * The padding one process's padded micro-batches compute over an epoch's global batches (the
 * first epoch; the others shuffle the same examples), at the config's batch_size and
 * gradient_accumulation_steps: what `rpo data` reports.
 */
export function epochPadding(config: RunConfig, train: readonly TokenizedExample[], layout: BatchLayout, epoch = 0): EpochPadding {
  let sum: Positions = NO_POSITIONS;
  let batches = 0;
  let microBatches = 0;
  for (const global of epochBatches(config, train, layout.unpaired, epoch)) {
    batches += 1;
    for (const micro of rankMicroBatches(config, global, layout, Parallel.single())) {
      microBatches += 1;
      sum = addPositions(sum, batchPositions(micro, false));
    }
  }
  return { ...sum, fraction: paddingFraction(sum), batches, microBatches };
}
