// `rpo rationales` end to end through the CLI in child processes: a tiny random model as the
// local generator (schema, splits, determinism, kill -9 and resume, training loss=rdpo on the
// output), and a real node:http server on 127.0.0.1 speaking chat completions as the openai:
// generator (retries, timeouts, malformed bodies, the API key).
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readAllRecords } from '../../lib/data/read/index.js';
import { loadPreferenceSplit } from '../../lib/data/sources/index.js';
import { initModelDir } from '../../lib/model/init.js';
import { cudaAvailable } from '../../lib/native.js';
import { GENERAL_TEMPLATE } from '../../lib/rationales/prompts.js';
import type { Sidecar } from '../../lib/rationales/output.js';
import { REPO, rpo, rpoAsync, rpoLive } from './cli.js';

const PAIRS = path.join(REPO, 'test', 'fixtures', 'data', 'pairs');
const DEMO = path.join(REPO, 'assets', 'demo');
let work: string;
let tiny: string;
let tinyNoChat: string;
let short: string;

function sidecar(dir: string): Sidecar {
  return JSON.parse(readFileSync(path.join(dir, 'rationales.json'), 'utf8')) as Sidecar;
}

async function records(file: string): Promise<Record<string, unknown>[]> {
  return (await readAllRecords(file)).map((r) => r.data);
}

