// The hub client against a local hub-shaped server (127.0.0.1; never the real hub): downloads,
// the cache layout (checked by Python's huggingface_hub reading it, and writing one we read),
// cache hits, offline mode, the token, resumed and corrupted downloads, model directories.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import {
  HubClient,
  HubError,
  hubCacheDir,
  repoFolderName,
  resolveModelDir,
  type HubClientOptions,
} from '../../lib/hub/index.js';
import { fakeCommit, gitSha1Hex, sha256Hex, startHubServer, type HubServer, type ServedFile } from '../fixtures/data/hub_server.js';
import { referencePython, runPython } from '../reference/python.js';

const TOKEN = 'hf_unitTestSecretToken_9f8e7d';

let tmp: string;
let server: HubServer;
let cacheN = 0;

const weights1 = randomBytes(300_000);
const weights2 = randomBytes(123_457);
const parquetBytes = randomBytes(50_000);
const config = Buffer.from(JSON.stringify({ model_type: 'llama', hidden_size: 64 }, null, 2));
const index = Buffer.from(
  JSON.stringify({
    metadata: { total_size: weights1.length + weights2.length },
    weight_map: { 'a.weight': 'model-00001-of-00002.safetensors', 'b.weight': 'model-00002-of-00002.safetensors' },
  }),
);

const MODEL = 'acme/tiny-model';
const MODEL_COMMIT = fakeCommit('tiny-model');
const PRIVATE = 'acme/secret-model';
const DATASET = 'acme/tiny-data';
const DATASET_COMMIT = fakeCommit('tiny-data');

function files(entries: Record<string, ServedFile>): Map<string, ServedFile> {
  return new Map(Object.entries(entries));
}

