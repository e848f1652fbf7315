// Secrets never leave the process, whole or in pieces: the masking function itself; the
// OpenAI-compatible client against a real server on 127.0.0.1 that puts the key at every offset
// around the 200-character cut of its error bodies, echoes it in completions, or cuts it itself;
// the hub client against hub-shaped servers that echo the token in error bodies, headers, a
// listing that is not JSON, and a model index that is not JSON.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { HubClient, HubError, resolveModelDir } from '../../lib/hub/index.js';
import { OpenAIGenerator, OpenAIError, parseCompletion, serverMessage, type OpenAIOptions } from '../../lib/rationales/openai.js';
import type { GeneratorOutcome } from '../../lib/rationales/generator.js';
import { loadConfig, saveConfig } from '../../lib/config/index.js';
import { renderRunReport } from '../../lib/report/run_report.js';
import { MASK, cutText, isSecretName, makeRedactor, redactDeep, redactError, redactSecrets, redactText } from '../../lib/util/redact.js';
import { fakeCommit, startHubServer, type HubServer } from '../fixtures/data/hub_server.js';

/** 52 characters, like an OpenAI project key. */
const KEY = 'sk-proj-Zq7Xv2Lm9Tb4Wn8Rc1Yk6Hs3Jd5Gf0Pa2Eu7Io4Vx9Bw';
const HF = 'hf_Qm4Rt8Yu2Io6Pa0Sd3Fg7Hj1Kl5Zx9Cv';

/** Every piece of `secret` of `n` or more characters found in `text` (shortest ones suffice). */
function pieces(text: string, secret: string, n = 6): string[] {
  const found: string[] = [];
  for (let i = 0; i + n <= secret.length; i++) if (text.includes(secret.slice(i, i + n))) found.push(secret.slice(i, i + n));
  return found;
}

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'rpo-redact-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('redactText', () => {
  it('masks every occurrence, and every piece of 6+ characters (a prefix, a suffix, a middle)', () => {
    expect(KEY).toHaveLength(52);
    expect(redactText(`a ${KEY} b ${KEY}`, [KEY])).toBe(`a ${MASK} b ${MASK}`);
    expect(redactText(`cut: ${KEY.slice(0, 30)}`, [KEY])).toBe(`cut: ${MASK}`);
    expect(redactText(`${KEY.slice(20)} tail`, [KEY])).toBe(`${MASK} tail`);
    expect(redactText(`x${KEY.slice(10, 16)}y`, [KEY])).toBe(`x${MASK}y`);
    // five characters say nothing about the key: left alone
    expect(redactText(`x${KEY.slice(10, 15)}y`, [KEY])).toBe(`x${KEY.slice(10, 15)}y`);
    // two secrets, side by side and overlapping in the text
    expect(redactText(`${KEY}${HF} and ${HF.slice(0, 12)}`, [KEY, HF, undefined, null])).toBe(`${MASK} and ${MASK}`);
    expect(pieces(redactText(`${KEY}${KEY}${KEY.slice(3, 40)}`, [KEY]), KEY)).toEqual([]);
  });

  it('leaves text alone when there is no secret worth masking (unset, or shorter than 8 characters)', () => {
    const text = 'The response above is right; test 1234567.';
    expect(redactText(text, [])).toBe(text);
    expect(redactText(text, ['test', '1234567', ''])).toBe(text);
    expect(makeRedactor([undefined])(text)).toBe(text);
  });

  it('mask first, then cut: a key straddling the cut leaves nothing of itself', () => {
    const redact = makeRedactor([KEY]);
    for (let at = 150; at <= 210; at++) {
      const body = `${'e'.repeat(at)}${KEY} and more`;
      const shown = cutText(redact(body), 200);
      expect(pieces(shown, KEY), `offset ${at}`).toEqual([]);
      // Cutting first leaves a piece of the key that a whole-key match would miss.
      if (at <= 200 - 6) expect(pieces(cutText(body, 200).split(KEY).join(MASK), KEY).length, `offset ${at}`).toBeGreaterThan(0);
    }
  });

  it('records and errors: every string (keys too) of a JSON value; an error\'s message and stack', () => {
    const redact = makeRedactor([KEY]);
    const doc = { url: `http://h/?k=${KEY}`, list: [KEY.slice(0, 20), 3, null], [KEY]: { deep: KEY } };
    expect(JSON.stringify(redactDeep(doc, redact))).toBe(JSON.stringify({ url: 'http://h/?k=***', list: ['***', 3, null], '***': { deep: '***' } }));
    const err = redactError(new TypeError(`bad ${KEY}`), redact);
    expect(err).toBeInstanceOf(TypeError);
    expect(err.message).toBe('bad ***');
    expect(pieces(String(err.stack), KEY)).toEqual([]);
  });
});

