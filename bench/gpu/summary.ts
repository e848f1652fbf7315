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
  // Rows: full (every row max_length tokens) or the length mix (length_mix.ts; tokens/s and MFU
  // of the real tokens); rpo packed (paddingFree true) or padded.
  const layout = (r: R): string => (r.impl === 'pytorch' ? 'padded' : r.paddingFree === true ? 'packed' : r.paddingFree === false ? 'padded' : 'default');
  out('| model | params | impl | layout | precision | reference | rows | pairs × seq (micro) | padding | s/step | real tokens/s | MFU (real tokens) | peak allocated GiB | peak reserved GiB | `rpo plan` total GiB | of GiB |');
  out('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of train) {
    const head = `| ${r.model} | ${fix((num(r.params) ?? 0) / 1e9, 2)} B | ${r.impl} | ${layout(r)} | ${r.precision ?? 'bf16-pure'} | ${r.reference} | ${r.rows ?? 'full'} | ${r.pairs} × ${r.seq} (${r.microPairs}) | ${r.paddingFraction === undefined ? '' : pct(r.paddingFraction)}`;
    if (r.error) {
      out(`${head} | **${r.error}** | | | | | | |`);
      continue;
    }
    const mfu = peak && num(peak.tflops) ? (num(r.achievedTflops) ?? 0) / num(peak.tflops)! : r.mfu;
    out(`${head} | ${fix(r.stepSeconds, 2)} | ${fix(r.tokensPerSecond)} | ${pct(mfu)} | ${gib(r.peakAllocatedBytes)} | ${gib(r.peakReservedBytes)} | ${gib(r.planTotalBytes)} | ${gib(r.deviceTotalBytes)} |`);
  }
  out();
  out('| model | reference | rows | side ÷ PyTorch eager padded | real tokens/s | peak reserved |');
  out('|---|---|---|---|---|---|');
  const keys = [...new Set(train.map((r) => `${r.model}|${r.reference}|${r.rows ?? 'full'}`))];
  for (const k of keys) {
    const [model, reference, rows] = k.split('|');
    const same = (r: R) => r.model === model && r.reference === reference && (r.rows ?? 'full') === rows && (r.precision ?? 'bf16-pure') === 'bf16-pure' && !r.error;
    const pt = train.find((r) => r.impl === 'pytorch' && same(r));
    if (!pt) continue;
    for (const rpo of train.filter((r) => r.impl === 'rpo' && same(r))) {
      out(`| ${model} | ${reference} | ${rows} | rpo ${layout(rpo)} | **${ratio(rpo.tokensPerSecond, pt.tokensPerSecond)}** | ${ratio(rpo.peakReservedBytes, pt.peakReservedBytes)} |`);
    }
    // TRL trains DPO (no rationale rows): its real tokens/s, of its own rows, beside the same anchor.
    for (const trl of train.filter((r) => String(r.impl).startsWith('TRL') && same(r))) {
      out(`| ${model} | ${reference} | ${rows} | ${trl.impl} (dpo) | ${ratio(trl.tokensPerSecond, pt.tokensPerSecond)} | ${ratio(trl.peakReservedBytes, pt.peakReservedBytes)} |`);
    }
  }
  out();
  const memory = train.filter((r) => r.impl === 'rpo' && String(r.model).includes('mistral-7b') && (r.rows ?? 'full') === 'full');
  if (memory.length) {
    out('### 7B memory: measured against `rpo plan` (the same step: rows full, one device)');
    out();
    out('| precision | micro-batch pairs | peak allocated GiB | `rpo plan` total GiB | allocated ÷ plan | plan required (with headroom) GiB | plan says fits | ran |');
    out('|---|---|---|---|---|---|---|---|');
    for (const r of memory) {
      out(`| ${r.precision ?? 'bf16-pure'} | ${r.microPairs} | ${gib(r.peakAllocatedBytes)} | ${gib(r.planTotalBytes)} | ${ratio(r.peakAllocatedBytes, r.planTotalBytes)} | ${gib(r.planRequiredBytes)} | ${r.planFits === undefined || r.planFits === null ? 'n/a' : r.planFits ? 'yes' : 'no'} | ${r.error ? `**${r.error}**` : 'yes'} |`);
    }
    out();
  }
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

const steps = results.filter((r) => r.bench === 'step');
if (steps.length) {
  out('### Steps of this run (bench/gpu/run_all.sh: each bounded; a row missing above is skipped or failed here)');
  out();
  out('| step | status | s |');
  out('|---|---|---|');
  for (const r of steps) out(`| ${r.name} | ${r.status} | ${fix(r.seconds)} |`);
  out();
}

const profiles = results.filter((r) => r.bench === 'profile');
if (profiles.length) {
  out('### torch.profiler (bench/gpu/torch_profile.py; the PyTorch side of each comparison)');
  out();
  for (const r of profiles) {
    if (r.error) {
      out(`${r.what} (${r.model}): **${r.error}**`);
      continue;
    }
    const shape = r.what === 'decode' ? `${r.batch} rows after a ${r.promptTokens}-token prompt` : `${r.rows} rows × ${r.seq} tokens, checkpointing`;
    out(`**${r.impl} ${r.what} step, ${r.model}** (${shape}): device ${fix(r.deviceMsPerStep, 2)} ms a step of ${fix(r.wallMsPerStep, 2)} ms wall (GPU busy ${pct(r.busy)})`);
    out();
    out('| kernel or op | calls | self ms | share |');
    out('|---|---|---|---|');
    for (const k of (r.top as { name: string; calls: number; selfMs: number; share: number | null }[] | undefined) ?? []) {
      out(`| \`${k.name.replace(/\|/g, '/')}\` | ${k.calls} | ${fix(k.selfMs, 2)} | ${pct(k.share)} |`);
    }
    out();
  }
}

const text = lines.join('\n');
console.log(text);
try {
  writeFileSync(tableFile, text + '\n');
} catch {
  /* a read-only directory: printed only */
}
