// CPU benchmark: rpo against transformers + PyTorch eager, the same work in the same run.
// Prints tables; passes or fails on nothing.
//
//   npm run bench                   rpo vs PyTorch: DPO and RDPO train steps on a ~100M Llama and a
//                                   SmolLM2-135M-shaped Llama, greedy generation (ids compared), and
//                                   64 prompts with EOS at spread lengths (continuous batching)
//   npm run bench -- --heads        rpo's fused log-prob head vs its naive full-logits head
//   npm run bench -- --lora         LoRA r=16 on all linears vs full fine-tuning (DPO, ~100M Llama)
//   npm run bench -- --packing      rows of a stated length mix: rpo packed (token-budget micro-
//                                   batches) vs rpo padded vs PyTorch eager padded (bench/packing.ts)
//   npm run bench -- --only llama-100m/dpo,generate     (case names as printed)
//   RPO_BENCH_STEPS=N               timed steps per train case (default 2; 1 warmup step before)
//   RPO_BENCH_THREADS=N             intra-op threads on both sides (default 2)
//   RPO_BENCH_SLOTS=N|auto          rpo's slots in generate-stops (default auto: as many as fit in
//                                   the free memory, lib/plan/generation.ts; here every prompt)
//   RPO_BENCH_HF_BATCH=N            generate-stops' second transformers run: batches of N prompts,
//                                   each until its longest row ends (default 16)
//   RPO_BENCH_PYTHON=...            the Python with torch + transformers (default .venv/bin/python)
//   RPO_BENCH_CACHE=dir             model dirs and rows (default bench/out/cache, gitignored)
//   The environment passes to both sides (e.g. MALLOC_ARENA_MAX=1 npm run bench: one glibc arena).
//
// Every case runs in a child process of its own (peak RSS = that process's VmHWM / ru_maxrss at
// its end), rpo (bench/train_step_case.ts) and PyTorch (bench/pytorch_case.py) one after the
// other, the order alternating from case to case. Both load the same HF model directory (random
// init written once by rpo, safetensors, fp32) and read the same rows / prompts files.
// A train step = forward of the rows, the loss, backward, clipping (max norm 10) and AdamW
// (lr 1e-6, torch defaults), with precomputed reference log-prob sums given to both; the loss
// of the warmup step (before any update) and of every timed step is compared ("check").
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { mulberry32 } from '../lib/util/random.js';
import { SEED, attempt, log, mib, modelDir, ratio, runNode, runPython, steps, threads } from './cases.js';
import { CACHE, HERE, SHAPES, makePrompts, makeRows, modelConfig, python, writeJsonOnce } from './common.js';
import { packingBench } from './packing.js';
import { chooseStopTokens, stopLengths } from './stop_tokens.js';

const { values: args } = parseArgs({
  options: { heads: { type: 'boolean', default: false }, lora: { type: 'boolean', default: false }, packing: { type: 'boolean', default: false }, only: { type: 'string' } },
});

// ---------------------------------------------------------------------------------------------
// The fused-vs-naive head comparison (npm run bench -- --heads).

function headsBench(): void {
  const base = modelConfig('llama-100m');
  const models = [
    { name: 'tiny (vocab 4096, seq 128)', pairs: 4, seqLen: 128,
      config: { ...base, vocab_size: 4096, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16 } },
    { name: '~100M Llama (vocab 32000, seq 512)', pairs: 2, seqLen: 512, config: base },
  ];
  interface Row { name: string; head: string; params: number; tokens: number; stepSeconds: number; tokensPerSecond: number; peakRssBytes: number | null }
  const results: Row[] = [];
  for (const m of models) {
    for (const head of ['fused', 'naive'] as const) {
      results.push(runNode({ kind: 'heads', ...m, head, steps, threads }) as unknown as Row);
      log(`done: ${m.name} ${head}`);
    }
  }
  console.log(`\nDPO train step on the CPU, rpo's log-prob heads (${steps} timed steps, median; precomputed reference; AdamW; ${threads} threads)\n`);
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
}

// ---------------------------------------------------------------------------------------------
// rpo vs PyTorch.

