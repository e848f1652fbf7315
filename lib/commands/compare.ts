// `rpo compare -f samples.json -ck policy -bk chosen -r results.jsonl -j <judge model> ...`: the
// seed's compare.py (win rate of a candidate against a baseline, judged by an OpenAI-compatible
// chat endpoint). Exit codes: 0 done (the result line appended and printed); 1 a failure (nothing
// judged, a damaged journal, ...; the journal is kept); 2 a usage error (a flag's value);
// 130 interrupted (the same command resumes).
import { checkCompareNumbers } from '../compare/args.js';
import { CompareInterrupted, runCompare } from '../compare/index.js';
import { resolveModelDir } from '../hub/index.js';
import { loadTokenizer } from '../data/tokenize/index.js';
import { makeRedactor } from '../util/redact.js';
import { UsageError } from '../util/usage_error.js';
import { EXIT } from '../exit.js';
import { listenForInterrupt } from '../util/interrupt.js';
import type { CompareArgs } from './compare_options.js';

export type { CompareArgs } from './compare_options.js';

export async function runCompareCommand(a: CompareArgs): Promise<number> {
  const key = process.env[a.apiKeyEnv];
  const redact = makeRedactor([key]);
  const interrupt = listenForInterrupt({
    first: (sig) => console.error(`\nrpo: ${sig}: stopping after the comparisons in flight (again to quit at once); the same command resumes`),
  });
  try {
    checkCompareNumbers(a);
    const { readSamples } = await import('../compare/samples.js');
    // The responses' lengths are counted in tokens of the run's tokenizer: --tokenizer, else the
    // seed's samples config's local_run_dir (where its tokenizer was saved).
    const runDir = readSamples(a.file).config?.local_run_dir;
    const tokSource = a.tokenizer ?? (typeof runDir === 'string' ? runDir : undefined);
    if (!tokSource) throw new Error(`${a.file} names no run directory: pass --tokenizer <model dir or hub id> to count the responses' tokens`);
    const tokenizer = await loadTokenizer(await resolveModelDir(tokSource, { weights: false }));
    const result = await runCompare({
      file: a.file,
      candidateKey: a.candidateKey,
      baselineKey: a.baselineKey,
      historyKey: a.historyKey,
      labels: a.labels,
      seed: a.seed,
      maxComparisons: a.maxComp ?? null,
      resultsFile: a.resultsFile,
      judge: a.judge,
      device: a.device,
      batchSize: a.batchSize,
      baseUrl: a.baseUrl ?? process.env.OPENAI_BASE_URL ?? 'https://api.openai.com',
      apiKey: key,
      concurrency: a.concurrency,
      timeoutMs: a.timeout * 1000,
      retries: a.retries,
      backoffMs: a.backoffMs,
      tokenizer,
      signal: interrupt.signal,
      // A live line on a terminal; in a log, a line every tenth of the way.
      onProgress: (done, total, w) => {
        const line = `compared ${done}/${total}: ${a.candidateKey} ${w.candidate}, ${a.baselineKey} ${w.baseline}`;
        if (process.stderr.isTTY) process.stderr.write(`\r${line}   `);
        else if (done === total || done % Math.max(1, Math.ceil(total / 10)) === 0) process.stderr.write(`${line}\n`);
      },
      onReply: a.verbose ? (i, reply) => console.error(`\n[${i}] ${redact(reply)}`) : undefined,
      onRetry: (id, message, ms) => console.error(`\n${id}: ${redact(message)}; retrying in ${(ms / 1000).toFixed(1)} s`),
    });
    if (process.stderr.isTTY) process.stderr.write('\n');
    const { candidate: c, baseline: b } = result;
    console.log(`${c.name} ${c.wins} vs ${b.name} ${b.wins} of ${result.total} (${result.undecided} undecided${result.failed ? `, ${result.failed} failed` : ''}); p = ${result.p_value.toPrecision(4)}; appended to ${a.resultsFile}`);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CompareInterrupted) {
      console.error(`rpo: ${err.message}`);
      return EXIT.interrupted;
    }
    if (err instanceof UsageError) throw new UsageError(redact(err.message));
    throw new Error(redact((err as Error).message));
  } finally {
    interrupt.release();
  }
}
