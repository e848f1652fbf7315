// One rank of the two-process ZeRO-2 test (dist.test.ts): the micro-step's gradients reduced to
// their owners (GradSync.reduceToOwners), one clipped optimizer step on the rank's share, the
// parameters broadcast; in the same process, one process accumulating both ranks' micro-batches
// and stepping (the independent reference). Prints one JSON line.
import { Model, Trainer, type LossConfig } from '../../lib/native.js';
import { distEnv } from '../../lib/parallel/env.js';
import { GradSync, ProcessGroup, ZeroShard } from '../../lib/parallel/native.js';
import { randomBatch, tinyConfig } from './helpers.js';

const env = distEnv()!;
const pg = await ProcessGroup.connect({ ...env, backend: 'gloo' });
const r = env.rank;

const config = tinyConfig({ num_hidden_layers: 2 });
const loss: LossConfig = { name: 'dpo', beta: 0.2 };
const nPairs = 2;
const batches = [0, 1].map((k) => randomBatch(40 + k, { rows: 2 * nPairs, seqLen: 9, vocab: config.vocab_size, minLen: 4 }));
// A max_grad_norm well under the gradient's norm: the clip (from the norms summed over ranks) acts.
const step = { lr: 1e-2, maxGradNorm: 1e-3 };

async function engine() {
  const policy = await Model.create(config, { seed: 5 });
  const reference = await Model.create(config, { seed: 6 });
  return { policy, reference, trainer: new Trainer(policy, reference, { loss }) };
}

const dp = await engine();
const params = dp.policy.params();
const names = params.map((p) => p.name);
const sync = new GradSync(dp.policy, pg, Math.ceil((4 * dp.policy.numParameters) / 6));
const zero = new ZeroShard(dp.trainer, pg, 2);
sync.reduceToOwners(zero);
sync.arm();
await dp.trainer.microStep(batches[r]!, { nPairs, scale: 0.5 });
// After backward, before finish: every bucket left during backward, and with it this rank's
// gradients (the buffers in flight carry them); only the sums of its own buckets whose reduce
// completed during backward may be back (a real gradient is never all zeros).
const afterBackward = await dp.trainer.gradSnapshot(names);
const result = await sync.finish();
const held = await dp.trainer.gradSnapshot(names);

const one = await engine();
for (const b of batches) await one.trainer.microStep(b, { nPairs, scale: 0.5 });
const single = await one.trainer.gradSnapshot(names);

// Per parameter: held here (non-zero: a real gradient is never all zeros) or not, and the
// largest difference from the single process's gradient where held.
const heldParams: number[] = [];
const heldAfterBackward: number[] = [];
let maxAbs = 0;
let maxRef = 0;
let off = 0;
params.forEach((p, k) => {
  const n = p.shape.reduce((a, b) => a * b, 1);
  let any = false;
  for (let i = off; i < off + n; i++) {
    if (held[i] !== 0) any = true;
    maxRef = Math.max(maxRef, Math.abs(single[i]!));
  }
  if (afterBackward.subarray(off, off + n).some((g) => g !== 0)) heldAfterBackward.push(k);
  if (any) {
    heldParams.push(k);
    for (let i = off; i < off + n; i++) maxAbs = Math.max(maxAbs, Math.abs(held[i]! - single[i]!));
  }
  off += n;
});

const { gradNorm } = await dp.trainer.optimizerStep(step);
await zero.broadcastParams();
const ref = await one.trainer.optimizerStep(step);
const probe = batches[0]!;
const a = await dp.policy.logits(probe);
const b = await one.policy.logits(probe);
let logitDiff = 0;
for (let i = 0; i < a.length; i++) logitDiff = Math.max(logitDiff, Math.abs(a[i]! - b[i]!));

const plan = zero.plan;
zero.dispose();
sync.dispose();
pg.dispose();
console.log(JSON.stringify({ rank: r, result, heldAfterBackward, heldParams, nParams: params.length, maxAbs, maxRef, gradNorm, refGradNorm: ref.gradNorm, logitDiff, plan }));
