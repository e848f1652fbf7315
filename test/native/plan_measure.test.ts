// The planner's micro-step estimate (lib/plan/estimate.ts) against measured CPU peaks of the real
// engine: for small shapes, one train micro-step runs in a fresh process that reports the peak
// RSS during the step minus the RSS just before it (lib/plan/measure.ts explains the method).
// That figure is everything the step holds beyond weights, gradients and optimizer state:
// the activations saved for backward, the log-prob head's chunk, gradients waiting in autograd
// (tied embeddings), backward temporaries. The estimate of exactly that (estimateMicroStep's peak) must be within
// 20% of it, with and without activation checkpointing. The shapes make activations the bulk of
// it (the head and the waiting gradients are a few MB), and they reach every kind of peak the
// estimator knows: the head's backward (the rationale forward's, for rdpo), a layer's backward, a
// recomputed layer, the response forward's own backward after the rationale forward's, tied
// embeddings.
//
// Measured on this project's 2-core CI machine (LibTorch 2.11, 1 thread; MB = 10^6 bytes),
// estimated / measured micro-step peak:
//   shape                                          checkpointing off       checkpointing on
//   A rdpo h128 L2 T128, 4 + 2 rows, chunk 1024    19.1 / 19.2  0.994      11.6 / 11.4  1.017
//   B rdpo h256 L4 T64, 4 + 2 rows, chunk 128      30.8 / 30.6  1.006       9.5 /  9.5  1.001
//   C dpo h192 L3 T256, 4 rows, tied, chunk 256    49.0 / 49.0  0.998      28.2 / 28.1  1.002
//   D sft h256 I2048 L2 T192, 4 rows, chunk 128    56.6 / 56.7  0.999      40.9 / 40.8  1.003
//   E dpo h256 L4 T128, 4 rows, live reference     39.6 / 39.7  0.999      18.0 / 18.0  0.998
//   B in bfloat16                                  21.5 / 22.8  0.943      10.4 / 12.4  0.842
//   D, RPO_PLAIN_AUTOGRAD=1                        76.6 / 76.6  0.999      46.7 / 46.7  0.999
//   F GPTNeoX sft h256 I1024 L2 T192, 4 rows       37.5 / 38.7  0.969      20.1 / 21.6  0.930
//   G GPTNeoX rdpo h256 L4 T64, 4 + 2 rows         35.5 / 35.0  1.014       8.7 /  8.5  1.024
//   C, RPO_PLAIN_AUTOGRAD=1                        69.2 / 69.1  1.002      32.3 / 32.3  1.002
// (bf16 on the CPU: oneDNN's bf16 GEMMs hold ~2 MB of scratch the model does not count; on CUDA
// the head runs the fused kernels instead.) The rdpo rows (A, B, G) are the engine's split
// backward (native/train/split_backward.h); with RPO_SINGLE_BACKWARD=1 the same steps measured
// A 25.0 / 15.6, B 47.3 / 16.6 MB (off / on): the rationale forward's waiting gradients.
import { describe, expect, it } from 'vitest';

import { measureInChild, type MeasureRequest } from '../../lib/plan/measure.js';
import { estimateMicroStep, lossRowGroups, shapeOf } from '../../lib/plan/estimate.js';
import { tinyConfig } from './helpers.js';

const PROMPT = 8; // measure.ts's default: the first 8 tokens of a row are prompt, the rest labels

interface Case {
  name: string;
  req: Omit<MeasureRequest, 'activationCheckpointing'>;
}

const V = 4096;
const cases: Case[] = [
  {
    name: 'A rdpo h128 L2 T128 (4 + 2 rows), chunk 1024',
    req: {
      model: tinyConfig({ vocab_size: V, hidden_size: 128, intermediate_size: 512, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32, max_position_embeddings: 1024 }),
      loss: 'rdpo', pairs: 2, seqLen: 128, chunkTokens: 1024,
    },
  },
  {
    name: 'B rdpo h256 L4 T64 (4 + 2 rows), chunk 128',
    req: {
      model: tinyConfig({ vocab_size: V, hidden_size: 256, intermediate_size: 1024, num_hidden_layers: 4, num_attention_heads: 8, num_key_value_heads: 4, head_dim: 32, max_position_embeddings: 1024 }),
      loss: 'rdpo', pairs: 2, seqLen: 64, chunkTokens: 128,
    },
  },
  {
    name: 'C dpo h192 L3 T256 (4 rows), tied embeddings, chunk 256',
    req: {
      model: tinyConfig({ vocab_size: V, hidden_size: 192, intermediate_size: 768, num_hidden_layers: 3, num_attention_heads: 6, num_key_value_heads: 2, head_dim: 32, tie_word_embeddings: true, max_position_embeddings: 1024 }),
      loss: 'dpo', pairs: 2, seqLen: 256, chunkTokens: 256,
    },
  },
  {
    name: 'D sft h256 I2048 L2 T192 (4 rows), chunk 128',
    req: {
      model: tinyConfig({ vocab_size: V, hidden_size: 256, intermediate_size: 2048, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 4, head_dim: 32, max_position_embeddings: 1024 }),
      loss: 'sft', pairs: 4, seqLen: 192, chunkTokens: 128,
    },
  },
];

