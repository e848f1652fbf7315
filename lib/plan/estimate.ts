// The memory planner's arithmetic: small pure functions, in bytes, for the engine's Llama-family
// decoder (native/model/llama.cpp; GPTNeoX, gpt_neox.cpp, has its own layer terms), its train
// step (native/train/trainer.cpp) and its fused log-prob head (native/loss/logprobs.cpp).
// Nothing here reads files or the engine.
//
// What a micro-step holds, derived op by op from the engine's code and checked against measured
// CPU peaks of the engine itself (test/native/plan_measure.test.ts: within 2% in fp32):
//
// * Row groups. A pair is 1 row (sft), 2 (chosen, rejected) or 3 (+ the rationale row: rdpo,
//   rorpo-simple). Chosen and rejected rows go through the policy as one forward; rationale rows
//   as a second, separate forward. Both graphs stay alive until backward. Rows are planned full
//   (max_length tokens), every position but the first a label (an upper bound).
// * Saved for backward, per decoder layer, N = rows × T tokens, e = bytes of the compute dtype,
//   q = heads × head_dim, kv = kv_heads × head_dim (the engine's lean autograd functions for
//   RMSNorm and the SwiGLU MLP; RPO_PLAIN_AUTOGRAD=1, plain ATen ops, in brackets):
//     RMSNorm ×2   N·h·2e + 4N         its input, its output (the q/k/v or gate/up input), fp32
//                  [N·h·(4 + 2e) + 4N]  rsqrt [+ the fp32 view of the input (a copy in bf16) and
//                                      the normalized rows]
//     attention    2·N·q·e + 2·N·kv·e  rotated q and the output at query width, rotated k and v
//                                      at KV width (causal SDPA without a mask, grouped K/V in
//                                      the kernel: training batches are right-padded)
//                  R·heads·T·4         the attention's log-sum-exp
//     MLP          2·N·I·e [4·N·I·e]   gate and up outputs [+ silu(gate) and the product, which
//                                      the lean function recomputes in backward]
//   When attention needs an explicit mask (a sliding window shorter than the rows), K and V are
//   repeated to the query heads (4·N·q·e) and SDPA keeps a float copy of the mask (R·T²·e).
//   With activation checkpointing only each layer's input is kept (N·h·e), and one layer is
//   recomputed, with grad, during backward.
// * Per forward besides the layers: rotary cos/sin (2·N·d·e), the batch's int64 buffer (ids,
//   masks, label positions: (3N + 3M + R)·8, M = label tokens), the final RMSNorm (N·h·e + 4N),
//   and the head's saved inputs: the label positions' hidden states and fp32 lse (M·(h·e + 4)).
// * The log-prob head never holds [tokens, vocab] logits: one chunk of c = min(chunk_tokens, M)
//   rows at a time. Forward: CUDA kernels c·V·e; chunked LibTorch path (the CPU) c·V·(4 + e·[e<4])
//   (fp32 logits, worked in place). Backward: an fp32 weight-gradient accumulator V·h·4 (+ V·h·e
//   for bf16: a chunk's product, then the copy it returns), grad of the selected hidden states
//   M·h·e, and per chunk the recomputed logits turned into their gradient in place (CUDA c·V·e;
//   chunked c·V·(4 + e·[e<4])) and d·W (c·h·e).
// * Gradients waiting in autograd. A parameter's gradient is added into .grad only once every use
//   of the parameter in one backward has sent its gradient. With a rationale forward the engine
//   backwards each forward on its own (native/train/split_backward.h: the loss is built on leaf
//   copies of the forwards' log-probs), the rationale forward first: each adds into .grad as it
//   goes, so no set of gradients waits for the other forward. What still waits: with tied
//   embeddings, the head's weight gradient, for the embedding's (the last node of a forward).
// * The reference model (a live one) runs first, without grad, over the response rows: its
//   temporaries (one layer's, or its head's) are gone before the policy's forward starts.
// * The peak is the largest of these moments (all beyond weights, .grad, master weights and
//   optimizer state, which exist before and after the step):
//     the reference forward               its batch + one no-grad layer, or its head
//     end of each forward's head          saved so far + final hidden states + head forward chunk
//     (checkpointing) each forward        saved so far + one no-grad layer
//     backward of the last forward        all saved + head backward | + its top layer's backward
//     backward of the response forward    its saved + head | top layer (the rationale's are freed)
//   A layer's backward adds the gradient arriving (N·h·e) and the largest of its parts'
//   temporaries (layerBackwardBytes: the MLP's, 3·N·I·e + h·I·e lean, usually); with
//   checkpointing, plus the layer's recomputed activations.
//
// Bytes per parameter by precision (the modes' definition; the engine implements them to match):
//   fp32        weights 4, grads 4, moments 8 (AdamW), no master
//   bf16-pure   weights 2, grads 2, moments 4 (bf16), no master
//   bf16-mixed  weights 2, grads 2, fp32 master 4, moments 8 (fp32)
//   bf16-sr     weights 2, grads 2, moments 4 (bf16; stochastic rounding of the update), no master
// RMSprop keeps one moment (square average) instead of AdamW's two.
// What a rank holds of each under data parallelism is its ZeRO stage's (lib/parallel/zero_stages.ts
// declares the stages, lib/plan/zero.ts the per-rank shares and ZeRO-2/3's transients).

