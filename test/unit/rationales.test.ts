// `rpo rationales` without the engine: prompt templates, the filters and the "argues for the
// rejected response" check, the journal (resume, torn lines, argument changes), the output files
// (read back with rpo's own readers and split rules), and the OpenAI-compatible client against a
// real node:http server on 127.0.0.1 speaking chat completions (retries, backoff, Retry-After,
// timeouts, resets, malformed bodies, 4xx, concurrency, the API key).
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { readAllRecords } from '../../lib/data/read/index.js';
import { loadPreferenceSplit, splitsByFileName } from '../../lib/data/sources/index.js';
import { filterReason, prefersRejected } from '../../lib/rationales/filters.js';
import { Journal, ResumeMismatchError, canonicalJson, differingKeys, hashArgs } from '../../lib/rationales/journal.js';
import { RationalesUsageError, dataDigest, parseGeneratorSpec, rpoVersion } from '../../lib/rationales/index.js';
import {
  OpenAIError,
  OpenAIGenerator,
  backoffDelay,
  chatCompletionsUrl,
  parseCompletion,
  redact,
  retryAfterMs,
  type OpenAIOptions,
} from '../../lib/rationales/openai.js';
import { SIDECAR, encodeRows, foreignDataFiles, isOurFile, removeOurFiles, sha256Hex, surveyOutDir, writeSplit } from '../../lib/rationales/output.js';
import { BUILTIN_TEMPLATES, DETAILED_TEMPLATE, GENERAL_TEMPLATE, TemplateError, compileTemplate, loadTemplate } from '../../lib/rationales/prompts.js';
import { describeRows } from '../../lib/rationales/progress.js';
import { toOptions, type RationalesArgs } from '../../lib/commands/rationales.js';
import type { GeneratorOutcome } from '../../lib/rationales/generator.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'rpo-rationales-unit-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const PAIR = { prompt: 'What is 2+2?', chosen: 'It is 4.', rejected: 'It is <5> & more.' };

describe('templates', () => {
  it('general: the prompt, the preferred response above, the rejected below, and a short why', () => {
    const { template, unused } = loadTemplate('general');
    expect(unused).toEqual([]);
    expect(template.style).toBe('general');
    expect(template.source).toBe(GENERAL_TEMPLATE);
    const text = template.render(PAIR);
    const p = text.indexOf('Prompt:\nWhat is 2+2?');
    const a = text.indexOf('Response above (the preferred one):\nIt is 4.');
    const b = text.indexOf('Response below (the rejected one):\nIt is <5> & more.');
    expect(p).toBeGreaterThan(0);
    expect(a).toBeGreaterThan(p);
    expect(b).toBeGreaterThan(a);
    expect(text).toContain('preferred the response above to the response below');
    expect(text).toMatch(/two or three sentences/);
    expect(text).toMatch(/do not argue for the response below/);
    expect(text).not.toContain('{{');
    expect(text).not.toContain('&amp;'); // no HTML escaping of the data
  });

  it('detailed: asks for specific points from both responses', () => {
    const { template } = loadTemplate('detailed');
    expect(template.source).toBe(DETAILED_TEMPLATE);
    const text = template.render(PAIR);
    expect(text).toContain('Response above (the preferred one):\nIt is 4.');
    expect(text).toContain('Response below (the rejected one):\nIt is <5> & more.');
    expect(text).toMatch(/what the response below gets wrong/);
    expect(text).toMatch(/at most 150 words/);
    expect(text).not.toBe(loadTemplate('general').template.render(PAIR));
    expect(Object.keys(BUILTIN_TEMPLATES).sort()).toEqual(['detailed', 'general']);
  });

  it('a user template file: Jinja with prompt, chosen, rejected (loops, filters, conditionals work)', () => {
    const file = path.join(tmp, 'mine.jinja');
    writeFileSync(file, 'Q={{ prompt | upper }}\n{% if chosen %}WIN={{ chosen }}{% endif %}\nLOSE={{ rejected }}\n{% for w in ["a", "b"] %}{{ w }}{% endfor %}');
    const { template, unused } = loadTemplate(file);
    expect(unused).toEqual([]);
    expect(template.style).toBe(file);
    // Blocks trim the newline after them (trim_blocks, as transformers renders chat templates).
    expect(template.render(PAIR)).toBe('Q=WHAT IS 2+2?\nWIN=It is 4.LOSE=It is <5> & more.\nab');
  });

  it('refuses templates that cannot ask why (no chosen / rejected), bad syntax, missing files; notes an unused prompt', () => {
    expect(() => compileTemplate('Why is {{ chosen }} good?', 'x.jinja')).toThrow(/never shows \{\{ rejected \}\}/);
    expect(() => compileTemplate('nothing', 'x.jinja')).toThrow(/\{\{ chosen \}\} or \{\{ rejected \}\}/);
    expect(() => compileTemplate('{% if %}', 'bad.jinja')).toThrow(TemplateError);
    expect(() => loadTemplate(path.join(tmp, 'missing.jinja'))).toThrow(/not a built-in style \(general, detailed\) and no such template file/);
    expect(compileTemplate('{{ chosen }} vs {{ rejected }}', 'y').unused).toEqual(['prompt']);
  });
});

