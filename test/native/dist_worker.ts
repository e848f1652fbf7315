// One rank of the two-process c10d test (dist.test.ts): connects with the torchrun environment,
// checks collectives, then sums a micro-step's gradients over the ranks with GradSync and, in the
// same process, computes the single-process gradient of both ranks' micro-batches accumulated
// (the independent reference). Prints one JSON line.
import { Model, Trainer, type LossConfig } from '../../lib/native.js';
import { distEnv } from '../../lib/parallel/env.js';
import { GradSync, ProcessGroup } from '../../lib/parallel/native.js';
import { randomBatch, tinyConfig } from './helpers.js';

const env = distEnv()!;
const pg = await ProcessGroup.connect({ ...env, backend: 'gloo' });
const r = env.rank;
const sum = Array.from(await pg.allReduce([r + 1, 2 ** -30 * (r + 1), -r, 1e300 * (r === 0 ? 1 : -1)], 'sum'));
const max = Array.from(await pg.allReduce([r, -r], 'max'));
const min = Array.from(await pg.allReduce([r, -r], 'min'));
if (r === 0) await pg.storeSet('greeting', 'from rank 0');
const greeting = await pg.storeGet('greeting');

const config = tinyConfig({ num_hidden_layers: 2 });
// RPO_TEST_LOSS=rdpo: two forwards a micro-step (response rows, rationale rows), each backwarded
// on its own (native/train/split_backward.h): the buckets wait for the second.
const rdpo = process.env.RPO_TEST_LOSS === 'rdpo';
const loss: LossConfig = rdpo ? { name: 'rdpo', beta: 0.2, gamma: 0.1 } : { name: 'dpo', beta: 0.2 };
const nPairs = 2;
const batches = [0, 1].map((k) => randomBatch(40 + k, { rows: (rdpo ? 3 : 2) * nPairs, seqLen: 9, vocab: config.vocab_size, minLen: 4 }));

async function engine() {
  const policy = await Model.create(config, { seed: 5 });
  const reference = await Model.create(config, { seed: 6 });
  // RPO_TEST_CHECKPOINTING=1: activation checkpointing (backward recomputes each layer, and the
  // layers' gradients land from inside that recompute).
  const activationCheckpointing = process.env.RPO_TEST_CHECKPOINTING === '1';
  return { policy, reference, trainer: new Trainer(policy, reference, { loss, activationCheckpointing }) };
}

// Data parallel: this rank's micro-batch, half the global batch's pairs.
const dp = await engine();
const names = dp.policy.params().map((p) => p.name);
// Small buckets (a sixth of the model): several all-reduces, each launched from backward when
// its last gradient lands.
const sync = new GradSync(dp.policy, pg, Math.ceil((4 * dp.policy.numParameters) / 6));
sync.arm();
await dp.trainer.microStep(batches[r]!, { nPairs, scale: 0.5 });
const result = await sync.finish();
const synced = Array.from(await dp.trainer.gradSnapshot(names));

// One process, both micro-batches accumulated.
const one = await engine();
for (const b of batches) await one.trainer.microStep(b, { nPairs, scale: 0.5 });
const single = Array.from(await one.trainer.gradSnapshot(names));
let maxAbs = 0;
let maxRef = 0;
for (let i = 0; i < single.length; i++) {
  maxAbs = Math.max(maxAbs, Math.abs(synced[i]! - single[i]!));
  maxRef = Math.max(maxRef, Math.abs(single[i]!));
}
sync.dispose();
pg.dispose();
console.log(JSON.stringify({ rank: r, sum, max, min, greeting, result, maxAbs, maxRef, n: single.length }));
