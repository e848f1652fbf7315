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

export async function runCompareCommand(args: CompareArgs): Promise<number> {
  const key = process.env[args.apiKeyEnv];
  const redact = makeRedactor([key]);
  const interrupt = listenForInterrupt({
    first: (sig) => console.error(`\nrpo: ${sig}: stopping after the comparisons in flight (again to quit at once); the same command resumes`),
  });
  try {
    checkCompareNumbers(args);
    const { readSamples } = await import('../compare/samples.js');
    // The responses' lengths are counted in tokens of the run's tokenizer: --tokenizer, else the
    // seed's samples config's local_run_dir (where its tokenizer was saved).
    const runDir = readSamples(args.file).config?.local_run_dir;
    const tokSource = args.tokenizer ?? (typeof runDir === 'string' ? runDir : undefined);
    if (!tokSource) throw new Error(`${args.file} names no run directory: pass --tokenizer <model dir or hub id> to count the responses' tokens`);
    const tokenizer = await loadTokenizer(await resolveModelDir(tokSource, { weights: false }));
    const result = await runCompare({
      file: args.file,
      candidateKey: args.candidateKey,
      baselineKey: args.baselineKey,
      historyKey: args.historyKey,
      labels: args.labels,
      seed: args.seed,
      maxComparisons: args.maxComp ?? null,
      resultsFile: args.resultsFile,
      judge: args.judge,
      device: args.device,
      batchSize: args.batchSize,
      baseUrl: args.baseUrl ?? process.env.OPENAI_BASE_URL ?? 'https://api.openai.com',
      apiKey: key,
      concurrency: args.concurrency,
      timeoutMs: args.timeout * 1000,
      retries: args.retries,
      backoffMs: args.backoffMs,
      tokenizer,
      signal: interrupt.signal,
      // A live line on a terminal; in a log, a line every tenth of the way.
      onProgress: (done, total, w) => {
        const line = `compared ${done}/${total}: ${args.candidateKey} ${w.candidate}, ${args.baselineKey} ${w.baseline}`;
        if (process.stderr.isTTY) process.stderr.write(`\r${line}   `);
        else if (done === total || done % Math.max(1, Math.ceil(total / 10)) === 0) process.stderr.write(`${line}\n`);
      },
      onReply: args.verbose ? (i, reply) => console.error(`\n[${i}] ${redact(reply)}`) : undefined,
      onRetry: (id, message, ms) => console.error(`\n${id}: ${redact(message)}; retrying in ${(ms / 1000).toFixed(1)} s`),
    });
    if (process.stderr.isTTY) process.stderr.write('\n');
    const { candidate: c, baseline: b } = result;
    console.log(`${c.name} ${c.wins} vs ${b.name} ${b.wins} of ${result.total} (${result.undecided} undecided${result.failed ? `, ${result.failed} failed` : ''}); p = ${result.p_value.toPrecision(4)}; appended to ${args.resultsFile}`);
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
