// `rpo demo`: SFT, then RDPO (and DPO with --dpo; the data-efficiency experiment with
// --efficiency) on the bundled synthetic task; report.html.
import { DEMO_TASKS } from '../demo/dataset.js';
import { runDemo, type DemoResult } from '../demo/run.js';
import { rate, type ExactMatch } from '../demo/score.js';
import { Progress } from '../train/progress.js';
import { EXIT } from '../exit.js';

export async function runDemoCommand(args: { out: string; dpo: boolean; efficiency: boolean; preset: string; pairs: number; sftEpochs?: number; samples: number }): Promise<number> {
  let progress: Progress | null = null;
  let stage = '';
  const result = await runDemo({
    out: args.out,
    dpo: args.dpo,
    efficiency: args.efficiency,
    preset: args.preset,
    preferenceExamples: args.pairs,
    sftEpochs: args.sftEpochs,
    samples: args.samples,
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
  printSummary(result);
  console.log(`rpo demo: AlpacaEval-format samples: ${result.samples}`);
  console.log(`rpo demo: report: ${result.report}`);
  console.log(`rpo demo: done in ${result.wallSeconds.toFixed(0)} s (CPU time ${result.cpuSeconds.toFixed(0)} s)`);
  return EXIT.ok;
}

const cellOf = (m: ExactMatch): string => `${m.exact}/${m.total}`.padStart(7) + ` ${(100 * rate(m)).toFixed(0).padStart(3)}%`;

function printSummary(result: DemoResult): void {
  const main = result.stages.filter((s) => s.name === s.loss.toLowerCase());
  const tests = main[0]?.score.all.total ?? 0;
  console.log(`\nrpo demo: held-out reward accuracy (${tests} test pairs, chance = 0.5)`);
  for (const s of main) {
    const acc = s.heldOutAccuracy === null ? '  –  ' : s.heldOutAccuracy.toFixed(3);
    console.log(`  ${s.name.padEnd(6)} ${acc}   (${s.result.step} steps, ${s.result.wallSeconds.toFixed(0)} s; stage CPU time ${s.cpuSeconds.toFixed(0)} s)`);
  }
  console.log(`rpo demo: exact match of greedy samples on the ${tests} held-out prompts`);
  console.log(`  ${'model'.padEnd(6)} ${[...DEMO_TASKS, 'all'].map((t) => t.padStart(12)).join('')}`);
  for (const s of main) console.log(`  ${s.name.padEnd(6)} ${[...DEMO_TASKS.map((t) => s.score.byTask[t]), s.score.all].map((m) => cellOf(m).padStart(12)).join('')}`);
  if (result.efficiency) {
    const losses = [...new Set(result.efficiency.map((p) => p.loss))];
    console.log('rpo demo: data efficiency, from the same SFT model (held-out reward accuracy; exact match)');
    console.log(`  ${'pairs'.padEnd(10)}${losses.map((l) => `${l} acc`.padStart(10)).join('')}${losses.map((l) => `${l} exact`.padStart(16)).join('')}`);
    for (const f of [...new Set(result.efficiency.map((p) => p.fraction))]) {
      const pts = losses.map((l) => result.efficiency!.find((p) => p.loss === l && p.fraction === f));
      const label = `${pts[0]?.pairs ?? ''} (${Math.round(100 * f)}%)`;
      console.log(
        `  ${label.padEnd(10)}${pts.map((p) => (p?.heldOutAccuracy == null ? '–' : p.heldOutAccuracy.toFixed(3)).padStart(10)).join('')}` +
          `${pts.map((p) => (p ? cellOf(p.exact) : '–').padStart(16)).join('')}`,
      );
    }
  }
}
