// Shared by the CPU benchmarks (bench/train_step.ts and its per-case processes): the model
// shapes, the HF model directories both sides load (written once by rpo, random init), the rows
// and prompts (written to JSON files that rpo and PyTorch both read, so the work is the same),
// and where Python is.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { parseHfConfig } from '../lib/model/config.js';
import { mulberry32 } from '../lib/util/random.js';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..');
/** Model directories, rows and results (bench/out/ is gitignored). RPO_BENCH_CACHE overrides. */
export const CACHE = process.env.RPO_BENCH_CACHE ?? path.join(HERE, 'out', 'cache');

/** HF config.json fields of the shapes, random init everywhere. */
export const SHAPES: Record<string, { label: string; hf: Record<string, unknown> }> = {
  'llama-100m': {
    label: '~100M Llama',
    hf: {
      architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 32000, hidden_size: 768,
      intermediate_size: 2048, num_hidden_layers: 8, num_attention_heads: 12, num_key_value_heads: 4, head_dim: 64,
      max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000.0, tie_word_embeddings: false,
      initializer_range: 0.02, hidden_act: 'silu',
    },
  },
  'smollm2-135m': {
    label: 'SmolLM2-135M shape',
    hf: {
      architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 49152, hidden_size: 576,
      intermediate_size: 1536, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, head_dim: 64,
      max_position_embeddings: 8192, rms_norm_eps: 1e-5, rope_theta: 100000.0, tie_word_embeddings: true,
      initializer_range: 0.041666666666666664, hidden_act: 'silu',
    },
  },
  // A quick check of a bench itself (npm run bench -- --packing --only llama-tiny), not a result.
  'llama-tiny': {
    label: 'tiny Llama (a check)',
    hf: {
      architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 512, hidden_size: 64,
      intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16,
      max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000.0, tie_word_embeddings: false,
      initializer_range: 0.02, hidden_act: 'silu',
    },
  },
};

export const modelConfig = (shape: string) => parseHfConfig(SHAPES[shape]!.hf, `bench shape ${shape}`);

/**
 * A right-padded batch as plain arrays (JSON for both sides): rows [chosen x pairs, rejected x
 * pairs, rationale x pairs]; lossMask[r][t] = 1 marks token t of row r as a label (predicted from
 * t - 1), as rpo's RowBatch; the precomputed reference sums (and means, counts) of the chosen and
 * rejected rows.
 */
export interface RowsFile {
  pairs: number;
  groups: number;
  seqLen: number;
  inputIds: number[];
  attentionMask: number[];
  lossMask: number[];
  reference: Record<'chosen' | 'rejected', { sum: number[]; mean: number[]; count: number[] }>;
}

/**
 * `pairs` pairs of 3 row groups, seqLen columns, ids 3..vocab-1. Real lengths vary (3/4 to all of
 * seqLen); the first row of each group is full, so the longest row of each group is seqLen (rpo
 * cuts each forward to its group's longest row; PyTorch does the same). Prompts of 1/8 to 1/4
 * of seqLen, masked; chosen and rejected of a pair share the prompt.
 */
export function makeRows(seed: number, pairs: number, seqLen: number, vocab: number): RowsFile {
  const r = mulberry32(seed);
  const groups = 3;
  const rows = pairs * groups;
  const inputIds = new Array<number>(rows * seqLen).fill(0);
  const attentionMask = new Array<number>(rows * seqLen).fill(0);
  const lossMask = new Array<number>(rows * seqLen).fill(0);
  const prompts = Array.from({ length: pairs }, () => Array.from({ length: Math.floor(seqLen / 8 + r() * (seqLen / 8)) }, () => 3 + Math.floor(r() * (vocab - 3))));
  const counts: number[] = [];
  for (let g = 0; g < groups; g++) {
    for (let p = 0; p < pairs; p++) {
      const row = g * pairs + p;
      const len = p === 0 ? seqLen : Math.floor(seqLen * (0.75 + 0.25 * r()));
      const prompt = g < 2 ? prompts[p]! : prompts[p]!.slice(0, Math.floor(prompts[p]!.length / 2));
      for (let t = 0; t < len; t++) {
        inputIds[row * seqLen + t] = t < prompt.length ? prompt[t]! : 3 + Math.floor(r() * (vocab - 3));
        attentionMask[row * seqLen + t] = 1;
        lossMask[row * seqLen + t] = t >= prompt.length ? 1 : 0;
      }
      counts.push(len - prompt.length);
    }
  }
  // Reference sums near a uniform model's (log(1/vocab) per label), so the DPO logits are moderate.
  const ref = (g: number, shift: number) => {
    const count = counts.slice(g * pairs, (g + 1) * pairs);
    const sum = count.map((n, i) => -Math.log(vocab) * n + shift + 0.1 * i);
    return { sum, mean: sum.map((s, i) => s / count[i]!), count };
  };
  return { pairs, groups, seqLen, inputIds, attentionMask, lossMask, reference: { chosen: ref(0, 0.5), rejected: ref(1, -0.5) } };
}

/** `n` prompts of 8..64 random ids (3..vocab-1). */
export function makePrompts(seed: number, n: number, vocab: number): number[][] {
  const r = mulberry32(seed);
  return Array.from({ length: n }, () => Array.from({ length: 8 + Math.floor(r() * 57) }, () => 3 + Math.floor(r() * (vocab - 3))));
}

/** Writes `data` as JSON to `file` unless it is there already; returns the path. */
export function writeJsonOnce(file: string, data: () => unknown): string {
  if (!existsSync(file)) {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(`${file}.tmp-${process.pid}`, JSON.stringify(data()));
    renameSync(`${file}.tmp-${process.pid}`, file);
  }
  return file;
}

/** The .venv Python (torch + transformers), else RPO_BENCH_PYTHON, else python3. */
export function python(): string {
  if (process.env.RPO_BENCH_PYTHON) return process.env.RPO_BENCH_PYTHON;
  const venv = path.join(REPO_ROOT, '.venv', 'bin', 'python');
  return existsSync(venv) ? venv : 'python3';
}

export function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}

export function removeQuietly(p: string): void {
  rmSync(p, { recursive: true, force: true });
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
