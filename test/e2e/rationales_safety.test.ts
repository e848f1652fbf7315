// "Nothing a user owns is lost": `rpo rationales` through the CLI in child processes, against real
// servers on 127.0.0.1 and real files.
//
// - The API key and the hub token never reach stderr, stdout, the journal, the sidecar or the
//   split files, whole or as any 6+ character piece: a server puts the 52-character key at every
//   offset from 150 to 210 of its error bodies (around the 200-character cut), echoes it (whole,
//   cut by itself, and the hub token) in completions, and a hub echoes the token.
// - --out may not be the dataset, inside it, or around it (symlinks, trailing slashes, relative
//   paths resolved), and --overwrite removes only the files rpo wrote.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readAllRecords } from '../../lib/data/read/index.js';
import type { Sidecar } from '../../lib/rationales/output.js';
import { encodeRows } from '../../lib/rationales/output.js';
import { REPO, rpoAsync, type CliResult } from './cli.js';

/** 52 characters, like an OpenAI project key; the hub token like HF's. */
const KEY = 'sk-proj-Zq7Xv2Lm9Tb4Wn8Rc1Yk6Hs3Jd5Gf0Pa2Eu7Io4Vx9Bw';
const HF = 'hf_Qm4Rt8Yu2Io6Pa0Sd3Fg7Hj1Kl5Zx9Cv';
const OFFSETS = Array.from({ length: 61 }, (_, j) => 150 + j);

let work: string;

/** Every 6-character piece of `secret` found in `text`: none may be there. */
function pieces(text: string, secret: string, n = 6): string[] {
  const found: string[] = [];
  for (let i = 0; i + n <= secret.length; i++) if (text.includes(secret.slice(i, i + n))) found.push(secret.slice(i, i + n));
  return found;
}

/** Every file under a directory, dot-files included. */
function allFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => path.join(dir, f))
    .filter((f) => statSync(f).isFile());
}

/** Asserts that no piece of the key or the token is in the run's output or in any file under `dirs`. */
function expectNoSecrets(r: CliResult, ...dirs: string[]): void {
  for (const [name, text] of [
    ...dirs.flatMap((d) => allFiles(d).map((f) => [f, readFileSync(f, 'latin1')] as const)),
    ['stderr', r.stderr],
    ['stdout', r.stdout],
  ] as const) {
    expect(pieces(text, KEY), `${name}: pieces of the API key`).toEqual([]);
    expect(pieces(text, HF), `${name}: pieces of the hub token`).toEqual([]);
  }
}

function sidecar(dir: string): Sidecar {
  return JSON.parse(readFileSync(path.join(dir, 'rationales.json'), 'utf8')) as Sidecar;
}

/** name → sha256 of every file under a directory: to show nothing there changed. */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(allFiles(dir).map((f) => [path.relative(dir, f), createHash('sha256').update(readFileSync(f)).digest('hex')]));
}

function writeJsonl(file: string, tags: readonly string[]): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, tags.map((t) => JSON.stringify({ prompt: `Question [${t}]?`, chosen: `good ${t}`, rejected: `bad ${t}` })).join('\n') + '\n');
}

// ---- a hostile chat-completions server -----------------------------------------------------------

interface ChatServer {
  base: string;
  /** The [fatal] row answers 401 (stopping the run, so its journal stays) while set. */
  fatal: boolean;
  attempts: Map<string, number>;
  close(): Promise<void>;
}

/** What the server answers for a row's tag (see the tests for what each one checks). */
function answer(tag: string, n: number, srv: ChatServer, res: http.ServerResponse): void {
  const ok = (text: string): void => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }], usage: { completion_tokens: 4 } }));
  };
  const offset = /^offset (\d+)$/.exec(tag);
  if (offset) {
    // The key at this offset of a plain-text error body: a 503 first (retried: a retry line on
    // stderr), then a 400 (the row's error: stderr, the journal, the sidecar).
    const body = `${'e'.repeat(Number(offset[1]))}${KEY} (end of the error body)`;
    res.writeHead(n === 1 ? 503 : 400, { 'content-type': 'text/plain' }).end(body);
    return;
  }
  if (tag === 'echo-whole') return ok(`The response above is right. ${KEY}`);
  if (tag === 'echo-prefix') return ok(`The response above is right; key ${KEY.slice(0, 30)}`); // cut by the server
  if (tag === 'echo-suffix') return ok(`${KEY.slice(25)} the response above is right`);
  if (tag === 'echo-hf') return ok(`The response above is right; hub ${HF}`);
  if (tag === 'fatal' && srv.fatal) {
    res.writeHead(401, { 'content-type': 'text/plain' }).end(`${'x'.repeat(150)}Incorrect API key provided: ${KEY}`);
    return;
  }
  ok(`The response above is right about ${tag}.`);
}

