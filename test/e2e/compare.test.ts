// `rpo compare` through the CLI against a real local HTTP server playing the judge: a judge that
// always prefers the first position (the random order must cancel it), one that reads the
// responses, one that names neither, a fatal failure part-way and the resume, the key never
// printed or written.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { presentationOrder } from '../../lib/compare/index.js';
import { runPython } from '../reference/python.js';
import { REPO, rpo, rpoAsync } from './cli.js';

interface ChatRequest {
  model: string;
  messages: Array<{ role: string; content: string }>;
  temperature: number;
  max_tokens: number;
  seed: number;
}

type Judge = (req: ChatRequest, n: number) => { status: number; reply?: string };

let work: string;
let tokDir: string;
let samplesFile: string;
const N = 40;
const KEY = 'sk-test-0123456789abcdefSECRET';

/** A judge server; `requests` records every body it got. */
async function judgeServer(judge: Judge): Promise<{ url: string; requests: ChatRequest[]; close: () => Promise<void> }> {
  const requests: ChatRequest[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const parsed = JSON.parse(body) as ChatRequest;
      requests.push(parsed);
      const out = judge(parsed, requests.length);
      res.writeHead(out.status, { 'content-type': 'application/json' });
      res.end(out.status === 200 ? JSON.stringify({ choices: [{ message: { role: 'assistant', content: out.reply }, finish_reason: 'stop' }] }) : JSON.stringify({ error: { message: 'bad key' } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, requests, close: () => new Promise((r) => server.close(() => r())) };
}

/** The position ("1" or "2") of the response containing `text` in the judge's second message. */
function positionOf(req: ChatRequest, text: string): string | null {
  const m = req.messages[1]!.content;
  const one = m.slice(m.indexOf('Response 1:'), m.indexOf('END OF RESPONSE 1'));
  const two = m.slice(m.indexOf('Response 2:'), m.indexOf('END OF RESPONSE 2'));
  if (one.includes(text)) return '1';
  if (two.includes(text)) return '2';
  return null;
}

function compareArgs(url: string, results: string, extra: string[] = []): string[] {
  return ['compare', '-f', samplesFile, '-ck', 'policy', '-bk', 'chosen', '-r', results, '-j', 'judge-model', '--base-url', url, '--tokenizer', tokDir, '--retries', '0', ...extra];
}

function resultLines(file: string): Array<Record<string, unknown> & { candidate: { wins: number; lengths: number[]; name: string }; baseline: { wins: number; lengths: number[]; name: string } }> {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-compare-'));
  tokDir = path.join(work, 'tiny');
  const r = rpo(['init', tokDir, '--preset', 'tiny']);
  expect(r.code, r.stderr).toBe(0);
  // rpo's mode=sample layout: the demo's test prompts, the chosen answer as the baseline and the
  // rejected one as the candidate ("policy").
  const rows = readFileSync(path.join(REPO, 'assets', 'demo', 'test.jsonl'), 'utf8').trim().split('\n').slice(0, N).map((l) => JSON.parse(l) as Record<string, string>);
  samplesFile = path.join(work, 'demo-samples.json');
  writeFileSync(samplesFile, JSON.stringify(rows.map((r) => ({ prompt: r.prompt, chosen: r.chosen, policy: r.rejected }))));
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('rpo compare', () => {
  it('a judge that always prefers position 1: the random order cancels it', async () => {
    const server = await judgeServer(() => ({ status: 200, reply: 'Response 1' }));
    try {
      const results = path.join(work, 'pos1.jsonl');
      const r = await rpoAsync(compareArgs(server.url, results));
      expect(r.code, r.stderr).toBe(0);
      const [line] = resultLines(results);
      // The candidate wins exactly where it was shown first.
      const firsts = Array.from({ length: N }, (_, i) => presentationOrder(0, i)[0]).filter((m) => m === 'candidate').length;
      expect(line!.candidate.wins).toBe(firsts);
      expect(line!.baseline.wins).toBe(N - firsts);
      expect(firsts / N).toBeGreaterThan(0.3);
      expect(firsts / N).toBeLessThan(0.7);
      // The seed's request: temperature 0, 10 tokens, its seed, the judge model, two user messages.
      for (const q of server.requests) {
        expect([q.model, q.temperature, q.max_tokens, q.seed, q.messages.length]).toEqual(['judge-model', 0, 10, 0, 2]);
      }
    } finally {
      await server.close();
    }
  }, 120_000);

  it('a judge preferring the baseline wherever it is shown: every win, p = 2/2^n, the seed\'s result fields', async () => {
    const chosen = JSON.parse(readFileSync(samplesFile, 'utf8')) as Array<{ chosen: string }>;
    const server = await judgeServer((q) => {
      const which = chosen.map((c) => positionOf(q, c.chosen)).find((p) => p !== null);
      return { status: 200, reply: `Response ${which} is better.` };
    });
    try {
      const results = path.join(work, 'baseline.jsonl');
      const r = await rpoAsync(compareArgs(server.url, results, ['-s', '3', '-mc', '12']));
      expect(r.code, r.stderr).toBe(0);
      const [line] = resultLines(results);
      expect(Object.keys(line!).sort()).toEqual(['baseline', 'candidate', 'config', 'date', 'exp_name', 'failed', 'judge', 'p_value', 'seed', 'total', 'undecided'].sort());
      expect(line!.total).toBe(12);
      expect(line!.seed).toBe(3);
      expect(line!.judge).toBe('judge-model');
      expect(line!.exp_name).toBe('demo-samples');
      expect(line!.baseline).toMatchObject({ name: 'chosen', wins: 12 });
      expect(line!.candidate).toMatchObject({ name: 'policy', wins: 0 });
      expect(line!.p_value).toBeCloseTo(2 / 2 ** 12, 15);
      // Lengths in tokens as HF's AutoTokenizer(dir).encode counts them (special tokens included, as the seed's).
      const ref = JSON.parse(runPython('hf_tokenize.py', [tokDir], JSON.stringify({ texts: chosen.slice(0, 12).map((c) => c.chosen) }))) as Record<string, { auto: { with_special: number[][] } }>;
      expect(line!.baseline.lengths).toEqual(ref[tokDir]!.auto.with_special.map((ids) => ids.length));
      expect(r.stdout).toMatch(/policy 0 vs chosen 12 of 12 \(0 undecided\); p = 0\.0004883/);
    } finally {
      await server.close();
    }
  }, 120_000);

  it('a reply naming neither response counts for neither', async () => {
    const server = await judgeServer(() => ({ status: 200, reply: 'Both are fine.' }));
    try {
      const results = path.join(work, 'neither.jsonl');
      const r = await rpoAsync(compareArgs(server.url, results, ['-mc', '5']));
      expect(r.code, r.stderr).toBe(0);
      const [line] = resultLines(results);
      expect([line!.candidate.wins, line!.baseline.wins, line!.undecided, line!.p_value]).toEqual([0, 0, 5, 1]);
    } finally {
      await server.close();
    }
  }, 120_000);

  it('-j local:<model>: the judge is a model run by the engine', () => {
    const results = path.join(work, 'local.jsonl');
    const r = rpo(['compare', '-f', samplesFile, '-r', results, '-j', `local:${tokDir}`, '-mc', '6', '--tokenizer', tokDir, '--device', 'cpu', '--batch-size', '3', '-v']);
    expect(r.code, r.stderr).toBe(0);
    const [line] = resultLines(results);
    expect(line!.judge).toBe(`local:${tokDir}`);
    expect(line!.total).toBe(6);
    expect(line!.failed).toBe(0);
    // A random tiny model rarely names a response: whatever it says, every comparison is counted once.
    expect(line!.candidate.wins + line!.baseline.wins + (line!.undecided as number)).toBe(6);
    expect((r.stderr.match(/^\[\d\] /gm) ?? []).length).toBe(6); // -v: each reply printed
  }, 180_000);

  it('a fatal failure part-way keeps what was judged; the same command resumes; the key is never printed or written', async () => {
    let allowed = 7;
    // The server echoes the key in its replies: rpo must mask it.
    const server = await judgeServer(() => (allowed-- > 0 ? { status: 200, reply: `Response 1 (${KEY})` } : { status: 401 }));
    const env = { OPENAI_API_KEY: KEY };
    try {
      const results = path.join(work, 'resume.jsonl');
      const args = compareArgs(server.url, results, ['-mc', '20', '--concurrency', '1', '-v']);
      const first = await rpoAsync(args, { env });
      expect(first.code).toBe(1);
      expect(first.stderr).toMatch(/refused the credentials/);
      const journal = readdirSync(work).find((f) => f.startsWith('resume.jsonl.progress-'));
      expect(journal).toBeDefined();
      expect(readFileSync(path.join(work, journal!), 'utf8').trim().split('\n')).toHaveLength(1 + 7);
      allowed = 1000;
      const before = server.requests.length;
      const second = await rpoAsync(args, { env });
      expect(second.code, second.stderr).toBe(0);
      expect(server.requests.length - before).toBe(20 - 7);
      const [line] = resultLines(results);
      const firsts = Array.from({ length: 20 }, (_, i) => presentationOrder(0, i)[0]).filter((m) => m === 'candidate').length;
      expect(line!.candidate.wins).toBe(firsts);
      expect(readdirSync(work).some((f) => f.startsWith('resume.jsonl.progress-'))).toBe(false);
      for (const text of [first.stdout, first.stderr, second.stdout, second.stderr, readFileSync(results, 'utf8')]) {
        expect(text).not.toContain(KEY);
        expect(text).not.toContain('0123456789abcdef');
      }
      expect(second.stderr).toContain('***');
    } finally {
      await server.close();
    }
  }, 180_000);

  it('a damaged journal line is an error naming the journal and the line (D10)', async () => {
    let allowed = 3;
    const server = await judgeServer(() => (allowed-- > 0 ? { status: 200, reply: 'Response 1' } : { status: 401 }));
    try {
      const results = path.join(work, 'damaged.jsonl');
      const args = compareArgs(server.url, results, ['-mc', '6', '--concurrency', '1']);
      expect((await rpoAsync(args)).code).toBe(1);
      const journal = path.join(work, readdirSync(work).find((f) => f.startsWith('damaged.jsonl.progress-'))!);
      const lines = readFileSync(journal, 'utf8').split('\n');
      lines[2] = '{"i": 1, "win'; // a whole line (newline-terminated) that is not JSON
      writeFileSync(journal, lines.join('\n'));
      allowed = 1000;
      const again = await rpoAsync(args);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain(`${journal}:3: damaged journal line`);
    } finally {
      await server.close();
    }
  }, 180_000);
});