import type { LossName, ModelConfig } from '../native.js';
import { lossGroups, type LossChoice } from '../loss/table.js';
import { valueHeadBudget, valueHeadBytes, type ValueHeadBudget } from './value_head.js';
import { zeroBudget, type ZeroBudget } from './zero.js';
import type { ZeroStage } from '../parallel/zero_stages.js';

export const PRECISIONS = ['fp32', 'bf16-pure', 'bf16-mixed', 'bf16-sr'] as const;
export type Precision = (typeof PRECISIONS)[number];

export type PlanOptimizer = 'AdamW' | 'RMSprop';

export interface BytesPerParam {
  weights: number;
  grads: number;
  /** fp32 master copy of the weights (bf16-mixed). */
  master: number;
  /** Optimizer state: AdamW's two moments or RMSprop's one. */
  moments: number;
}

/** Bytes per parameter of each persistent buffer, by precision and optimizer. */
export function bytesPerParam(precision: Precision, optimizer: PlanOptimizer): BytesPerParam {
  const momentsCount = optimizer === 'RMSprop' ? 1 : 2;
  switch (precision) {
    case 'fp32':
      return { weights: 4, grads: 4, master: 0, moments: 4 * momentsCount };
    case 'bf16-pure':
      return { weights: 2, grads: 2, master: 0, moments: 2 * momentsCount };
    case 'bf16-mixed':
      return { weights: 2, grads: 2, master: 4, moments: 4 * momentsCount };
    case 'bf16-sr':
      return { weights: 2, grads: 2, master: 0, moments: 2 * momentsCount };
  }
}

/** Bytes of one element of the compute dtype (activations): fp32 4, every bf16 mode 2. */
export function computeBytes(precision: Precision): number {
  return precision === 'fp32' ? 4 : 2;
}

/** Bytes of an element of a config dtype name. */
export function dtypeBytes(dtype: 'float32' | 'bfloat16' | 'float16'): number {
  return dtype === 'float32' ? 4 : 2;
}

/** The decoder's shape: what memory depends on. */
export interface ModelShape {
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** LM head shares the embedding matrix. */
  tied: boolean;
  /** q, k, v carry a bias (Qwen2, Llama attention_bias). */
  qkvBias: boolean;
  /** o_proj carries a bias (Llama attention_bias). */
  oBias: boolean;
  /**
   * GPTNeoX (native/model/gpt_neox.cpp): a two-matrix gelu MLP with biases, LayerNorms with a
   * bias, one fused q/k/v projection (layerSavedBytes, layerBackwardBytes, noGradLayerBytes).
   */
  gptNeoX?: boolean;
}

/** The planner's shape from the engine's ModelConfig (a validated config.json). */
export function shapeOf(
  cfg: Pick<ModelConfig, 'architecture' | 'vocab_size' | 'hidden_size' | 'intermediate_size' | 'num_hidden_layers' | 'num_attention_heads' | 'num_key_value_heads' | 'head_dim' | 'tie_word_embeddings' | 'attention_bias' | 'qkv_bias'>,
): ModelShape {
  return {
    vocab: cfg.vocab_size,
    hidden: cfg.hidden_size,
    intermediate: cfg.intermediate_size,
    layers: cfg.num_hidden_layers,
    heads: cfg.num_attention_heads,
    kvHeads: cfg.num_key_value_heads,
    headDim: cfg.head_dim,
    tied: cfg.tie_word_embeddings,
    qkvBias: cfg.attention_bias || cfg.qkv_bias,
    oBias: cfg.attention_bias,
    ...(cfg.architecture === 'GPTNeoXForCausalLM' ? { gptNeoX: true } : {}),
  };
}

export interface ParameterCounts {
  total: number;
  embedding: number;
  /** 0 when tied. */
  lmHead: number;
  perLayer: number;
  finalNorm: number;
  /** The largest single tensor (the embedding or LM head matrix, or an MLP matrix). */
  largest: number;
}

