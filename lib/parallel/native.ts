// Types for the addon's data-parallel classes (native/parallel, native/binding/dist_wrap.cpp):
// a ProcessGroup (c10d: TCPStore rendezvous + Gloo or NCCL) and a GradSync (bucketed gradient
// all-reduce launched during backward).
import { addon, type Model, type Trainer } from '../native.js';
import { GRAD_BUCKET_BYTES } from './zero_stages.js';

export interface ConnectOptions {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  /** Rendezvous and every collective give up after this long (a dead or absent rank). */
  timeoutMs: number;
  backend: 'gloo' | 'nccl';
  /** nccl: this rank's CUDA device (LOCAL_RANK). */
  deviceIndex?: number;
}

export interface GradSyncResult {
  /** Seconds finish() waited on collectives: the communication backward did not hide. */
  waitSeconds: number;
  buckets: number;
  bytes: number;
  /** Buckets whose all-reduce started during backward. */
  launchedEarly: number;
  /** Buckets finish() sent again: a gradient grew after its bucket had left (a parameter reached twice). */
  resent: number;
  /** ZeRO-2: buckets whose reduce was seen complete, and their buffer dropped, during backward. */
  settledEarly: number;
}

/** What ProcessGroup.collectives brings back (native/binding/dist_wrap.cpp). */
export interface CollectiveResults {
  /** Where the tensors were: "cpu" for Gloo, "cuda:<LOCAL_RANK>" for NCCL. */
  device: string;
  /** Sum over ranks of x·(rank + 1). */
  allReduce: Float64Array;
  /** This rank's block of the sum over ranks of [x·(rank + 1)·1, ..., x·(rank + 1)·worldSize]. */
  reduceScatter: Float64Array;
  /** Every rank's x·(rank + 1), rank after rank. */
  allGather: Float64Array;
  /** Rank 0's x·1. */
  broadcast: Float64Array;
}

interface RawProcessGroup {
  connect(options: ConnectOptions): Promise<void>;
  allReduce(values: Float64Array, op: 'sum' | 'max' | 'min'): Promise<Float64Array>;
  collectives(values: Float64Array, dtype: 'float32' | 'bfloat16'): Promise<CollectiveResults>;
  barrier(): Promise<void>;
  storeSet(key: string, value: string): Promise<void>;
  storeGet(key: string): Promise<string>;
  dispose(): void;
}

interface RawGradSync {
  arm(): void;
  finish(): Promise<GradSyncResult>;
  reduceToOwners(zero: RawZeroShard): void;
  attachValueHead(trainer: unknown): void;
  dispose(): void;
}

export interface DistInfo {
  /** Built with c10d Gloo (libgloo-dev's headers were found). */
  available: boolean;
  nccl: boolean;
  /** When not available: what to install. */
  reason: string;
}

export interface ZeroPlan {
  /** Parameters (tensors) and elements this rank updates and keeps optimizer state for. */
  ownedParams: number;
  ownedNumel: number;
  totalNumel: number;
  /** Bytes of optimizer state per element: AdamW's moments (+ the fp32 master in bf16-mixed). */
  stateBytesPerElement: number;
  /** Bytes of a gradient's element (the trainable dtype). */
  gradBytesPerElement: number;
  /** 1: optimizer state sharded; 2: gradients too; 3: parameters too (flat shards of each unit: ownedParams counts units). */
  stage: 1 | 2 | 3;
}

interface RawZeroShard {
  plan(): ZeroPlan;
  broadcastParams(): Promise<void>;
  gatherState(): Promise<void>;
  releaseState(): Promise<void>;
  stateNumel(): number;
  dispose(): void;
}

interface DistAddon {
  ProcessGroup: new () => RawProcessGroup;
  ZeroShard: new (trainer: unknown, group: RawProcessGroup, options: { stage: 1 | 2 }) => RawZeroShard;
  Zero3: new (trainer: unknown, group: RawProcessGroup) => RawZeroShard;
  GradSync: new (policy: unknown, group: RawProcessGroup, options: { bucketBytes: number }) => RawGradSync;
  distInfo(): DistInfo;
}

function distAddon(): DistAddon {
  return addon() as unknown as DistAddon;
}

export function distInfo(): DistInfo {
  return distAddon().distInfo();
}

