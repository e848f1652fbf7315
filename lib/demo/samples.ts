// Greedy samples of a demo model on the held-out prompts, scored by exact match (score.ts). Greedy
// (not the seed's sampling) so that a sample is the model's single best answer and reruns agree.
import type { RunConfig } from '../config/index.js';
import type { Tokenizer } from '../data/tokenize/index.js';
import { complete, generationSettings } from '../eval/sampling.js';
import { loadModel } from '../model/io.js';
import { scoreDemoSamples, type DemoScore } from './score.js';

/** Prompt + response tokens generated at most: the demo's prompts and responses are under 40 tokens each. */
export const DEMO_SAMPLE_MAX_LENGTH = 96;

/** Greedy samples of the model at `weights` for each row's prompt, scored against its chosen response. */
export async function sampleDemoModel(
  weights: string,
  config: RunConfig,
  tok: Tokenizer,
  rows: readonly { prompt: string; chosen: string }[],
  seed: number,
): Promise<DemoScore> {
  const cfg: RunConfig = { ...config, model: { ...config.model, max_length: DEMO_SAMPLE_MAX_LENGTH } };
  const policy = await loadModel(weights, { dtype: 'float32' });
  try {
    const completions = await complete(policy, tok, cfg, rows.map((r) => r.prompt), {
      batchSize: 50,
      settings: { ...generationSettings(weights, cfg, tok, seed), doSample: false },
    });
    return scoreDemoSamples(rows, completions.map((c) => c.output));
  } finally {
    policy.dispose();
  }
}
