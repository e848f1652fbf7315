// `rpo rationales`' options, declared once: yargs reads this table (lib/cli.ts) and the command's
// arguments are typed from it (lib/commands/rationales.ts).
import type { OptionValues } from './options.js';

export const RATIONALES_OPTIONS = {
  out: { type: 'string', demandOption: true, describe: 'output directory (train/test files + rationales.json)' },
  generator: { type: 'string', demandOption: true, describe: 'local:<model dir or hub id> | openai:<base url>' },
  model: { type: 'string', describe: 'openai: the model name sent to the server (required there)' },
  style: { type: 'string', default: 'general', describe: 'general | detailed | a Jinja template file (variables prompt, chosen, rejected)' },
  split: { type: 'string', default: 'train,test', describe: 'splits to generate, comma-separated' },
  limit: { type: 'number', describe: 'the first N rows of each split' },
  format: { type: 'string', default: 'parquet', choices: ['parquet', 'jsonl'], describe: 'split file format' },
  columns: { type: 'string', describe: 'column names of the source, e.g. prompt=question,chosen=good,rejected=bad' },
  'max-new-tokens': { type: 'number', default: 256, describe: 'rationale length limit in tokens' },
  temperature: { type: 'number', default: 0.7, describe: 'sampling temperature; 0: greedy' },
  'top-p': { type: 'number', default: 1.0 },
  'top-k': { type: 'number', default: 0, describe: '0: off (openai: sent only when > 0)' },
  seed: { type: 'number', default: 0, describe: 'sampling seed (local: batch k uses seed + k; openai: row i sends seed + i)' },
  'max-rationale-chars': { type: 'number', default: 2000, describe: 'longer rationales are filtered out' },
  'keep-truncated': { type: 'boolean', default: false, describe: 'keep rationales cut off by --max-new-tokens' },
  'batch-size': { type: 'number', default: 8, describe: 'local: rows per generation batch' },
  device: { type: 'string', default: 'auto', describe: 'local: auto (CUDA when available), cpu, cuda, cuda:N' },
  dtype: { type: 'string', default: 'auto', describe: 'local: auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16, float16' },
  'max-prompt-tokens': { type: 'number', describe: 'local: longer requests are filtered (default: context length - max-new-tokens)' },
  concurrency: { type: 'number', default: 4, describe: 'openai: requests in flight' },
  timeout: { type: 'number', default: 120, describe: 'openai: seconds per request' },
  retries: { type: 'number', default: 5, describe: 'openai: retries on 429 / 5xx / timeouts / connection errors' },
  'backoff-ms': { type: 'number', default: 1000, describe: 'openai: first retry delay (doubles, with jitter; Retry-After wins)' },
  'api-key-env': { type: 'string', describe: 'openai: environment variable with the API key (default OPENAI_API_KEY)' },
  overwrite: { type: 'boolean', default: false, describe: 'discard earlier output and journals in --out and start over' },} as const;

/** `rpo rationales <dataset>`'s arguments. */
export type RationalesArgs = { dataset: string } & OptionValues<typeof RATIONALES_OPTIONS>;
