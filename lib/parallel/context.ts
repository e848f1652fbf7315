// What the train loop asks of data parallelism, with one answer for a single process (no group:
// everything is local and immediate) and one for a rank of a c10d job (lib/parallel/native.ts).
//
// Semantics are those of one process (docs/distributed.md): `batch_size` is the global batch;
// it is cut into world_size × gradient_accumulation_steps micro-batches exactly as one process
// with that many accumulation steps would cut it, and rank r trains pieces [r·g, (r+1)·g). Each
// micro-step's loss is scaled by its pairs / the global batch's pairs, so the gradients summed
// over ranks are the single process's accumulated gradient. With a token budget
// (model.tokens_per_micro_batch) ranks take contiguous shards of balanced token counts and each
// cuts its own by the budget: the cut differs from one process's, the sum does not.
import { makeBatches, pairTokens, type Batch, type Groups, type TokenizedExample } from '../data/batch/index.js';
import { microBatchSizes } from '../data/batch/micro_batches.js';
import { balancedShards, budgetCut } from '../data/batch/token_budget.js';
import { ConfigError } from '../config/errors.js';
import { distEnv, type DistEnv } from './env.js';
import { ProcessGroup } from './native.js';

/** One optimizer step's local sums, reduced over the ranks by Parallel.reduceStep. */
export interface StepTotals {
  /** Σ loss · pairs over the micro-batches. */
  lossSum: number;
  /** Real (non-padding) positions of the rows the policy computed (lib/train/throughput.ts). */
  tokens: number;
  /** Positions the policy computed, padding included. */
  computed: number;
  /** Real positions a live reference model read. */
  referenceTokens: number;
  pairs: number;
  /** Micro-steps trained (summed over ranks). */
  microBatches: number;
  /** Σ metric · pairs, for each metric name. */
  metricSums: Record<string, number>;
  /** Micro-steps with a NaN or infinite loss. */
  nonFinite: number;
  /** 1: this rank was asked to stop (Ctrl-C, SIGTERM) during the step. */
  stop: number;
  /** Maxima over ranks. */
  peakMemoryBytes: number;
  seconds: number;
}

export class Parallel {
  private constructor(
    readonly env: DistEnv | null,
    readonly group: ProcessGroup | null,
  ) {}

  static single(): Parallel {
    return new Parallel(null, null);
  }

  /**
   * The job this process belongs to per the torchrun environment (WORLD_SIZE > 1), connected
   * (rendezvous at MASTER_ADDR:MASTER_PORT), or a single process. `device` picks the backend:
   * Gloo on the CPU, NCCL on CUDA (one GPU per rank: cuda:LOCAL_RANK).
   */
  static async fromEnv(device: string, env: NodeJS.ProcessEnv = process.env): Promise<Parallel> {
    const d = distEnv(env);
    if (!d) return Parallel.single();
    const cuda = device.startsWith('cuda');
    const group = await ProcessGroup.connect({
      rank: d.rank,
      worldSize: d.worldSize,
      masterAddr: d.masterAddr,
      masterPort: d.masterPort,
      timeoutMs: d.timeoutMs,
      backend: cuda ? 'nccl' : 'gloo',
      deviceIndex: cuda ? d.localRank : 0,
    });
    return new Parallel(d, group);
  }

  get distributed(): boolean { return this.group !== null; }
  get rank(): number { return this.env?.rank ?? 0; }
  get worldSize(): number { return this.env?.worldSize ?? 1; }
  /**
   * ZeRO-3: every policy or reference forward is a collective (each layer's parameters are
   * gathered from all ranks), so every rank runs the same number of micro-steps and evaluation
   * batches, the short ones padding with forwards whose results they drop.
   */
  get lockstep(): boolean { return this.group !== null && this.env?.zero === 3; }
  /** Rank 0: the one that prints, writes metrics.jsonl, checkpoints and the report. */
  get isMain(): boolean { return this.rank === 0; }

  /** The device this rank trains on: cuda becomes cuda:LOCAL_RANK (one GPU per rank). */
  device(resolved: string): string {
    if (!this.env || resolved !== 'cuda') return resolved;
    return `cuda:${this.env.localRank}`;
  }

  /** This rank's examples of each of its micro-batches of a global batch (none when the batch is smaller than the ranks × accumulation). */
  microShards<T>(examples: readonly T[], accumulation: number): T[][] {
    const sizes = microBatchSizes(examples.length, accumulation * this.worldSize);
    const pieces: T[][] = [];
    let start = 0;
    for (const n of sizes) {
      pieces.push(examples.slice(start, start + n));
      start += n;
    }
    return pieces.slice(this.rank * accumulation, (this.rank + 1) * accumulation);
  }

