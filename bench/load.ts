// Load benchmark: Model.create + load of a 1B-shaped bf16 checkpoint (lib/model/io.ts's loadModel),
// each load in a process of its own, so its peak RSS (VmHWM) is the load's alone. Prints a table.
//
//   node --import tsx bench/load.ts                  write the checkpoint once, then 3 loads
//   node --import tsx bench/load.ts --repeats 5
//   node --import tsx bench/load.ts --dtype float32  load the bf16 file into an fp32 model (conversion)
//   RPO_BENCH_CACHE=dir                               where the checkpoint lives (default bench/out/cache)
//
// The checkpoint (bench/out/cache/load-1b-bf16, ~1.7 GB): Llama, hidden 2048, 16 layers, 16 heads
// (4 KV heads), intermediate 5632, vocab 32000, untied: 852 M parameters, random init (seed 1),
// written by rpo (Model.create + saveModel) in a child process. Loads read it warm from the page
// cache (it was just written or read): the numbers are the engine's, not the disk's.
// "peak / bytes" divides the load's peak RSS less the process's RSS before the load (Node and
// LibTorch, ~0.4 GB) by the checkpoint's bytes: 1.0 is the weights alone.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CACHE = process.env.RPO_BENCH_CACHE ?? path.join(HERE, 'out', 'cache');
const DIR = path.join(CACHE, 'load-1b-bf16');

const HF_CONFIG = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 32000, hidden_size: 2048,
  intermediate_size: 5632, num_hidden_layers: 16, num_attention_heads: 16, num_key_value_heads: 4, head_dim: 128,
  max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000.0, tie_word_embeddings: false,
  initializer_range: 0.02, hidden_act: 'silu',
};

const { values: args } = parseArgs({
  options: {
    child: { type: 'string' },
    write: { type: 'string' },
    repeats: { type: 'string', default: '3' },
    dtype: { type: 'string', default: 'bfloat16' },
  },
});

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

async function writeCheckpoint(dir: string): Promise<void> {
  const { Model } = await import('../lib/native.js');
  const { saveModel } = await import('../lib/model/io.js');
  const { parseHfConfig } = await import('../lib/model/config.js');
  const model = await Model.create(parseHfConfig(HF_CONFIG, 'bench/load.ts'), { dtype: 'bfloat16', seed: 1 });
  await saveModel(model, dir);
  model.dispose();
}

async function loadOnce(dir: string, dtype: 'bfloat16' | 'float32'): Promise<void> {
  const { getNumThreads } = await import('../lib/native.js');
  const { loadModel } = await import('../lib/model/io.js');
  const { peakRssBytes, rssBytes } = await import('../lib/memory.js');
  getNumThreads(); // loads the addon (and LibTorch) before the baseline is taken
  const before = rssBytes() ?? 0;
  const t0 = performance.now();
  const model = await loadModel(dir, { dtype });
  const seconds = (performance.now() - t0) / 1e3;
  const peak = peakRssBytes() ?? 0;
  const after = rssBytes() ?? 0;
  const params = model.numParameters;
  model.dispose();
  console.log(JSON.stringify({ seconds, peakRssBytes: peak, rssBeforeBytes: before, rssAfterBytes: after, params }));
}

function checkpointBytes(dir: string): number {
  return statSync(path.join(dir, 'model.safetensors')).size;
}

async function main(): Promise<void> {
  if (args.child) return loadOnce(args.child, args.dtype as 'bfloat16' | 'float32');
  if (args.write) return writeCheckpoint(args.write);
  const self = fileURLToPath(import.meta.url);
  const node = (extra: string[]) =>
    execFileSync(process.execPath, ['--import', 'tsx', self, ...extra], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (!existsSync(path.join(DIR, 'model.safetensors'))) {
    const tmp = `${DIR}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(CACHE, { recursive: true });
    const t0 = performance.now();
    node(['--write', tmp]);
    rmSync(DIR, { recursive: true, force: true });
    renameSync(tmp, DIR);
    process.stderr.write(`wrote ${DIR} in ${((performance.now() - t0) / 1e3).toFixed(0)} s\n`);
  }
  const bytes = checkpointBytes(DIR);
  console.log(`\nModel.create + load of ${DIR} (${gib(bytes)} bf16 on disk) into a ${args.dtype} model, each load in its own process\n`);
  console.log('| run | seconds | peak RSS | RSS before load | (peak - before) / checkpoint bytes | peak / checkpoint bytes |');
  console.log('|---|---|---|---|---|---|');
  for (let i = 0; i < Number(args.repeats); i++) {
    const r = JSON.parse(node(['--child', DIR, '--dtype', args.dtype!]).trim().split('\n').pop()!) as {
      seconds: number; peakRssBytes: number; rssBeforeBytes: number;
    };
    console.log(`| ${i + 1} | ${r.seconds.toFixed(2)} | ${gib(r.peakRssBytes)} | ${gib(r.rssBeforeBytes)} | ${((r.peakRssBytes - r.rssBeforeBytes) / bytes).toFixed(2)} | ${(r.peakRssBytes / bytes).toFixed(2)} |`);
  }
}

await main();
