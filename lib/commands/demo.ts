// `rpo demo`: SFT, then RDPO (and DPO with --dpo) on the bundled synthetic task; report.html.
import { runDemo } from '../demo/run.js';
import { Progress } from '../train/progress.js';
import { EXIT } from '../exit.js';

export async function runDemoCommand(a: { out: string; dpo: boolean; preset: string; pairs: number; samples: number }): Promise<number> {
  let progress: Progress | null = null;
  let stage = '';
  const result = await runDemo({
    out: a.out,
    dpo: a.dpo,
    preset: a.preset,
    preferenceExamples: a.pairs,
    samples: a.samples,
    onMessage: (m) => (progress ? progress.log(`rpo demo: ${m}`) : console.error(`rpo demo: ${m}`)),
    onStep: (name, s) => {
      if (name !== stage) {
        progress?.done();
        progress = new Progress(name);
        stage = name;
      }
      progress!.update({ step: s.step, total: s.totalSteps, loss: s.loss, accuracy: s.accuracy, tokensPerSecond: s.tokensPerSecond });
    },
  });
  (progress as Progress | null)?.done();
  console.log('\nrpo demo: held-out reward accuracy (200 test pairs, chance = 0.5)');
  for (const s of result.stages) {
    if (s.heldOutAccuracy !== null) console.log(`  ${s.name.padEnd(6)} ${s.heldOutAccuracy.toFixed(3)}   (${s.result.step} steps, ${s.result.wallSeconds.toFixed(0)} s)`);
  }
  console.log(`rpo demo: AlpacaEval-format samples: ${result.samples}`);
  console.log(`rpo demo: report: ${result.report}`);
  console.log(`rpo demo: done in ${result.wallSeconds.toFixed(0)} s`);
  return EXIT.ok;
}
