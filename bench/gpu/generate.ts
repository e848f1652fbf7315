// Generation throughput on the seed's sampling job: AlpacaEval-like prompts (805 by default), each
// answer ending at its own stop point (spread evenly over [8, --max-new], shuffled), decoded by
// rpo (continuous batching over slots, on-device choice, CUDA graphs) and by transformers'
// generate in batches of --batch (each until its longest row ends: the seed's eval_batch_size
// way), with the dynamic cache and with the static cache + torch.compile, in the same run and
// from the same weights (rpo's random init, saved once, loaded by transformers).
//
// The stop points are forced, the same on both sides: rpo gives prompt i a budget of its stop
// point (promptMaxNewTokens), transformers forces its EOS at that step and never before (a logits
// processor). So every run decodes the same tokens per prompt, greedy or sampling, whatever the
// random weights would say.
//
//   node --import tsx bench/gpu/generate.ts [--model llama-1b|mistral-7b] [--prompts 805]
//       [--max-new 512] [--batch 35] [--slots 35,auto] [--decode greedy,sample]
//       [--hf dynamic,static-compile|none] [--dtype bfloat16] [--out results.jsonl]
//   RPO_BENCH_TINY=1 (or --tiny): a CPU rehearsal (the tiny shape, 24 prompts, --max-new 32,
//       --batch 4, transformers' dynamic cache only unless --hf says otherwise)
//
// Prints a table and one JSON line per run (impl, decode, slots or batch, seconds, decode steps,
// ms per step, output tokens/s, minutes for 805 prompts at that rate); --out writes the lines.
// A run that fails prints its error in its line and the others go on; the exit code is 1 then.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { freemem } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { Model, cudaAvailable, cudaInfo, cudaMemoryStats, resetCudaPeakMemory, type Dtype } from '../../lib/native.js';
import { saveModel } from '../../lib/model/io.js';
import { shapeOf } from '../../lib/plan/estimate.js';
import { slotsThatFit } from '../../lib/plan/generation.js';
import { HERE, modelShape, python, rng } from './common.js';

/** AlpacaEval has 805 instructions: the job the minutes are given for. */
const ALPACA_PROMPTS = 805;

/**
 * Prompt lengths like AlpacaEval's: log-normal (median e^3.7 ≈ 40 tokens, sigma 0.7), clipped
 * to [8, 512]; ids 3..vocab-1.
 */
export function alpacaLikePrompts(n: number, vocab: number, seed = 805): Int32Array[] {
  const r = rng(seed);
  const out: Int32Array[] = [];
  for (let i = 0; i < n; i++) {
    // Box-Muller from two uniforms.
    const u1 = Math.max(r(), 1e-12);
    const u2 = r();
    const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    const len = Math.min(512, Math.max(8, Math.round(Math.exp(3.7 + 0.7 * z))));
    out.push(Int32Array.from({ length: len }, () => 3 + Math.floor(r() * (vocab - 3))));
  }
  return out;
}

/** Answer lengths spread evenly over [least, most], in a shuffled order over the prompts. */
export function spreadStopPoints(n: number, least: number, most: number, seed = 806): number[] {
  const points = Array.from({ length: n }, (_, k) => Math.round(least + (n > 1 ? ((most - least) * k) / (n - 1) : 0)));
  const r = rng(seed);
  for (let k = n - 1; k > 0; k--) {
    const j = Math.floor(r() * (k + 1));
    [points[k], points[j]] = [points[j]!, points[k]!];
  }
  return points;
}

const list = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);