/** Parameters of the engine's model (native/model/llama.cpp, gpt_neox.cpp): exact, biases and norms included. */
export function parameterCounts(s: ModelShape): ParameterCounts {
  const q = s.heads * s.headDim;
  const kv = s.kvHeads * s.headDim;
  const attention = s.hidden * q + 2 * s.hidden * kv + q * s.hidden + (s.qkvBias ? q + 2 * kv : 0) + (s.oBias ? s.hidden : 0);
  // GPTNeoX: dense_h_to_4h and dense_4h_to_h with biases; two LayerNorms (weight and bias).
  const mlp = s.gptNeoX ? 2 * s.hidden * s.intermediate + s.intermediate + s.hidden : 3 * s.hidden * s.intermediate;
  const norm = s.gptNeoX ? 2 * s.hidden : s.hidden;
  const perLayer = attention + mlp + 2 * norm;
  const embedding = s.vocab * s.hidden;
  const lmHead = s.tied ? 0 : embedding;
  const finalNorm = norm;
  return {
    total: embedding + lmHead + finalNorm + s.layers * perLayer,
    embedding,
    lmHead,
    perLayer,
    finalNorm,
    largest: Math.max(embedding, s.hidden * s.intermediate, s.hidden * q),
  };
}

/** Where the log-prob head runs: the CUDA kernels, or the chunked LibTorch path (the CPU). */
export type HeadPath = 'cuda-kernel' | 'chunked';

/** One forward through the policy: `rows` rows of `seqLen` tokens, `labels` label tokens in all. */
export interface ForwardShape {
  rows: number;
  seqLen: number;
  labels: number;
  /**
   * Attention runs with an explicit [rows, 1, T, T] mask (a sliding window shorter than the rows,
   * or left padding) instead of the mask-free causal kernel with grouped K/V.
   */
  masked: boolean;
  /**
   * RMSNorm and the MLP as plain ATen ops under autograd (RPO_PLAIN_AUTOGRAD=1, the engine's
   * reference path) instead of its lean autograd functions, which save less and recompute.
   */
  plain: boolean;
}

/**
 * What a GPTNeoX layer saves (plain ATen ops; the parallel residual, Pythia's; the sequential one
 * saves one more N·h·e), counted with autograd's saved-tensor hooks on the same ops: the layer
 * input once (both LayerNorms read it), the two LayerNorm outputs and their fp32 mean and rstd;
 * the fused q/k/v output, which v (a view of it) keeps whole, the rotated q and k, the attention
 * output and its [rows, T, heads·d] copy (dense's input); the up projection's and gelu's outputs.
 */
function neoXLayerSavedBytes(s: ModelShape, f: ForwardShape, e: number): number {
  const N = f.rows * f.seqLen;
  const q = s.heads * s.headDim;
  const lse = f.rows * s.heads * f.seqLen * 4;
  const norms = 3 * N * s.hidden * e + 4 * 4 * N;
  const attention = 7 * N * q * e + lse + (f.masked ? f.rows * f.seqLen * f.seqLen * e : 0);
  return norms + attention + 2 * N * s.intermediate * e;
}

/** Activations one decoder layer saves for backward (no checkpointing), e = compute bytes. */
export function layerSavedBytes(s: ModelShape, f: ForwardShape, e: number): number {
  if (s.gptNeoX) return neoXLayerSavedBytes(s, f, e);
  const N = f.rows * f.seqLen;
  const q = s.heads * s.headDim;
  const kv = s.kvHeads * s.headDim;
  // Each RMSNorm: lean, its input and fp32 rsqrt; plain, also the fp32 view of the input (a copy
  // in bf16) and the normalized rows. Its output, the next projections' input, either way.
  const norms = 2 * (f.plain ? N * s.hidden * (4 + 2 * e) : N * s.hidden * 2 * e) + 2 * 4 * N;
  const lse = f.rows * s.heads * f.seqLen * 4;
  const attention = f.masked
    ? 4 * N * q * e + lse + f.rows * f.seqLen * f.seqLen * e // K, V repeated to the query heads; the float mask
    : 2 * N * q * e + 2 * N * kv * e + lse; // q, out at query width, k, v at KV width
  // Lean: gate and up outputs (silu(gate)·up is recomputed); plain: also silu(gate) and the product.
  const mlp = (f.plain ? 4 : 2) * N * s.intermediate * e;
  return norms + attention + mlp;
}

/** What the head's forward saves: the label positions' hidden states and their fp32 log-sum-exp. */
export function headSavedBytes(s: ModelShape, f: ForwardShape, e: number): number {
  return f.labels * (s.hidden * e + 4);
}

