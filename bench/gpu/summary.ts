// Prints (and writes as table.md) the GPU benchmark table from the JSON lines the benchmarks
// wrote into a directory: train steps (tokens/s, MFU, peak memory, whether the 7B fits),
// generation, and rpo ÷ PyTorch ratios measured in the same run.
//   node --import tsx bench/gpu/summary.ts DIR_OR_JSONL [TABLE.md]
// Reads every *.json / *.jsonl in a directory (or one file); writes the table to TABLE.md
// (default: table.md beside the input).
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

type R = Record<string, unknown> & { bench?: string; impl?: string; model?: string; reference?: string; error?: string };

const input = process.argv[2] ?? process.env.OUT ?? '.';
const isDir = statSync(input).isDirectory();
const files = isDir
  ? readdirSync(input).filter((f) => f.endsWith('.json') || f.endsWith('.jsonl')).sort().map((f) => path.join(input, f))
  : [input];
const tableFile = process.argv[3] ?? path.join(isDir ? input : path.dirname(input), 'table.md');
const results: R[] = [];
for (const f of files) {
  for (const line of readFileSync(f, 'utf8').split('\n')) {
    if (!line.trim().startsWith('{')) continue;
    try {
      results.push({ ...(JSON.parse(line) as R), _file: f });
    } catch {
      /* not a result line */
    }
  }
}

const num = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);
const gib = (x: unknown) => (num(x) === null ? 'n/a' : `${(num(x)! / 2 ** 30).toFixed(1)}`);
const fix = (x: unknown, d = 0) => (num(x) === null ? 'n/a' : num(x)!.toFixed(d));
const pct = (x: unknown) => (num(x) === null ? 'n/a' : `${(100 * num(x)!).toFixed(1)}%`);
const ratio = (a: unknown, b: unknown) => (num(a) !== null && num(b) ? (num(a)! / num(b)!).toFixed(2) : 'n/a');

const lines: string[] = [];
const out = (s = '') => lines.push(s);

const peak = results.find((r) => typeof r.tflops === 'number');
const gpu = results.find((r) => typeof r.gpu === 'string')?.gpu ?? peak?.device ?? 'unknown GPU';
out(`## GPU benchmarks on ${String(gpu)}`);
out();
if (peak) out(`bf16 matmul peak (${String(peak.n)}³, PyTorch, median of 20): **${fix(peak.tflops)} TFLOP/s** — the MFU denominator.`);
out();

