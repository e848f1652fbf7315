// Exact match of the demo's greedy samples: a sample is right when it is the correct response,
// character for character ("Sure! Sorted: 3 7 9."). Every demo task has one correct answer and
// one polite format around it, so anything else (a wrong digit, a curt "ok: 3 7 9", a missing
// period) is wrong; no partial credit, so the rate means what it says.
import { DEMO_TASKS, type DemoTask } from './dataset.js';

/** The task a demo prompt asks for, from its phrasing (each task has two); null for another prompt. */
export function demoTaskOf(prompt: string): DemoTask | null {
  if (/^Sort(?: these numbers)?: \d/.test(prompt)) return 'sort';
  if (/^(?:Reverse the word|Spell backwards): /.test(prompt)) return 'reverse';
  if (/^(?:Uppercase|Write in capitals): /.test(prompt)) return 'uppercase';
  if (/^(?:Add \d+ and \d+|What is \d+ \+ \d+\?)$/.test(prompt)) return 'add';
  return null;
}

export interface DemoSample {
  prompt: string;
  task: DemoTask;
  /** The correct response (the pair's chosen one). */
  answer: string;
  output: string;
  exact: boolean;
}

export interface ExactMatch {
  exact: number;
  total: number;
}

export interface DemoScore {
  samples: DemoSample[];
  byTask: Record<DemoTask, ExactMatch>;
  all: ExactMatch;
}

/** Exact match per task of `outputs[i]` against `rows[i].chosen`; a prompt of no demo task is an error naming it. */
export function scoreDemoSamples(rows: readonly { prompt: string; chosen: string }[], outputs: readonly string[]): DemoScore {
  if (rows.length !== outputs.length) throw new Error(`scoreDemoSamples: ${rows.length} prompts but ${outputs.length} outputs`);
  const byTask = Object.fromEntries(DEMO_TASKS.map((t) => [t, { exact: 0, total: 0 }])) as Record<DemoTask, ExactMatch>;
  const all: ExactMatch = { exact: 0, total: 0 };
  const samples = rows.map((r, i): DemoSample => {
    const task = demoTaskOf(r.prompt);
    if (task === null) throw new Error(`scoreDemoSamples: prompt ${i} is not a demo task: ${JSON.stringify(r.prompt)}`);
    const output = outputs[i]!;
    const exact = output.trim() === r.chosen.trim();
    for (const m of [byTask[task], all]) {
      m.total++;
      if (exact) m.exact++;
    }
    return { prompt: r.prompt, task, answer: r.chosen, output, exact };
  });
  return { samples, byTask, all };
}

/** The rate of an exact-match count (NaN when there is nothing to count). */
export function rate(m: ExactMatch): number {
  return m.total === 0 ? NaN : m.exact / m.total;
}