/** Everything one forward keeps for backward. */
export function forwardSavedBytes(
  s: ModelShape,
  f: ForwardShape,
  e: number,
  checkpointing: boolean,
): { layers: number; other: number; finalNorm: number; head: number; total: number } {
  const N = f.rows * f.seqLen;
  const layers = s.layers * (checkpointing ? N * s.hidden * e : layerSavedBytes(s, f, e));
  const other =
    2 * N * s.headDim * e + // rotary cos, sin
    (3 * N + 3 * f.labels + f.rows) * 8 + // the batch's int64 buffer: ids, masks, label positions
    (f.masked ? N * f.seqLen : 0); // the boolean mask
  const finalNorm = (f.plain ? N * s.hidden * (4 + e) : N * s.hidden * e) + 4 * N;
  const head = headSavedBytes(s, f, e);
  return { layers, other, finalNorm, head, total: layers + other + finalNorm + head };
}

/** The rows one head chunk holds: chunk_tokens, or fewer when the forward has fewer labels. */
export function chunkRows(chunkTokens: number, labels: number): number {
  return Math.max(1, Math.min(chunkTokens, labels));
}

/**
 * Head forward temporaries for one chunk: the CUDA kernels read the chunk's logits in their own
 * dtype; the chunked path makes them fp32 (a bf16 product and its fp32 copy, briefly) and works
 * the log-sum-exp in place.
 */
export function chunkForwardBytes(s: ModelShape, c: number, e: number, path: HeadPath): number {
  if (path === 'cuda-kernel') return c * s.vocab * e;
  return c * s.vocab * (4 + (e < 4 ? e : 0));
}

/**
 * Head backward temporaries for one chunk: the recomputed logits, which become d logp / d logits
 * in place (fp32 on the chunked path, plus its copy in the compute dtype for bf16), and d·W.
 */
export function chunkBackwardBytes(s: ModelShape, c: number, e: number, path: HeadPath): number {
  const matmul = c * s.hidden * e; // d · W before it is copied into grad_h
  if (path === 'cuda-kernel') return c * s.vocab * e + matmul;
  return c * s.vocab * (4 + (e < 4 ? e : 0)) + matmul;
}

/** The head's backward: the fp32 weight-gradient accumulator (+ its bf16 copy), grad_h, one chunk. */
export function headBackwardBytes(s: ModelShape, f: ForwardShape, e: number, chunkTokens: number, path: HeadPath): number {
  const c = chunkRows(chunkTokens, f.labels);
  const gradW = s.vocab * s.hidden * 4 + (e < 4 ? s.vocab * s.hidden * e : 0);
  return gradW + f.labels * s.hidden * e + chunkBackwardBytes(s, c, e, path);
}

/** The head's forward: the final hidden states (alive while the head runs) and one chunk. */
export function headForwardBytes(s: ModelShape, f: ForwardShape, e: number, chunkTokens: number, path: HeadPath): number {
  const N = f.rows * f.seqLen;
  return N * s.hidden * e + f.labels * 8 + chunkForwardBytes(s, chunkRows(chunkTokens, f.labels), e, path); // + out, lse
}

/** A no-grad decoder layer's peak (C++ temporaries live to the end of their statement). */
export function noGradLayerBytes(s: ModelShape, f: ForwardShape, e: number): number {
  const N = f.rows * f.seqLen;
  const q = s.heads * s.headDim;
  const kv = s.kvHeads * s.headDim;
  // GPTNeoX: the LayerNorm output, up and gelu outputs, the result; the fused q/k/v buffer, the
  // rotated q and k, the output.
  if (s.gptNeoX) return Math.max(3 * N * s.hidden * e + 2 * N * s.intermediate * e, 2 * N * s.hidden * e + 6 * N * q * e);
  const mlp = 3 * N * s.hidden * e + (f.plain ? 4 : 3) * N * s.intermediate * e;
  const attention = 2 * N * s.hidden * e + 4 * N * q * e + (f.masked ? 2 * N * q * e + f.rows * f.seqLen * f.seqLen * e : 2 * N * kv * e);
  return Math.max(mlp, attention);
}

/**
 * Transient memory of one layer's backward beyond its saved activations: the gradient arriving
 * (N·h·e) and the largest of
 *   the MLP: plain autograd at the product rule holds both factors' gradients while the
 *     product's is alive and the product itself already freed (net 2·N·I·e); the lean function
 *     recomputes silu(gate) and holds it with the product's gradient and one factor's (3·N·I·e),
 *     and down_proj's weight gradient (h·I·e), computed first, until it returns;
 *   the attention: FlashAttention-2's fp32 dq accumulator, dq, and dk, dv expanded to the query
 *     heads (N·q·(4 + 3e));
 *   the lean RMSNorm's fp32 recomputation (N·h·(16 + e)).
 * Parameter gradients come one matrix at a time and are smaller. With checkpointing, plus the
 * layer's recomputed activations.
 */
