// What one rank holds of the model under each ZeRO stage (lib/parallel/zero_stages.ts declares
// the stages and their rules): its shards of the weights, gradients, master weights, optimizer
// state and a live reference model, and what it holds whole for a while during a micro-step.
//
// Shards are counted as P / N elements: the engine's are element-balanced (the last rank's
// share of a unit is at most one element per unit short), so the difference is bytes, not MiB.
// With one device nothing is sharded, whatever the stage: `rpo train` without `rpo launch`.
//
// Held whole while a micro-step runs, beyond the shards (both are bounds, not averages):
// * ZeRO-3, gathered parameters: two decoder layers (the one computing and the prefetched next
//   one) and the embedding, final norm and LM head (which the engine gathers as units of their
//   own around the first and last steps of the forward and backward; counted as all alive at
//   once). The live reference model gathers the same way, but before the policy's forward and
//   freed after it, so the larger of the two dtypes counts, not both.
// * ZeRO-3, gradients in flight: a unit's full gradient lives from its backward until its
//   reduce-scatter completes; two at once, a decoder layer and the larger of its neighbours
//   (another layer, the embedding, or the LM head with the final norm).
// * ZeRO-2, gradients in flight: the gradients of the buckets not yet reduced to their owners,
//   two buckets' worth (ZERO2_BUCKETS_IN_FLIGHT); each bucket's float32 communication buffer is
//   in the headroom's communication allowance, as under ZeRO-0/1.
import { GRAD_BUCKET_BYTES, ZERO2_BUCKETS_IN_FLIGHT, ZERO3_LAYERS_GATHERED, ZERO_RULES, type ZeroRule, type ZeroStage } from '../parallel/zero_stages.js';

/** The parameter counts the rules read (lib/plan/estimate.ts's ParameterCounts has them). */
export interface UnitParameters {
  total: number;
  perLayer: number;
  embedding: number;
  /** 0 when tied. */
  lmHead: number;
  finalNorm: number;
}

/** Bytes per parameter of each buffer (lib/plan/estimate.ts's BytesPerParam). */
export interface BufferBytes {
  weights: number;
  grads: number;
  master: number;
  moments: number;
}

export interface ZeroBudget {
  /** The rule in force: the stage's with world size > 1, ZeRO-0's on one device. */
  rule: ZeroRule;
  weights: number;
  gradients: number;
  master: number;
  optimizerState: number;
  /** A live reference model's weights (0: none). */
  reference: number;
  /** ZeRO-3: full parameters gathered at once during a micro-step (0 otherwise). */
  gathered: number;
  /** ZeRO-2 and 3: full gradients awaiting their reduce to the owners (0 otherwise). */
  gradientsInFlight: number;
}

/** The parameters ZeRO-3 holds whole at once (see the header): two layers + embedding + norm + head. */
export function zero3GatheredParameters(p: UnitParameters): number {
  return ZERO3_LAYERS_GATHERED * p.perLayer + p.embedding + p.finalNorm + p.lmHead;
}

/** The parameters whose full gradients ZeRO-3 holds at once: a layer and the larger of its neighbours. */
export function zero3GradientParameters(p: UnitParameters): number {
  return (ZERO3_LAYERS_GATHERED - 1) * p.perLayer + Math.max(p.perLayer, p.embedding, p.lmHead + p.finalNorm);
}

/** One rank's share of the model under a ZeRO stage; `referenceBytes` null: no live reference. */
export function zeroBudget(p: UnitParameters, bpp: BufferBytes, referenceBytes: number | null, stage: ZeroStage, worldSize: number): ZeroBudget {
  const W = worldSize;
  const rule = ZERO_RULES[W > 1 ? stage : 0];
  const P = p.total;
  const share = (sharded: boolean, bytes: number): number => (sharded ? (P * bytes) / W : P * bytes);
  let gathered = 0;
  let gradientsInFlight = 0;
  if (rule.weights) gathered = zero3GatheredParameters(p) * Math.max(bpp.weights, referenceBytes ?? 0);
  if (rule.weights) gradientsInFlight = zero3GradientParameters(p) * bpp.grads;
  else if (rule.gradients) gradientsInFlight = Math.min(ZERO2_BUCKETS_IN_FLIGHT * (GRAD_BUCKET_BYTES / 4), (P * (W - 1)) / W) * bpp.grads;
  return {
    rule,
    weights: share(rule.weights, bpp.weights),
    gradients: share(rule.gradients, bpp.grads),
    master: share(rule.masterWeights, bpp.master),
    optimizerState: share(rule.optimizerState, bpp.moments),
    reference: referenceBytes === null ? 0 : share(rule.weights, referenceBytes),
    gathered,
    gradientsInFlight,
  };
}
