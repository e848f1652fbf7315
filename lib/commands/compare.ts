// `rpo compare -f samples.json -ck policy -bk chosen -r results.jsonl -j <judge model> ...`: the
// seed's compare.py (win rate of a candidate against a baseline, judged by an OpenAI-compatible
// chat endpoint). Exit codes: 0 done (the result line appended and printed); 1 a failure;
// 130 interrupted (the same command resumes).
import { CompareInterrupted, runCompare } from '../compare/index.js';
import { resolveModelDir } from '../hub/index.js';
import { loadTokenizer } from '../data/tokenize/index.js';
import { makeRedactor } from '../util/redact.js';
import { EXIT } from '../exit.js';

export interface CompareArgs {
  file: string;
  candidateKey: string;
  baselineKey: string;
  historyKey: string;
  labels: string;
  seed: number;
  maxComp?: number;
  resultsFile: string;
  judge: string;
  baseUrl?: string;
  device: string;
  batchSize: number;
  tokenizer?: string;
  concurrency: number;
  timeout: number;
  retries: number;
  backoffMs: number;
  apiKeyEnv: string;
  verbose: boolean;
}

export async function runCompareCommand(a: CompareArgs): Promise<number> {
  const key = process.env[a.apiKeyEnv];
  const redact = makeRedactor([key]);
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (++signals > 1) process.exit(EXIT.interrupted);
    console.error(`\nrpo: ${sig}: stopping after the comparisons in flight (again to quit at once); the same command resumes`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
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
      signal: controller.signal,
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
    throw new Error(redact((err as Error).message));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