const PAIRS = 2;
const SEQ = 512;
const GEN_PROMPTS = 8;
const GEN_NEW_TOKENS = 64;
const GEN_SHAPE = 'llama-100m';
const GEN_REPEATS = 2;
// Continuous batching: 64 prompts whose answers stop (EOS) at lengths spread over 8..256.
const STOP_PROMPTS = 64;
const STOP_MIN = 8;
const STOP_MAX = 256;
const STOP_SLOTS: number | 'auto' = (process.env.RPO_BENCH_SLOTS ?? 'auto') === 'auto' ? 'auto' : Number(process.env.RPO_BENCH_SLOTS);
const STOP_HF_BATCH = Number(process.env.RPO_BENCH_HF_BATCH ?? 16);
/** The issue's goal for generate-stops: rpo in at most this share of transformers' (one batch) time. */
const STOP_GOAL = 0.25;
const LR = 1e-6;
const MAX_GRAD_NORM = 10; // configs/model/base_model.yaml
const LOSSES = {
  dpo: { name: 'dpo', beta: 0.1 },
  rdpo: { name: 'rdpo', beta: 0.1, gamma: 0.1, rationale_form: 'code' }, // configs/loss/rdpo.yaml
} as const;

function rowsFile(shape: string): string {
  const vocab = modelConfig(shape).vocab_size;
  return writeJsonOnce(path.join(CACHE, `rows-v${vocab}-p${PAIRS}-s${SEQ}-seed${SEED}.json`), () => makeRows(SEED, PAIRS, SEQ, vocab));
}

function promptsFile(shape: string): string {
  const vocab = modelConfig(shape).vocab_size;
  return writeJsonOnce(path.join(CACHE, `prompts-v${vocab}-n${GEN_PROMPTS}-seed${SEED}.json`), () => makePrompts(SEED, GEN_PROMPTS, vocab));
}

function stopPromptsFile(shape: string): string {
  const vocab = modelConfig(shape).vocab_size;
  return writeJsonOnce(path.join(CACHE, `prompts-v${vocab}-n${STOP_PROMPTS}-seed${SEED + 1}.json`), () => makePrompts(SEED + 1, STOP_PROMPTS, vocab));
}

/**
 * The stop set for the continuous-batching case (bench/stop_tokens.ts), from rpo's free greedy
 * run of its prompts (written once), with the lengths it gives each answer.
 */
function stopSet(shape: string): { stopTokenIds: number[]; lengths: number[] } {
  const file = path.join(CACHE, `stops-${shape}-n${STOP_PROMPTS}-${STOP_MIN}-${STOP_MAX}-seed${SEED + 1}.json`);
  if (!existsSync(file)) {
    log(`generate-stops: a free greedy run of ${STOP_PROMPTS} prompts x ${STOP_MAX} tokens picks the stop tokens (once; cached as ${file})`);
    const free = runNode({ kind: 'generate', modelDir: modelDir(shape), promptsFile: stopPromptsFile(shape), newTokens: STOP_MAX, repeats: 1, threads, slots: 16 }) as { ids: number[][] };
    // Targets spread evenly over [STOP_MIN, STOP_MAX], in a shuffled order over the prompts.
    const r = mulberry32(SEED + 2);
    const targets = Array.from({ length: STOP_PROMPTS }, (_, k) => Math.round(STOP_MIN + ((STOP_MAX - STOP_MIN) * k) / (STOP_PROMPTS - 1)));
    for (let k = targets.length - 1; k > 0; k--) {
      const j = Math.floor(r() * (k + 1));
      [targets[k], targets[j]] = [targets[j]!, targets[k]!];
    }
    const stopTokenIds = chooseStopTokens(free.ids, targets);
    writeJsonOnce(file, () => ({ stopTokenIds, lengths: stopLengths(free.ids, stopTokenIds) }));
  }
  return JSON.parse(readFileSync(file, 'utf8')) as { stopTokenIds: number[]; lengths: number[] };
}