describe('filters', () => {
  const opts = { maxChars: 40, keepTruncated: false };
  it('empty, truncated, too long, prefers rejected, kept', () => {
    expect(filterReason('', 'stop', opts)).toBe('empty');
    expect(filterReason('The response above is correct.', 'length', opts)).toBe('truncated');
    expect(filterReason('The response above is correct.', 'length', { ...opts, keepTruncated: true })).toBeNull();
    expect(filterReason('x'.repeat(41), 'stop', opts)).toBe('too_long');
    expect(filterReason('x'.repeat(40), 'stop', opts)).toBeNull();
    expect(filterReason('The response below is better.', 'stop', opts)).toBe('prefers_rejected');
    expect(filterReason('The response above is better.', 'stop', opts)).toBeNull();
  });

  it('flags rationales that argue for the rejected response', () => {
    for (const t of [
      'The response below is better because it is shorter.',
      'Overall, the response below is clearly more accurate.',
      'I think the second response is superior.',
      'Response B is more helpful than response A.',
      'The rejected response should be preferred here.',
      'Honestly I would prefer the response below.',
      'The response above is worse: it miscounts.',
      'The first response is less accurate than the other.',
      'The latter is the better one.',
      'The response above is incorrect, and the one below gets it right.',
      'Good start. But the other response is better.',
      'Although it is long, the response below is more complete.',
    ]) {
      expect(prefersRejected(t), t).toBe(true);
    }
  });

  it('does not flag rationales that explain the given preference', () => {
    for (const t of [
      'The response above is better because it adds the numbers correctly; the response below is off by one.',
      'The response above is correct (4); the response below says 5.',
      'The response below is not better: it is wrong.',
      'While the response below is more complete, the response above is correct, which matters more.',
      'One might not prefer the response below, since it is wrong.',
      'The first response is more accurate than the second response.',
      'Unlike the response below, which is wrong, the response above is right.',
      'The response above follows the instruction; the one below ignores it.',
    ]) {
      expect(prefersRejected(t), t).toBe(false);
    }
  });
});

