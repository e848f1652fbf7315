// The sidecar beside a samples file: how the samples were made (decoding settings, model and
// checkpoint) and what came out (output lengths, finish reasons, time), so a reader can tell a
// run cut by max_length from one that stopped, and compare two sampling runs fairly.
import { lengthStats } from '../data/batch/index.js';
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
  // Nearest-rank percentiles, as `rpo data` reports token lengths.
  const tokens = o.completions.map((c) => c.tokens);
  const lengths = lengthStats(tokens);
  const total = tokens.reduce((sum, n) => sum + n, 0);
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
    output_tokens: { total, mean: lengths.mean, p50: lengths.p50, p90: lengths.p90, p99: lengths.p99, max: lengths.max },
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