// ---- the OpenAI-compatible client -----------------------------------------------------------------

type Handler = (content: string, res: http.ServerResponse) => void;

async function startServer(handler: () => Handler): Promise<{ base: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (d: Buffer) => (data += d.toString()));
    req.on('end', () => {
      const body = JSON.parse(data) as { messages: { content: string }[] };
      handler()(body.messages[0]!.content, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}

describe('the OpenAI-compatible client masks the key before cutting, and in completions', () => {
  let handler: Handler = (_c, res) => res.end();
  let srv: { base: string; close: () => Promise<void> };
  const options = (o: Partial<OpenAIOptions> = {}): OpenAIOptions => ({
    baseUrl: srv.base,
    model: 'm',
    apiKey: KEY,
    secrets: [HF],
    concurrency: 4,
    timeoutMs: 5000,
    retries: 1,
    backoffMs: 0,
    maxNewTokens: 8,
    temperature: 0,
    topP: 1,
    topK: 0,
    seed: 0,
    ...o,
  });
  beforeAll(async () => {
    srv = await startServer(() => handler);
  });
  afterAll(() => srv.close());

  it('an error body with the key at every offset from 150 to 210: no piece of it in retries, row errors or fatal errors', async () => {
    // The row's request text carries the offset; the body puts the key there (plain text and a
    // JSON error message), first as a 503 (retried: the retry message), then as a 400 (the row's error).
    let attempts = new Map<number, number>();
    handler = (content, res) => {
      const at = Number(/offset (\d+)/.exec(content)![1]);
      const n = (attempts.get(at) ?? 0) + 1;
      attempts.set(at, n);
      const body = `${'e'.repeat(at)}${KEY} tail of the body`;
      if (n === 1) res.writeHead(503).end(body);
      else res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: body } }));
    };
    const retries: string[] = [];
    const g = new OpenAIGenerator(options({ onRetry: (_id, m) => retries.push(m) }));
    const rows = Array.from({ length: 61 }, (_, j) => ({ i: j, id: `r${j}`, request: `offset ${150 + j}` }));
    const out: GeneratorOutcome[] = [];
    await g.run(rows, new Set(), (o) => out.push(...o), new AbortController().signal);
    expect(out).toHaveLength(61);
    expect(retries).toHaveLength(61);
    for (const m of [...retries, ...out.map((o) => ('error' in o ? o.error : 'not an error'))]) {
      expect(m).toMatch(/HTTP (503|400) from /);
      expect(pieces(m, KEY), m).toEqual([]);
    }
    // The mask is there, where the key was (or was cut off after it).
    for (const o of out) expect('error' in o ? o.error : '', o.id).toMatch(/e+\*{1,3}|e{150,}…/);

    // A 401 that echoes the key past the cut stops the run: its message is masked too.
    attempts = new Map();
    handler = (_c, res) => res.writeHead(401).end(`${'x'.repeat(180)}Incorrect API key provided: ${KEY}`);
    const fatal = await g.complete('r', 'x', 0, new AbortController().signal).then(
      () => { throw new Error('expected an OpenAIError'); },
      (e: unknown) => e as OpenAIError,
    );
    expect(fatal.kind).toBe('fatal');
    expect(pieces(fatal.message, KEY)).toEqual([]);
  });

  it('serverMessage: masks the JSON message (escaped keys too) before cutting it', () => {
    const redact = makeRedactor([KEY]);
    const escaped = `{"error":{"message":"${'m'.repeat(170)}${[...KEY].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"}}`;
    expect(escaped).not.toContain(KEY.slice(0, 6));
    const m = serverMessage(escaped, redact);
    expect(m).toBe(`${'m'.repeat(170)}***`);
    for (let at = 150; at <= 210; at++) expect(pieces(serverMessage(`${'z'.repeat(at)}${KEY}zz`, redact), KEY), `offset ${at}`).toEqual([]);
  });

  it('a completion that echoes the key (whole, cut by the server, or the hub token) is masked', async () => {
    const texts = [
      `Your key is ${KEY}.`,
      `The response above is right (${KEY.slice(0, 25)}`,
      `${KEY.slice(30)} and the hub token ${HF}`,
    ];
    let k = 0;
    handler = (_c, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ choices: [{ message: { content: texts[k++ % texts.length] }, finish_reason: 'stop' }] }));
    };
    const g = new OpenAIGenerator(options({ concurrency: 1 }));
    const got: string[] = [];
    for (let j = 0; j < texts.length; j++) got.push((await g.complete('r', 'x', 0, new AbortController().signal)).text);
    expect(got).toEqual(['Your key is ***.', 'The response above is right (***', '*** and the hub token ***']);
    // A malformed body quoting the key: the snippet in the error is masked before the cut.
    const bad = (() => {
      try {
        parseCompletion(`${'b'.repeat(190)}${KEY}`, 'u', makeRedactor([KEY]));
        return '';
      } catch (e) {
        return (e as Error).message;
      }
    })();
    expect(bad).toMatch(/the body is not JSON/);
    expect(pieces(bad, KEY)).toEqual([]);
  });
});