describe('journal', () => {
  const header = (hash: string, seed = 0) => ({ split: 'train', hash, args: { seed, model: 'm' } });
  const ok = (i: number): GeneratorOutcome => ({ i, id: `d:train:${i}`, text: `r${i}`, finish: 'stop', tokens: 3 });

  it('appends fsync\'d lines and reads them back on reopen (the last line of a row wins)', () => {
    const file = path.join(tmp, '.progress-a.jsonl');
    const j = Journal.open(file, header('h1'));
    expect(j.previous.size).toBe(0);
    j.append([ok(0), { i: 1, id: 'd:train:1', error: 'HTTP 500' }]);
    j.append([ok(2)]);
    j.close();
    const k = Journal.open(file, header('h1'));
    expect([...k.previous.keys()].sort()).toEqual([0, 1, 2]);
    k.append([ok(1)]);
    k.close();
    const l = Journal.open(file, header('h1'));
    expect(l.previous.get(1)).toEqual(ok(1));
    l.close();
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(5);
  });

  it('drops a line cut short by a kill and appends after the last whole line', () => {
    const file = path.join(tmp, '.progress-b.jsonl');
    const j = Journal.open(file, header('h1'));
    j.append([ok(0), ok(1)]);
    j.close();
    appendFileSync(file, '{"i":2,"id":"d:train:2","te');
    const k = Journal.open(file, header('h1'));
    expect(k.previous.size).toBe(2);
    k.append([ok(2)]);
    k.close();
    const lines = readFileSync(file, 'utf8').split('\n');
    expect(lines.at(-1)).toBe('');
    expect(lines.slice(1, -1).map((l) => JSON.parse(l).i)).toEqual([0, 1, 2]);
  });

  it('refuses to resume under other arguments, naming what differs; an empty journal just starts over', () => {
    const file = path.join(tmp, '.progress-c.jsonl');
    Journal.open(file, header(hashArgs({ seed: 0 }), 0)).close();
    // nothing journaled yet: other arguments are fine
    const j = Journal.open(file, header(hashArgs({ seed: 1 }), 1));
    j.append([ok(0)]);
    j.close();
    expect(() => Journal.open(file, header(hashArgs({ seed: 2 }), 2))).toThrow(ResumeMismatchError);
    expect(() => Journal.check(file, header(hashArgs({ seed: 2 }), 2))).toThrow(/different arguments \(they differ in: seed\)/);
    expect(() => Journal.check(file, header(hashArgs({ seed: 1 }), 1))).not.toThrow();
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(2);
  });

  it('hashes are canonical (key order does not matter), differences are named', () => {
    expect(canonicalJson({ b: 1, a: [1, { d: 2, c: 3 }] })).toBe('{"a":[1,{"c":3,"d":2}],"b":1}');
    expect(hashArgs({ a: 1, b: 2 })).toBe(hashArgs({ b: 2, a: 1 }));
    expect(differingKeys({ a: 1, b: 2, c: 3 }, { a: 1, b: 3, d: 4 })).toEqual(['b', 'c', 'd']);
    const rows = [{ id: 'x', ...PAIR }];
    expect(dataDigest(rows)).toBe(dataDigest([{ id: 'other id', ...PAIR }]));
    expect(dataDigest(rows)).not.toBe(dataDigest([{ id: 'x', ...PAIR, chosen: 'It is four.' }]));
  });
});