export function layerBackwardBytes(s: ModelShape, f: ForwardShape, e: number, checkpointing: boolean): number {
  const N = f.rows * f.seqLen;
  const q = s.heads * s.headDim;
  // (lean: down_proj's weight gradient, computed first, is held until the function returns.
  // GPTNeoX, plain autograd: gelu's output is released once dense_4h_to_h's node has run, so
  // gelu's backward nets one N·I·e: its output's gradient and its input's, less that output.)
  const mlp = s.gptNeoX
    ? N * s.intermediate * e
    : f.plain
      ? 2 * N * s.intermediate * e
      : 3 * N * s.intermediate * e + s.hidden * s.intermediate * e;
  const norm = f.plain || s.gptNeoX ? 0 : N * s.hidden * (16 + e);
  const transient = N * s.hidden * e + Math.max(mlp, N * q * (4 + 3 * e), norm);
  return transient + (checkpointing ? layerSavedBytes(s, f, e) : 0);
}

export interface MicroStepInputs {
  shape: ModelShape;
  /** Preference pairs in the micro-batch (on this device). */
  pairs: number;
  /** 1 (sft), 2, or 3 (rationale row). */
  groups: number;
  /** Tokens per row (every row assumed full: max_length). */
  seqLen: number;
  /** Label tokens per row (default seqLen − 1: every position but the first). */
  labelsPerRow?: number;
  /** Bytes of the compute dtype. */
  computeBytes: number;
  /** Bytes of a gradient element (the precision's grads). */
  gradBytes: number;
  checkpointing: boolean;
  chunkTokens: number;
  headPath: HeadPath;
  /** A live reference model's compute bytes; null: none (no reference loss, or precomputed). */
  referenceBytes: number | null;
  /** Attention with an explicit mask (see ForwardShape.masked); default false. */
  masked?: boolean;
  /** The engine's plain-autograd path (see ForwardShape.plain); default false. */
  plain?: boolean;
}

export interface MicroStepPhase {
  name: string;
  /** Policy activations saved for backward, alive at this moment. */
  saved: number;
  /** Log-prob head temporaries (forward or backward chunk, weight-gradient accumulator). */
  head: number;
  /** Gradients waiting in autograd: with tied embeddings, the head's weight gradient for the embedding's. */
  gradientCopy: number;
  /** Everything else: a layer's backward or recomputation, the reference forward. */
  other: number;
  total: number;
}

export interface MicroStepEstimate {
  /** The largest phase. */
  peak: MicroStepPhase;
  phases: MicroStepPhase[];
  /** The forwards: response rows, then rationale rows. */
  forwards: ForwardShape[];
  /** All policy activations saved for backward once both forwards are done. */
  savedTotal: number;
  /** The log-prob head's own temporaries (the response forward's, the larger): forward, backward. */
  head: { forward: number; backward: number };
}

function phase(name: string, saved: number, head: number, gradientCopy: number, other: number): MicroStepPhase {
  return { name, saved, head, gradientCopy, other, total: saved + head + gradientCopy + other };
}

/** The rows of each forward for a micro-batch: [response rows] or [response rows, rationale rows]. */
export function forwardsOf(pairs: number, groups: number, seqLen: number, labelsPerRow: number, masked = false, plain = false): ForwardShape[] {
  const f = (rows: number): ForwardShape => ({ rows, seqLen, labels: rows * labelsPerRow, masked, plain });
  return groups >= 3 ? [f(pairs * 2), f(pairs)] : [f(pairs * groups)];
}

