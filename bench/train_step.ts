// Train-step throughput and peak memory on the CPU: the fused log-prob head against the
// naive full-logits head, each case in its own process, in the same run. Prints a table;
// passes or fails on nothing.
//   npm run bench            (RPO_BENCH_STEPS=N to change the timed steps per case)
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { ModelConfig } from '../lib/native.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const steps = Number(process.env.RPO_BENCH_STEPS ?? 2);

function llama(o: Partial<ModelConfig>): ModelConfig {
  return {
    architecture: 'LlamaForCausalLM', vocab_size: 32000, hidden_size: 768, intermediate_size: 2048,
    num_hidden_layers: 8, num_attention_heads: 12, num_key_value_heads: 4, head_dim: 64,
    rms_norm_eps: 1e-5, rope_theta: 10000,
    rope_scaling: { rope_type: 'none', factor: 1, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    tie_word_embeddings: false, attention_bias: false, qkv_bias: false, sliding_window: 0,
    max_position_embeddings: 2048, initializer_range: 0.02, ...o,
  };
}

const models = [
  { name: 'tiny (vocab 4096, seq 128)', pairs: 4, seqLen: 128,
    config: llama({ vocab_size: 4096, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16 }) },
  { name: '~100M Llama (vocab 32000, seq 512)', pairs: 2, seqLen: 512, config: llama({}) },
];

interface Row { name: string; head: string; params: number; tokens: number; stepSeconds: number; tokensPerSecond: number; peakRssBytes: number | null }

const results: Row[] = [];
for (const m of models) {
  for (const head of ['fused', 'naive'] as const) {
    const out = execFileSync(process.execPath, ['--import', 'tsx', path.join(here, 'train_step_case.ts'), JSON.stringify({ ...m, head, steps })], { encoding: 'utf8' });
    results.push(JSON.parse(out.trim().split('\n').pop()!) as Row);
    process.stderr.write(`done: ${m.name} ${head}\n`);
  }
}

const mib = (b: number | null) => (b === null ? 'n/a' : `${(b / 2 ** 20).toFixed(0)} MiB`);
console.log(`\nDPO train step on the CPU (${steps} timed steps, median; precomputed reference; AdamW)\n`);
console.log('| model | params | head | tokens/step | s/step | tokens/s | peak RSS |');
console.log('|---|---|---|---|---|---|---|');
for (const r of results) {
  console.log(`| ${r.name} | ${(r.params / 1e6).toFixed(1)}M | ${r.head} | ${r.tokens} | ${r.stepSeconds.toFixed(3)} | ${r.tokensPerSecond.toFixed(0)} | ${mib(r.peakRssBytes)} |`);
}
console.log('\n| model | fused / naive tokens/s | fused / naive peak RSS |');
console.log('|---|---|---|');
for (const m of models) {
  const f = results.find((r) => r.name === m.name && r.head === 'fused')!;
  const n = results.find((r) => r.name === m.name && r.head === 'naive')!;
  const mem = f.peakRssBytes && n.peakRssBytes ? (f.peakRssBytes / n.peakRssBytes).toFixed(2) : 'n/a';
  console.log(`| ${m.name} | ${(f.tokensPerSecond / n.tokensPerSecond).toFixed(2)} | ${mem} |`);
}