describe('output files', () => {
  const rows = [
    { prompt: 'p1', chosen: 'c1', rejected: 'r1', rationale: 'because 1 — ünïcødé ✓' },
    { prompt: 'p2\nline', chosen: 'c2', rejected: 'r2', rationale: 'because "2"' },
  ];

  it('parquet and jsonl in the orcaratspec schema, read back by rpo\'s readers', async () => {
    const dir = path.join(tmp, 'out-files');
    mkdirSync(dir);
    writeSplit(path.join(dir, 'train.parquet'), rows, 'parquet');
    writeSplit(path.join(dir, 'test.jsonl'), rows.slice(0, 1), 'jsonl');
    const pq = await readAllRecords(path.join(dir, 'train.parquet'));
    expect(pq.map((r) => r.data)).toEqual(rows);
    expect(Object.keys(pq[0]!.data)).toEqual(['prompt', 'chosen', 'rejected', 'rationale']);
    const jl = await readAllRecords(path.join(dir, 'test.jsonl'));
    expect(jl.map((r) => r.data)).toEqual(rows.slice(0, 1));
    // an empty split is a valid, empty file
    writeSplit(path.join(dir, 'empty.parquet'), [], 'parquet');
    expect(await readAllRecords(path.join(dir, 'empty.parquet'))).toEqual([]);
    rmSync(path.join(dir, 'empty.parquet'));
    expect(Buffer.from(encodeRows(rows, 'parquet')).equals(Buffer.from(encodeRows(rows, 'parquet')))).toBe(true);
  });

  it('the directory loader splits the output by file name and ignores the sidecar and journals', async () => {
    const dir = path.join(tmp, 'out-loader');
    mkdirSync(dir);
    writeSplit(path.join(dir, 'train.parquet'), rows, 'parquet');
    writeSplit(path.join(dir, 'test.parquet'), rows.slice(1), 'parquet');
    writeFileSync(path.join(dir, SIDECAR), JSON.stringify({ splits: {} }));
    writeFileSync(path.join(dir, '.progress-train.jsonl'), '{}\n');
    expect(splitsByFileName(['rationales.json', 'test.parquet', 'train.parquet'])).toEqual(
      new Map([
        ['train', ['train.parquet']],
        ['test', ['test.parquet']],
      ]),
    );
    const train = await loadPreferenceSplit(dir, 'train');
    const test = await loadPreferenceSplit(dir, 'test');
    expect(train.map((r) => r.rationale)).toEqual(rows.map((r) => r.rationale));
    expect(test.map((r) => r.prompt)).toEqual(['p2\nline']);
  });

  it('knows its own files by content, not by name; finds foreign files; --overwrite removes only its own', () => {
    const dir = path.join(tmp, 'out-mixed');
    mkdirSync(path.join(dir, 'sub'), { recursive: true });
    // rpo's: a sidecar recording train.parquet with its sha256, the file itself, a journal, a temp file.
    const bytes = encodeRows(rows, 'parquet');
    writeFileSync(path.join(dir, 'train.parquet'), bytes);
    const record = { file: 'train.parquet', rows: 2, kept: 2, filtered: {}, failed: 0, generated_tokens: 0, failures: [], filtered_ids: {}, generation_hash: 'h', finished_at: 't', sha256: sha256Hex(bytes) };
    writeFileSync(path.join(dir, SIDECAR), JSON.stringify({ rpo_version: '0.1.0', args_hash: 'a', args: {}, splits: { train: record } }));
    Journal.open(path.join(dir, '.progress-test.jsonl'), { split: 'test', hash: 'h', args: {} }).close();
    writeFileSync(path.join(dir, '.train.parquet.tmp-12-abc'), 'x');
    // not rpo's: an unrecorded split-named file, other data, notes.
    for (const f of ['test.jsonl', 'notes.txt', 'other.jsonl', 'sub/x.parquet']) writeFileSync(path.join(dir, f), 'x');
    expect(isOurFile('.train.parquet.tmp-12-abc')).toBe(true);
    expect(isOurFile('valid.parquet')).toBe(false);
    const survey = surveyOutDir(dir);
    expect(survey.ours).toEqual(['.progress-test.jsonl', '.train.parquet.tmp-12-abc', SIDECAR, 'train.parquet']);
    expect(survey.foreign).toEqual(['other.jsonl', 'sub/x.parquet', 'test.jsonl']);
    expect(survey.others).toEqual(['notes.txt']);
    expect(foreignDataFiles(dir)).toEqual(['other.jsonl', 'sub/x.parquet', 'test.jsonl']);

    // The same names with other content are not rpo's.
    const fake = path.join(tmp, 'out-fake');
    mkdirSync(fake);
    writeFileSync(path.join(fake, 'train.parquet'), encodeRows(rows.slice(1), 'parquet'));
    writeFileSync(path.join(fake, '.progress-train.jsonl'), '{"mine": true}\n');
    writeFileSync(path.join(fake, SIDECAR), JSON.stringify({ my: 'notes' }));
    expect(surveyOutDir(fake)).toMatchObject({ ours: [], foreign: ['.progress-train.jsonl', SIDECAR, 'train.parquet'] });
    // A recorded file whose bytes changed since is not rpo's any more.
    writeFileSync(path.join(fake, SIDECAR), JSON.stringify({ rpo_version: '0.1.0', args_hash: 'a', args: {}, splits: { train: record } }));
    expect(surveyOutDir(fake)).toMatchObject({ ours: [SIDECAR], foreign: ['.progress-train.jsonl', 'train.parquet'] });

    expect(removeOurFiles(dir)).toEqual(['.progress-test.jsonl', '.train.parquet.tmp-12-abc', SIDECAR, 'train.parquet']);
    expect(readdirSync(dir).sort()).toEqual(['notes.txt', 'other.jsonl', 'sub', 'test.jsonl']);
    expect(removeOurFiles(fake)).toEqual([SIDECAR]);
    expect(readdirSync(fake).sort()).toEqual(['.progress-train.jsonl', 'train.parquet']);
  });
});

