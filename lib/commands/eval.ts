// `rpo eval`: the seed's eval modes.
import type { RunConfig } from '../config/index.js';
import { runEval } from '../eval/index.js';
import { Progress } from '../train/progress.js';
import { EXIT } from '../exit.js';

export async function runEvalCommand(config: RunConfig): Promise<number> {
  const progress = new Progress(config.mode);
  const started = Date.now();
  const result = await runEval(config, {
    onMessage: (m) => progress.log(`rpo: ${m}`),
    onProgress: (done, total, tokens) =>
      progress.update({ step: done, total, unit: 'prompts', tokensPerSecond: tokens / Math.max((Date.now() - started) / 1000, 1e-9) }),
  });
  progress.done();
  if (result.metrics) {
    for (const [k, v] of Object.entries(result.metrics)) console.log(`${k.padEnd(28)} ${v.toFixed(6)}`);
  }
  console.log(`rpo: wrote ${result.file}${result.samples !== undefined ? ` (${result.samples} samples)` : ''}`);
  return EXIT.ok;
}
