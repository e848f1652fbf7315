// One process of the data-parallel benchmark (bench/data_parallel.ts): a rank of a c10d job when
// the torchrun environment is set, else the single process. Trains DPO steps on the global batch
// of RPO_BENCH_CASE's rows file (this rank's share of the pairs), precomputed reference, AdamW,
// and prints one JSON line: step seconds, the gradient all-reduce's wait (communication backward
// did not hide), tokens, peak RSS.
import { readFileSync } from 'node:fs';

import { peakRssBytes } from '../lib/memory.js';
import { Model, Trainer, type PairLogps, type RowBatch } from '../lib/native.js';
import { Parallel } from '../lib/parallel/context.js';
import { GradSync, ZeroShard } from '../lib/parallel/native.js';
import { modelConfig, readJson, type RowsFile } from './common.js';

interface Case {
  shape: string;
  rowsFile: string;
  steps: number;
}

const c = JSON.parse(readFileSync(0, 'utf8')) as Case;
const f = readJson<RowsFile>(c.rowsFile);
const par = await Parallel.fromEnv('cpu');
// This rank's pairs: the rows of chosen and rejected for pairs [lo, hi).
const share = par.microShards(Array.from({ length: f.pairs }, (_, i) => i), 1)[0] ?? [];
const rowsOf = share.length * 2;
const pick = (src: number[]) => {
  const out: number[] = [];
  for (const g of [0, 1]) for (const p of share) out.push(...src.slice((g * f.pairs + p) * f.seqLen, (g * f.pairs + p + 1) * f.seqLen));
  return out;
};
const batch: RowBatch = {
  rows: rowsOf,
  seqLen: f.seqLen,
  inputIds: Int32Array.from(pick(f.inputIds)),
  attentionMask: Uint8Array.from(pick(f.attentionMask)),
  lossMask: Uint8Array.from(pick(f.lossMask)),
};
const g = (x: { sum: number[]; mean: number[]; count: number[] }) => ({
  sum: Float64Array.from(share.map((p) => x.sum[p]!)),
  mean: Float64Array.from(share.map((p) => x.mean[p]!)),
  count: Float64Array.from(share.map((p) => x.count[p]!)),
});
const reference: PairLogps = { chosen: g(f.reference.chosen), rejected: g(f.reference.rejected) };

const policy = await Model.create(modelConfig(c.shape), { seed: 1 });
const trainer = new Trainer(policy, null, { loss: { name: 'dpo', beta: 0.1 }, optimizer: 'AdamW' });
const sync = par.group ? new GradSync(policy, par.group) : null;
const stage = par.env?.zero ?? 0;
const zero = par.group && stage > 0 ? new ZeroShard(trainer, par.group, stage === 2 ? 2 : 1) : null;
if (zero && sync && stage === 2) sync.reduceToOwners(zero);
const steps: { seconds: number; waitSeconds: number; tokens: number; loss: number }[] = [];
for (let s = 0; s < c.steps + 1; s++) {
  await par.barrier();
  const t0 = performance.now();
  sync?.arm();
  const r = await trainer.microStep(batch, { nPairs: share.length, scale: share.length / f.pairs, reference });
  const w = sync ? await sync.finish() : null;
  await trainer.optimizerStep({ lr: 1e-6, maxGradNorm: 10 });
  await zero?.broadcastParams();
  const seconds = (performance.now() - t0) / 1000;
  const [loss, tokens] = await par.sum([r.loss * share.length / f.pairs, r.tokens]);
  if (s > 0) steps.push({ seconds, waitSeconds: w?.waitSeconds ?? 0, tokens: tokens!, loss: loss! });
}
zero?.dispose();
sync?.dispose();
trainer.dispose();
policy.dispose();
par.dispose();
console.log(JSON.stringify({ rank: par.rank, steps, peakRssBytes: peakRssBytes() }));