describe('arguments', () => {
  const base: RationalesArgs = {
    dataset: 'd',
    out: 'o',
    generator: 'local:m',
    style: 'general',
    split: 'train, test',
    format: 'parquet',
    maxNewTokens: 8,
    temperature: 0.7,
    topP: 1,
    topK: 0,
    seed: 0,
    maxRationaleChars: 100,
    keepTruncated: false,
    batchSize: 2,
    device: 'auto',
    dtype: 'auto',
    concurrency: 2,
    timeout: 1.5,
    retries: 1,
    backoffMs: 10,
    overwrite: false,
  };

  it('generator specs', () => {
    expect(parseGeneratorSpec('local:./m')).toEqual({ kind: 'local', model: './m' });
    expect(parseGeneratorSpec('local:org/name')).toEqual({ kind: 'local', model: 'org/name' });
    expect(parseGeneratorSpec('openai:http://127.0.0.1:8000')).toEqual({ kind: 'openai', baseUrl: 'http://127.0.0.1:8000' });
    expect(() => parseGeneratorSpec('vllm:x')).toThrow(RationalesUsageError);
    expect(() => parseGeneratorSpec('openai:127.0.0.1:8000')).toThrow(/must start with http/);
    expect(chatCompletionsUrl('http://h:1')).toBe('http://h:1/v1/chat/completions');
    expect(chatCompletionsUrl('http://h:1/v1/')).toBe('http://h:1/v1/chat/completions');
    expect(chatCompletionsUrl('https://h/proxy')).toBe('https://h/proxy/v1/chat/completions');
  });

  it('CLI arguments to options', () => {
    const o = toOptions({ ...base, columns: 'prompt=question, chosen=good,rejected=bad', apiKeyEnv: 'MY_KEY' });
    expect(o.splits).toEqual(['train', 'test']);
    expect(o.columns).toEqual({ prompt: 'question', chosen: 'good', rejected: 'bad' });
    expect(o.timeoutMs).toBe(1500);
    expect(o.apiKeyEnv).toBe('MY_KEY');
    expect(o.apiKeyEnvExplicit).toBe(true);
    expect(toOptions(base).apiKeyEnv).toBe('OPENAI_API_KEY');
    expect(() => toOptions({ ...base, columns: 'prompt:question' })).toThrow(/field=column/);
    expect(() => toOptions({ ...base, dtype: 'int8' })).toThrow(/--dtype/);
    expect(rpoVersion()).toBe(JSON.parse(readFileSync(path.resolve('package.json'), 'utf8')).version);
  });

  it('progress line: rows, rows/s, tok/s, counts, ETA', () => {
    const line = describeRows('train', { done: 30, total: 50, resumed: 10, sessionRows: 20, sessionTokens: 800, counts: { kept: 25, filtered: 3, failed: 2 } }, 10);
    expect(line).toBe('train 30/50 rows (10 from the journal) | 2.00 rows/s | 80 tok/s | kept 25, filtered 3, failed 2 | ETA 10s');
  });
});