/** Every file under a directory, dot-files included. */
function allFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => path.join(dir, f))
    .filter((f) => statSync(f).isFile());
}

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-rationales-e2e-'));
  tiny = path.join(work, 'tiny');
  await initModelDir(tiny, { preset: 'tiny', seed: 3 });
  // The same model with a tokenizer that has no chat template: requests use the seed's prefixes.
  tinyNoChat = path.join(work, 'tiny-nochat');
  cpSync(tiny, tinyNoChat, { recursive: true });
  const cfgFile = path.join(tinyNoChat, 'tokenizer_config.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
  delete cfg.chat_template;
  writeFileSync(cfgFile, JSON.stringify(cfg));
  short = path.join(work, 'short.jinja');
  writeFileSync(short, 'Q: {{ prompt }}\nA (preferred): {{ chosen }}\nB: {{ rejected }}\nWhy is A better?');
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

const localArgs = (out: string, extra: string[] = [], seed = '5'): string[] => [
  'rationales',
  PAIRS,
  '--out',
  out,
  '--generator',
  `local:${tiny}`,
  '--max-new-tokens',
  '12',
  '--keep-truncated',
  '--seed',
  seed,
  ...extra,
];

describe('rpo rationales, local generator', () => {
  it('writes the orcaratspec schema per split with a sidecar, and loss=rdpo trains on it', async () => {
    const out = path.join(work, 'out-a');
    const r = rpo(localArgs(out));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/train: \d+ of 5 rows kept/);
    expect(r.stderr).toMatch(/train 5\/5 rows \| [\d.]+ rows\/s \| \d+ tok\/s \| kept \d+, filtered \d+, failed 0 \| ETA 0s/);
    expect(readdirSync(out).sort()).toEqual(['rationales.json', 'test.parquet', 'train.parquet']);

    const sc = sidecar(out);
    expect(sc.rpo_version).toBe(JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')).version);
    expect(sc.generator).toMatchObject({ kind: 'local', model_dir: tiny, device: cudaAvailable() ? 'cuda' : 'cpu', prompt_format: 'chat_template', batch_size: 8 });
    expect(sc.model).toBe(tiny);
    expect(sc.style).toBe('general');
    expect(sc.template).toBe(GENERAL_TEMPLATE);
    expect(sc.sampling).toEqual({ max_new_tokens: 12, temperature: 0.7, do_sample: true, top_p: 1, top_k: 0, seed: 5 });
    expect(sc.format).toBe('parquet');

    for (const split of ['train', 'test'] as const) {
      const source = await loadPreferenceSplit(PAIRS, split);
      const s = sc.splits[split]!;
      expect(s.rows).toBe(source.length);
      expect(s.failed).toBe(0);
      expect(s.generated_tokens).toBeGreaterThan(0);
      const dropped = new Set(Object.values(s.filtered_ids).flat());
      expect(s.kept + Object.values(s.filtered).reduce((a, b) => a + b, 0)).toBe(s.rows);
      const rows = await records(path.join(out, `${split}.parquet`));
      expect(rows.length).toBe(s.kept);
      expect(s.kept).toBeGreaterThan(0);
      for (const row of rows) expect(Object.keys(row)).toEqual(['prompt', 'chosen', 'rejected', 'rationale']);
      // The kept rows are the source rows in order, with a new rationale each.
      const expected = source.filter((x) => !dropped.has(x.id)).map((x) => [x.prompt, x.chosen, x.rejected]);
      expect(rows.map((x) => [x.prompt, x.chosen, x.rejected])).toEqual(expected);
      for (const row of rows) expect(typeof row.rationale === 'string' && row.rationale.length > 0).toBe(true);
      expect(rows.map((x) => x.rationale)).not.toEqual(source.filter((x) => !dropped.has(x.id)).map((x) => x.rationale));
    }

    const t = rpo([
      'train',
      'loss=rdpo',
      'model=tiny',
      `model.name_or_path=${tiny}`,
      `datasets=[${out}]`,
      'exp_name=rdpo-on-rationales',
      `cache_dir=${work}`,
      'model.batch_size=2',
      'model.gradient_accumulation_steps=1',
      'model.eval_batch_size=2',
      'n_epochs=1',
    ]);
    expect(t.code, t.stderr).toBe(0);
    const metrics = readFileSync(path.join(work, 'rdpo-on-rationales', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    const steps = metrics.filter((m) => m.loss !== undefined);
    expect(steps.length).toBeGreaterThan(0);
    expect(Number.isFinite(steps[0]!['logps/rationale'])).toBe(true);
    expect(steps[0]!['logps/rationale']).toBeLessThan(0);
  });

  it('the same arguments give byte-identical files; a finished split is not redone; other arguments are refused', () => {
    const a = path.join(work, 'out-a');
    const b = path.join(work, 'out-b');
    const r = rpo(localArgs(b));
    expect(r.code, r.stderr).toBe(0);
    for (const f of ['train.parquet', 'test.parquet']) {
      expect(readFileSync(path.join(b, f)).equals(readFileSync(path.join(a, f))), f).toBe(true);
    }
    const strip = (s: Sidecar) => JSON.stringify(s, (k, v: unknown) => (k === 'finished_at' ? undefined : v));
    expect(strip(sidecar(b))).toBe(strip(sidecar(a)));

    const mtime = statSync(path.join(b, 'train.parquet')).mtimeMs;
    const again = rpo(localArgs(b));
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/train: train\.parquet is complete .*nothing to do/);
    expect(again.stdout).toMatch(/train: already complete/);
    expect(statSync(path.join(b, 'train.parquet')).mtimeMs).toBe(mtime);

    const other = rpo(localArgs(b, [], '6'));
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/holds rationales made with other arguments \(they differ in: seed\)/);

    // Another seed samples other rationales.
    const c = path.join(work, 'out-c');
    const seeded = rpo(['rationales', PAIRS, '--out', c, '--generator', `local:${tiny}`, '--max-new-tokens', '12', '--keep-truncated', '--seed', '6', '--split', 'train']);
    expect(seeded.code, seeded.stderr).toBe(0);
    expect(readFileSync(path.join(c, 'train.parquet')).equals(readFileSync(path.join(a, 'train.parquet')))).toBe(false);
  });

  it('a single file gets a held-out test split; jsonl; no chat template → the seed\'s prefixes; cut-off and over-long requests are filtered', async () => {
    const file = path.join(PAIRS, 'train.jsonl');
    const out = path.join(work, 'out-single');
    const r = rpo(['rationales', file, '--out', out, '--generator', `local:${tinyNoChat}`, '--format', 'jsonl', '--max-new-tokens', '4']);
    expect(r.stderr).toMatch(/has no chat template: requests use the seed's prefixes/);
    const sc = sidecar(out);
    expect(sc.generator.prompt_format).toBe('prefixes');
    expect(readdirSync(out).sort()).toEqual(['rationales.json', 'test.jsonl', 'train.jsonl']);
    let anyEmpty = false;
    for (const split of ['train', 'test'] as const) {
      const source = await loadPreferenceSplit(file, split);
      const s = sc.splits[split]!;
      expect(s.rows).toBe(source.length);
      expect(s.kept + Object.values(s.filtered).reduce((x, y) => x + y, 0)).toBe(s.rows);
      expect((await records(path.join(out, `${split}.jsonl`))).length).toBe(s.kept);
      if (s.kept === 0) anyEmpty = true;
    }
    expect(sc.splits.train!.rows + sc.splits.test!.rows).toBe(5);
    expect(sc.splits.test!.rows).toBeGreaterThan(0);
    // A random model rarely stops within 4 tokens: most rationales are cut off and dropped.
    expect(sc.splits.train!.filtered.truncated! + sc.splits.test!.filtered.truncated!).toBeGreaterThan(0);
    expect(r.code).toBe(anyEmpty ? 1 : 0);

    const tooLong = rpo(['rationales', file, '--out', out, '--generator', `local:${tinyNoChat}`, '--format', 'jsonl', '--max-new-tokens', '4', '--max-prompt-tokens', '40', '--split', 'test', '--overwrite']);
    expect(tooLong.code).toBe(1);
    expect(tooLong.stderr).toMatch(/a split kept no rows/);
    const s2 = sidecar(out).splits.test!;
    expect(s2.filtered.prompt_too_long).toBe(s2.rows);
    expect(s2.filtered_ids.prompt_too_long).toEqual((await loadPreferenceSplit(file, 'test')).map((x) => x.id));
    expect(readFileSync(path.join(out, 'test.jsonl'), 'utf8')).toBe('');
  });

  it('killed with SIGKILL mid-run, then restarted: no duplicates, no losses, the same file as an uninterrupted run', async () => {
    const args = (out: string, seed = '0'): string[] => [
      'rationales',
      DEMO,
      '--out',
      out,
      '--generator',
      `local:${tiny}`,
      '--split',
      'train',
      '--limit',
      '100',
      '--batch-size',
      '2',
      '--max-new-tokens',
      '24',
      '--style',
      short,
      '--format',
      'jsonl',
      '--keep-truncated',
      '--seed',
      seed,
    ];
    const ref = path.join(work, 'out-ref');
    const full = rpo(args(ref));
    expect(full.code, full.stderr).toBe(0);

    const out = path.join(work, 'out-killed');
    const journal = path.join(out, '.progress-train.jsonl');
    const journaled = (): string[] => (existsSync(journal) ? readFileSync(journal, 'utf8').split('\n').slice(1).filter((l) => l.length > 0) : []);
    let timer: NodeJS.Timeout | undefined;
    const killed = await rpoLive(args(out), (_line, child) => {
      timer ??= setInterval(() => {
        if (journaled().length >= 10) {
          clearInterval(timer);
          child.kill('SIGKILL');
        }
      }, 5);
    });
    clearInterval(timer);
    expect(killed.signal).toBe('SIGKILL');
    expect(existsSync(path.join(out, 'train.jsonl'))).toBe(false);
    const before = journaled().filter((l) => l.endsWith('}')).map((l) => (JSON.parse(l) as { id: string }).id);
    expect(before.length).toBeGreaterThanOrEqual(10);
    expect(before.length).toBeLessThan(100);
    expect(new Set(before).size).toBe(before.length);

    const mismatch = rpo(args(out, '1'));
    expect(mismatch.code).toBe(2);
    expect(mismatch.stderr).toMatch(/journal of an interrupted run with different arguments \(they differ in: seed\)/);

    const resumed = rpo(args(out));
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/train: resuming from \.progress-train\.jsonl: \d+ of 100 rows done/);
    expect(resumed.stderr).toMatch(/train 100\/100 rows \(\d+ from the journal\)/);
    expect(existsSync(journal)).toBe(false);
    expect(readFileSync(path.join(out, 'train.jsonl'), 'utf8')).toBe(readFileSync(path.join(ref, 'train.jsonl'), 'utf8'));
    const s = sidecar(out).splits.train!;
    expect(s.rows).toBe(100);
    expect(s.kept + Object.values(s.filtered).reduce((x, y) => x + y, 0)).toBe(100);
    expect(s.generated_tokens).toBe(sidecar(ref).splits.train!.generated_tokens);
  });
});

// ---- openai: a chat-completions server in this process ------------------------------------------

interface Hit {
  kw: string;
  at: number;
  auth: string | undefined;
  body: Record<string, unknown>;
}

const KEY = 'sk-e2e-TOPSECRET-9f8e7d6c5b4a';
const KEYWORDS = ['ok-a', 'ok-b', 'r429', 'r500', 'reset', 'hang', 'malformed', 'below', 'cutoff', 'empty', 'ok-test'];

function startServer(mode: 'mixed' | 'deny'): Promise<{ base: string; hits: Hit[]; close: () => Promise<void> }> {
  const hits: Hit[] = [];
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (d: Buffer) => (data += d.toString()));
    req.on('end', () => {
      const body = JSON.parse(data) as Record<string, unknown>;
      const content = (body.messages as { content: string }[])[0]!.content;
      const kw = KEYWORDS.find((k) => content.includes(`[${k}]`)) ?? '?';
      hits.push({ kw, at: Date.now(), auth: req.headers.authorization, body });
      const n = hits.filter((h) => h.kw === kw).length;
      const ok = (text: string | null, finish = 'stop'): void => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: finish }], usage: { completion_tokens: 5 } }));
      };
      if (mode === 'deny') {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `Incorrect API key provided: ${String(req.headers.authorization).replace('Bearer ', '')}` } }));
        return;
      }
      if (kw === 'r429' && n === 1) {
        res.writeHead(429, { 'retry-after': '1' });
        res.end('{"error":{"message":"slow down"}}');
      } else if (kw === 'r500' && n === 1) {
        res.writeHead(503);
        res.end('overloaded');
      } else if (kw === 'reset' && n === 1) {
        req.socket.destroy();
      } else if (kw === 'hang') {
        // never answers
      } else if (kw === 'malformed') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"choices": "oops"}');
      } else if (kw === 'below') {
        ok('The response below is better, because it is shorter.');
      } else if (kw === 'cutoff') {
        ok('The response above is', 'length');
      } else if (kw === 'empty') {
        ok('   ');
      } else {
        ok(`  The response above is right about ${kw}; the response below is not.  `);
      }
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        hits,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      }),
    ),
  );
}

