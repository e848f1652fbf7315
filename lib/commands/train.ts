// `rpo train`: runs the loop with a progress display, Ctrl-C handling and a closing summary.
import path from 'node:path';

import type { RunConfig } from '../config/index.js';
import { Progress } from '../train/progress.js';
import { train } from '../train/loop.js';
import { EXIT } from '../cli.js';

/** The command that continues an interrupted run. */
export function resumeCommand(config: RunConfig): string {
  return `npx rpo train --config-path=${config.local_run_dir} --config-name=config ++resume=${path.join(config.local_run_dir, 'LATEST')}`;
}

export async function runTrainCommand(config: RunConfig): Promise<number> {
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals += 1;
    if (signals === 1) {
      console.error(`\nrpo: ${sig}: finishing the current step, then saving a checkpoint (again to quit now)`);
      controller.abort();
    } else {
      console.error(`rpo: ${sig} again: quitting without a checkpoint`);
      process.exit(EXIT.interrupted);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const progress = new Progress('train');
  try {
    const result = await train(config, {
      signal: controller.signal,
      onMessage: (m) => progress.log(`rpo: ${m}`),
      onStep: (s) => progress.update({ step: s.step, total: s.totalSteps, loss: s.loss, accuracy: s.accuracy, tokensPerSecond: s.tokensPerSecond }),
      onLog: (r) => {
        if (Object.keys(r).some((k) => k.startsWith('eval_'))) {
          const acc = r['eval_rewards/accuracies'];
          progress.log(`rpo: eval at ${r.examples} examples: loss ${Number(r.eval_loss).toFixed(4)}${typeof acc === 'number' ? `, reward accuracy ${acc.toFixed(3)}` : ''}`);
        }
      },
    });
    progress.done();
    if (result.interrupted) {
      console.error(`rpo: stopped at step ${result.step}/${result.totalSteps}; checkpoint ${result.checkpoint ?? '(none: debug)'}`);
      console.error(`rpo: resume with: ${resumeCommand(config)}`);
      return EXIT.interrupted;
    }
    console.log(`rpo: trained ${result.step} steps (${result.examples} examples) in ${result.wallSeconds.toFixed(0)} s; model: ${result.checkpoint ?? '(not saved: debug)'}`);
    return EXIT.ok;
  } finally {
    progress.done();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
