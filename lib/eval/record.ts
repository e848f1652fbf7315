// The sidecar beside a samples file: how the samples were made (decoding settings, model and
// checkpoint) and what came out (output lengths, finish reasons, time), so a reader can tell a
// run cut by max_length from one that stopped, and compare two sampling runs fairly.
import type { GenerateOptions } from '../native.js';
import type { Completion } from './sampling.js';

export interface SamplingRecord {
  samples_file: string;
  model: string;
  checkpoint: string;
  decoding: {
    do_sample: boolean;
    temperature: number;
    top_p: number;
    top_k: number;
    repetition_penalty: number;
    max_length: number | null;
    max_new_tokens: number | null;
    stop_token_ids: number[];
    seed: number;
    slots: number;
  };
  prompts: number;
  output_tokens: { total: number; mean: number; p50: number; p90: number; p99: number; max: number };
  finish_reasons: { stop: number; length: number };
  wall_seconds: number;
  tokens_per_second: number;
}

/** The q-quantile (0..1) of sorted values, nearest rank. */
function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** The record of one sampling run's completions. */
export function samplingRecord(o: {
  samplesFile: string;
  model: string;
  checkpoint: string;
  settings: GenerateOptions;
  slots: number;
  completions: readonly Completion[];
  seconds: number;
}): SamplingRecord {
  const lengths = o.completions.map((c) => c.tokens).sort((a, b) => a - b);
  const total = lengths.reduce((s, n) => s + n, 0);
  const s = o.settings;
  return {
    samples_file: o.samplesFile,
    model: o.model,
    checkpoint: o.checkpoint,
    decoding: {
      do_sample: s.doSample ?? true,
      temperature: s.temperature ?? 1,
      top_p: s.topP ?? 1,
      top_k: s.topK ?? 0,
      repetition_penalty: s.repetitionPenalty ?? 1,
      max_length: s.maxLength ?? null,
      max_new_tokens: s.maxNewTokens ?? null,
      stop_token_ids: [...(s.stopTokenIds ?? [])],
      seed: s.seed ?? 0,
      slots: o.slots,
    },
    prompts: o.completions.length,
    output_tokens: {
      total,
      mean: lengths.length ? total / lengths.length : 0,
      p50: quantile(lengths, 0.5),
      p90: quantile(lengths, 0.9),
      p99: quantile(lengths, 0.99),
      max: lengths.length ? lengths[lengths.length - 1]! : 0,
    },
    finish_reasons: {
      stop: o.completions.filter((c) => c.finishReason === 'stop').length,
      length: o.completions.filter((c) => c.finishReason === 'length').length,
    },
    wall_seconds: o.seconds,
    tokens_per_second: o.seconds > 0 ? total / o.seconds : 0,
  };
}

/** The sidecar's path: `alpaca_x.json` -> `alpaca_x.sampling.json`. */
export function recordPath(samplesFile: string): string {
  return samplesFile.replace(/\.json$/, '') + '.sampling.json';
}