// ---- the hub client --------------------------------------------------------------------------------

describe('the hub client masks HF_TOKEN in what the hub says', () => {
  const TOKEN = 'hf_HubSecretTokenForRedaction0123456789';
  let hostile: { base: string; close: () => Promise<void>; body: string; status: number; headers: Record<string, string> };

  beforeAll(async () => {
    const state = { body: '', status: 200, headers: {} as Record<string, string> };
    const server = http.createServer((req, res) => {
      // Echo what a misbehaving proxy might: the Authorization header, in the body and headers.
      res.writeHead(state.status, state.headers).end(req.method === 'HEAD' ? undefined : state.body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    hostile = Object.assign(state, {
      base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      close: () =>
        new Promise<void>((done) => {
          server.closeAllConnections();
          server.close(() => done());
        }),
    });
  });
  afterAll(() => hostile.close());

  const client = (): HubClient => new HubClient({ endpoint: hostile.base, env: { HF_TOKEN: TOKEN }, cacheDir: path.join(tmp, 'hub-cache'), retries: 0 });
  const failure = async (p: Promise<unknown>): Promise<HubError> => {
    const e = await p.then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(HubError);
    return e as HubError;
  };

  it('a listing that is not JSON but echoes the token: V8 quotes its first characters, masked', async () => {
    hostile.status = 200;
    hostile.headers = { 'content-type': 'text/plain' };
    hostile.body = `${TOKEN} is not allowed here`;
    const e = await failure(client().listFiles('acme/model'));
    expect(e.message).toMatch(/listing of model repository acme\/model is not JSON/);
    expect(pieces(`${e.message}\n${e.stack}`, TOKEN)).toEqual([]);
  });

  it('an error body, X-Error-Message and X-Error-Code echoing the token at every offset from 150 to 210: shown, masked, cut', async () => {
    for (let at = 150; at <= 210; at++) {
      hostile.status = 403;
      hostile.headers = { 'content-type': 'application/json', 'x-error-code': `GatedRepo ${TOKEN}` };
      hostile.body = JSON.stringify({ error: `${'g'.repeat(at)}${TOKEN} needs access` });
      const e = await failure(client().listFiles('acme/model'));
      expect(e.kind).toBe('unauthorized');
      expect(e.message).toMatch(/the hub says: g+/);
      expect(pieces(`${e.message}\n${e.stack}`, TOKEN), `offset ${at}`).toEqual([]);
    }
    hostile.status = 401;
    hostile.headers = { 'x-error-message': `Invalid credentials in Authorization header: Bearer ${TOKEN}` };
    const head = await failure(client().resolveFile({ repo: 'acme/model', filename: 'config.json' }));
    expect(head.message).toMatch(/the hub says: Invalid credentials in Authorization header: Bearer \*\*\*/);
    expect(pieces(head.message, TOKEN)).toEqual([]);
  });

  it('a model index that is not JSON but echoes the token (resolveModelDir): masked', async () => {
    const hub: HubServer = await startHubServer({ token: TOKEN });
    try {
      hub.addRepo({
        repo: 'acme/echo',
        type: 'model',
        commit: fakeCommit('echo'),
        files: new Map([
          ['config.json', { content: Buffer.from('{}') }],
          ['tokenizer.json', { content: Buffer.from('{}') }],
          ['model.safetensors.index.json', { content: Buffer.from(`${TOKEN} was sent`) }],
        ]),
      });
      const c = new HubClient({ endpoint: hub.endpoint, env: { HF_TOKEN: TOKEN }, cacheDir: path.join(tmp, 'hub-cache-2') });
      const e = await resolveModelDir('acme/echo', { hub: c }).then(
        () => new Error('resolved'),
        (err: unknown) => err as Error,
      );
      expect(e.message).toMatch(/model\.safetensors\.index\.json: malformed JSON/);
      expect(pieces(`${e.message}\n${e.stack}`, TOKEN)).toEqual([]);
    } finally {
      await hub.close();
    }
  });
});

describe('secrets from ${oc.env:...} in a config (issue 22, D7)', () => {
  const SECRET = 'ghp_Wq8Er4Ty6Ui2Op0As5Df1Gh3Jk7Lz9Xc';
  const overrides = ['loss=sft', 'model=tiny', 'model.name_or_path=/m', 'datasets=[d]', 'exp_name=x', '++wandb.entity=${oc.env:GITHUB_TOKEN}', '++wandb.project=${oc.env:MY_PROJECT}'];

  it('names that say secret: *TOKEN*, *KEY*, *SECRET*, any case', () => {
    for (const n of ['HF_TOKEN', 'OPENAI_API_KEY', 'aws_secret_access_key', 'MySecret', 'hf_token']) expect(isSecretName(n), n).toBe(true);
    for (const n of ['HOME', 'USER', 'MY_PROJECT', 'TEAM']) expect(isSecretName(n), n).toBe(false);
  });

  it('the config keeps the value to use; its notices, config.yaml and report mask it; an ordinary variable stays', () => {
    const loaded = loadConfig({ overrides, env: { GITHUB_TOKEN: SECRET, MY_PROJECT: 'prefs-project' } });
    expect(loaded.config.wandb.entity).toBe(SECRET);
    expect(loaded.notices.join('\n')).toContain(`wandb.entity="${MASK}"`);
    expect(loaded.notices.join('\n')).toContain('wandb.project="prefs-project"');
    expect(pieces(loaded.notices.join('\n'), SECRET)).toEqual([]);
    const file = path.join(tmp, 'config.yaml');
    saveConfig(loaded.config, file);
    const yaml = readFileSync(file, 'utf8');
    expect(pieces(yaml, SECRET)).toEqual([]);
    expect(yaml).toContain('prefs-project');
    const html = renderRunReport({ name: 'x', metricsFile: path.join(tmp, 'none.jsonl'), config: JSON.parse(JSON.stringify(loaded.config)) as Record<string, unknown>, state: 'finished' });
    // renderRunReport is the page; writeRunReport masks it on its way to the file.
    expect(html).toContain(SECRET);
    expect(pieces(redactSecrets(html), SECRET)).toEqual([]);
  });

  it('a value from a variable that is not a secret is never masked', () => {
    loadConfig({ overrides: ['loss=sft', 'model=tiny', 'model.name_or_path=/m', 'datasets=[d]', 'exp_name=x', '++wandb.entity=${oc.env:TEAM}'], env: { TEAM: 'research-team-7' } });
    expect(redactSecrets('entity research-team-7')).toBe('entity research-team-7');
  });
});

