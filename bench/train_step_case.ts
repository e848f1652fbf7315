// One benchmark case in a process of its own (so its peak RSS is its own): builds a random
// Llama-shaped model, runs warmup + timed DPO train steps (micro-step + optimizer step) with
// precomputed reference log-probs, prints one JSON line.
import { Model, Trainer, setNumThreads, type ModelConfig, type RowBatch } from '../lib/native.js';
import { peakRssBytes } from '../lib/memory.js';

interface Case {
  name: string;
  config: ModelConfig;
  pairs: number;
  seqLen: number;
  head: 'fused' | 'naive';
  steps: number;
  threads?: number;
}

const c = JSON.parse(process.argv[2]!) as Case;
if (c.threads) setNumThreads(c.threads);
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
  const t0 = process.hrtime.bigint();
  const r = await step();
  times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  tokens = r.tokens;
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)]!;
console.log(JSON.stringify({ name: c.name, head: c.head, params: model.numParameters, tokens, stepSeconds: median, tokensPerSecond: tokens / median, peakRssBytes: peakRssBytes() }));