// ---- the OpenAI-compatible client against a real local server ----------------------------------

interface Seen {
  at: number;
  headers: http.IncomingHttpHeaders;
  body: Record<string, unknown>;
  url: string;
}

type Behave = (req: Seen, count: number, res: http.ServerResponse) => void;

interface ChatServer {
  base: string;
  seen: Seen[];
  behave: Behave;
  maxInFlight: number;
  close(): Promise<void>;
}

function reply(res: http.ServerResponse, content: string | null, finish = 'stop', extra: Record<string, unknown> = {}): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(
    JSON.stringify({
      id: 'c',
      object: 'chat.completion',
      choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: finish }],
      usage: { prompt_tokens: 10, completion_tokens: 7, total_tokens: 17 },
      ...extra,
    }),
  );
}

async function startChatServer(): Promise<ChatServer> {
  let inFlight = 0;
  const state: ChatServer = {
    base: '',
    seen: [],
    behave: (_s, _n, res) => reply(res, 'ok'),
    maxInFlight: 0,
    close: async () => undefined,
  };
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (d: Buffer) => (data += d.toString()));
    req.on('end', () => {
      inFlight++;
      state.maxInFlight = Math.max(state.maxInFlight, inFlight);
      res.on('close', () => inFlight--);
      const seen: Seen = { at: Date.now(), headers: req.headers, body: JSON.parse(data || '{}') as Record<string, unknown>, url: req.url ?? '' };
      state.seen.push(seen);
      state.behave(seen, state.seen.length, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}

describe('OpenAI-compatible client', () => {
  let srv: ChatServer;
  const KEY = 'sk-test-SECRET-0123456789';
  const options = (o: Partial<OpenAIOptions> = {}): OpenAIOptions => ({
    baseUrl: srv.base,
    model: 'judge-1',
    apiKey: KEY,
    concurrency: 2,
    timeoutMs: 2000,
    retries: 2,
    backoffMs: 20,
    maxNewTokens: 64,
    temperature: 0.5,
    topP: 0.9,
    topK: 0,
    seed: 7,
    ...o,
  });
  const signal = new AbortController().signal;

  beforeAll(async () => {
    srv = await startChatServer();
  });
  afterEach(() => {
    srv.seen.length = 0;
    srv.maxInFlight = 0;
  });
  afterAll(() => srv.close());

  it('success: POST {base}/v1/chat/completions with the model, the message, sampling, seed and the key as a Bearer header', async () => {
    srv.behave = (_s, _n, res) => reply(res, '  The response above is right.  ');
    const g = new OpenAIGenerator(options());
    const c = await g.complete('row-0', 'Why?', 9, signal);
    expect(c).toEqual({ text: '  The response above is right.  ', finish: 'stop', tokens: 7 });
    expect(srv.seen).toHaveLength(1);
    const s = srv.seen[0]!;
    expect(s.url).toBe('/v1/chat/completions');
    expect(s.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(s.headers['content-type']).toBe('application/json');
    expect(s.body).toMatchObject({ model: 'judge-1', messages: [{ role: 'user', content: 'Why?' }], max_tokens: 64, temperature: 0.5, top_p: 0.9, seed: 9, n: 1, stream: false });
    expect(s.body.top_k).toBeUndefined();
    // no key: no Authorization header at all
    await new OpenAIGenerator(options({ apiKey: undefined, topK: 5 })).complete('row-0', 'Why?', 1, signal);
    expect(srv.seen[1]!.headers.authorization).toBeUndefined();
    expect(srv.seen[1]!.body.top_k).toBe(5);
  });

  it('finish_reason "length" is reported; null content is an empty text', async () => {
    srv.behave = (_s, n, res) => (n === 1 ? reply(res, 'cut', 'length') : reply(res, null));
    const g = new OpenAIGenerator(options());
    expect((await g.complete('r', 'x', 0, signal)).finish).toBe('length');
    expect((await g.complete('r', 'x', 0, signal)).text).toBe('');
  });

  it('429 then success: retried after the server\'s Retry-After', async () => {
    srv.behave = (_s, n, res) => {
      if (n === 1) {
        res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'Rate limit reached' } }));
      } else reply(res, 'fine');
    };
    const retries: string[] = [];
    const g = new OpenAIGenerator(options({ onRetry: (id, m, d) => retries.push(`${id}|${m}|${d}`) }));
    expect((await g.complete('row-3', 'x', 0, signal)).text).toBe('fine');
    expect(srv.seen).toHaveLength(2);
    expect(srv.seen[1]!.at - srv.seen[0]!.at).toBeGreaterThanOrEqual(950);
    expect(retries).toHaveLength(1);
    expect(retries[0]).toMatch(/^row-3\|HTTP 429 from .*: Rate limit reached\|1000$/);
  });

  it('500 then success, and a connection reset then success: exponential backoff with jitter', async () => {
    srv.behave = (_s, n, res) => {
      if (n === 1) {
        res.writeHead(500);
        res.end('internal error');
      } else if (n === 2) res.socket?.destroy();
      else reply(res, 'fine');
    };
    const delays: number[] = [];
    const messages: string[] = [];
    const g = new OpenAIGenerator(options({ backoffMs: 40, onRetry: (_id, m, d) => (delays.push(d), messages.push(m)) }));
    expect((await g.complete('r', 'x', 0, signal)).text).toBe('fine');
    expect(srv.seen).toHaveLength(3);
    expect(messages[0]).toMatch(/HTTP 500 .*internal error/);
    expect(messages[1]).toMatch(/connection error/);
    expect(delays[0]).toBeGreaterThanOrEqual(20);
    expect(delays[0]).toBeLessThan(40);
    expect(delays[1]).toBeGreaterThanOrEqual(40);
    expect(delays[1]).toBeLessThan(80);
  });

  it('a server that never answers: each attempt times out, then the row fails', async () => {
    srv.behave = () => undefined; // hold the request open
    const g = new OpenAIGenerator(options({ timeoutMs: 150, retries: 1, backoffMs: 10 }));
    const t0 = Date.now();
    const err = await g.complete('r', 'x', 0, signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAIError);
    expect((err as OpenAIError).kind).toBe('row');
    expect((err as OpenAIError).message).toMatch(/no answer within 0\.1 s \(timeout\) \(gave up after 2 attempts\)/);
    expect(srv.seen).toHaveLength(2);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
  });

  it('malformed bodies are clear row errors, not retried', async () => {
    const cases: [string, RegExp][] = [
      ['<html>Bad gateway</html>', /malformed response from .*: the body is not JSON \(body: <html>Bad gateway<\/html>\)/],
      ['[1,2]', /the body is not a JSON object/],
      ['{"object":"chat.completion"}', /no "choices" array/],
      ['{"choices":[]}', /"choices" is empty/],
      ['{"choices":[{"finish_reason":"stop"}]}', /choices\[0\]\.message is missing/],
      ['{"choices":[{"message":{"content":42}}]}', /choices\[0\]\.message\.content is not a string/],
    ];
    for (const [body, re] of cases) {
      srv.seen.length = 0;
      srv.behave = (_s, _n, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(body);
      };
      const err = await new OpenAIGenerator(options()).complete('r', 'x', 0, signal).catch((e: unknown) => e);
      expect((err as OpenAIError).kind, body).toBe('row');
      expect((err as OpenAIError).message, body).toMatch(re);
      expect(srv.seen, body).toHaveLength(1);
    }
    expect(() => parseCompletion('{"choices":[{"message":{"content":"a"},"finish_reason":"length"}]}', 'u')).not.toThrow();
  });

  it('4xx: 400 fails the row with the server\'s message (no retry); 401 stops the run; the key is redacted', async () => {
    srv.behave = (_s, _n, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: "This model's maximum context length is 8 tokens" } }));
    };
    const bad = await new OpenAIGenerator(options()).complete('r', 'x', 0, signal).then(
      () => { throw new Error('expected an OpenAIError'); },
      (e: unknown) => e as OpenAIError,
    );
    expect(bad.kind).toBe('row');
    expect(bad.message).toMatch(/HTTP 400 from .*: This model's maximum context length is 8 tokens/);
    expect(srv.seen).toHaveLength(1);

    srv.behave = (s, _n, res) => {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `Incorrect API key provided: ${String(s.headers.authorization).slice(7)}` } }));
    };
    const denied = await new OpenAIGenerator(options()).complete('r', 'x', 0, signal).then(
      () => { throw new Error('expected an OpenAIError'); },
      (e: unknown) => e as OpenAIError,
    );
    expect(denied.kind).toBe('fatal');
    expect(denied.message).toMatch(/HTTP 401 .*Incorrect API key provided: \*\*\* — the server refused the credentials \(check the API key\)/);
    expect(denied.message).not.toContain(KEY);
    expect(redact(`a ${KEY} b ${KEY}`, KEY)).toBe('a *** b ***');
  });

  it('run(): every row once, at most `concurrency` in flight, done rows skipped, failures emitted, fatal errors stop it', async () => {
    srv.behave = (s, _n, res) => {
      const content = (s.body.messages as { content: string }[])[0]!.content;
      setTimeout(() => {
        if (content === 'row 3') {
          res.writeHead(422);
          res.end('{"error":{"message":"unprocessable"}}');
        } else reply(res, `because ${content}`);
      }, 30);
    };
    const rows = Array.from({ length: 8 }, (_, i) => ({ i, id: `d:train:${i}`, request: `row ${i}` }));
    const out: GeneratorOutcome[] = [];
    await new OpenAIGenerator(options({ concurrency: 3 })).run(rows, new Set([0, 5]), (o) => out.push(...o), signal);
    expect(srv.maxInFlight).toBe(3);
    expect(srv.seen.map((s) => s.body.seed as number).sort((a, b) => a - b)).toEqual([8, 9, 10, 11, 13, 14]); // seed 7 + row index
    expect(out.map((o) => o.i).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 6, 7]);
    expect(out.find((o) => o.i === 3)).toMatchObject({ error: expect.stringMatching(/HTTP 422 .*unprocessable/) });
    expect(out.find((o) => o.i === 1)).toMatchObject({ text: 'because row 1', finish: 'stop', tokens: 7 });

    srv.behave = (_s, _n, res) => {
      res.writeHead(404);
      res.end('not here');
    };
    const got: GeneratorOutcome[] = [];
    await expect(new OpenAIGenerator(options()).run(rows, new Set(), (o) => got.push(...o), signal)).rejects.toThrow(/HTTP 404 .*check the base URL/);
    expect(got).toEqual([]);
  });

  it('Retry-After forms and the backoff schedule', () => {
    const h = (o: Record<string, string>) => new Headers(o);
    expect(retryAfterMs(h({ 'retry-after': '2' }))).toBe(2000);
    expect(retryAfterMs(h({ 'retry-after-ms': '150', 'retry-after': '2' }))).toBe(150);
    expect(retryAfterMs(h({ 'retry-after': new Date(10_000).toUTCString() }), 7_000)).toBe(3000);
    expect(retryAfterMs(h({ 'retry-after': 'soon' }))).toBeUndefined();
    expect(retryAfterMs(h({}))).toBeUndefined();
    expect(backoffDelay(0, 100, 1000, () => 0)).toBe(50);
    expect(backoffDelay(3, 100, 1000, () => 0.999999)).toBeCloseTo(800, 2);
    expect(backoffDelay(10, 100, 1000, () => 0)).toBe(500);
  });
});