  /**
   * With a token budget (model.tokens_per_micro_batch): this rank's examples of each of its
   * micro-batches. The global batch is first shared out in contiguous shards of balanced token
   * counts (balancedShards), one per rank; each rank cuts its shard by the budget (budgetCut).
   * `tokens`: each example's real tokens.
   */
  budgetShards<T>(examples: readonly T[], tokens: readonly number[], budget: number): T[][] {
    const shards = balancedShards(tokens, this.worldSize);
    const start = shards.slice(0, this.rank).reduce((a, b) => a + b, 0);
    const mine = examples.slice(start, start + shards[this.rank]!);
    const pieces: T[][] = [];
    let at = 0;
    for (const n of budgetCut(tokens.slice(start, start + mine.length), budget)) {
      pieces.push(mine.slice(at, at + n));
      at += n;
    }
    return pieces;
  }

  /** microShards laid out for the engine; with `budget`, budgetShards. */
  microBatches(examples: readonly TokenizedExample[], accumulation: number, groups: Groups, padTokenId: number, budget: number | null = null): Batch[] {
    const pieces = budget === null ? this.microShards(examples, accumulation) : this.budgetShards(examples, examples.map((ex) => pairTokens(ex, groups)), budget);
    return pieces.map((part) => makeBatches(part, { batchSize: part.length, groups, seed: 0, shuffle: false, padTokenId })[0]!);
  }

  /** Sums (maxima for memory and seconds) over the ranks; `metricNames` fixes the order every rank sends. */
  async reduceStep(local: StepTotals, metricNames: readonly string[]): Promise<StepTotals> {
    if (!this.group) return local;
    const sums = await this.group.allReduce(
      [local.lossSum, local.tokens, local.pairs, local.nonFinite, local.stop, local.computed, local.referenceTokens, local.microBatches, ...metricNames.map((k) => local.metricSums[k] ?? 0)],
      'sum',
    );
    const max = await this.group.allReduce([local.peakMemoryBytes, local.seconds], 'max');
    const metricSums: Record<string, number> = {};
    metricNames.forEach((k, i) => (metricSums[k] = sums[8 + i]!));
    return {
      lossSum: sums[0]!,
      tokens: sums[1]!,
      pairs: sums[2]!,
      nonFinite: sums[3]!,
      stop: sums[4]!,
      computed: sums[5]!,
      referenceTokens: sums[6]!,
      microBatches: sums[7]!,
      metricSums,
      peakMemoryBytes: max[0]!,
      seconds: max[1]!,
    };
  }

  /** Element-wise sums over the ranks (evaluation's metric sums). */
  async sum(values: readonly number[]): Promise<number[]> {
    if (!this.group) return [...values];
    return Array.from(await this.group.allReduce(values, 'sum'));
  }

  /**
   * Rank 0 runs `produce` and every rank gets its result (through the rendezvous store); when it
   * throws, the other ranks throw too, saying rank 0 failed, instead of waiting for a timeout;
   * a ConfigError (a usage error: exit 2) stays one on every rank, so the job's exit code does
   * not depend on which rank exits first.
   */
  async fromMain(key: string, produce: () => Promise<string> | string): Promise<string> {
    if (!this.group) return produce();
    if (this.isMain) {
      try {
        const value = await produce();
        await this.group.storeSet(key, JSON.stringify({ value }));
        return value;
      } catch (err) {
        await this.group.storeSet(key, JSON.stringify({ error: err instanceof Error ? err.message : String(err), usage: err instanceof ConfigError }));
        throw err;
      }
    }
    const got = JSON.parse(await this.group.storeGet(key)) as { value?: string; error?: string; usage?: boolean };
    if (got.error !== undefined) throw got.usage ? new ConfigError(`rank 0: ${got.error}`) : new Error(`rank 0 failed: ${got.error}`);
    return got.value ?? '';
  }

  /** Element-wise minima over the ranks (agreement: 1 only when every rank says 1). */
  async min(values: readonly number[]): Promise<number[]> {
    if (!this.group) return [...values];
    return Array.from(await this.group.allReduce(values, 'min'));
  }

  /** Element-wise maxima over the ranks (ZeRO-3: the micro-steps every rank runs). */
  async max(values: readonly number[]): Promise<number[]> {
    if (!this.group) return [...values];
    return Array.from(await this.group.allReduce(values, 'max'));
  }

  async barrier(): Promise<void> {
    if (this.group) await this.group.barrier();
  }

  dispose(): void {
    this.group?.dispose();
  }
}