function startChatServer(): Promise<ChatServer> {
  const srv: ChatServer = { base: '', fatal: false, attempts: new Map(), close: async () => undefined };
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (d: Buffer) => (data += d.toString()));
    req.on('end', () => {
      const content = (JSON.parse(data) as { messages: { content: string }[] }).messages[0]!.content;
      const tag = /Question \[([^\]]+)\]/.exec(content)?.[1] ?? '?';
      const n = (srv.attempts.get(tag) ?? 0) + 1;
      srv.attempts.set(tag, n);
      answer(tag, n, srv, res);
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      srv.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      srv.close = () =>
        new Promise<void>((done) => {
          server.closeAllConnections();
          server.close(() => done());
        });
      resolve(srv);
    }),
  );
}

let chat: ChatServer;
const ENV = { RPO_SAFE_KEY: KEY, HF_TOKEN: HF, OPENAI_API_KEY: '' };

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-rationales-safety-'));
  chat = await startChatServer();
});

afterAll(async () => {
  await chat.close();
  rmSync(work, { recursive: true, force: true });
});

const openai = (data: string, out: string, extra: string[] = []): string[] => [
  'rationales', data, '--out', out, '--generator', `openai:${chat.base}`, '--model', 'judge', '--api-key-env', 'RPO_SAFE_KEY',
  '--concurrency', '1', '--retries', '1', '--backoff-ms', '0', '--format', 'jsonl', ...extra,
];

describe('the API key and the hub token never leave the process', () => {
  it('an error body with the key at every offset from 150 to 210: stderr, the journal and the sidecar hold no piece of it', async () => {
    const data = path.join(work, 'straddle-data');
    writeJsonl(path.join(data, 'train.jsonl'), [...OFFSETS.map((o) => `offset ${o}`), 'fatal']);
    writeJsonl(path.join(data, 'test.jsonl'), ['ok']);
    const out = path.join(work, 'straddle-out');
    const journal = path.join(out, '.progress-train.jsonl');

    // Run 1: every offset fails (a retry, then the row's error); the last row's 401 stops the run.
    chat.fatal = true;
    const first = await rpoAsync(openai(data, out, ['--split', 'train']), { env: ENV });
    expectNoSecrets(first, out);
    expect(first.code, first.stderr).toBe(1);
    expect(first.stderr).toMatch(/rpo: HTTP 401 from .*: x+Incorrect API key provided: \*\*\* — the server refused the credentials/);
    expect(first.stderr).toMatch(/retry: .*:train:0 in 0\.00 s: HTTP 503 .*: e{150}\*\*\*/);
    expect(first.stderr).toMatch(/warning: .*:train:0 failed: HTTP 400 .*: e{150}\*\*\*/);
    const lines = readFileSync(journal, 'utf8').trim().split('\n').slice(1).map((l) => JSON.parse(l) as { error?: string });
    expect(lines).toHaveLength(OFFSETS.length);
    expect(lines.every((l) => typeof l.error === 'string' && l.error.startsWith('HTTP 400'))).toBe(true);

    // Run 2: the same command resumes; the failed rows fail again; the split is written.
    chat.fatal = false;
    const second = await rpoAsync(openai(data, out, ['--split', 'train']), { env: ENV });
    expectNoSecrets(second, out);
    expect(second.code, second.stderr).toBe(0);
    expect(existsSync(journal)).toBe(false);
    const s = sidecar(out).splits.train!;
    expect(s.failed).toBe(OFFSETS.length);
    expect(s.kept).toBe(1);
    expect(s.failures.every((f) => /^HTTP 400 from .*: e{150,}/.test(f.error))).toBe(true);
    expect((await readAllRecords(path.join(out, 'train.jsonl'))).map((r) => r.data.rationale)).toEqual(['The response above is right about fatal.']);
  });

  it('a server that echoes the key (whole, cut by itself) and the hub token in completions: the rationales are written masked', async () => {
    const data = path.join(work, 'echo-data');
    writeJsonl(path.join(data, 'train.jsonl'), ['echo-whole', 'echo-prefix', 'echo-suffix', 'echo-hf', 'fatal']);
    writeJsonl(path.join(data, 'test.jsonl'), ['echo-whole']);
    const out = path.join(work, 'echo-out');

    chat.fatal = true;
    const first = await rpoAsync(openai(data, out), { env: ENV });
    expectNoSecrets(first, out);
    expect(first.code, first.stderr).toBe(1);
    const journaled = readFileSync(path.join(out, '.progress-train.jsonl'), 'utf8');
    expect(journaled).toContain('"text":"The response above is right. ***"');

    chat.fatal = false;
    const second = await rpoAsync(openai(data, out), { env: ENV });
    expectNoSecrets(second, out);
    expect(second.code, second.stderr).toBe(0);
    expect((await readAllRecords(path.join(out, 'train.jsonl'))).map((r) => r.data.rationale)).toEqual([
      'The response above is right. ***',
      'The response above is right; key ***',
      '*** the response above is right',
      'The response above is right; hub ***',
      'The response above is right about fatal.',
    ]);
    expect((await readAllRecords(path.join(out, 'test.jsonl'))).map((r) => r.data.rationale)).toEqual(['The response above is right. ***']);
  });

  it('a hub that echoes the token (a listing that is not JSON, an error body): the error on stderr is masked', async () => {
    const state = { status: 200, body: '' };
    const hub = http.createServer((_req, res) => res.writeHead(state.status, { 'content-type': 'text/plain' }).end(state.body));
    await new Promise<void>((resolve) => hub.listen(0, '127.0.0.1', () => resolve()));
    const endpoint = `http://127.0.0.1:${(hub.address() as AddressInfo).port}`;
    const env = { ...ENV, HF_ENDPOINT: endpoint, HF_HUB_CACHE: path.join(work, 'hf-cache'), HF_HUB_OFFLINE: '' };
    const out = path.join(work, 'hub-out');
    try {
      // V8's JSON.parse error quotes the first characters of the body: the start of the token.
      state.body = `${HF} was not accepted by the proxy`;
      const notJson = await rpoAsync(openai('acme/pairs', out), { env });
      expectNoSecrets(notJson, out);
      expect(notJson.code).toBe(1);
      expect(notJson.stderr).toMatch(/listing of dataset repository acme\/pairs is not JSON/);
      for (const at of [150, 180, 190, 200]) {
        state.status = 403;
        state.body = JSON.stringify({ error: `${'g'.repeat(at)}${HF} has no access` });
        const refused = await rpoAsync(openai('acme/pairs', out), { env });
        expectNoSecrets(refused, out);
        expect(refused.code).toBe(1);
        expect(refused.stderr).toMatch(/dataset repository acme\/pairs was refused \(HTTP 403\).*the hub says: g+/);
      }
    } finally {
      await new Promise<void>((done) => {
        hub.closeAllConnections();
        hub.close(() => done());
      });
    }
  });
});

