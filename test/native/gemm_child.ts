// One process's view of the engine's fp32 CPU matrix products (RPO_CPU_GEMM is read once per
// process, so each backend needs its own): RDPO micro-steps on batches whose token counts are not
// oneDNN bucket sizes, then every parameter's gradient and the logits, written as JSON to argv[2].
//
//   RPO_CPU_GEMM=onednn node --import tsx test/native/gemm_child.ts OUT.json
import { writeFileSync } from 'node:fs';

import { Model, Trainer, cpuGemmBackend } from '../../lib/native.js';
import { randomBatch, tinyConfig } from './helpers.js';

// Big enough that every product passes the oneDNN size floor (2^21 multiply-adds): 6 rows x 37..53
// tokens x 128 x 128 and more; the lengths give token counts of 222..318, none a bucket size, so
// the padded path runs in forward, backward and the log-prob head.
const config = tinyConfig({
  vocab_size: 2048, hidden_size: 128, intermediate_size: 352, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32,
});

const out = process.argv[2];
if (!out) throw new Error('usage: gemm_child.ts OUT.json');
const policy = await Model.create(config, { seed: 71 });
const reference = await Model.create(config, { seed: 72 });
const names = policy.params().map((p) => p.name);
const trainer = new Trainer(policy, reference, { loss: { name: 'rdpo', beta: 0.5, gamma: 0.3 } });
const losses: number[] = [];
for (const [seed, seqLen] of [[73, 37], [74, 53]] as const) {
  const step = await trainer.microStep(randomBatch(seed, { rows: 6, seqLen, vocab: config.vocab_size, minLen: 9 }), { nPairs: 2 });
  losses.push(step.loss);
}
const grads = Array.from(await trainer.gradSnapshot(names));
const logits = Array.from(await policy.logits(randomBatch(75, { rows: 5, seqLen: 45, vocab: config.vocab_size })));
trainer.dispose();
policy.dispose();
reference.dispose();
writeFileSync(out, JSON.stringify({ backend: cpuGemmBackend(), losses, grads, logits }));