/** What one train micro-step adds at its worst, beyond weights, gradients and optimizer state. */
export function estimateMicroStep(inputs: MicroStepInputs): MicroStepEstimate {
  const s = inputs.shape;
  const e = inputs.computeBytes;
  const ck = inputs.checkpointing;
  const forwards = forwardsOf(inputs.pairs, inputs.groups, inputs.seqLen, inputs.labelsPerRow ?? inputs.seqLen - 1, inputs.masked ?? false, inputs.plain ?? false);
  const saved = forwards.map((f) => forwardSavedBytes(s, f, e, ck));
  const savedTotal = saved.reduce((a, b) => a + b.total, 0);
  const params = parameterCounts(s);
  const phases: MicroStepPhase[] = [];
  const label = (i: number): string => (forwards.length > 1 ? (i === 0 ? 'response forward' : 'rationale forward') : 'forward');

  // The live reference model runs first, without grad, over the response rows in its own dtype:
  // its temporaries are gone before the policy's forward starts.
  if (inputs.referenceBytes !== null) {
    const f = forwards[0]!;
    const er = inputs.referenceBytes;
    const N = f.rows * f.seqLen;
    const head = N * s.hidden * er + headSavedBytes(s, f, er) + chunkForwardBytes(s, chunkRows(inputs.chunkTokens, f.labels), er, inputs.headPath);
    const batch = (3 * N + 3 * f.labels + f.rows) * 8;
    phases.push(phase('reference forward (before the policy)', 0, 0, 0, batch + Math.max(noGradLayerBytes(s, f, er), head)));
  }

  // Forwards: saved so far plus the head's chunk (and, checkpointed, a no-grad layer's peak).
  let before = 0;
  forwards.forEach((f, i) => {
    const own = saved[i]!;
    if (ck) phases.push(phase(`${label(i)}: a checkpointed layer`, before + own.layers + own.other, 0, 0, noGradLayerBytes(s, f, e)));
    phases.push(phase(`${label(i)}: log-prob head`, before + own.total, headForwardBytes(s, f, e, inputs.chunkTokens, inputs.headPath), 0, 0));
    before += own.total;
  });

  // Backward, last forward first. Its head, then its top layer.
  const last = forwards.length - 1;
  const fl = forwards[last]!;
  phases.push(phase(`backward, ${label(last)}: log-prob head`, savedTotal, headBackwardBytes(s, fl, e, inputs.chunkTokens, inputs.headPath), 0, 0));
  const top = (i: number): number => saved[i]!.head + saved[i]!.finalNorm; // freed before the top layer's backward
  // Tied embeddings: the head's weight gradient waits for the embedding's (the last node).
  const tiedWait = s.tied ? params.embedding * inputs.gradBytes : 0;
  phases.push(phase(`backward, ${label(last)}: top layer`, savedTotal - top(last), 0, tiedWait, layerBackwardBytes(s, fl, e, ck)));

  // The response forward's own backward, after the rationale forward's (which has added its
  // gradients into .grad and freed its activations).
  if (forwards.length > 1) {
    const f0 = forwards[0]!;
    phases.push(phase('backward, response forward: log-prob head', saved[0]!.total, headBackwardBytes(s, f0, e, inputs.chunkTokens, inputs.headPath), 0, 0));
    phases.push(phase('backward, response forward: top layer', saved[0]!.total - top(0), 0, tiedWait, layerBackwardBytes(s, f0, e, ck)));
  }

  const peak = phases.reduce((a, b) => (b.total > a.total ? b : a));
  const f0 = forwards[0]!;
  const c0 = chunkRows(inputs.chunkTokens, f0.labels);
  const head = { forward: chunkForwardBytes(s, c0, e, inputs.headPath), backward: headBackwardBytes(s, f0, e, inputs.chunkTokens, inputs.headPath) };
  return { peak, phases, forwards, savedTotal, head };
}

// ---------------------------------------------------------------------------------------------
// The per-device budget

/** Headroom the planner adds on top of the estimate (see docs/memory.md). */
export interface Headroom {
  /** CUDA context, cuBLAS/cuDNN workspaces and kernels: bytes (0 on the CPU). */
  context: number;
  /** Caching-allocator fragmentation and unmodelled small tensors: a fraction of the estimate. */
  fragmentation: number;
  /** NCCL and gradient-reduction buffers when world size > 1: bytes. */
  communication: number;
}

export const GiB = 2 ** 30;

export const CUDA_HEADROOM: Headroom = { context: 1 * GiB, fragmentation: 0.1, communication: 0.5 * GiB };
export const CPU_HEADROOM: Headroom = { context: 0, fragmentation: 0.1, communication: 0 };

export interface PlanInputs {
  shape: ModelShape;
  precision: Precision;
  optimizer: PlanOptimizer;
  /** Pairs per optimizer step over all devices (model.batch_size). */
  batchSize: number;
  gradientAccumulationSteps: number;
  /**
   * model.tokens_per_micro_batch: micro-batches cut by real tokens (then gradientAccumulationSteps
   * is not used). A micro-step is planned as max(budget, one pair's full rows) tokens laid out
   * in full rows (budgetPairs); null or absent: equal pair counts.
   */
  tokensPerMicroBatch?: number | null;
  worldSize: number;
  /** What is sharded over the ranks (lib/parallel/zero_stages.ts); with world size 1, nothing. */
  zeroStage: ZeroStage;
  groups: number;
  seqLen: number;
  labelsPerRow?: number;
  checkpointing: boolean;
  chunkTokens: number;
  headPath: HeadPath;
  /** Bytes per element of a live reference model; null: none. */
  referenceBytes: number | null;
  /** Attention with an explicit mask: a sliding window shorter than the rows (default false). */
  masked?: boolean;
  /** loss=ppo: a value head beside the policy (lib/plan/value_head.ts; default false). */
  valueHead?: boolean;
  headroom: Headroom;
  /** Device memory in bytes; null: no verdict. */
  deviceBytes: number | null;
}

