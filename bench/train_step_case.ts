// One rpo benchmark case in a process of its own (so its peak RSS is its own); prints one JSON
// line. bench/pytorch_case.py is its PyTorch twin. Kinds:
//   train     load the HF model dir, 1 warmup + `steps` timed train steps (the fastest counts) (micro-step: forward of
//             the rows, loss, backward; then the optimizer step: clipping, AdamW) on the rows file,
//             precomputed reference log-probs; reports the loss of every step
//   generate  load the HF model dir, greedy generate from the prompts file (KV cache), after a
//             short warm-up, `repeats` times (the fastest counts); reports the token ids
//   heads     random model from a config, fused or naive log-prob head (npm run bench -- --heads)
//   init      write a random-weight HF model dir (Model.create + saveModel), so that the driver
//             never loads LibTorch itself
import { Model, Trainer, setNumThreads, type GenerateResult, type ModelConfig, type PairLogps, type RowBatch } from '../lib/native.js';
import { loadModel, saveModel } from '../lib/model/io.js';
import { peakRssBytes, rssBytes } from '../lib/memory.js';
import { shapeOf } from '../lib/plan/estimate.js';
import { slotsThatFit } from '../lib/plan/generation.js';
import { freemem } from 'node:os';
import { median, readJson, type RowsFile } from './common.js';

interface TrainCase {
  kind: 'train';
  modelDir: string;
  rowsFile: string;
  loss: { name: 'dpo' | 'rdpo'; beta: number; gamma?: number };
  steps: number;
  threads: number;
  lr: number;
  maxGradNorm: number;
  /** LoRA adapters on the loaded model (only they train); liveReference: no precomputed
   * reference log-probs, the base with the adapters off gives them (npm run bench -- --lora). */
  lora?: { r: number; alpha: number; targetModules: string[]; liveReference?: boolean };
}
interface GenerateCase {
  kind: 'generate';
  modelDir: string;
  promptsFile: string;
  newTokens: number;
  repeats: number;
  threads: number;
  /** Stop tokens (EOS) ending each prompt where its answer should end; none: every row runs newTokens. */
  stopTokenIds?: number[];
  /** Rows decoded at once (continuous batching); absent: every prompt at once; 'auto': as many as
   * fit in the free memory (lib/plan/generation.ts, as model.eval_batch_size=auto). */
  slots?: number | 'auto';
}
interface HeadsCase {
  kind: 'heads';
  name: string;
  config: ModelConfig;
  pairs: number;
  seqLen: number;
  head: 'fused' | 'naive';
  steps: number;
  threads?: number;
}
interface InitCase {
  kind: 'init';
  config: ModelConfig;
  seed: number;
  dir: string;
  threads?: number;
}
type Case = TrainCase | GenerateCase | HeadsCase | InitCase;

const c = JSON.parse(process.argv[2]!) as Case;
if (c.threads) setNumThreads(c.threads);
const now = () => performance.now() / 1e3;

async function train(c: TrainCase) {
  const f = readJson<RowsFile>(c.rowsFile);
  const groups = c.loss.name === 'rdpo' ? 3 : 2;
  const rows = f.pairs * groups;
  const n = rows * f.seqLen; // the first `groups` row groups of the file
  const batch: RowBatch = {
    rows,
    seqLen: f.seqLen,
    inputIds: Int32Array.from(f.inputIds.slice(0, n)),
    attentionMask: Uint8Array.from(f.attentionMask.slice(0, n)),
    lossMask: Uint8Array.from(f.lossMask.slice(0, n)),
  };
  const group = (g: { sum: number[]; mean: number[]; count: number[] }) => ({
    sum: Float64Array.from(g.sum), mean: Float64Array.from(g.mean), count: Float64Array.from(g.count),
  });
  const reference: PairLogps = { chosen: group(f.reference.chosen), rejected: group(f.reference.rejected) };

  const t0 = now();
  const model = await loadModel(c.modelDir);
  if (c.lora) await model.addLora({ r: c.lora.r, alpha: c.lora.alpha, targetModules: c.lora.targetModules, dropout: 0 });
  const loadSeconds = now() - t0;
  const rssAfterLoad = rssBytes();
  const loadPeak = peakRssBytes();
  const trainer = new Trainer(model, null, { loss: c.loss, optimizer: 'AdamW' });
  const trainable = c.lora ? model.adapterParams().reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0) : model.numParameters;
  const step = async () => {
    const r = await trainer.microStep(batch, { nPairs: f.pairs, reference: c.lora?.liveReference ? undefined : reference });
    if (!r.finite) throw new Error('the loss was not finite');
    const { gradNorm } = await trainer.optimizerStep({ lr: c.lr, maxGradNorm: c.maxGradNorm });
    return { ...r, gradNorm };
  };
  const losses: number[] = [];
  const gradNorms: number[] = [];
  const w0 = now();
  const w = await step(); // warmup: allocator, AdamW moments
  const warmupSeconds = now() - w0;
  losses.push(w.loss);
  gradNorms.push(w.gradNorm);
  const times: number[] = [];
  let tokens = w.tokens;
  for (let i = 0; i < c.steps; i++) {
    const t = now();
    const r = await step();
    times.push(now() - t);
    losses.push(r.loss);
    gradNorms.push(r.gradNorm);
    tokens = r.tokens;
  }
  const stepSeconds = Math.min(...times); // the machine may be shared: interference only adds time
  return {
    impl: 'rpo', params: model.numParameters, trainable, tokens, loadSeconds, warmupSeconds, stepTimes: times, stepSeconds,
    tokensPerSecond: tokens / stepSeconds, losses, gradNorms,
    rssAfterLoadBytes: rssAfterLoad, loadPeakRssBytes: loadPeak, peakRssBytes: peakRssBytes(),
  };
}

