// `rpo rationales <dataset> --out DIR --generator local:<model> | openai:<base url> ...`: a
// preference dataset with generated rationales, ready for `rpo train loss=rdpo datasets=[DIR]`.
//
// Exit codes: 0 done (every split kept at least one row); 1 a failure, or a split where no row
// was kept (its file and the sidecar are still written, to look at); 2 usage (nothing run);
// 130 interrupted (the same command resumes).
import type { ColumnMap } from '../data/sources/index.js';
import type { Split } from '../data/types.js';
import type { Dtype } from '../native.js';
import {
  RationalesInterrupted,
  RationalesUsageError,
  generateRationales,
  secretsOf,
  type OutputFormat,
  type RationalesOptions,
} from '../rationales/index.js';
import { makeRedactor } from '../util/redact.js';
import type { RationalesArgs } from './rationales_options.js';
import { EXIT } from '../exit.js';
import { listenForInterrupt } from '../util/interrupt.js';

export type { RationalesArgs } from './rationales_options.js';

function parseColumns(spec: string | undefined): ColumnMap | undefined {
  if (spec === undefined || spec.trim() === '') return undefined;
  const out: ColumnMap = {};
  for (const part of spec.split(',')) {
    const m = /^\s*(prompt|chosen|rejected)\s*=\s*(\S+)\s*$/.exec(part);
    if (!m) throw new RationalesUsageError(`--columns ${JSON.stringify(spec)}: expected field=column pairs, e.g. prompt=question,chosen=good,rejected=bad`);
    out[m[1] as 'prompt' | 'chosen' | 'rejected'] = m[2]!;
  }
  return out;
}

const DTYPES = ['auto', 'float32', 'bfloat16', 'float16'];

/** The generator's options for the command's arguments: the splits listed, --columns parsed, seconds to ms. */
export function toOptions(args: RationalesArgs): RationalesOptions {
  const { split, format, columns, dtype, timeout, apiKeyEnv, ...same } = args;
  if (!DTYPES.includes(dtype)) throw new RationalesUsageError(`--dtype must be one of ${DTYPES.join(', ')} (got ${dtype})`);
  if (!/^(auto|cpu|cuda(:\d+)?)$/.test(args.device)) throw new RationalesUsageError(`--device must be auto, cpu, cuda or cuda:N (got ${args.device})`);
  return {
    ...same,
    splits: split.split(',').map((s) => s.trim()).filter(Boolean) as Split[],
    format: format as OutputFormat,
    columns: parseColumns(columns),
    dtype: dtype as 'auto' | Dtype,
    timeoutMs: timeout * 1000,
    apiKeyEnv: apiKeyEnv ?? 'OPENAI_API_KEY',
    apiKeyEnvExplicit: apiKeyEnv !== undefined,
  };
}

export async function runRationalesCommand(args: RationalesArgs): Promise<number> {
  const interrupt = listenForInterrupt({
    first: (sig) => console.error(`\nrpo: ${sig}: stopping after the rows in flight (again to quit at once); the same command resumes`),
  });
  // Every line printed here is masked too (generateRationales masks its own messages and errors).
  const redact = makeRedactor(secretsOf({ apiKeyEnv: args.apiKeyEnv ?? 'OPENAI_API_KEY' }));
  const log = (line: string): void => console.log(redact(line));
  const warn = (line: string): void => console.error(redact(line));
  try {
    const options = toOptions(args);
    const result = await generateRationales(options, { onMessage: (m) => warn(`rpo: ${m}`), signal: interrupt.signal });
    let empty = false;
    for (const [split, s] of Object.entries(result.written)) {
      const filtered = Object.entries(s.filtered)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ');
      log(
        `${split}: ${s.kept} of ${s.rows} rows kept → ${result.out}/${s.file}` +
          `${filtered ? ` (filtered: ${filtered})` : ''}${s.failed > 0 ? ` (failed: ${s.failed}, listed in the sidecar)` : ''}`,
      );
      if (s.kept === 0) empty = true;
    }
    for (const split of result.skipped) log(`${split}: already complete`);
    log(`rpo: wrote ${result.sidecar}`);
    if (empty) {
      warn('rpo: a split kept no rows: see the filter counts and failures in the sidecar');
      return EXIT.failure;
    }
    return EXIT.ok;
  } catch (err) {
    if (err instanceof RationalesUsageError) {
      warn(`rpo: ${err.message}`);
      return EXIT.usage;
    }
    if (err instanceof RationalesInterrupted) {
      warn(`rpo: interrupted: ${err.message}; run the same command again to resume`);
      return EXIT.interrupted;
    }
    throw err;
  } finally {
    interrupt.release();
  }
}