interface TrainResult {
  error?: string;
  params: number;
  tokens: number;
  loadSeconds: number;
  warmupSeconds: number;
  stepSeconds: number;
  stepTimes: number[];
  tokensPerSecond: number;
  losses: number[];
  gradNorms: number[];
  rssAfterLoadBytes: number | null;
  loadPeakRssBytes: number | null;
  peakRssBytes: number | null;
}
interface GenerateResult {
  error?: string;
  params: number;
  /** Token choices computed (prefill's first choices and every decode step's rows). */
  rowSteps?: number;
  /** rpo: its slots; transformers: its batch size. */
  slots?: number;
  batchSize?: number;
  finishReasons?: string[];
  loadSeconds: number;
  seconds: number;
  generatedTokens: number;
  tokensPerSecond: number;
  ids: number[][];
  rssAfterLoadBytes: number | null;
  loadPeakRssBytes: number | null;
  peakRssBytes: number | null;
}

interface Case {
  name: string;
  label: string;
  kind: 'train' | 'generate';
  rpo?: TrainResult | GenerateResult;
  pytorch?: TrainResult | GenerateResult;
  /** generate-stops: transformers in batches of STOP_HF_BATCH. */
  pytorchBatched?: GenerateResult;
  firstImpl?: string;
}

/**
 * Two losses agree: to ~4 digits of a DPO loss (2e-4), and to fp32 summation noise of an RDPO loss
 * (whose rationale term is ~0.1 x a log-prob sum of thousands of tokens).
 */
const agree = (a: number, b: number) => Math.abs(a - b) <= 2e-4 + 1e-5 * Math.abs(b);
const sig = (x: number) => x.toPrecision(Math.abs(x) >= 100 ? 7 : 6);

