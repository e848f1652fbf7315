// RDPO train step on one GPU, rpo: tokens/s, MFU and peak CUDA memory for one global batch
// (micro-batches, gradient accumulation, the optimizer step). Prints a JSON line (and writes it
// with --out). Never asserts on time.
//
//   node --import tsx bench/gpu/train_step.ts --model llama-1b --reference live
//   node --import tsx bench/gpu/train_step.ts --model mistral-7b --micro-pairs 4      (the 7B memory target)
//   node --import tsx bench/gpu/train_step.ts --tiny                                  (CPU smoke test)
//   node --import tsx bench/gpu/train_step.ts --model mistral-7b --length-mix mix.json --padding-free false
//
// --length-mix FILE (written by length_mix.ts): the pairs' rows have the lengths drawn there
// instead of full `--seq` rows (--pairs is the file's), each micro-batch right-padded to its
// longest row; --padding-free true|false sets the Trainer's paddingFree (packed rows, or padded;
// without the flag, the engine's default). tokens/s and MFU are then of the real tokens.
//
// The step: `--pairs` (32) preference pairs of chosen, rejected and rationale rows, each row
// `--seq` (1024) tokens with the first `--prompt` (256) masked, in micro-batches of
// `--micro-pairs`; bf16 parameters (pure bf16, as the seed's policy_dtype), AdamW, activation
// checkpointing (--no-ckpt: off), the fused log-prob head. The reference is either precomputed
// log-probs (the default: `precompute_reference=true`, no reference model on the GPU) or a live
// bf16 reference model (`--reference live`; it never runs on rationale rows).
//
// MFU = (6·N·policy tokens + 2·N·reference tokens) / step time / bf16 peak, N = all parameters
// (lib/train/throughput.ts's stepFlops, which `rpo train`'s logged mfu uses too), the peak measured in the same run by peak_matmul.py (or --peak-tflops). The recompute of
// activation checkpointing is not counted (the usual convention), so MFU understates the
// hardware's work by about a quarter when it is on.
import { parseArgs } from 'node:util';

import {
  Model,
  Trainer,
  cudaAvailable,
  cudaInfo,
  cudaMemoryStats,
  resetCudaPeakMemory,
  type Dtype,
  type PairLogps,
  type RowBatch,
} from '../../lib/native.js';
import { precisionDtype } from '../../lib/config/index.js';
import { CUDA_HEADROOM, PRECISIONS, estimatePlan, shapeOf, type Precision } from '../../lib/plan/estimate.js';
import { modelFlopsUtilization, stepFlops } from '../../lib/train/throughput.js';
import { readFileSync } from 'node:fs';

import { GiB, bf16PeakTflops, fullRows, median, modelShape, rng, writeResult } from './common.js';
import { microBatchRows, paddingFraction, type LengthMixFile } from './length_mix.js';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string', default: 'llama-1b' },
    tiny: { type: 'boolean', default: false },
    pairs: { type: 'string' },
    'micro-pairs': { type: 'string' },
    seq: { type: 'string' },
    prompt: { type: 'string' },
    reference: { type: 'string', default: 'precomputed' },
    'no-ckpt': { type: 'boolean', default: false },
    steps: { type: 'string' },
    dtype: { type: 'string', default: 'bfloat16' },
    device: { type: 'string' },
    'peak-tflops': { type: 'string' },
    'chunk-tokens': { type: 'string', default: '1024' },
    'length-mix': { type: 'string' },
    precision: { type: 'string', default: 'bf16-pure' },
    'if-plan-fits': { type: 'boolean', default: false },
    'padding-free': { type: 'string' },
    out: { type: 'string' },
  },
});

const tiny = a.tiny;
const modelName = tiny ? 'tiny' : a.model!;
/** The row's model: with --tiny, the tiny shape standing in for --model (a rehearsal's rows stay apart). */
const modelLabel = tiny ? `tiny (as ${a.model})` : modelName;
const mix: LengthMixFile | null = a['length-mix'] ? (JSON.parse(readFileSync(a['length-mix'], 'utf8')) as LengthMixFile) : null;
const pairs = mix ? mix.pairs.length : Number(a.pairs ?? (tiny ? 4 : 32));
if (a['padding-free'] !== undefined && a['padding-free'] !== 'true' && a['padding-free'] !== 'false') throw new Error('--padding-free is true or false');
/** The Trainer's paddingFree, when given (the engine's option; its default otherwise). */
const paddingFree = a['padding-free'] === undefined ? undefined : a['padding-free'] === 'true';
const microPairs = Number(a['micro-pairs'] ?? (tiny ? 2 : modelName === 'mistral-7b' ? 4 : 8));
const seq = mix ? mix.maxLength : Number(a.seq ?? (tiny ? 64 : 1024));
const prompt = Number(a.prompt ?? Math.floor(seq / 4));
const steps = Number(a.steps ?? (tiny ? 1 : modelName === 'mistral-7b' ? 1 : 2));
const live = a.reference === 'live';
const ckpt = !a['no-ckpt'];
if (!(PRECISIONS as readonly string[]).includes(a.precision!)) throw new Error(`--precision is one of ${PRECISIONS.join(', ')}`);
const precision = a.precision as Precision;
// bf16-pure (the default) trains the --dtype weights as they are; the other modes their own dtype.
const dtype = (precision === 'bf16-pure' ? a.dtype : precisionDtype(precision)) as Dtype;
const cuda = cudaAvailable();
const device = a.device ?? (cuda ? 'cuda' : 'cpu');
if (pairs % microPairs !== 0) throw new Error(`--pairs ${pairs} is not a multiple of --micro-pairs ${microPairs}`);
if (a.reference !== 'live' && a.reference !== 'precomputed') throw new Error('--reference is live or precomputed');