async function generate(c: GenerateCase) {
  const prompts = readJson<number[][]>(c.promptsFile).map((p) => Int32Array.from(p));
  const t0 = now();
  const model = await loadModel(c.modelDir);
  const loadSeconds = now() - t0;
  const rssAfterLoad = rssBytes();
  const loadPeak = peakRssBytes();
  const longest = Math.max(...prompts.map((p) => p.length));
  const slots =
    c.slots === 'auto'
      ? slotsThatFit(shapeOf(model.config), { maxLength: longest + c.newTokens, e: 4, freeBytes: freemem(), prompts: prompts.length })
      : (c.slots ?? 0);
  const options = { maxNewTokens: c.newTokens, doSample: false, stopTokenIds: c.stopTokenIds ?? [], padTokenId: 0, useCache: true, slots };
  await model.generate(prompts.slice(0, 2), { ...options, maxNewTokens: 4 }); // warm-up
  let seconds = Infinity;
  let r: GenerateResult = { tokens: [], finishReasons: [], steps: 0, rowSteps: 0, graphReplays: 0 };
  for (let i = 0; i < c.repeats; i++) {
    const t = now();
    r = await model.generate(prompts, options);
    seconds = Math.min(seconds, now() - t); // the fastest run: interference only adds time
  }
  const generated = r.tokens.reduce((s, x) => s + x.length, 0);
  // Token choices the call computed: one per prompt at its prefill, one per row of each decode step.
  const rowSteps = r.rowSteps + prompts.length;
  return {
    slots: slots || prompts.length, rowSteps, steps: r.steps,
    finishReasons: r.finishReasons,
    impl: 'rpo', params: model.numParameters, loadSeconds, seconds, generatedTokens: generated, tokensPerSecond: generated / seconds,
    ids: r.tokens.map((x) => Array.from(x)), rssAfterLoadBytes: rssAfterLoad, loadPeakRssBytes: loadPeak, peakRssBytes: peakRssBytes(),
  };
}

// The fused-vs-naive head comparison: a random model, full rows, DPO, precomputed zero reference.
async function heads(c: HeadsCase) {
  const rows = 2 * c.pairs;
  const batch: RowBatch = {
    rows,
    seqLen: c.seqLen,
    inputIds: Int32Array.from({ length: rows * c.seqLen }, (_, i) => (i * 7919) % c.config.vocab_size),
    attentionMask: new Uint8Array(rows * c.seqLen).fill(1),
    lossMask: Uint8Array.from({ length: rows * c.seqLen }, (_, i) => (i % c.seqLen >= c.seqLen / 4 ? 1 : 0)),
  };
  const zeros = () => ({ sum: new Float64Array(c.pairs), mean: new Float64Array(c.pairs), count: new Float64Array(c.pairs).fill(1) });
  const reference = { chosen: zeros(), rejected: zeros() };
  const model = await Model.create(c.config, { seed: 1 });
  const trainer = new Trainer(model, null, { loss: { name: 'dpo', beta: 0.1 }, naiveLogprobs: c.head === 'naive' });
  const step = async () => {
    const r = await trainer.microStep(batch, { nPairs: c.pairs, reference });
    await trainer.optimizerStep({ lr: 1e-6, maxGradNorm: 10 });
    return r;
  };
  await step(); // warmup: allocator, optimizer state
  const times: number[] = [];
  let tokens = 0;
  for (let i = 0; i < c.steps; i++) {
    const t = now();
    const r = await step();
    times.push(now() - t);
    tokens = r.tokens;
  }
  const stepSeconds = median(times);
  return { name: c.name, head: c.head, params: model.numParameters, tokens, stepSeconds, tokensPerSecond: tokens / stepSeconds, peakRssBytes: peakRssBytes() };
}

async function init(c: InitCase) {
  const model = await Model.create(c.config, { seed: c.seed, dtype: 'float32' });
  await saveModel(model, c.dir);
  const params = model.numParameters;
  model.dispose();
  return { dir: c.dir, params };
}

const result =
  c.kind === 'train' ? await train(c) : c.kind === 'generate' ? await generate(c) : c.kind === 'init' ? await init(c) : await heads(c);
console.log(JSON.stringify(result));
