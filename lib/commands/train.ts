// `rpo train`: runs the loop with a progress display, Ctrl-C handling and a closing summary.
import type { RunConfig } from '../config/index.js';
import { hydraQuote } from '../config/overrides.js';
import { Progress } from '../train/progress.js';
import { train } from '../train/loop.js';
import { EXIT } from '../exit.js';
import { distEnv } from '../parallel/env.js';
import { listenForInterrupt } from '../util/interrupt.js';

/** One word for a POSIX shell: left bare when it is plainly safe, else single-quoted. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'"'"'`)}'`;
}

/**
 * The command that continues an interrupted run: the run's saved config and `resume=<run dir>`,
 * which finds the newest complete checkpoint there (LATEST, or LATEST.prev after a kill between
 * the two renames of a save, or a step-N copy).
 */
export function resumeCommand(config: RunConfig): string {
  const dir = config.local_run_dir;
  return ['npx', 'rpo', 'train', `--config-path=${dir}`, '--config-name=config', `resume=${hydraQuote(dir)}`].map(shellQuote).join(' ');
}

export async function runTrainCommand(config: RunConfig): Promise<number> {
  // A data-parallel rank other than 0 prints nothing but its errors (rank 0 speaks for the job).
  const quiet = (distEnv()?.rank ?? 0) > 0;
  const say = (write: (line: string) => void, line: string) => {
    if (!quiet) write(line);
  };
  const interrupt = listenForInterrupt({
    first: (sig) => say(console.error, `\nrpo: ${sig}: finishing the current step, then saving a checkpoint (again to quit now)`),
    again: (sig) => console.error(`rpo: ${sig} again: quitting without a checkpoint`),
  });
  const progress = new Progress('train');
  try {
    const result = await train(config, {
      signal: interrupt.signal,
      onMessage: (m) => progress.log(`rpo: ${m}`),
      onStep: (s) => progress.update({ step: s.step, total: s.totalSteps, loss: s.loss, accuracy: s.accuracy, tokensPerSecond: s.tokensPerSecond, paddingFraction: s.paddingFraction, mfu: s.mfu }),
      onLog: (r) => {
        if (Object.keys(r).some((k) => k.startsWith('eval_'))) {
          const acc = r['eval_rewards/accuracies'];
          progress.log(`rpo: eval at ${r.examples} examples: loss ${Number(r.eval_loss).toFixed(4)}${typeof acc === 'number' ? `, reward accuracy ${acc.toFixed(3)}` : ''}`);
        }
      },
    });
    progress.done();
    if (result.interrupted) {
      if (result.checkpoint) {
        say(console.error, `rpo: stopped at step ${result.step}/${result.totalSteps}; checkpoint ${result.checkpoint}`);
        say(console.error, `rpo: resume with: ${resumeCommand(config)}`);
        // A data-parallel run resumes with any number of ranks; the same launch is the obvious one.
        const d = distEnv();
        if (d) say(console.error, `rpo: or with its ${d.worldSize} ranks: ${resumeCommand(config).replace(/^npx rpo train /, `npx rpo launch --nproc-per-node ${d.localWorldSize}${d.worldSize > d.localWorldSize ? ` --nnodes ${d.worldSize / d.localWorldSize} --node-rank K --master-addr ${d.masterAddr} --master-port ${d.masterPort}` : ''}${d.zero ? ` --zero ${d.zero}` : ''} -- train `)}`);
      } else {
        say(console.error, `rpo: stopped at step ${result.step}/${result.totalSteps} before ${config.debug ? 'saving anything (debug=true)' : 'the first optimizer step: no checkpoint was written'}`);
      }
      return EXIT.interrupted;
    }
    say(console.log, `rpo: trained ${result.step} steps (${result.examples} examples) in ${result.wallSeconds.toFixed(0)} s; model: ${result.checkpoint ?? '(not saved: debug)'}`);
    return EXIT.ok;
  } finally {
    progress.done();
    interrupt.release();
  }
}
