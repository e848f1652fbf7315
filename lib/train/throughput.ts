// The throughput a run logs per step (README "Metrics"): real tokens per second, the share of
// computed positions that are padding, and on CUDA the model FLOPs utilization. Counted in TS
// from the micro-batches the loop hands the engine, so the counts are a function of the data
// alone (the same on every device and in `rpo data`).
//
// Which positions a micro-step computes: the engine runs a micro-batch's response rows (chosen
// and rejected; kto's target and KL rows; the one row of sft, csft, kto-simple, kto-zero and
// ppo) as one forward and its rationale rows as another, each cut to its own longest row
// (native/train/trainer.cpp's step, batch_tensors' trim). So a micro-batch computes
// rows × longest for each of those two groups; every position past a row's length is padding.
// A live reference model runs on the response rows only and pads as they do. Packed
// (padding_free, native/model/packed.h), every computed position is a real token.
import { ConfigError } from '../config/index.js';
import { ROW_KIND, type Batch } from '../data/batch/index.js';
import { lossHasValueHead } from '../loss/table.js';
import type { LossName, Model } from '../native.js';

/** What a micro-batch makes the engine compute, in token positions. */
export interface Positions {
  /** Real (non-padding) positions of every row the policy computes. */
  real: number;
  /** Positions the policy's forwards compute: real ones and padding. */
  computed: number;
  /** Real positions of the rows a live reference model reads (the response rows). */
  reference: number;
}

export const NO_POSITIONS: Readonly<Positions> = { real: 0, computed: 0, reference: 0 };

export function addPositions(a: Positions, b: Positions): Positions {
  return { real: a.real + b.real, computed: a.computed + b.computed, reference: a.reference + b.reference };
}

/**
 * A micro-batch's positions (see the top of this file); `liveReference`: a reference model runs on
 * its response rows; `packed`: the engine packs the rows (padding_free), computing no padding.
 */
export function batchPositions(batch: Pick<Batch, 'rows' | 'kinds' | 'lengths'>, liveReference: boolean, packed = false): Positions {
  let real = 0;
  let responseReal = 0;
  const longest = { response: 0, rationale: 0 };
  const rows = { response: 0, rationale: 0 };
  for (let r = 0; r < batch.rows; r++) {
    const n = batch.lengths[r]!;
    const group = batch.kinds[r] === ROW_KIND.rationale ? 'rationale' : 'response';
    real += n;
    if (group === 'response') responseReal += n;
    rows[group] += 1;
    longest[group] = Math.max(longest[group], n);
  }
  const computed = packed ? real : rows.response * longest.response + rows.rationale * longest.rationale;
  return { real, computed, reference: liveReference ? responseReal : 0 };
}

/** The share of computed positions that are padding (0 when nothing was computed). */
export function paddingFraction(p: Pick<Positions, 'real' | 'computed'>): number {
  return p.computed > 0 ? 1 - p.real / p.computed : 0;
}

/** What a step's FLOPs depend on besides its positions. */
export interface FlopModel {
  /** The policy's parameters, all of them (with LoRA: the frozen base too). */
  params: number;
  /** Those that train (all of them; with LoRA the adapters'). */
  trainableParams: number;
  /** Forward-and-backward passes over each micro-batch (ppo: ppo_epochs; else 1). */
  trainedPasses: number;
  /** Gradient-free policy forwards over each micro-batch (ppo's preparing pass: 1; else 0). */
  extraForwards: number;
}

/**
 * A run's FlopModel: its policy's parameters (with LoRA, `lora`, the adapters are the ones that
 * train) and its loss's passes (ppo: ppo_epochs trained passes after one gradient-free forward).
 */
export function flopModel(policy: Pick<Model, 'numParameters' | 'adapterParams'>, lora: boolean, loss: { name: LossName; ppo_epochs: number | null }): FlopModel {
  const base = policy.numParameters; // the model's own weights, adapters not included
  const adapters = lora ? policy.adapterParams().reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0) : 0;
  // A value-head loss (ppo) prepares each batch with a gradient-free forward, then trains ppo_epochs passes over it.
  const valueHead = lossHasValueHead(loss.name);
  return { params: base + adapters, trainableParams: lora ? adapters : base, trainedPasses: valueHead ? (loss.ppo_epochs ?? 1) : 1, extraForwards: valueHead ? 1 : 0 };
}

/**
 * Model FLOPs of a step, the usual convention (and bench/gpu's): 2·N per token for a forward,
 * 2·N for the backward to the activations and 2·N for the weight gradients, N the parameters
 * (so 6·N per trained token; a frozen weight's gradient is not computed, so LoRA's is 4·N plus
 * 2·N of its adapters), and 2·N per token a live reference reads. Attention's T² term and the
 * recompute of activation checkpointing are not counted, so MFU understates the hardware's work.
 */
export function stepFlops(m: FlopModel, p: Pick<Positions, 'real' | 'reference'>): number {
  const trained = 4 * m.params + 2 * m.trainableParams;
  return m.trainedPasses * trained * p.real + m.extraForwards * 2 * m.params * p.real + 2 * m.params * p.reference;
}

/** Model FLOPs utilization: achieved FLOP/s over the devices' bf16 peak (TFLOP/s each). */
export function modelFlopsUtilization(flops: number, seconds: number, peakTflops: number, devices = 1): number {
  return flops / Math.max(seconds, 1e-9) / (peakTflops * 1e12 * devices);
}

/** The env var that gives the bf16 peak when the config does not (bench/gpu reads it too). */
export const PEAK_ENV = 'RPO_BF16_PEAK_TFLOPS';

/**
 * The bf16 peak (TFLOP/s per device) MFU is over: the config's bf16_peak_tflops, else
 * RPO_BF16_PEAK_TFLOPS, else none (no mfu is logged). A ConfigError for an env value that is not
 * a positive number: a misspelt peak would log a wrong MFU for the whole run.
 */
export function bf16Peak(configured: number | null, env: NodeJS.ProcessEnv = process.env): { tflops: number; source: string } | null {
  if (configured !== null) return { tflops: configured, source: 'bf16_peak_tflops' };
  const v = env[PEAK_ENV];
  if (v === undefined || v.trim() === '') return null;
  const n = Number(v);
  if (!(Number.isFinite(n) && n > 0)) throw new ConfigError(`${PEAK_ENV}=${JSON.stringify(v)}: expected the GPU's bf16 peak in TFLOP/s, a positive number`);
  return { tflops: n, source: PEAK_ENV };
}