export interface Plan {
  inputs: PlanInputs;
  parameters: ParameterCounts;
  bytesPerParam: BytesPerParam;
  /** Pairs per micro-step on one device (with a token budget: budgetPairs, fractional). */
  microPairs: number;
  weights: number;
  gradients: number;
  master: number;
  optimizerState: number;
  /** A live reference model's weights (0: none). */
  reference: number;
  /** The rank's share under the ZeRO stage: the shards above, and what it holds whole for a while. */
  zero: ZeroBudget;
  /** ZeRO-3's gathered parameters + ZeRO-2/3's gradients awaiting their reduce: alive during the micro-step. */
  zeroTransient: number;
  /** loss=ppo's value head: fp32 weights, gradients and optimizer state (null: none). */
  valueHead: ValueHeadBudget | null;
  /** The micro-step's peak with the chosen checkpointing, and with the other setting. */
  step: MicroStepEstimate;
  stepOther: MicroStepEstimate;
  /** The optimizer step's temporaries (optimizerStepBytes). */
  optimizerStepTransient: number;
  /** weights + gradients + master + optimizer state + reference (+ the value head's). */
  persistent: number;
  /** persistent + max(micro-step peak + ZeRO transient, optimizer-step transient). */
  total: number;
  /** Headroom added: context, fragmentation, communication. */
  headroomBytes: number;
  /** total + headroom: what the device must have. */
  required: number;
  /** null: no device size given. */
  fits: boolean | null;
}

/**
 * The optimizer step's temporaries (after backward, when the activations are gone), as the
 * engine's optimizer works (native/train/optimizer.cpp, docs/precision.md): fused AdamW updates in
 * place (a margin of one fp32 copy of the largest tensor for clipping and RMSprop's per-tensor
 * loop); bf16-mixed converts gradients to fp32 ~512 MiB at a time (0.5–1 GiB: 1 GiB here);
 * bf16-sr computes its update in fp32 16 M elements at a time (~0.5 GiB).
 */
export function optimizerStepBytes(precision: Precision, optimizer: PlanOptimizer, p: ParameterCounts): number {
  const margin = p.largest * 4;
  if (precision === 'bf16-mixed') return Math.max(margin, GiB);
  if (precision === 'bf16-sr' && optimizer === 'AdamW') return Math.max(margin, 0.5 * GiB);
  return margin;
}

/** Pairs per micro-step on one device; throws when the batch does not split evenly. */
export function microPairs(batchSize: number, gradientAccumulationSteps: number, worldSize: number): number {
  const per = gradientAccumulationSteps * worldSize;
  if (!Number.isInteger(batchSize / per) || batchSize / per < 1) {
    throw new RangeError(
      `batch_size ${batchSize} does not split into gradient_accumulation_steps ${gradientAccumulationSteps} × world size ${worldSize} micro-batches of whole pairs`,
    );
  }
  return batchSize / per;
}

/**
 * A token budget's micro-step as pairs of full rows (groups × seqLen tokens each), fractional:
 * the most tokens a micro-batch holds is the budget, or one pair's rows when a pair is longer
 * (it gets a micro-batch of its own). Activations grow with the tokens, so full rows holding
 * that many tokens bound the micro-step where its rows are not padded (packed rows), or padded
 * little (rows near one length). Padded rows of mixed lengths compute their padding on top.
 */
export function budgetPairs(budget: number, groups: number, seqLen: number): number {
  const pair = groups * seqLen;
  return Math.max(budget, pair) / pair;
}