function estimate(req: MeasureRequest, plain: boolean) {
  const e = req.dtype === 'bfloat16' ? 2 : 4;
  return estimateMicroStep({
    plain,
    shape: shapeOf(req.model),
    pairs: req.pairs,
    groups: lossRowGroups(req.loss),
    seqLen: req.seqLen,
    labelsPerRow: req.seqLen - PROMPT,
    computeBytes: e,
    gradBytes: e,
    checkpointing: req.activationCheckpointing,
    chunkTokens: req.chunkTokens,
    headPath: 'chunked',
    referenceBytes: req.liveReference ? e : null,
  });
}

const mb = (b: number): string => (b / 1e6).toFixed(1);

/** Measures one setting, checks the estimate within 20%, returns both. */
function check(name: string, req: MeasureRequest, plain: boolean): { measured: number; estimated: number } {
  const measured = measureInChild(req, { RPO_PLAIN_AUTOGRAD: plain ? '1' : '0' }).stepPeakBytes;
  const est = estimate(req, plain);
  const ratio = est.peak.total / measured;
  console.log(
    `${name}, checkpointing ${req.activationCheckpointing ? 'on ' : 'off'}${req.dtype === 'bfloat16' ? ', bf16' : ''}${plain ? ', plain autograd' : ''}: measured ${mb(measured)} MB, ` +
      `estimated ${mb(est.peak.total)} MB (saved activations ${mb(est.peak.saved)}, at ${est.peak.name}), ratio ${ratio.toFixed(3)}`,
  );
  expect(ratio).toBeGreaterThan(0.8);
  expect(ratio).toBeLessThan(1.2);
  return { measured, estimated: est.peak.total };
}

/**
 * Both settings, and what checkpointing saves: the difference of the two peaks is activations
 * only (weights, gradients, the head's chunk cancel out), a direct check of the activation part.
 */
function checkBoth(c: Case, dtype?: 'bfloat16', plain = false): void {
  const off = check(c.name, { ...c.req, activationCheckpointing: false, dtype }, plain);
  const on = check(c.name, { ...c.req, activationCheckpointing: true, dtype }, plain);
  const ratio = (off.estimated - on.estimated) / (off.measured - on.measured);
  console.log(`${c.name}${dtype ? ', bf16' : ''}${plain ? ', plain autograd' : ''}: checkpointing saves ${mb(off.measured - on.measured)} MB measured, ${mb(off.estimated - on.estimated)} MB estimated, ratio ${ratio.toFixed(3)}`);
  expect(ratio).toBeGreaterThan(0.8);
  expect(ratio).toBeLessThan(1.2);
}

describe.skipIf(process.platform !== 'linux')('memory plan: estimated vs measured micro-step peak (CPU)', () => {
  for (const c of cases) {
    it(`${c.name}: fp32, checkpointing off and on`, () => checkBoth(c));
  }
  it('E dpo h256 L4 T128 (4 rows) with a live reference model (it runs first, alone)', () =>
    checkBoth({
      name: 'E dpo h256 L4 T128 (4 rows), live reference, chunk 128',
      req: { ...cases[1]!.req, loss: 'dpo', seqLen: 128, liveReference: true },
    }));
  it('B in bfloat16 (the fp32 head chunk, bf16 activations)', () => checkBoth(cases[1]!, 'bfloat16'));
  // GPTNeoX (Pythia's layout): fused q/k/v, LayerNorm, gelu MLP, rotary on a quarter of each head.
  it('F and G: GPTNeoX, sft and rdpo', () => {
    const neox = { architecture: 'GPTNeoXForCausalLM', attention_bias: true, layer_norm_eps: 1e-5, rotary_pct: 0.25, use_parallel_residual: true } as const;
    checkBoth({
      name: 'F GPTNeoX sft h256 I1024 L2 T192 (4 rows), chunk 128',
      req: { ...cases[3]!.req, model: { ...cases[3]!.req.model, ...neox, intermediate_size: 1024, num_key_value_heads: 4, head_dim: 64 } },
    });
    checkBoth({
      name: 'G GPTNeoX rdpo h256 L4 T64 (4 + 2 rows), chunk 128',
      req: { ...cases[1]!.req, model: { ...cases[1]!.req.model, ...neox, num_key_value_heads: 8 } },
    });
  });
  // The engine's reference path: RMSNorm and the MLP as plain ATen ops under autograd.
  it('D and C with RPO_PLAIN_AUTOGRAD=1 (plain ATen RMSNorm and MLP)', () => {
    checkBoth(cases[3]!, undefined, true);
    checkBoth(cases[2]!, undefined, true);
  });
});