function compareBench(): void {
  const wall0 = performance.now();
  const only = args.only ? new Set(args.only.split(',').map((s) => s.trim())) : null;
  const cases: Case[] = [];
  for (const shape of ['llama-100m', 'smollm2-135m']) {
    for (const loss of ['dpo', 'rdpo'] as const) {
      cases.push({ name: `${shape}/${loss}`, label: `${SHAPES[shape]!.label} ${loss.toUpperCase()}, ${PAIRS} pairs x ${SEQ}${loss === 'rdpo' ? ' + rationales' : ''}`, kind: 'train' });
    }
  }
  cases.push({ name: 'generate', label: `${SHAPES[GEN_SHAPE]!.label} greedy, ${GEN_PROMPTS} prompts x ${GEN_NEW_TOKENS} new`, kind: 'generate' });
  cases.push({ name: 'generate-stops', label: `${SHAPES[GEN_SHAPE]!.label} greedy, ${STOP_PROMPTS} prompts, EOS at ${STOP_MIN}..${STOP_MAX}`, kind: 'generate' });
  const selected = cases.filter((c) => !only || only.has(c.name) || only.has(c.name.split('/')[0]!));
  if (selected.length === 0) throw new Error(`--only matched no case (cases: ${cases.map((c) => c.name).join(', ')})`);

  log(`python: ${python()}; cache: ${CACHE}; ${threads} threads; ${steps} timed steps (+1 warmup)`);
  selected.forEach((c, i) => {
    const shape = c.kind === 'generate' ? GEN_SHAPE : c.name.split('/')[0]!;
    const dir = modelDir(shape);
    const spec =
      c.kind === 'train'
        ? { kind: 'train', modelDir: dir, rowsFile: rowsFile(shape), loss: LOSSES[c.name.split('/')[1] as 'dpo' | 'rdpo'], steps, threads, lr: LR, maxGradNorm: MAX_GRAD_NORM }
        : c.name === 'generate'
          ? { kind: 'generate', modelDir: dir, promptsFile: promptsFile(shape), newTokens: GEN_NEW_TOKENS, repeats: GEN_REPEATS, threads }
          : { kind: 'generate', modelDir: dir, promptsFile: stopPromptsFile(shape), newTokens: STOP_MAX, repeats: 1, threads, stopTokenIds: stopSet(shape).stopTokenIds, slots: STOP_SLOTS };
    log(`${c.name}:`);
    const order = i % 2 === 0 ? (['rpo', 'pytorch'] as const) : (['pytorch', 'rpo'] as const);
    c.firstImpl = order[0];
    for (const impl of order) {
      const r = attempt(impl, () => (impl === 'rpo' ? runNode(spec) : runPython(spec)));
      c[impl] = r as unknown as TrainResult & GenerateResult;
    }
    if (c.name === 'generate-stops') {
      c.pytorchBatched = attempt(`pytorch, batches of ${STOP_HF_BATCH}`, () => runPython({ ...spec, batchSize: STOP_HF_BATCH })) as unknown as GenerateResult;
    }
  });
  const wall = (performance.now() - wall0) / 1e3;

  const train = selected.filter((c) => c.kind === 'train');
  const gens = selected.filter((c) => c.kind === 'generate');
  const failed = (c: Case) => c.rpo?.error ?? c.pytorch?.error;
  console.log(`\nrpo vs transformers + PyTorch eager on the CPU: fp32, ${threads} threads each, same weights and rows, each case in its own process, order alternating`);
  if (train.length) {
    console.log(`\nTrain step (forward, loss, backward, clip 10, AdamW lr ${LR}; precomputed reference): tokens/s of the fastest of ${steps} timed steps after 1 warmup step; ratios rpo / PyTorch`);
    console.log('check: the loss at each step (warmup first), rpo / PyTorch, "ok" when all agree within 2e-4 + 1e-5 x loss (fp32 sums of ~1000 log-probs)\n');
    console.log('| case | rpo tokens/s | PyTorch tokens/s | ratio | rpo peak RSS | PyTorch peak RSS | ratio | check (losses) |');
    console.log('|---|---|---|---|---|---|---|---|');
    for (const c of train) {
      const a = c.rpo as TrainResult;
      const b = c.pytorch as TrainResult;
      if (failed(c)) {
        console.log(`| ${c.label} | ${a.error ? 'FAILED' : a.tokensPerSecond.toFixed(0)} | ${b.error ? 'FAILED' : b.tokensPerSecond.toFixed(0)} | n/a | | | | ${failed(c)} |`);
        continue;
      }
      const pairs = a.losses.map((l, k) => [l, b.losses[k]!] as const);
      const ok = a.tokens === b.tokens && pairs.every(([x, y]) => agree(x, y));
      const check = pairs.map(([x, y]) => `${sig(x)} / ${sig(y)}`).join('; ') + (a.tokens !== b.tokens ? ` (tokens ${a.tokens} vs ${b.tokens})` : '');
      console.log(
        `| ${c.label} | ${a.tokensPerSecond.toFixed(0)} | ${b.tokensPerSecond.toFixed(0)} | ${ratio(a.tokensPerSecond, b.tokensPerSecond)} | ` +
          `${mib(a.peakRssBytes)} | ${mib(b.peakRssBytes)} | ${ratio(a.peakRssBytes, b.peakRssBytes)} | ${ok ? 'ok' : 'DIFFER'}: ${check} |`,
      );
    }
  }
  if (gens.length) {
    console.log(`\nGeneration (model.generate, greedy, KV cache, prompts of 8..64 tokens): seconds, the fastest of the runs after a warm-up; ratios rpo / transformers`);
    console.log(`  generate: ${GEN_PROMPTS} prompts, no EOS, every row ${GEN_NEW_TOKENS} new tokens (fastest of ${GEN_REPEATS}); both left-pad-free for rpo, left-padded for transformers`);
    console.log(`  generate-stops: ${STOP_PROMPTS} prompts, the same EOS ids on both sides ending the answers at spread lengths (below); rpo: slots ${STOP_SLOTS}, continuous batching, finished rows leave the computed batch; transformers: one batch until its last row ends\n`);
    console.log('| case | rpo s | transformers s | ratio | rpo peak RSS | transformers peak RSS | ratio | identical ids |');
    console.log('|---|---|---|---|---|---|---|---|');
    for (const gen of gens) {
      const a = gen.rpo as GenerateResult;
      const b = gen.pytorch as GenerateResult;
      if (failed(gen)) {
        console.log(`| ${gen.label} | ${a.error ? 'FAILED' : a.seconds.toFixed(2)} | ${b.error ? 'FAILED' : b.seconds.toFixed(2)} | n/a | | | | ${failed(gen)} |`);
        continue;
      }
      const rowsSame = a.ids.map((x, r) => JSON.stringify(x) === JSON.stringify(b.ids[r]));
      const same = rowsSame.every(Boolean) && a.ids.length === b.ids.length;
      const firstDiff = (r: number) => a.ids[r]!.findIndex((t, k) => t !== b.ids[r]![k]);
      const detail = same ? '' : ` (rows differing: ${rowsSame.map((s, r) => (s ? null : `${r}@token${firstDiff(r)}`)).filter(Boolean).join(', ')})`;
      console.log(
        `| ${gen.label} | ${a.seconds.toFixed(2)} | ${b.seconds.toFixed(2)} | ${ratio(a.seconds, b.seconds)} | ` +
          `${mib(a.peakRssBytes)} | ${mib(b.peakRssBytes)} | ${ratio(a.peakRssBytes, b.peakRssBytes)} | ${same ? 'yes' : 'no'}${detail} |`,
      );
      if (gen.name === 'generate-stops') {
        const lengths = a.ids.map((x) => x.length).sort((x, y) => x - y);
        const q = (p: number) => lengths[Math.min(lengths.length - 1, Math.floor(p * lengths.length))]!;
        console.log(`\n  generate-stops answer lengths: min ${lengths[0]}, p25 ${q(0.25)}, median ${q(0.5)}, p75 ${q(0.75)}, max ${lengths.at(-1)}; ${a.generatedTokens} tokens in all (rpo ${a.tokensPerSecond.toFixed(0)} tokens/s, transformers ${b.tokensPerSecond.toFixed(0)})`);
        stopsBound(a, b, gen.pytorchBatched);
      }
    }
  }
  // Where the time and memory go: load, warmup, steps; RSS after load and its peak while loading.
  console.log('\nDetails (per process): load s | warmup s | step s (each) | RSS after load | peak RSS while loading | peak RSS at the end | ran first\n');
  console.log('| case | impl | load s | warmup s | step s | RSS after load | load peak | end peak | first |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const c of selected) {
    for (const impl of ['rpo', 'pytorch'] as const) {
      const r = c[impl];
      if (!r || r.error) continue;
      const t = r as Partial<TrainResult> & Partial<GenerateResult>;
      const stepCol = t.stepTimes ? t.stepTimes.map((x) => x.toFixed(2)).join(', ') : `${t.seconds!.toFixed(2)} (generate)`;
      console.log(
        `| ${c.name} | ${impl === 'rpo' ? 'rpo' : c.kind === 'generate' ? 'transformers' : 'PyTorch'} | ${t.loadSeconds!.toFixed(2)} | ${t.warmupSeconds?.toFixed(2) ?? '-'} | ${stepCol} | ` +
          `${mib(t.rssAfterLoadBytes)} | ${mib(t.loadPeakRssBytes)} | ${mib(t.peakRssBytes)} | ${c.firstImpl === impl ? 'yes' : ''} |`,
      );
    }
  }
  console.log(`\nwall time ${wall.toFixed(0)} s`);
  const outFile = path.join(HERE, 'out', `compare-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(path.dirname(outFile), { recursive: true });
  writeFileSync(outFile, JSON.stringify({ steps, threads, wallSeconds: wall, cases: selected }, null, 1) + '\n');
  log(`results: ${outFile}`);
}

/**
 * generate-stops' anchors and the bound: every run's seconds and computed row-steps (token
 * choices: each prompt's first at its prefill, then each decode step's rows) against the real
 * tokens (each answer's tokens and its stop token), the least any batching must compute. At
 * transformers' own cost per row-step (one batch: its most efficient, compute-bound shape here),
 * the real tokens alone take real / rowSteps of its time: below that no batching gets without a
 * cheaper row-step.
 */
function stopsBound(a: GenerateResult, b: GenerateResult, batched: GenerateResult | undefined): void {
  const real = a.ids.reduce((s, x, r) => s + x.length + (a.finishReasons?.[r] === 'stop' ? 1 : 0), 0);
  const same = (x: GenerateResult) => x.ids.length === a.ids.length && x.ids.every((row, r) => JSON.stringify(row) === JSON.stringify(a.ids[r]));
  console.log(`\n  generate-stops: seconds, and the row-steps each computed against the ${real} real token choices (answers + their stop tokens)\n`);
  console.log('| run | s | rpo / this | row-steps computed | per real token | s per 1000 row-steps | identical ids |');
  console.log('|---|---|---|---|---|---|---|');
  const line = (name: string, x: GenerateResult | undefined) => {
    if (!x || x.error) return console.log(`| ${name} | FAILED | | | | | ${x?.error ?? ''} |`);
    const steps = x.rowSteps ?? NaN;
    console.log(`| ${name} | ${x.seconds.toFixed(2)} | ${ratio(a.seconds, x.seconds)} | ${steps} | ${(steps / real).toFixed(2)} | ${((1000 * x.seconds) / steps).toFixed(2)} | ${x === a ? '-' : same(x) ? 'yes' : 'no'} |`);
  };
  line(`rpo, ${a.slots} slots, compacted`, a);
  line(`transformers, one batch of ${b.batchSize}`, b);
  line(`transformers, batches of ${batched?.batchSize ?? STOP_HF_BATCH}`, batched);
  if (!b.rowSteps) return;
  const bound = real / b.rowSteps;
  console.log(
    `\n  bound: at transformers' cost per row-step in its batch of ${b.batchSize} (${((1000 * b.seconds) / b.rowSteps).toFixed(2)} ms), the ${real} real token choices take ` +
      `${((b.seconds * real) / b.rowSteps).toFixed(1)} s = ${bound.toFixed(2)}x its time; rpo computed ${a.rowSteps} row-steps and took ${ratio(a.seconds, b.seconds)}x.`,
  );
  console.log(
    bound > STOP_GOAL
      ? `  The goal (<= ${STOP_GOAL}x transformers' time) is out of reach at that cost on this CPU: it needs a row-step ${(bound / STOP_GOAL).toFixed(1)}x cheaper than transformers' batch-of-${b.batchSize} one, not only fewer row-steps.`
      : `  The goal (<= ${STOP_GOAL}x) is within the bound.`,
  );
}