const train = results.filter((r) => r.bench === 'train_step');
if (train.length) {
  out('### RDPO train step (one global batch: micro-batches + AdamW step; bf16, activation checkpointing)');
  out();
  out('| model | params | impl | reference | pairs × seq (micro) | s/step | policy tokens/s | MFU | peak allocated GiB | peak reserved GiB | of GiB |');
  out('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of train) {
    if (r.error) {
      out(`| ${r.model} | | ${r.impl} | ${r.reference} | ${r.pairs} × ${r.seq} (${r.microPairs}) | **${r.error}** | | | | | |`);
      continue;
    }
    const mfu = peak && num(peak.tflops) ? (num(r.achievedTflops) ?? 0) / num(peak.tflops)! : r.mfu;
    out(`| ${r.model} | ${fix((num(r.params) ?? 0) / 1e9, 2)} B | ${r.impl} | ${r.reference} | ${r.pairs} × ${r.seq} (${r.microPairs}) | ${fix(r.stepSeconds, 2)} | ${fix(r.tokensPerSecond)} | ${pct(mfu)} | ${gib(r.peakAllocatedBytes)} | ${gib(r.peakReservedBytes)} | ${gib(r.deviceTotalBytes)} |`);
  }
  out();
  out('| model | reference | rpo ÷ PyTorch tokens/s | rpo ÷ PyTorch peak reserved |');
  out('|---|---|---|---|');
  const keys = [...new Set(train.map((r) => `${r.model}|${r.reference}`))];
  for (const k of keys) {
    const [model, reference] = k.split('|');
    const rpo = train.find((r) => r.impl === 'rpo' && r.model === model && r.reference === reference && !r.error);
    const pt = train.find((r) => r.impl === 'pytorch' && r.model === model && r.reference === reference && !r.error);
    if (!rpo || !pt) continue;
    out(`| ${model} | ${reference} | **${ratio(rpo.tokensPerSecond, pt.tokensPerSecond)}** | ${ratio(rpo.peakReservedBytes, pt.peakReservedBytes)} |`);
  }
  out();
  for (const model of [...new Set(train.map((r) => r.model))]) {
    const k = train.find((r) => r.impl === 'rpo' && r.model === model && r.reference === 'precomputed' && r.logprobHead === 'cuda kernel' && !r.error);
    const c = train.find((r) => r.impl === 'rpo (chunked head)' && r.model === model && r.reference === 'precomputed' && !r.error);
    if (k && c) {
      out(`${model}: fused CUDA log-prob kernel ÷ chunked LibTorch head, whole step: tokens/s ${ratio(k.tokensPerSecond, c.tokensPerSecond)}, peak allocated ${ratio(k.peakAllocatedBytes, c.peakAllocatedBytes)}`);
      out();
    }
  }
  const seven = train.find((r) => r.impl === 'rpo' && r.model === 'mistral-7b');
  if (seven) {
    if (seven.error) out(`7B target (Mistral-7B shape, 32 pairs × 1024, RDPO): **does not fit / failed**: ${seven.error}`);
    else {
      const fits = num(seven.peakReservedBytes) !== null && num(seven.deviceTotalBytes) !== null && num(seven.peakReservedBytes)! < num(seven.deviceTotalBytes)!;
      out(`7B target (Mistral-7B shape, ${fix((num(seven.params) ?? 0) / 1e9, 2)} B params, ${seven.pairs} pairs × ${seven.seq} tokens, micro-batches of ${seven.microPairs} pairs, ${seven.reference} reference, activation checkpointing): ` +
        `**${fits ? 'fits' : 'does not fit'}**, peak ${gib(seven.peakReservedBytes)} GiB reserved (${gib(seven.peakAllocatedBytes)} allocated) of ${gib(seven.deviceTotalBytes)} GiB, ${fix(seven.stepSeconds, 1)} s per step.`);
    }
    out();
  }
}

const gen = results.filter((r) => r.bench === 'generate');
if (gen.length) {
  out('### Generation (AlpacaEval-like prompts, answers forced to spread stop points; bench/gpu/generate.ts)');
  out();
  out('| model | impl | decode | slots / batch | prompts | s | ms/step | output tokens/s | min for 805 | peak allocated GiB |');
  out('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of gen) {
    const who = r.slots ?? r.batch;
    if (r.error) out(`| ${r.model} | ${r.impl} | ${r.decode} | ${who} | ${r.prompts} | **${r.error}** | | | | |`);
    else out(`| ${r.model} | ${r.impl} | ${r.decode} | ${who} | ${r.prompts} | ${fix(r.seconds, 2)} | ${fix(r.msPerStep, 2)} | ${fix(r.tokensPerSecond)} | ${fix(r.minutesFor805, 2)} | ${gib(r.peakAllocatedBytes)} |`);
  }
  out();
  for (const model of [...new Set(gen.map((r) => r.model))]) {
    for (const decode of ['greedy', 'sample']) {
      const rpo = gen.filter((r) => r.impl === 'rpo' && r.model === model && r.decode === decode && !r.error).sort((x, y) => (num(y.tokensPerSecond) ?? 0) - (num(x.tokensPerSecond) ?? 0))[0];
      for (const hf of gen.filter((r) => String(r.impl).startsWith('transformers') && r.model === model && r.decode === decode && !r.error)) {
        if (rpo) out(`${model}, ${decode}: rpo (slots ${rpo.slots}) ÷ ${hf.impl} tokens/s = **${ratio(rpo.tokensPerSecond, hf.tokensPerSecond)}**`);
      }
    }
  }
  out();
}

const text = lines.join('\n');
console.log(text);
try {
  writeFileSync(tableFile, text + '\n');
} catch {
  /* a read-only directory: printed only */
}