function freshCache(): string {
  const dir = path.join(tmp, `cache-${cacheN++}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function client(extra: HubClientOptions = {}): HubClient {
  return new HubClient({ endpoint: server.endpoint, token: null, env: {}, retries: 3, ...extra });
}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'rpo-hub-'));
  server = await startHubServer({ token: TOKEN });
  server.addRepo({
    repo: MODEL,
    type: 'model',
    commit: MODEL_COMMIT,
    files: files({
      'config.json': { content: config },
      'tokenizer.json': { content: Buffer.from('{"model": {"type": "BPE"}}') },
      'tokenizer_config.json': { content: Buffer.from('{"bos_token": "<s>"}') },
      'model.safetensors.index.json': { content: index },
      'model-00001-of-00002.safetensors': { content: weights1, lfs: true },
      'model-00002-of-00002.safetensors': { content: weights2, lfs: true },
      'README.md': { content: Buffer.from('# tiny\n') },
    }),
  });
  server.addRepo({
    repo: PRIVATE,
    type: 'model',
    commit: fakeCommit('secret'),
    private: true,
    files: files({ 'config.json': { content: config }, 'model.safetensors': { content: weights2, lfs: true } }),
  });
  server.addRepo({
    repo: DATASET,
    type: 'dataset',
    commit: DATASET_COMMIT,
    files: files({ 'data/train-00000-of-00001.parquet': { content: parquetBytes, lfs: true }, 'README.md': { content: Buffer.from('x') } }),
  });
  server.addRepo({
    repo: 'acme/no-tokenizer',
    type: 'model',
    commit: fakeCommit('no-tok'),
    files: files({ 'config.json': { content: config }, 'model.safetensors': { content: weights2, lfs: true } }),
  });
});

afterAll(async () => {
  await server?.close();
  rmSync(tmp, { recursive: true, force: true });
});

beforeEach(() => {
  server.requests.length = 0;
  server.cutOnce.clear();
  server.corrupt.clear();
});

describe('cache location', () => {
  it('follows HF_HUB_CACHE, then HF_HOME/hub, then XDG_CACHE_HOME, then ~/.cache', () => {
    expect(hubCacheDir({ HF_HUB_CACHE: '/a/b', HF_HOME: '/c' })).toBe('/a/b');
    expect(hubCacheDir({ HUGGINGFACE_HUB_CACHE: '/legacy' })).toBe('/legacy');
    expect(hubCacheDir({ HF_HOME: '/c' })).toBe('/c/hub');
    expect(hubCacheDir({ XDG_CACHE_HOME: '/x' })).toBe('/x/huggingface/hub');
    expect(hubCacheDir({})).toBe(path.join(os.homedir(), '.cache', 'huggingface', 'hub'));
    expect(repoFolderName('HuggingFaceH4/ultrafeedback_binarized', 'dataset')).toBe('datasets--HuggingFaceH4--ultrafeedback_binarized');
    expect(repoFolderName('gpt2', 'model')).toBe('models--gpt2');
  });
});

describe('download into the shared cache layout', () => {
  it('stores blobs by etag, snapshot symlinks, refs/main; LFS content comes from the CDN without the token', async () => {
    const cacheDir = freshCache();
    const hub = client({ cacheDir, token: TOKEN });
    const p = await hub.resolveFile({ repo: MODEL, filename: 'model-00001-of-00002.safetensors' });
    const root = path.join(cacheDir, 'models--acme--tiny-model');
    expect(p).toBe(path.join(root, 'snapshots', MODEL_COMMIT, 'model-00001-of-00002.safetensors'));
    expect(readFileSync(p).equals(weights1)).toBe(true);
    expect(lstatSync(p).isSymbolicLink()).toBe(true);
    expect(readlinkSync(p)).toBe(`../../blobs/${sha256Hex(weights1)}`);
    expect(readFileSync(path.join(root, 'refs', 'main'), 'utf8')).toBe(MODEL_COMMIT);
    expect(readdirSync(path.join(root, 'blobs'))).toEqual([sha256Hex(weights1)]);

    const cfg = await hub.resolveFile({ repo: MODEL, filename: 'config.json' });
    expect(readlinkSync(cfg)).toBe(`../../blobs/${gitSha1Hex(config)}`); // a regular git file: blob named by its git sha1
    const hubReqs = server.requests.filter((r) => r.server === 'hub');
    const cdnReqs = server.requests.filter((r) => r.server === 'cdn');
    expect(hubReqs.length).toBeGreaterThan(0);
    for (const r of hubReqs) expect(r.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(cdnReqs.length).toBe(1);
    expect(cdnReqs[0]!.headers.authorization).toBeUndefined();
  });

  it('a nested dataset path gets a relative symlink one level deeper', async () => {
    const cacheDir = freshCache();
    const p = await client({ cacheDir }).resolveFile({ repo: DATASET, repoType: 'dataset', filename: 'data/train-00000-of-00001.parquet' });
    expect(p).toBe(path.join(cacheDir, 'datasets--acme--tiny-data', 'snapshots', DATASET_COMMIT, 'data', 'train-00000-of-00001.parquet'));
    expect(readlinkSync(p)).toBe(`../../../blobs/${sha256Hex(parquetBytes)}`);
    expect(readFileSync(p).equals(parquetBytes)).toBe(true);
  });

  it('a cache hit downloads nothing: a branch costs one HEAD, a commit id no request at all', async () => {
    const cacheDir = freshCache();
    const hub = client({ cacheDir });
    const first = await hub.resolveFile({ repo: MODEL, filename: 'model-00002-of-00002.safetensors' });
    expect(server.requests.filter((r) => r.method === 'GET')).toHaveLength(1);
    server.requests.length = 0;
    expect(await hub.resolveFile({ repo: MODEL, filename: 'model-00002-of-00002.safetensors' })).toBe(first);
    expect(server.requests.map((r) => r.method)).toEqual(['HEAD']);
    server.requests.length = 0;
    expect(await hub.resolveFile({ repo: MODEL, revision: MODEL_COMMIT, filename: 'model-00002-of-00002.safetensors' })).toBe(first);
    expect(server.requests).toHaveLength(0);
  });

  it('lists repository files through the API and, offline, from the cached snapshot', async () => {
    const cacheDir = freshCache();
    const listing = await client({ cacheDir }).listFiles(MODEL, 'model');
    expect(listing.commit).toBe(MODEL_COMMIT);
    expect(listing.fromCache).toBe(false);
    expect(listing.files).toContain('model.safetensors.index.json');
    expect(server.requests.map((r) => r.path)).toEqual([`/api/models/${MODEL}/revision/main`]);
    await client({ cacheDir }).resolveFile({ repo: MODEL, filename: 'config.json' });
    server.requests.length = 0;
    const offline = await client({ cacheDir, offline: true }).listFiles(MODEL, 'model');
    expect(offline).toMatchObject({ commit: MODEL_COMMIT, files: ['config.json'], fromCache: true });
    expect(server.requests).toHaveLength(0);
  });

  it('a missing file is a not-found error and leaves a .no_exist marker, as huggingface_hub does', async () => {
    const cacheDir = freshCache();
    const hub = client({ cacheDir });
    await expect(hub.resolveFile({ repo: MODEL, filename: 'generation_config.json' })).rejects.toMatchObject({ kind: 'not-found' });
    expect(await hub.tryResolveFile({ repo: MODEL, filename: 'generation_config.json' })).toBeNull();
    expect(existsSync(path.join(cacheDir, 'models--acme--tiny-model', '.no_exist', MODEL_COMMIT, 'generation_config.json'))).toBe(true);
    await expect(hub.resolveFile({ repo: 'acme/absent', filename: 'config.json' })).rejects.toMatchObject({ kind: 'unauthorized' });
    await expect(hub.resolveFile({ repo: '../etc', filename: 'x' })).rejects.toMatchObject({ kind: 'invalid' });
    await expect(hub.resolveFile({ repo: MODEL, filename: '../../x' })).rejects.toMatchObject({ kind: 'invalid' });
  });
});

describe('offline mode', () => {
  it('HF_HUB_OFFLINE=1 serves the cache with no request and names what is missing', async () => {
    const cacheDir = freshCache();
    const cached = await client({ cacheDir }).resolveFile({ repo: MODEL, filename: 'config.json' });
    server.requests.length = 0;
    const offline = new HubClient({ endpoint: server.endpoint, env: { HF_HUB_OFFLINE: '1', HF_HUB_CACHE: cacheDir } });
    expect(offline.offline).toBe(true);
    expect(offline.cacheDir).toBe(cacheDir);
    expect(await offline.resolveFile({ repo: MODEL, filename: 'config.json' })).toBe(cached);
    const err = await offline.resolveFile({ repo: MODEL, filename: 'tokenizer.json' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubError);
    expect((err as HubError).kind).toBe('offline');
    expect((err as HubError).message).toMatch(/HF_HUB_OFFLINE/);
    expect((err as HubError).message).toContain('tokenizer.json');
    expect(server.requests).toHaveLength(0);
  });

  it('an unreachable hub falls back to the cached revision, with a notice', async () => {
    const cacheDir = freshCache();
    const cached = await client({ cacheDir }).resolveFile({ repo: MODEL, filename: 'config.json' });
    const lines: string[] = [];
    const dead = new HubClient({ endpoint: 'http://127.0.0.1:9', token: null, env: {}, cacheDir, log: (l) => lines.push(l) });
    expect(await dead.resolveFile({ repo: MODEL, filename: 'config.json' })).toBe(cached);
    expect(lines.join('\n')).toMatch(/using the cached/);
    await expect(dead.resolveFile({ repo: MODEL, filename: 'tokenizer.json' })).rejects.toMatchObject({ kind: 'network' });
  });
});

describe('the token', () => {
  it('opens a private repository and never appears in logs or errors', async () => {
    const cacheDir = freshCache();
    const lines: string[] = [];
    const withToken = new HubClient({ endpoint: server.endpoint, env: { HF_TOKEN: TOKEN }, cacheDir, log: (l) => lines.push(l) });
    expect(withToken.hasToken).toBe(true);
    const p = await withToken.resolveFile({ repo: PRIVATE, filename: 'model.safetensors' });
    expect(readFileSync(p).equals(weights2)).toBe(true);
    expect(server.requests.some((r) => r.server === 'hub' && r.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
    expect(server.requests.filter((r) => r.server === 'cdn').every((r) => r.headers.authorization === undefined)).toBe(true);

    const errors: string[] = [];
    for (const req of [
      { repo: 'acme/absent', filename: 'config.json' },
      { repo: PRIVATE, filename: 'nope.json' },
    ]) {
      errors.push(String(await withToken.resolveFile(req).catch((e: unknown) => (e instanceof Error ? `${e.message}\n${e.stack}` : e))));
    }
    const refused = await new HubClient({ endpoint: server.endpoint, token: 'hf_wrong', env: {}, cacheDir: freshCache() })
      .resolveFile({ repo: PRIVATE, filename: 'config.json' })
      .catch((e: unknown) => e as HubError);
    expect(refused).toMatchObject({ kind: 'unauthorized' });
    expect((refused as HubError).message).toMatch(/refused/);
    expect((refused as HubError).message).not.toContain('hf_wrong');
    const anonymous = await client({ cacheDir: freshCache() })
      .resolveFile({ repo: PRIVATE, filename: 'config.json' })
      .catch((e: unknown) => e as HubError);
    expect((anonymous as HubError).message).toMatch(/HF_TOKEN/);
    expect(lines.length).toBeGreaterThan(0);
    for (const text of [...lines, ...errors]) expect(text).not.toContain(TOKEN);
  });
});

describe('resumable, verified downloads', () => {
  it('resumes an interrupted download with a Range request and verifies the sha256', async () => {
    const cacheDir = freshCache();
    const lines: string[] = [];
    server.cutOnce.add(`${MODEL}/model-00001-of-00002.safetensors`);
    const p = await client({ cacheDir, log: (l) => lines.push(l) }).resolveFile({ repo: MODEL, filename: 'model-00001-of-00002.safetensors' });
    expect(readFileSync(p).equals(weights1)).toBe(true);
    const gets = server.requests.filter((r) => r.server === 'cdn' && r.method === 'GET');
    expect(gets).toHaveLength(2);
    expect(gets[0]!.headers.range).toBeUndefined();
    const m = /^bytes=(\d+)-$/.exec(String(gets[1]!.headers.range));
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0);
    expect(Number(m![1])).toBeLessThan(weights1.length);
    expect(lines.join('\n')).toMatch(/resuming/);
    expect(readdirSync(path.join(cacheDir, 'models--acme--tiny-model', 'blobs')).some((f) => f.endsWith('.incomplete'))).toBe(false);
  });

  it('resumes a .incomplete file left by an earlier run', async () => {
    const cacheDir = freshCache();
    const blobs = path.join(cacheDir, 'models--acme--tiny-model', 'blobs');
    mkdirSync(blobs, { recursive: true });
    writeFileSync(path.join(blobs, `${sha256Hex(weights2)}.incomplete`), weights2.subarray(0, 1000));
    const p = await client({ cacheDir }).resolveFile({ repo: MODEL, filename: 'model-00002-of-00002.safetensors' });
    expect(readFileSync(p).equals(weights2)).toBe(true);
    const gets = server.requests.filter((r) => r.server === 'cdn');
    expect(gets.map((r) => r.headers.range)).toEqual(['bytes=1000-']);
  });

  it('rejects content whose sha256 does not match and leaves nothing behind', async () => {
    const cacheDir = freshCache();
    server.corrupt.add(`${MODEL}/model-00002-of-00002.safetensors`);
    const err = (await client({ cacheDir })
      .resolveFile({ repo: MODEL, filename: 'model-00002-of-00002.safetensors' })
      .catch((e: unknown) => e)) as HubError;
    expect(err).toBeInstanceOf(HubError);
    expect(err.kind).toBe('integrity');
    expect(err.message).toContain(sha256Hex(weights2));
    const root = path.join(cacheDir, 'models--acme--tiny-model');
    expect(readdirSync(path.join(root, 'blobs'))).toEqual([]);
    expect(existsSync(path.join(root, 'snapshots', MODEL_COMMIT, 'model-00002-of-00002.safetensors'))).toBe(false);
  });

  it('rejects a corrupted regular (git) file by its git sha1', async () => {
    server.corrupt.add(`${MODEL}/config.json`);
    await expect(client({ cacheDir: freshCache() }).resolveFile({ repo: MODEL, filename: 'config.json' })).rejects.toMatchObject({
      kind: 'integrity',
    });
  });
});

describe('model directories', () => {
  it('resolves a hub id to a snapshot with config, index + shards and tokenizer; a second run only lists', async () => {
    const cacheDir = freshCache();
    const dir = await resolveModelDir(MODEL, { hub: client({ cacheDir }) });
    expect(dir).toBe(path.join(cacheDir, 'models--acme--tiny-model', 'snapshots', MODEL_COMMIT));
    expect(readdirSync(dir).sort()).toEqual(
      [
        'config.json',
        'model-00001-of-00002.safetensors',
        'model-00002-of-00002.safetensors',
        'model.safetensors.index.json',
        'tokenizer.json',
        'tokenizer_config.json',
      ].sort(),
    );
    expect(readFileSync(path.join(dir, 'model-00002-of-00002.safetensors')).equals(weights2)).toBe(true);
    server.requests.length = 0;
    expect(await resolveModelDir(MODEL, { hub: client({ cacheDir }) })).toBe(dir);
    expect(server.requests.map((r) => r.path)).toEqual([`/api/models/${MODEL}/revision/main`]);
    server.requests.length = 0;
    expect(await resolveModelDir(MODEL, { hub: client({ cacheDir, offline: true }) })).toBe(dir);
    expect(server.requests).toHaveLength(0);
  });

  it('tokenizer-only resolution skips the weights; a repository without tokenizer.json is named', async () => {
    const cacheDir = freshCache();
    const dir = await resolveModelDir(MODEL, { hub: client({ cacheDir }), weights: false });
    expect(readdirSync(dir).sort()).toEqual(['config.json', 'tokenizer.json', 'tokenizer_config.json']);
    await expect(resolveModelDir('acme/no-tokenizer', { hub: client({ cacheDir }) })).rejects.toThrow(/lacks tokenizer\.json/);
  });

  it('a local directory is used as is, and checked', async () => {
    const dir = path.join(tmp, 'local-model');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'config.json'), config);
    writeFileSync(path.join(dir, 'tokenizer.json'), '{}');
    await expect(resolveModelDir(dir)).rejects.toThrow(/lacks \*\.safetensors weights/);
    writeFileSync(path.join(dir, 'pytorch_model.bin'), 'x');
    await expect(resolveModelDir(dir)).rejects.toThrow(/only PyTorch \.bin/);
    writeFileSync(path.join(dir, 'model.safetensors'), 'x');
    expect(await resolveModelDir(dir)).toBe(dir);
    await expect(resolveModelDir(path.join(tmp, 'nope'))).rejects.toThrow(/no model directory/);
  });
});

const PY_DOWNLOAD = `
import json, sys
from huggingface_hub import hf_hub_download
cache, repo, rtype, rev, local_only = sys.argv[1:6]
out = {}
for f in sys.argv[6:]:
    out[f] = hf_hub_download(repo_id=repo, filename=f, repo_type=rtype, revision=rev, cache_dir=cache,
                             local_files_only=(local_only == "1"))
print(json.dumps(out))
`;

function pyScript(): string {
  const file = path.join(tmp, 'hf_download.py');
  writeFileSync(file, PY_DOWNLOAD);
  return file;
}

/** Runs the reference Python without blocking the event loop (our server must answer it). */
function runPythonAsync(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(referencePython(), args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`python exited ${code}: ${err.slice(-3000)}`))));
  });
}

describe("Python's huggingface_hub and rpo share the cache", () => {
  it('hf_hub_download(local_files_only=True) finds what rpo downloaded', async () => {
    const cacheDir = freshCache();
    const hub = client({ cacheDir });
    const ours = {
      'config.json': await hub.resolveFile({ repo: MODEL, filename: 'config.json' }),
      'model-00001-of-00002.safetensors': await hub.resolveFile({ repo: MODEL, filename: 'model-00001-of-00002.safetensors' }),
    };
    const data = await hub.resolveFile({ repo: DATASET, repoType: 'dataset', filename: 'data/train-00000-of-00001.parquet' });
    const script = pyScript();
    const models = JSON.parse(runPython(script, [cacheDir, MODEL, 'model', 'main', '1', ...Object.keys(ours)])) as Record<string, string>;
    expect(models).toEqual(ours);
    expect(readFileSync(models['model-00001-of-00002.safetensors']!).equals(weights1)).toBe(true);
    const byCommit = JSON.parse(runPython(script, [cacheDir, MODEL, 'model', MODEL_COMMIT, '1', 'config.json'])) as Record<string, string>;
    expect(byCommit['config.json']).toBe(ours['config.json']);
    const datasets = JSON.parse(
      runPython(script, [cacheDir, DATASET, 'dataset', 'main', '1', 'data/train-00000-of-00001.parquet']),
    ) as Record<string, string>;
    expect(datasets['data/train-00000-of-00001.parquet']).toBe(data);
  }, 180_000);

  it('rpo finds, offline, what hf_hub_download downloaded from the same (local) hub', async () => {
    const cacheDir = freshCache();
    const env: NodeJS.ProcessEnv = {
      PATH: process.env['PATH'],
      HOME: tmp,
      HF_ENDPOINT: server.endpoint,
      HF_HUB_OFFLINE: '0',
      HF_HUB_DISABLE_TELEMETRY: '1',
      HF_HUB_DISABLE_XET: '1',
      HF_HUB_DISABLE_PROGRESS_BARS: '1',
      PYTHONDONTWRITEBYTECODE: '1',
    };
    const names = ['config.json', 'model-00002-of-00002.safetensors'];
    const py = JSON.parse(await runPythonAsync([pyScript(), cacheDir, MODEL, 'model', 'main', '0', ...names], env)) as Record<string, string>;
    expect(server.requests.some((r) => r.server === 'cdn')).toBe(true); // it really downloaded from the local hub
    server.requests.length = 0;
    const offline = client({ cacheDir, offline: true });
    for (const name of names) expect(await offline.resolveFile({ repo: MODEL, filename: name })).toBe(py[name]);
    expect(readFileSync(py['model-00002-of-00002.safetensors']!).equals(weights2)).toBe(true);
    expect(server.requests).toHaveLength(0);
    const online = await client({ cacheDir }).resolveFile({ repo: MODEL, filename: 'model-00002-of-00002.safetensors' });
    expect(online).toBe(py['model-00002-of-00002.safetensors']);
    expect(server.requests.filter((r) => r.method === 'GET')).toHaveLength(0);
  }, 180_000);
});
