// Measures what one train micro-step adds to a process's memory on the CPU, to check the
// planner's activation estimate (test/native/plan_measure.test.ts).
//
// Run it in a fresh process (measureInChild does that): the numbers are the process's resident
// set size, so nothing else may be allocating while a step runs.
//
//   node --import tsx lib/plan/measure.ts '{"model": {...ModelConfig}, "pairs": 2, ...}'
//
// prints one JSON line, a MeasureResult.
//
// Method (why the numbers mean what the planner estimates):
// * glibc malloc serves large blocks with mmap and unmaps them on free, but by default raises that
//   threshold (up to 32 MiB) each time such a block is freed, after which freed blocks stay in the
//   heap and in RSS. The child runs with MALLOC_MMAP_THRESHOLD_=65536, which fixes the threshold:
//   every tensor over 64 KiB is its own mapping, in RSS exactly while it is alive. LibTorch's CPU
//   allocator does not cache.
// * MKL's fast memory manager keeps GEMM packing buffers in pools that grew at unpredictable
//   moments (seen: +5 MB in one of two identical runs). MKL_DISABLE_FAST_MM=1 makes them ordinary
//   allocations freed after each call, so they count only as the short transients they are.
// * A first micro-step warms what is created once (the gradients, which the planner counts on
//   their own line; thread pools; library scratch) and is not measured. The gradients then exist,
//   so later steps add into them: one parameter-sized temporary at a time, as in every
//   micro-step of an accumulation window after the first.
// * Each measured step: a V8 GC (so the JS heap does not grow during the step), the kernel's peak
//   counter restarted (/proc/self/clear_refs 5), RSS read, the step, the peak (VmHWM) read.
//   peak − before is what the step itself held at its worst: activations saved for backward, the
//   log-prob head's chunk temporaries, gradients waiting in autograd, backward temporaries.
// * The minimum over the measured steps is reported: what disturbs it (a page of a new
//   thread-local buffer, a late library allocation) only ever adds. The spread is < 1%.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import type { LossName, ModelConfig, RowBatch, RowLogps } from '../native.js';
import { lossGroups, lossUsesReference } from '../loss/table.js';

export interface MeasureRequest {
  model: ModelConfig;
  /** Loss (sets the row groups: sft 1, rdpo / rorpo-simple 3, else 2). Reference losses get precomputed reference log-probs. */
  loss: LossName;
  /** Preference pairs in the micro-batch. */
  pairs: number;
  /** Every row is this many real tokens (no padding), as the planner assumes. */
  seqLen: number;
  activationCheckpointing: boolean;
  chunkTokens: number;
  /** Measured micro-steps (after one unmeasured warm-up step); the minimum is reported. */
  steps?: number;
  /** Prompt tokens per row (not labels). */
  promptLen?: number;
  seed?: number;
  /** Policy (and reference) dtype; default float32. */
  dtype?: 'float32' | 'bfloat16';
  /** Run reference losses with a live reference model (same shape) instead of precomputed log-probs. */
  liveReference?: boolean;
}

export interface MeasureResult {
  /** min over measured steps of (peak RSS during the step − RSS just before it), bytes. */
  stepPeakBytes: number;
  /** Every measured step's figure. */
  samples: number[];
  /** RSS after the warm-up step (weights, gradients, runtime), bytes. */
  baseRssBytes: number;
  threads: number;
}

function fullBatch(rows: number, seqLen: number, vocab: number, promptLen: number, seed: number): RowBatch {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const n = rows * seqLen;
  const inputIds = new Int32Array(n);
  const attentionMask = new Uint8Array(n).fill(1);
  const lossMask = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    inputIds[i] = Math.floor(next() * vocab);
    lossMask[i] = i % seqLen >= promptLen ? 1 : 0;
  }
  return { rows, seqLen, inputIds, attentionMask, lossMask };
}


/** Runs the measurement in this process (call it in a fresh one: see measureInChild). */
export async function measureHere(req: MeasureRequest): Promise<MeasureResult> {
  const { Model, Trainer, getNumThreads } = await import('../native.js');
  const { peakRssBytes, resetPeakRss, rssBytes } = await import('../memory.js');
  const groups = lossGroups(req.loss);
  const batch = fullBatch(req.pairs * groups, req.seqLen, req.model.vocab_size, req.promptLen ?? 8, req.seed ?? 1);
  const dtype = req.dtype ?? 'float32';
  const model = await Model.create(req.model, { seed: req.seed ?? 1, dtype });
  const needsReference = lossUsesReference(req.loss);
  const live = needsReference && req.liveReference ? await Model.create(req.model, { seed: (req.seed ?? 1) + 1, dtype }) : null;
  const trainer = new Trainer(model, live, {
    loss: { name: req.loss, beta: 0.1, gamma: 0.1, epsilon: 0.1, lambda: 0.1, margin: 0.5 },
    activationCheckpointing: req.activationCheckpointing,
    chunkTokens: req.chunkTokens,
  });
  const fake = (): RowLogps => ({
    sum: new Float64Array(req.pairs).fill(-50),
    mean: new Float64Array(req.pairs).fill(-2),
    count: new Float64Array(req.pairs).fill(25),
  });
  const reference = needsReference && !live ? { chosen: fake(), rejected: fake() } : undefined;
  const step = async (): Promise<void> => {
    const r = await trainer.microStep(batch, { nPairs: req.pairs, reference });
    if (!r.finite) throw new Error('measure: the loss is not finite');
  };
  await step(); // warm-up: gradients, thread pools, library scratch
  const base = rssBytes();
  if (base === null || !resetPeakRss()) throw new Error('measure: needs Linux /proc (VmRSS, VmHWM, clear_refs)');
  const samples: number[] = [];
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < (req.steps ?? 3); i++) {
    gc?.();
    resetPeakRss();
    const before = rssBytes()!;
    await step();
    samples.push(peakRssBytes()! - before);
  }
  trainer.dispose();
  model.dispose();
  live?.dispose();
  return { stepPeakBytes: Math.min(...samples), samples, baseRssBytes: base, threads: getNumThreads() };
}

const here = fileURLToPath(import.meta.url);

/** Runs measureHere in a fresh Node process with a fixed mmap threshold (see the top). */
export function measureInChild(req: MeasureRequest, env: NodeJS.ProcessEnv = {}): MeasureResult {
  const loader = here.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const r = spawnSync(process.execPath, ['--expose-gc', ...loader, here, JSON.stringify(req)], {
    cwd: path.resolve(path.dirname(here), '..', '..'),
    env: { ...process.env, RPO_NUM_THREADS: '1', MALLOC_MMAP_THRESHOLD_: '65536', MKL_DISABLE_FAST_MM: '1', ...env },
    encoding: 'utf8',
    timeout: 300_000,
  });
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  if (r.status !== 0 || !line) throw new Error(`measure child failed (status ${r.status}, signal ${r.signal}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(line) as MeasureResult;
}

if (process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href === import.meta.url) {
  measureHere(JSON.parse(process.argv[2] ?? '{}') as MeasureRequest).then(
    (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
    (err: unknown) => {
      console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
      process.exitCode = 1;
    },
  );
}