const loss = { name: 'rdpo' as const, beta: 0.1, gamma: 0.001 };
const GROUPS = 3; // chosen, rejected, rationale
const micro = pairs / microPairs;

/** Micro-batch i: [chosen x mp, rejected x mp, rationale x mp], full rows or the length mix's. */
function microBatch(i: number, vocab: number): RowBatch {
  if (!mix) return fullRows(1000 + i, microPairs * GROUPS, seq, vocab, prompt);
  const rows = microBatchRows(mix.pairs, i * microPairs, microPairs);
  const seqLen = Math.max(...rows.map((r) => r.length));
  const r = rng(1000 + i);
  const n = rows.length * seqLen;
  const inputIds = new Int32Array(n);
  const attentionMask = new Uint8Array(n);
  const lossMask = new Uint8Array(n);
  rows.forEach((row, k) => {
    for (let t = 0; t < row.length; t++) {
      inputIds[k * seqLen + t] = 3 + Math.floor(r() * (vocab - 3));
      attentionMask[k * seqLen + t] = 1;
      lossMask[k * seqLen + t] = t >= row.prompt ? 1 : 0;
    }
  });
  return { rows: rows.length, seqLen, inputIds, attentionMask, lossMask };
}

/** Precomputed reference log-probs for a micro-batch (their values do not change the cost). */
function precomputed(): PairLogps {
  const n = seq - prompt;
  const rows = (shift: number) => ({
    sum: Float64Array.from({ length: microPairs }, (_, i) => -2.5 * n + shift + i * 0.01),
    mean: Float64Array.from({ length: microPairs }, (_, i) => -2.5 + (shift + i * 0.01) / n),
    count: new Float64Array(microPairs).fill(n),
  });
  return { chosen: rows(0.5), rejected: rows(-0.5) };
}