// ---------------------------------------------------------------------------------------------
// LoRA vs full fine-tuning (npm run bench -- --lora): the same DPO step on the ~100M Llama, each
// variant in a process of its own (its peak RSS is its own).

function loraBench(): void {
  const shape = 'llama-100m';
  const dir = modelDir(shape);
  const rows = rowsFile(shape);
  const lora = { r: 16, alpha: 32, targetModules: ['all-linear'] };
  const variants: Array<[string, Record<string, unknown>]> = [
    ['full fine-tuning (fp32 AdamW on every weight)', {}],
    ['LoRA r=16, all linears (precomputed reference)', { lora }],
    ['LoRA r=16, all linears (reference = base, adapters off)', { lora: { ...lora, liveReference: true } }],
  ];
  const results = variants.map(([name, extra]) => {
    const r = attempt(name, () => runNode({ kind: 'train', modelDir: dir, rowsFile: rows, loss: LOSSES.dpo, steps, threads, lr: LR, maxGradNorm: MAX_GRAD_NORM, ...extra }));
    return { name, ...(r as Partial<TrainResult> & { trainable?: number }) };
  });
  console.log(`
DPO train step on the CPU, ${shape}: LoRA vs full fine-tuning (${PAIRS} pairs × ${SEQ} tokens, ${steps} timed steps, fastest; ${threads} threads)
`);
  console.log('| variant | trainable params | step s | tokens/s | peak RSS |');
  console.log('|---|---:|---:|---:|---:|');
  for (const r of results) {
    if (r.error) {
      console.log(`| ${r.name} | failed: ${r.error} | | | |`);
      continue;
    }
    console.log(`| ${r.name} | ${(r.trainable ?? 0).toLocaleString('en-US')} | ${r.stepSeconds!.toFixed(2)} | ${r.tokensPerSecond!.toFixed(0)} | ${mib(r.peakRssBytes)} |`);
  }
  const outFile = path.join(HERE, 'out', `lora-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(path.dirname(outFile), { recursive: true });
  writeFileSync(outFile, JSON.stringify({ steps, threads, results }, null, 1) + '\n');
  log(`results: ${outFile}`);
}

if (args.heads) headsBench();
else if (args.lora) loraBench();
else if (args.packing) packingBench(args.only);
else compareBench();
