// `rpo compare`'s options (the seed's compare.py flags, with their short aliases), declared once:
// yargs reads this table (lib/cli.ts) and the command's arguments are typed from it
// (lib/commands/compare.ts).
import type { OptionValues } from './options.js';

export const COMPARE_OPTIONS = {
  file: { alias: 'f', type: 'string', demandOption: true, describe: 'samples: rpo eval ++mode=sample output, or the seed\'s {config, samples} file' },
  candidate_key: { alias: 'ck', type: 'string', default: 'policy', describe: 'the candidate\'s key in each sample' },
  baseline_key: { alias: 'bk', type: 'string', default: 'chosen', describe: 'the baseline\'s key in each sample' },
  history_key: { alias: 'hk', type: 'string', default: 'prompt', describe: 'the prompt\'s key in each sample' },
  labels: { alias: 'l', type: 'string', default: '12', describe: 'labels of the responses shown to the judge (Response 1, Response 2)' },
  seed: { alias: 's', type: 'number', default: 0, describe: 'seed of the presentation orders and of the judge\'s requests' },
  max_comp: { alias: 'mc', type: 'number', describe: 'compare the first N samples only' },
  results_file: { alias: 'r', type: 'string', default: 'results.jsonl', describe: 'JSONL file the result line is appended to' },
  judge: { alias: 'j', type: 'string', default: 'gpt-4-0613', describe: 'the judge\'s model name on the server, or local:<model dir or hub id> (the engine, greedy)' },
  device: { type: 'string', default: 'auto', describe: 'local judge: auto, cpu, cuda, cuda:N' },
  'batch-size': { type: 'number', default: 8, describe: 'local judge: comparisons per generation batch' },
  'base-url': { type: 'string', describe: 'the judge\'s OpenAI-compatible server (default $OPENAI_BASE_URL, else https://api.openai.com)' },
  tokenizer: { type: 'string', describe: 'tokenizer (model dir or hub id) counting the responses\' tokens (default: the seed file\'s config.local_run_dir)' },
  concurrency: { type: 'number', default: 4, describe: 'requests in flight' },
  timeout: { type: 'number', default: 60, describe: 'seconds per request' },
  retries: { type: 'number', default: 5, describe: 'retries on 429 / 5xx / timeouts / connection errors' },
  'backoff-ms': { type: 'number', default: 1000, describe: 'first retry delay (doubles, with jitter; Retry-After wins)' },
  'api-key-env': { type: 'string', default: 'OPENAI_API_KEY', describe: 'environment variable with the API key' },
  verbose: { alias: 'v', type: 'boolean', default: false, describe: 'print each judge reply' },
  sleep_time: { alias: 'st', type: 'number', describe: 'accepted for the seed\'s command lines; requests are paced by --concurrency and retries' },} as const;

/** `rpo compare`'s arguments. */
export type CompareArgs = OptionValues<typeof COMPARE_OPTIONS>;