/** The addon object inside lib/native.ts's Trainer (private there: only the parallel classes need it). */
function rawTrainer(trainer: Trainer): unknown {
  return (trainer as unknown as { raw: unknown }).raw;
}

/** One rank's membership of the job. */
export class ProcessGroup {
  private constructor(
    private readonly raw: RawProcessGroup,
    readonly rank: number,
    readonly worldSize: number,
  ) {}

  static async connect(options: ConnectOptions): Promise<ProcessGroup> {
    const info = distInfo();
    if (!info.available) throw new Error(`rpo: ${info.reason}`);
    const raw = new (distAddon().ProcessGroup)();
    await raw.connect(options);
    return new ProcessGroup(raw, options.rank, options.worldSize);
  }

  allReduce(values: readonly number[], op: 'sum' | 'max' | 'min' = 'sum'): Promise<Float64Array> {
    return this.raw.allReduce(Float64Array.from(values), op);
  }
  /**
   * The backend's tensor collectives, once each, on the device it communicates on (a check: the
   * NCCL GPU test, test/gpu/nccl.test.ts): rank r sends x·(r + 1), x = values in `dtype`.
   */
  collectives(values: readonly number[], dtype: 'float32' | 'bfloat16' = 'float32'): Promise<CollectiveResults> {
    return this.raw.collectives(Float64Array.from(values), dtype);
  }
  barrier(): Promise<void> { return this.raw.barrier(); }
  storeSet(key: string, value: string): Promise<void> { return this.raw.storeSet(key, value); }
  storeGet(key: string): Promise<string> { return this.raw.storeGet(key); }
  dispose(): void { this.raw.dispose(); }

  /** @internal the addon object, for GradSync. */
  get handle(): RawProcessGroup { return this.raw; }
}

/** Sums the policy's gradients over the ranks: arm() before the last micro-step, finish() before the optimizer step. */
export class GradSync {
  private readonly raw: RawGradSync;
  constructor(policy: Model, group: ProcessGroup, bucketBytes = GRAD_BUCKET_BYTES) {
    this.raw = new (distAddon().GradSync)(policy.raw, group.handle, { bucketBytes });
  }
  arm(): void { this.raw.arm(); }
  finish(): Promise<GradSyncResult> { return this.raw.finish(); }
  /** ZeRO-2: each gradient is reduced to its owner only; every rank frees it when its bucket leaves (during backward), the owner gets the sums. */
  reduceToOwners(zero: ZeroShard): void { this.raw.reduceToOwners(zero.handle); }
  /** loss=ppo: finish() sums the value head's gradients too, and ppoPrepare whitens over every rank's micro-batches. */
  attachValueHead(trainer: Trainer): void { this.raw.attachValueHead(rawTrainer(trainer)); }
  dispose(): void { this.raw.dispose(); }
}

/**
 * ZeRO stage 1 (native/parallel/zero.cpp): this rank keeps and updates the optimizer state of its
 * share of the parameters; broadcastParams() after each optimizer step; gatherState() on every
 * rank before rank 0 writes a checkpoint (in the one-process format), releaseState() after.
 * Stage 2 also keeps only the share's gradients (with GradSync.reduceToOwners). Stage 3
 * (native/parallel/zero3.cpp) shards the parameters too: the trainer's policy and live reference
 * keep only this rank's flat shards, gathered layer by layer for each forward and backward; it
 * replaces GradSync (gradients are reduce-scattered as each layer's backward ends), and every
 * rank must run the same forwards (lockstep micro-steps and evaluation batches).
 */
export class ZeroShard {
  private readonly raw: RawZeroShard;
  constructor(trainer: Trainer, group: ProcessGroup, stage: 1 | 2 | 3 = 1) {
    this.raw = stage === 3 ? new (distAddon().Zero3)(rawTrainer(trainer), group.handle) : new (distAddon().ZeroShard)(rawTrainer(trainer), group.handle, { stage });
  }
  /** @internal the addon object, for GradSync.reduceToOwners. */
  get handle(): RawZeroShard { return this.raw; }
  get plan(): ZeroPlan { return this.raw.plan(); }
  broadcastParams(): Promise<void> { return this.raw.broadcastParams(); }
  gatherState(): Promise<void> { return this.raw.gatherState(); }
  releaseState(): Promise<void> { return this.raw.releaseState(); }
  stateNumel(): number { return this.raw.stateNumel(); }
  dispose(): void { this.raw.dispose(); }
}