async function main(): Promise<number> {
  const { values: a } = parseArgs({
    options: {
      model: { type: 'string', default: 'llama-1b' },
      tiny: { type: 'boolean', default: process.env.RPO_BENCH_TINY === '1' },
      prompts: { type: 'string' },
      'max-new': { type: 'string' },
      batch: { type: 'string' },
      slots: { type: 'string' },
      decode: { type: 'string', default: 'greedy,sample' },
      hf: { type: 'string' },
      dtype: { type: 'string', default: 'bfloat16' },
      out: { type: 'string' },
    },
  });
  const tiny = a.tiny!;
  const name = tiny ? 'tiny' : a.model!;
  const n = Number(a.prompts ?? (tiny ? 24 : ALPACA_PROMPTS));
  const maxNew = Number(a['max-new'] ?? (tiny ? 32 : 512));
  const batch = Number(a.batch ?? (tiny ? 4 : 35));
  const slotChoices = list(a.slots ?? `${batch},auto`);
  const decodes = list(a.decode!) as ('greedy' | 'sample')[];
  const hfModes = list(a.hf ?? (tiny ? 'dynamic' : 'dynamic,static-compile')).filter((m) => m !== 'none');
  const cuda = cudaAvailable();
  const device = cuda ? 'cuda' : 'cpu';
  const dtype = (tiny && !cuda ? 'float32' : a.dtype) as Dtype;
  const { config } = modelShape(name);
  const prompts = alpacaLikePrompts(n, config.vocab_size);
  const stops = spreadStopPoints(n, 8, maxNew);
  const base = {
    bench: 'generate', model: name, device, gpu: cuda ? (cudaInfo().devices[0]?.name ?? null) : null, dtype, prompts: n, maxNew,
    promptTokens: prompts.reduce((s, p) => s + p.length, 0), outputTokens: stops.reduce((s, x) => s + x, 0),
  };
  const records: Record<string, unknown>[] = [];
  const emit = (r: Record<string, unknown>) => {
    const line = { ...base, ...r };
    records.push(line);
    console.log(JSON.stringify(line));
  };
  const perPrompt = (seconds: number) => (seconds * ALPACA_PROMPTS) / n / 60;

  // The weights: rpo's random init, saved once for transformers.
  const work = path.join(HERE, '..', 'out', `gpu-generate-${name}-${dtype}`);
  mkdirSync(work, { recursive: true });
  const modelDir = path.join(work, 'model');
  const model = await Model.create(config, { seed: 1, device, dtype });
  const sampling = { topP: 0.95, temperature: 1, seed: 1 };
  try {
    if (hfModes.length) await saveModel(model, modelDir);
    const e = dtype === 'float32' ? 4 : 2;
    const longest = Math.max(...prompts.map((p) => p.length));
    for (const decode of decodes) {
      for (const choice of slotChoices) {
        // 'auto' as model.eval_batch_size=auto chooses (lib/eval/sampling.ts sampleSlots).
        const freeBytes = cuda ? cudaMemoryStats(0).free : freemem();
        const slots = choice === 'auto' ? slotsThatFit(shapeOf(config), { maxLength: longest + maxNew, e, freeBytes, prompts: n }) : Number(choice);
        const options = {
          doSample: decode === 'sample', ...sampling, promptMaxNewTokens: stops, stopTokenIds: [], padTokenId: 0, slots,
        };
        try {
          // Warm-up: the kernels, the allocator, cuBLAS (a few prompts, a few tokens).
          await model.generate(prompts.slice(0, Math.min(4, n)), { ...options, promptMaxNewTokens: stops.slice(0, Math.min(4, n)).map(() => 8) });
          if (cuda) resetCudaPeakMemory(0);
          const t = performance.now();
          const r = await model.generate(prompts, options);
          const seconds = (performance.now() - t) / 1e3;
          const tokens = r.tokens.reduce((s, x) => s + x.length, 0);
          const mem = cuda ? cudaMemoryStats(0) : null;
          emit({
            impl: 'rpo', decode, slots: choice === 'auto' ? `auto (${slots})` : slots, seconds, generatedTokens: tokens,
            decodeSteps: r.steps, rowSteps: r.rowSteps, graphReplays: r.graphReplays,
            msPerStep: (1e3 * seconds) / Math.max(1, r.steps), tokensPerSecond: tokens / seconds, minutesFor805: perPrompt(seconds),
            peakAllocatedBytes: mem?.peakAllocated ?? null, tokensAsForced: tokens === base.outputTokens,
          });
        } catch (err) {
          emit({ impl: 'rpo', decode, slots: choice, error: (err as Error).message.split('\n')[0] });
        }
      }
    }
  } finally {
    model.dispose();
  }

  // transformers, in a process of its own (the weights from modelDir; this process's GPU memory
  // is free again but for LibTorch's cache of it).
  if (hfModes.length) {
    const spec = path.join(work, 'spec.json');
    writeFileSync(spec, JSON.stringify({ prompts: prompts.map((p) => Array.from(p)), stops, batch, dtype, device, ...sampling }));
    for (const mode of hfModes) {
      for (const decode of decodes) {
        try {
          const out = execFileSync(python(), [path.join(HERE, 'hf_generate.py'), '--model-dir', modelDir, '--spec', spec, '--mode', mode, '--decode', decode], {
            encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20,
          });
          const r = JSON.parse(out.trim().split('\n').pop()!) as Record<string, number | string>;
          const seconds = r.seconds as number;
          emit({ ...r, impl: `transformers ${mode}`, decode, batch, minutesFor805: perPrompt(seconds), tokensAsForced: r.generatedTokens === base.outputTokens });
        } catch (err) {
          emit({ impl: `transformers ${mode}`, decode, batch, error: (err as Error).message.split('\n').slice(0, 3).join(' ') });
        }
      }
    }
  }

  table(records, base);
  if (a.out) writeFileSync(a.out, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return records.some((r) => r.error) ? 1 : 0;
}

function table(records: Record<string, unknown>[], base: { model: string; prompts: number; maxNew: number; outputTokens: number; device: string; dtype: string }) {
  const fix = (x: unknown, d = 1) => (typeof x === 'number' ? x.toFixed(d) : 'n/a');
  console.error(`\n${base.model}, ${base.dtype} on ${base.device}: ${base.prompts} prompts, answers forced to ${base.outputTokens} tokens in all (stop points 8..${base.maxNew})\n`);
  console.error('| impl | decode | slots / batch | s | decode steps | ms/step | output tokens/s | min for 805 | forced lengths |');
  console.error('|---|---|---|---|---|---|---|---|---|');
  for (const r of records) {
    const who = r.slots ?? r.batch;
    if (r.error) console.error(`| ${r.impl} | ${r.decode} | ${who} | **${r.error}** | | | | | |`);
    else console.error(`| ${r.impl} | ${r.decode} | ${who} | ${fix(r.seconds, 2)} | ${r.decodeSteps} | ${fix(r.msPerStep, 2)} | ${fix(r.tokensPerSecond, 0)} | ${fix(r.minutesFor805, 2)} | ${r.tokensAsForced ? 'yes' : 'NO'} |`);
  }
  for (const decode of ['greedy', 'sample']) {
    const best = records.filter((r) => r.impl === 'rpo' && r.decode === decode && !r.error).sort((x, y) => (y.tokensPerSecond as number) - (x.tokensPerSecond as number))[0];
    if (!best) continue;
    for (const r of records.filter((x) => String(x.impl).startsWith('transformers') && x.decode === decode && !x.error)) {
      console.error(`${decode}: rpo (slots ${best.slots}) ÷ ${r.impl} tokens/s = ${((best.tokensPerSecond as number) / (r.tokensPerSecond as number)).toFixed(2)}x`);
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = await main();