async function main() {
  const { config } = modelShape(modelName);
  const peak = bf16PeakTflops(a['peak-tflops'], device.startsWith('cuda'));
  const gpu = device.startsWith('cuda') ? cudaInfo().devices[0] : undefined;
  // The fused head's path: the CUDA kernels, or the chunked LibTorch one (no kernels built, or
  // RPO_CUDA_LOGPROB_KERNEL=0: run_all.sh times both).
  const kernels = device.startsWith('cuda') && cudaInfo().kernels && process.env.RPO_CUDA_LOGPROB_KERNEL !== '0';
  const base = {
    bench: 'train_step', impl: kernels || !device.startsWith('cuda') ? 'rpo' : 'rpo (chunked head)', logprobHead: kernels ? 'cuda kernel' : 'chunked', model: modelLabel, device, gpu: gpu?.name ?? null, dtype, loss: loss.name,
    pairs, microPairs, seq, prompt, reference: live ? 'live' : 'precomputed', activationCheckpointing: ckpt,
    precision, rows: mix ? 'length mix' : 'full', paddingFree: paddingFree ?? 'engine default',
    ...(mix ? { paddingFraction: paddingFraction(mix.pairs, microPairs) } : {}),
  };
  // What `rpo plan` says this step needs (rows planned full: max_length tokens), beside the peak.
  const deviceTotal = device.startsWith('cuda') ? cudaMemoryStats(0).total : null;
  const plan = estimatePlan({
    shape: shapeOf(config), precision, optimizer: 'AdamW', batchSize: pairs, gradientAccumulationSteps: micro, worldSize: 1, zeroStage: 0,
    groups: GROUPS, seqLen: seq, checkpointing: ckpt, chunkTokens: Number(a['chunk-tokens']), headPath: kernels ? 'cuda-kernel' : 'chunked',
    referenceBytes: live ? 2 : null, headroom: CUDA_HEADROOM, deviceBytes: deviceTotal,
  });
  const planned = { planTotalBytes: plan.total, planRequiredBytes: plan.required, planFits: plan.fits };
  if (a['if-plan-fits'] && plan.fits === false) {
    // --if-plan-fits: the memory table's row says what the plan says, and the card's time is not spent on an OOM.
    writeResult(a.out, { ...base, ...planned, deviceTotalBytes: deviceTotal, error: `not run: rpo plan says it needs ${(plan.required / GiB).toFixed(1)} GiB of ${((deviceTotal ?? 0) / GiB).toFixed(1)}` });
    return;
  }
  const t0 = performance.now();
  let policy: Model | undefined;
  let reference: Model | null = null;
  let trainer: Trainer | undefined;
  try {
    policy = await Model.create(config, { seed: 1, device, dtype });
    reference = live ? await Model.create(config, { seed: 2, device, dtype }) : null;
    const createSeconds = (performance.now() - t0) / 1e3;
    // paddingFree spread in: an engine option of the packed path (older addons ignore it).
    const packing = paddingFree === undefined ? {} : { paddingFree };
    trainer = new Trainer(policy, reference, { loss, precision, activationCheckpointing: ckpt, chunkTokens: Number(a['chunk-tokens']), ...packing });
    const N = policy.numParameters;
    const batches = Array.from({ length: micro }, (_, i) => microBatch(i, config.vocab_size));
    const ref = live ? undefined : precomputed();

    const fullStep = async () => {
      let tokens = 0;
      let last = 0;
      for (const b of batches) {
        const r = await trainer!.microStep(b, { nPairs: microPairs, scale: microPairs / pairs, reference: ref });
        if (!r.finite) throw new Error('the loss was not finite');
        tokens += r.tokens;
        last = r.loss;
      }
      const { gradNorm } = await trainer!.optimizerStep({ lr: 5e-7, maxGradNorm: 10 });
      return { tokens, loss: last, gradNorm };
    };

    // Warm-up: one micro-step and one optimizer step (allocates the AdamW moments, loads kernels).
    const w0 = performance.now();
    await trainer.microStep(batches[0]!, { nPairs: microPairs, scale: microPairs / pairs, reference: ref });
    await trainer.optimizerStep({ lr: 5e-7, maxGradNorm: 10 });
    const warmupSeconds = (performance.now() - w0) / 1e3;
    if (device.startsWith('cuda')) resetCudaPeakMemory(0);

    const times: number[] = [];
    let tokens = 0;
    let lastLoss = 0;
    for (let s = 0; s < steps; s++) {
      const t = performance.now();
      const r = await fullStep();
      times.push((performance.now() - t) / 1e3);
      tokens = r.tokens;
      lastLoss = r.loss;
    }
    const stepSeconds = median(times);
    // The reference runs on chosen and rejected rows only: 2 of the 3 row groups.
    const refTokens = live ? (tokens * 2) / 3 : 0;
    const flops = stepFlops({ params: N, trainableParams: N, trainedPasses: 1, extraForwards: 0 }, { real: tokens, reference: refTokens });
    const mem = device.startsWith('cuda') ? cudaMemoryStats(0) : null;
    const result = {
      ...base,
      params: N,
      createSeconds,
      warmupSeconds,
      steps,
      stepSeconds,
      stepTimes: times,
      policyTokensPerStep: tokens,
      referenceTokensPerStep: refTokens,
      tokensPerSecond: tokens / stepSeconds,
      achievedTflops: flops / stepSeconds / 1e12,
      peakTflops: peak.tflops,
      peakSource: peak.source,
      mfu: peak.tflops ? modelFlopsUtilization(flops, stepSeconds, peak.tflops) : null,
      peakAllocatedBytes: mem?.peakAllocated ?? null,
      peakReservedBytes: mem?.peakReserved ?? null,
      deviceTotalBytes: mem?.total ?? null,
      peakRssBytes: mem ? null : process.resourceUsage().maxRSS * 1024,
      lastLoss,
      ...planned,
    };
    writeResult(a.out, result);
    console.error(
      `rpo ${modelName} (${(N / 1e9).toFixed(2)} B params, ${device}): ${stepSeconds.toFixed(2)} s/step, ` +
        `${result.tokensPerSecond.toFixed(0)} tokens/s, MFU ${result.mfu === null ? 'n/a' : (100 * result.mfu).toFixed(1) + '%'}, ` +
        `peak ${mem ? (mem.peakReserved / GiB).toFixed(1) + ' GiB reserved of ' + (mem.total / GiB).toFixed(0) : ((result.peakRssBytes ?? 0) / GiB).toFixed(2) + ' GiB RSS'}`,
    );
  } catch (err) {
    const message = (err as Error).message.split('\n')[0]!;
    writeResult(a.out, { ...base, error: message, oom: /out of memory/i.test(message) });
    process.exitCode = 1;
  } finally {
    trainer?.dispose();
    policy?.dispose();
    reference?.dispose();
  }
}

await main();