/** The per-device memory budget of a training run. */
export function estimatePlan(inputs: PlanInputs): Plan {
  const parameters = parameterCounts(inputs.shape);
  const bpp = bytesPerParam(inputs.precision, inputs.optimizer);
  const W = inputs.worldSize;
  const budget = inputs.tokensPerMicroBatch ?? null;
  const pairs = budget !== null ? budgetPairs(budget, inputs.groups, inputs.seqLen) : microPairs(inputs.batchSize, inputs.gradientAccumulationSteps, W);
  const zero = zeroBudget(parameters, bpp, inputs.referenceBytes, inputs.zeroStage, W);
  const { weights, gradients, master, optimizerState, reference } = zero;
  const zeroTransient = zero.gathered + zero.gradientsInFlight;
  const valueHead = inputs.valueHead ? valueHeadBudget(inputs.shape.hidden, inputs.optimizer) : null;
  const stepInputs = (checkpointing: boolean): MicroStepInputs => ({
    shape: inputs.shape,
    pairs,
    groups: inputs.groups,
    seqLen: inputs.seqLen,
    labelsPerRow: inputs.labelsPerRow,
    computeBytes: computeBytes(inputs.precision),
    gradBytes: bpp.grads,
    checkpointing,
    chunkTokens: inputs.chunkTokens,
    headPath: inputs.headPath,
    referenceBytes: inputs.referenceBytes,
    masked: inputs.masked,
  });
  const step = estimateMicroStep(stepInputs(inputs.checkpointing));
  const stepOther = estimateMicroStep(stepInputs(!inputs.checkpointing));
  const optimizerStepTransient = optimizerStepBytes(inputs.precision, inputs.optimizer, parameters);
  const persistent = weights + gradients + master + optimizerState + reference + (valueHead ? valueHeadBytes(valueHead) : 0);
  // The optimizer step comes after backward: nothing gathered or in flight then.
  const total = persistent + Math.max(step.peak.total + zeroTransient, optimizerStepTransient);
  const headroomBytes = inputs.headroom.context + inputs.headroom.fragmentation * total + (W > 1 ? inputs.headroom.communication : 0);
  const required = total + headroomBytes;
  return {
    inputs: inputs,
    parameters,
    bytesPerParam: bpp,
    microPairs: pairs,
    weights,
    gradients,
    master,
    optimizerState,
    reference,
    zero,
    zeroTransient,
    valueHead,
    step,
    stepOther,
    optimizerStepTransient,
    persistent,
    total,
    headroomBytes,
    required,
    fits: inputs.deviceBytes === null ? null : required <= inputs.deviceBytes,
  };
}

/** The divisors of a positive integer, ascending: trial division up to its square root. */
export function divisorsOf(n: number): number[] {
  const low: number[] = [];
  const high: number[] = [];
  for (let d = 1; d * d <= n; d++) {
    if (n % d !== 0) continue;
    low.push(d);
    if (d * d !== n) high.push(n / d);
  }
  return [...low, ...high.reverse()];
}

/**
 * The largest micro-batch (pairs per device) that fits: the smallest gradient_accumulation_steps
 * that divides batch_size / world size and fits. null when even one pair does not fit (or no
 * device size was given).
 *
 * Only divisors of the per-rank batch are tried, and one pair per micro-step (the cheapest
 * micro-step) first: a hostile batch_size (1e12) costs √(batch) steps, not one plan per count.
 */
export function largestFittingMicroBatch(inputs: PlanInputs): { pairs: number; gradientAccumulationSteps: number; required: number } | null {
  if (inputs.deviceBytes === null) return null;
  const perRank = inputs.batchSize / inputs.worldSize;
  if (!Number.isSafeInteger(perRank) || perRank < 1) return null;
  // Pair counts, not a token budget: the answer is a gradient_accumulation_steps.
  const byPairs: PlanInputs = { ...inputs, tokensPerMicroBatch: null };
  if (!estimatePlan({ ...byPairs, gradientAccumulationSteps: perRank }).fits) return null;
  for (const gas of divisorsOf(perRank)) {
    const p = estimatePlan({ ...byPairs, gradientAccumulationSteps: gas });
    if (p.fits) return { pairs: p.microPairs, gradientAccumulationSteps: gas, required: p.required };
  }
  return null;
}

/** Row groups per pair of a loss (the loss table's, lib/loss/table.ts). */
export function lossRowGroups(loss: LossName | LossChoice): number {
  return lossGroups(loss);
}

/** Parses a memory size: "80GB" (10^9), "80GiB" / "80G" / "80" (2^30), "512MiB", "512MB". */
export function parseMemorySize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(i?)([bB]?)\s*$/.exec(text);
  if (!m) throw new RangeError(`not a memory size: ${JSON.stringify(text)} (e.g. 80GB, 80GiB, 141GiB)`);
  const n = Number(m[1]);
  const unit = (m[2] ?? '').toUpperCase();
  const power = { '': 3, K: 1, M: 2, G: 3, T: 4 }[unit]!;
  // "GB" is decimal (SI); "GiB", a bare "G" or a bare number are binary.
  const decimal = m[3] === '' && m[4] !== '' && unit !== '';
  const bytes = n * (decimal ? 1000 ** power : 1024 ** power);
  if (!(bytes > 0)) throw new RangeError(`memory size must be positive: ${JSON.stringify(text)}`);
  return bytes;
}