// ---- --out and the dataset; --overwrite ------------------------------------------------------------

describe('--out never touches the dataset, and --overwrite removes only what rpo wrote', () => {
  const rows = (n: number, tag: string) =>
    Array.from({ length: n }, (_, i) => ({ prompt: `Question [${tag} ${i}]?`, chosen: `good ${i}`, rejected: `bad ${i}`, rationale: `theirs ${i}` }));
  let src: string;
  let before: Record<string, string>;

  beforeAll(() => {
    // The user's dataset: train/test.parquet, the very names rpo writes.
    src = path.join(work, 'user-data');
    mkdirSync(src, { recursive: true });
    writeFileSync(path.join(src, 'train.parquet'), encodeRows(rows(40, 'ok'), 'parquet'));
    writeFileSync(path.join(src, 'test.parquet'), encodeRows(rows(8, 'ok'), 'parquet'));
    writeFileSync(path.join(src, 'README.txt'), 'my dataset\n');
    symlinkSync(src, path.join(work, 'user-data-alias'));
    before = snapshot(src);
  });

  it('--out equal to, inside or around the dataset (absolute, relative, trailing slash, ../, a symlink) is a usage error naming both', async () => {
    // Relative paths are relative to the CLI's working directory (the repository: tsx lives there).
    const rel = (p: string): string => path.relative(REPO, p);
    const cases: { dataset: string; out: string; says: RegExp }[] = [
      { dataset: src, out: src, says: /--out .*user-data is the dataset .*user-data/ },
      { dataset: rel(src), out: `${rel(src)}/`, says: /--out \.\.\/.*user-data\/ \(\/.*user-data\) is the dataset \.\.\/.*user-data \(\/.*user-data\)/ },
      { dataset: `./${rel(src)}`, out: `${rel(work)}/not-yet/../user-data`, says: /is the dataset/ },
      { dataset: src, out: path.join(work, 'user-data-alias'), says: /--out .*user-data-alias \(.*user-data\) is the dataset/ },
      { dataset: path.join(work, 'user-data-alias'), out: `${src}/`, says: /is the dataset .*user-data-alias \(.*user-data\)/ },
      { dataset: src, out: path.join(src, 'rationales'), says: /--out .*user-data\/rationales is inside the dataset .*user-data/ },
      { dataset: src, out: path.join(work, 'user-data-alias', 'new', 'deeper'), says: /is inside the dataset/ },
      { dataset: src, out: work, says: /the dataset .*user-data is inside --out .*rpo-rationales-safety-/ },
      { dataset: path.join(src, 'train.parquet'), out: src, says: /the dataset .*user-data\/train\.parquet is inside --out .*user-data/ },
    ];
    for (const c of cases) {
      // The worst case: --overwrite, and a limit that would leave two rows behind.
      const r = await rpoAsync(openai(c.dataset, c.out, ['--overwrite', '--limit', '2', '--format', 'parquet']), { env: ENV });
      expect(snapshot(src), `${c.dataset} → ${c.out}: ${r.stderr}`).toEqual(before);
      expect(r.code, `${c.dataset} → ${c.out}: ${r.stderr}`).toBe(2);
      expect(r.stderr, `${c.dataset} → ${c.out}`).toMatch(c.says);
      expect(r.stderr).toMatch(/choose an --out outside the dataset/);
    }
    expect(existsSync(path.join(src, 'rationales'))).toBe(false);
    expect((await readAllRecords(path.join(src, 'train.parquet'))).length).toBe(40);
  });

  it('--overwrite keeps a user file and refuses a foreign data file, leaving both intact', async () => {
    const out = path.join(work, 'mixed-out');
    mkdirSync(out, { recursive: true });
    writeFileSync(path.join(out, 'notes.txt'), 'my notes\n');
    writeFileSync(path.join(out, 'data.parquet'), encodeRows(rows(3, 'x'), 'parquet'));
    const mine = snapshot(out);
    const r = await rpoAsync(openai(src, out, ['--overwrite']), { env: ENV });
    expect(snapshot(out)).toEqual(mine);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/--out .*mixed-out holds files rpo did not write \(data\.parquet\).*not even with --overwrite/);
  });

  it('--overwrite refuses files at rpo\'s names that rpo did not write (train.parquet, rationales.json, a journal), leaving them intact', async () => {
    for (const [name, content] of [
      ['train.parquet', encodeRows(rows(30, 'theirs'), 'parquet')],
      ['rationales.json', Buffer.from('{"my": "own notes"}\n')],
      ['.progress-train.jsonl', Buffer.from('{"my": "own log"}\n')],
    ] as const) {
      const out = path.join(work, `foreign-${name}`);
      mkdirSync(out, { recursive: true });
      writeFileSync(path.join(out, name), content);
      writeFileSync(path.join(out, 'notes.txt'), 'my notes\n');
      const mine = snapshot(out);
      const r = await rpoAsync(openai(src, out, ['--overwrite', '--limit', '2', '--format', 'parquet']), { env: ENV });
      expect(snapshot(out), `${name}: ${r.stderr}`).toEqual(mine);
      expect(r.code, `${name}: ${r.stderr}`).toBe(2);
      expect(r.stderr, name).toContain(`holds files rpo did not write (${name})`);
    }
  });

  it('--overwrite removes rpo\'s own earlier output and journal, and keeps (and names) the other files', async () => {
    const out = path.join(work, 'again-out');
    const first = await rpoAsync(openai(src, out, ['--limit', '3']), { env: ENV });
    expect(first.code, first.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['rationales.json', 'test.jsonl', 'train.jsonl']);
    writeFileSync(path.join(out, 'notes.txt'), 'my notes\n');
    mkdirSync(path.join(out, 'scripts'));
    writeFileSync(path.join(out, 'scripts', 'run.sh'), 'echo hi\n');

    // Other arguments without --overwrite are refused; with it, rpo's files are replaced.
    const refused = await rpoAsync(openai(src, out, ['--limit', '2']), { env: ENV });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/made with other arguments \(they differ in: limit\)/);
    const again = await rpoAsync(openai(src, out, ['--limit', '2', '--overwrite']), { env: ENV });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/--overwrite: removed rationales\.json, test\.jsonl, train\.jsonl from .*again-out; kept 2 other file\(s\) rpo did not write: notes\.txt, scripts\/run\.sh/);
    expect(readFileSync(path.join(out, 'notes.txt'), 'utf8')).toBe('my notes\n');
    expect(readFileSync(path.join(out, 'scripts', 'run.sh'), 'utf8')).toBe('echo hi\n');
    expect(sidecar(out).splits.train!.rows).toBe(2);
    expect(sidecar(out).splits.train!.sha256).toBe(createHash('sha256').update(readFileSync(path.join(out, 'train.jsonl'))).digest('hex'));
    expect(snapshot(src)).toEqual(before);
  });
});