describe('rpo rationales, openai generator', () => {
  let data: string;
  beforeAll(() => {
    data = path.join(work, 'chat-data');
    mkdirSync(data, { recursive: true });
    const line = (kw: string) => JSON.stringify({ prompt: `Question [${kw}]?`, chosen: `good ${kw}`, rejected: `bad ${kw}` });
    writeFileSync(path.join(data, 'train.jsonl'), KEYWORDS.filter((k) => k !== 'ok-test').map(line).join('\n') + '\n');
    writeFileSync(path.join(data, 'test.jsonl'), line('ok-test') + '\n');
  });

  it('success, 429 / 503 / reset then success, a timeout and a malformed body recorded as failures; the key only in the header', async () => {
    const srv = await startServer('mixed');
    const out = path.join(work, 'out-openai');
    try {
      const r = await rpoAsync(
        [
          'rationales', data, '--out', out, '--generator', `openai:${srv.base}`, '--model', 'judge-7b', '--style', 'detailed',
          '--concurrency', '3', '--timeout', '0.5', '--retries', '2', '--backoff-ms', '20', '--api-key-env', 'RPO_E2E_KEY', '--format', 'jsonl',
        ],
        { env: { RPO_E2E_KEY: KEY, OPENAI_API_KEY: '' } },
      );
      expect(r.code, r.stderr).toBe(0);

      const rows = await records(path.join(out, 'train.jsonl'));
      expect(rows.map((x) => x.prompt)).toEqual(['ok-a', 'ok-b', 'r429', 'r500', 'reset'].map((k) => `Question [${k}]?`));
      expect(rows[2]).toEqual({ prompt: 'Question [r429]?', chosen: 'good r429', rejected: 'bad r429', rationale: 'The response above is right about r429; the response below is not.' });
      expect((await records(path.join(out, 'test.jsonl'))).map((x) => x.prompt)).toEqual(['Question [ok-test]?']);

      const sc = sidecar(out);
      const s = sc.splits.train!;
      expect(s.rows).toBe(10);
      expect(s.kept).toBe(5);
      expect(s.filtered).toEqual({ empty: 1, too_long: 0, truncated: 1, prefers_rejected: 1, prompt_too_long: 0 });
      expect(s.filtered_ids.prefers_rejected).toEqual([`${data}:train:7`]);
      expect(s.failed).toBe(2);
      expect(s.failures.map((f) => f.id)).toEqual([`${data}:train:5`, `${data}:train:6`]);
      expect(s.failures[0]!.error).toMatch(/no answer within 0\.5 s \(timeout\) \(gave up after 3 attempts\)/);
      expect(s.failures[1]!.error).toMatch(/malformed response from http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions: no "choices" array/);
      expect(s.generated_tokens).toBe(5 * 8);
      expect(sc.generator).toMatchObject({ kind: 'openai', model: 'judge-7b', api_key_env: 'RPO_E2E_KEY', api_key_sent: true, concurrency: 3 });
      expect(sc.style).toBe('detailed');

      // What the server saw: retries as expected, the key as a Bearer header on every request.
      const count = (kw: string) => srv.hits.filter((h) => h.kw === kw).length;
      expect([count('ok-a'), count('r429'), count('r500'), count('reset'), count('hang'), count('malformed')]).toEqual([1, 2, 2, 2, 3, 1]);
      const r429 = srv.hits.filter((h) => h.kw === 'r429');
      expect(r429[1]!.at - r429[0]!.at).toBeGreaterThanOrEqual(950);
      expect(srv.hits.every((h) => h.auth === `Bearer ${KEY}`)).toBe(true);
      expect(srv.hits[0]!.body).toMatchObject({ model: 'judge-7b', max_tokens: 256, temperature: 0.7, top_p: 1 });
      expect((srv.hits[0]!.body.messages as { content: string }[])[0]!.content).toMatch(/Point to concrete content of both responses/);

      expect(r.stderr).toMatch(/retry: .*:train:2 in 1\.00 s: HTTP 429 .*slow down/);
      expect(r.stderr).toMatch(/warning: .*:train:6 failed: malformed response/);
      expect(r.stdout).toMatch(/train: 5 of 10 rows kept .*\(filtered: empty 1, truncated 1, prefers_rejected 1\) \(failed: 2/);
      // The key is nowhere but in the requests' headers.
      expect(r.stdout).not.toContain(KEY);
      expect(r.stderr).not.toContain(KEY);
      for (const f of allFiles(out)) expect(readFileSync(f, 'utf8'), f).not.toContain(KEY);
    } finally {
      await srv.close();
    }
  });

  it('a 401 stops the run with a clear error and the key redacted; an unset --api-key-env is a usage error', async () => {
    const srv = await startServer('deny');
    const out = path.join(work, 'out-denied');
    try {
      const r = await rpoAsync(['rationales', data, '--out', out, '--generator', `openai:${srv.base}/v1`, '--model', 'm', '--split', 'test', '--retries', '0'], {
        env: { OPENAI_API_KEY: KEY },
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/rpo: HTTP 401 from http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions: Incorrect API key provided: \*\*\* — the server refused the credentials/);
      expect(r.stderr + r.stdout).not.toContain(KEY);
      for (const f of allFiles(out)) expect(readFileSync(f, 'utf8'), f).not.toContain(KEY);
      expect(srv.hits).toHaveLength(1);

      const unset = await rpoAsync(['rationales', data, '--out', out, '--generator', `openai:${srv.base}`, '--model', 'm', '--api-key-env', 'RPO_E2E_UNSET_KEY'], {
        env: { RPO_E2E_UNSET_KEY: '' },
      });
      expect(unset.code).toBe(2);
      expect(unset.stderr).toMatch(/--api-key-env RPO_E2E_UNSET_KEY: the environment variable RPO_E2E_UNSET_KEY is not set/);
      const noModel = await rpoAsync(['rationales', data, '--out', out, '--generator', `openai:${srv.base}`]);
      expect(noModel.code).toBe(2);
      expect(noModel.stderr).toMatch(/--model NAME is required/);
    } finally {
      await srv.close();
    }
  });
});
