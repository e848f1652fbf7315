// `rpo data`, `rpo train` and `rpo eval` through the CLI (child processes), for issue 9:
//  - item 9: a loss that trains on rationales, on data without them, stops with an error naming
//    the datasets and counts (exit 2), in `rpo data` and `rpo train` alike;
//  - item 11: `rpo data`, and `rpo eval` of a checkpoint with its own weights, never request the
//    base model's weights from the hub (a local hub-shaped server counts the requests);
//  - item 13c: `rpo data -n 5` as documented, and every other spelling, Hydra overrides intact.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { fakeCommit, startHubServer, type HubServer, type ServedFile } from '../fixtures/data/hub_server.js';
import { REPO, rpo, rpoAsync } from './cli.js';

const RATIONALES = path.join(REPO, 'test', 'fixtures', 'data', 'rationales');
const WITH = path.join(RATIONALES, 'with');
const WITHOUT = path.join(RATIONALES, 'without.jsonl');

let work: string;
let modelDir: string;

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-data-cmd-'));
  modelDir = path.join(work, 'tiny-model');
  const r = rpo(['init', modelDir, '--preset', 'tiny', '--seed', '5']);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Overrides for the tiny local model on `datasets`. */
function base(datasets: string[], exp: string, extra: string[] = []): string[] {
  return ['model=tiny', `model.name_or_path=${modelDir}`, `datasets=[${datasets.join(',')}]`, `exp_name=${exp}`, `cache_dir=${work}`, ...extra];
}

/** The example headers `rpo data` prints ("--- <id>"). */
function shown(stdout: string): number {
  return stdout.split('\n').filter((l) => l.startsWith('--- ')).length;
}

describe('rpo data -n', () => {
  it.each([
    [['-n', '1']],
    [['-n=1']],
    [['-n1']],
    [['--n', '1']],
    [['--n=1']],
  ])('%j shows one example; overrides before and after it still apply', (flag) => {
    const [first, ...rest] = base([WITH], 'n-flag', ['model.max_length=96']);
    const r = rpo(['data', 'loss=dpo', first!, ...flag, ...rest]);
    expect(r.code, r.stderr).toBe(0);
    expect(shown(r.stdout)).toBe(1);
    expect(r.stdout).toContain('max_length 96,');
  });

  it('-n 0 shows none, the default three; a value that is not a number is a usage error', () => {
    expect(shown(rpo(['data', 'loss=dpo', '-n', '0', ...base([WITH], 'n0')]).stdout)).toBe(0);
    expect(shown(rpo(['data', 'loss=dpo', ...base([WITH], 'n-default')]).stdout)).toBe(3);
    const bad = rpo(['data', 'loss=dpo', '-n', 'five', ...base([WITH], 'n-bad')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('-n: expected a whole number of examples, got "five"');
  });
});

describe('a loss with rationales on data without them', () => {
  it('rpo data loss=rdpo names the file and the column (no "0 dropped" preview)', () => {
    const r = rpo(['data', 'loss=rdpo', ...base([WITHOUT], 'no-rat')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`the train split of dataset "${WITHOUT}" has rows without one:\\n  ${WITHOUT}: (\\d+) of \\1 rows: it has no "rationale" column`));
    expect(r.stdout).not.toMatch(/dropped/);
  });

  it('rpo train loss=rdpo on a mix names the dataset that lacks them and its count, not truncation', () => {
    const r = rpo(['train', 'loss=rdpo', ...base([WITH, WITHOUT], 'mix', ['model.batch_size=2', 'model.gradient_accumulation_steps=1', 'n_epochs=1'])]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('loss=rdpo trains on a rationale for every pair, and 1 of the 2 datasets has train rows without one:');
    expect(r.stderr).toMatch(new RegExp(`\\n  ${WITHOUT}: (\\d+) of \\1 rows: it has no "rationale" column`));
    expect(r.stderr).not.toMatch(/truncated away/);
    expect(readdirSync(path.join(work, 'mix')).filter((f) => f.startsWith('LATEST'))).toEqual([]); // nothing trained
  });
});

describe('hub downloads: only what the command needs', () => {
  const REPO_ID = 'rpo-test/tiny-chat';
  let hub: HubServer;
  let caches = 0;
  /** The local hub, and a fresh cache each call: every file a command needs is requested. */
  const env = (): NodeJS.ProcessEnv => ({ HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: path.join(work, `hub-cache-${caches++}`), HF_HUB_OFFLINE: '', HF_TOKEN: '' });
  const weightRequests = (): string[] =>
    hub.requests.filter((q) => q.path.endsWith('.safetensors') || q.path.endsWith('.safetensors.index.json') || q.server === 'cdn').map((q) => `${q.server} ${q.method} ${q.path}`);
  const fileRequests = (): string[] => hub.requests.filter((q) => q.path.includes('/resolve/')).map((q) => q.path.split('/').pop()!);

  beforeAll(async () => {
    hub = await startHubServer();
    const files = new Map<string, ServedFile>();
    // As on the hub: weights in LFS (resolved through the CDN), the JSON files in git.
    for (const f of readdirSync(modelDir)) files.set(f, { content: readFileSync(path.join(modelDir, f)), lfs: f.endsWith('.safetensors') });
    expect([...files.keys()]).toContain('model.safetensors');
    hub.addRepo({ repo: REPO_ID, type: 'model', commit: fakeCommit(REPO_ID), files });
  });
  afterAll(async () => {
    await hub.close();
  });

  it('rpo data fetches the tokenizer and config, never the weights', async () => {
    hub.requests.length = 0;
    const r = await rpoAsync(['data', 'loss=dpo', '-n', '1', ...base([WITH], 'hub-data', [`model.name_or_path=${REPO_ID}`])], { env: env() });
    expect(r.code, r.stderr).toBe(0);
    expect(shown(r.stdout)).toBe(1);
    expect(fileRequests()).toEqual(expect.arrayContaining(['config.json', 'tokenizer.json', 'tokenizer_config.json']));
    expect(weightRequests()).toEqual([]);
  });

  it('rpo eval of a checkpoint with its own weights fetches only the base tokenizer; without one, the base weights', async () => {
    const samples = path.join(work, 'samples');
    const args = (exp: string, extra: string[]): string[] => [
      'eval',
      '++mode=sample',
      'loss=sft',
      '++n_samples=2',
      `++samples_dir=${samples}`,
      ...base([WITH], exp, [`model.name_or_path=${REPO_ID}`, 'model.max_length=80', ...extra]),
    ];
    hub.requests.length = 0;
    const own = await rpoAsync(args('hub-eval', [`++saved_policy=${modelDir}`]), { env: env() });
    expect(own.code, own.stderr).toBe(0);
    expect(JSON.parse(readFileSync(path.join(samples, 'hub-eval.json'), 'utf8'))).toHaveLength(2);
    expect(fileRequests()).toContain('tokenizer.json');
    expect(weightRequests()).toEqual([]);

    // The control: with no checkpoint the base model is the policy, and its weights are fetched.
    hub.requests.length = 0;
    const baseOnly = await rpoAsync(args('hub-eval-base', []), { env: env() });
    expect(baseOnly.code, baseOnly.stderr).toBe(0);
    expect(weightRequests().length).toBeGreaterThan(0);
  });
});
