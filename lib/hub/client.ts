// A small HuggingFace hub client: file resolution into the shared cache (see cache.ts),
// repository file listings, offline mode, a token that is sent but never shown.
//
// Environment (the same variables huggingface_hub reads):
//   HF_ENDPOINT            the hub (default https://huggingface.co)
//   HF_TOKEN               sent as `Authorization: Bearer ...` to the hub only (also
//                          HUGGING_FACE_HUB_TOKEN, or the file $HF_TOKEN_PATH / $HF_HOME/token)
//   HF_HUB_OFFLINE=1       the cache only, no request at all
//   HF_HUB_CACHE / HF_HOME where the cache lives
//
// Semantics follow hf_hub_download: a branch or tag costs one HEAD request (to learn the commit
// and the blob's etag) and no download when the blob is cached; a commit id whose snapshot
// entry exists costs nothing. When the hub cannot be reached (network error, 5xx, 401/403) a
// cached copy of the revision is used and a notice logged.
//
// The token is masked (lib/util/redact.ts: whole or in pieces of 6+ characters) in every error
// message and log line, including what the hub itself says (X-Error-Message, error bodies), so a
// hub or proxy that echoes the Authorization header cannot put it on a terminal or in a file.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, open, rename, rm, stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';

import { COMMIT_RE, RepoCache, hfHome, hubCacheDir, type RepoType } from './cache.js';
import { NetworkError, discard, header, httpRequest, readText, type HttpResponse } from './http.js';
import { cutText, makeRedactor, type Redactor } from '../util/redact.js';

export type { RepoType } from './cache.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

export type HubErrorKind = 'offline' | 'not-found' | 'unauthorized' | 'network' | 'integrity' | 'http' | 'invalid';

/** Every error the hub client throws; its message never contains the token, nor a 6+ character piece of it. */
export class HubError extends Error {
  override name = 'HubError';
  constructor(
    message: string,
    readonly kind: HubErrorKind,
  ) {
    super(message);
  }
}

export interface HubClientOptions {
  /** Default: $HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  /** A token; null for none; default: $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, or the token file. */
  token?: string | null;
  /** Default: hubCacheDir() ($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** The cache only. Default: $HF_HUB_OFFLINE is 1/true/yes/on. */
  offline?: boolean;
  /** Notices (downloads, resumptions, cache fallbacks); never given the token. Default: silent. */
  log?: (line: string) => void;
  /** Socket idle timeout per request (default 30 s). */
  timeoutMs?: number;
  /** How many times an interrupted download is resumed within one call (default 5). */
  retries?: number;
  /** Environment to read the defaults from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

export interface HubFileRequest {
  /** "org/name" (or a bare legacy "name"). */
  repo: string;
  /** Default 'model'. */
  repoType?: RepoType;
  /** Branch, tag or commit id; default 'main'. */
  revision?: string;
  /** Path inside the repository, with '/'. */
  filename: string;
}

export interface HubListing {
  repo: string;
  repoType: RepoType;
  revision: string;
  /** The commit the revision resolved to. */
  commit: string;
  /** Every file of the repository at that commit (repo-relative, '/'), sorted. */
  files: string[];
  /** True when the listing came from the cache (offline, or the hub unreachable). */
  fromCache: boolean;
}

interface FileMeta {
  commit: string;
  etag: string;
  size: number | undefined;
  /** Where to GET the content (a CDN URL for LFS files on the real hub). */
  location: string;
}

const REPO_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*(\/[A-Za-z0-9_.-]+)?$/;
const ETAG_RE = /^[A-Za-z0-9_.+=-]+$/;

function truthy(v: string | undefined): boolean {
  return v !== undefined && ['1', 'true', 'yes', 'on'].includes(v.trim().toLowerCase());
}

/** W/"abc" or "abc" → abc (as huggingface_hub normalizes it). */
export function normalizeEtag(etag: string | undefined): string | undefined {
  if (etag === undefined) return undefined;
  return etag.replace(/^W\//, '').replace(/^"+|"+$/g, '');
}

/** The hub token the client sends by default: $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, or the token file. */
export function hubToken(env: NodeJS.ProcessEnv = process.env): string | null {
  for (const key of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN']) {
    const v = env[key]?.trim();
    if (v) return v;
  }
  const file = env['HF_TOKEN_PATH']?.trim() || path.join(hfHome(env), 'token');
  try {
    const t = readFileSync(file, 'utf8').trim();
    return t.length > 0 ? t : null;
  } catch {
    return null;
  }
}

/** The server's own message in an error body: JSON `error` (string or {message}) / `message`, else the text. */
function bodyMessage(body: string): string {
  try {
    const doc = JSON.parse(body) as { error?: unknown; message?: unknown };
    const e = doc?.error;
    if (typeof e === 'string') return e;
    if (e !== null && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') return (e as { message: string }).message;
    if (typeof doc?.message === 'string') return doc.message;
  } catch {
    // not JSON: the text itself
  }
  return body;
}

function formatBytes(n: number | undefined): string {
  if (n === undefined) return 'unknown size';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** sha256 of a file, or git's blob sha1 (sha1 of "blob <size>\0" + content): the hub's two etags. */
async function fileDigest(file: string, kind: 'sha256' | 'git-sha1'): Promise<string> {
  const hash = createHash(kind === 'sha256' ? 'sha256' : 'sha1');
  if (kind === 'git-sha1') hash.update(`blob ${(await stat(file)).size}\0`);
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

function digestKindOf(etag: string): 'sha256' | 'git-sha1' | undefined {
  if (/^[0-9a-f]{64}$/.test(etag)) return 'sha256';
  if (/^[0-9a-f]{40}$/.test(etag)) return 'git-sha1';
  return undefined;
}

/**
 * Writes a response body to a file chunk by chunk, each write awaited: when the connection drops,
 * every byte received is on disk, so the next attempt resumes exactly there.
 */
async function appendBody(res: HttpResponse, file: string, append: boolean): Promise<void> {
  const fh = await open(file, append ? 'a' : 'w');
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) await fh.write(chunk);
  } finally {
    await fh.close();
  }
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch {
    return 0;
  }
}

export class HubClient {
  readonly endpoint: string;
  readonly cacheDir: string;
  readonly offline: boolean;
  readonly #token: string | null;
  readonly #redactor: Redactor;
  readonly #log: (line: string) => void;
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #inflight = new Map<string, Promise<void>>();

  constructor(opts: HubClientOptions = {}) {
    const env = opts.env ?? process.env;
    this.endpoint = (opts.endpoint ?? (env['HF_ENDPOINT']?.trim() || DEFAULT_ENDPOINT)).replace(/\/+$/, '');
    this.cacheDir = path.resolve(opts.cacheDir ?? hubCacheDir(env));
    this.offline = opts.offline ?? truthy(env['HF_HUB_OFFLINE']);
    this.#token = opts.token === undefined ? hubToken(env) : opts.token;
    this.#redactor = makeRedactor([this.#token]);
    this.#log = opts.log ?? (() => undefined);
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
    this.#retries = opts.retries ?? 5;
  }

  /** Whether a token will be sent (the token itself is not readable from the client). */
  get hasToken(): boolean {
    return this.#token !== null;
  }

  /** `text` with this client's token (and any 6+ character piece of it) replaced by ***. */
  redact(text: string): string {
    return this.#redactor(text);
  }

  /** The local path of a repository file, downloading it into the cache if needed. */
  async resolveFile(req: HubFileRequest): Promise<string> {
    const found = await this.#guard(() => this.#resolve(req));
    if (found === null) {
      const r = this.#normalize(req);
      throw new HubError(`${this.#describe(r)} has no file ${r.filename} at revision ${r.revision}`, 'not-found');
    }
    return found;
  }

  /** Like resolveFile, but null when the repository has no such file (404 from the hub, or a cached marker). */
  async tryResolveFile(req: HubFileRequest): Promise<string | null> {
    return this.#guard(() => this.#resolve(req));
  }

  /** Every file of a repository at a revision (the hub API, or the cached snapshot when offline/unreachable). */
  async listFiles(repo: string, repoType: RepoType = 'model', revision = 'main'): Promise<HubListing> {
    return this.#guard(() => this.#list(repo, repoType, revision));
  }

  // --- internals --------------------------------------------------------------------------------

  async #guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof HubError) throw new HubError(this.#redact(err.message), err.kind);
      if (err instanceof NetworkError) throw new HubError(this.#redact(err.message), 'network');
      const msg = err instanceof Error ? err.message : String(err);
      throw new HubError(this.#redact(msg), 'http');
    }
  }

  #redact(text: string): string {
    return this.#redactor(text);
  }

  /**
   * What the hub says about a failed request, masked and then cut (in that order: a cut first
   * could leave a piece of an echoed token that no longer matches it): X-Error-Message, else the
   * `error` / `message` of a JSON body, else the body's start. Reads (and so consumes) the body of
   * a GET; '' when there is nothing to say.
   */
  async #hubSays(res: HttpResponse, method: 'GET' | 'HEAD'): Promise<string> {
    let text = header(res, 'x-error-message') ?? '';
    if (method === 'GET') {
      let body = '';
      try {
        body = await readText(res, 64 * 1024);
      } catch {
        // a body we cannot read adds nothing to the status
      }
      if (text === '') text = bodyMessage(body);
    } else {
      discard(res);
    }
    return cutText(this.#redact(text), 200);
  }

  #say(line: string): void {
    this.#log(this.#redact(line));
  }

  #headers(withAuth: boolean): Record<string, string> {
    const h: Record<string, string> = {
      'user-agent': `rpo; node/${process.versions.node}`,
      'accept-encoding': 'identity',
    };
    if (withAuth && this.#token) h['authorization'] = `Bearer ${this.#token}`;
    return h;
  }

  #describe(r: { repo: string; repoType: RepoType }): string {
    return `${r.repoType} repository ${r.repo}`;
  }

  #normalize(req: HubFileRequest): Required<HubFileRequest> {
    const repoType = req.repoType ?? 'model';
    const revision = req.revision ?? 'main';
    if (!REPO_RE.test(req.repo)) {
      throw new HubError(`"${req.repo}" is not a hub repository id (expected "org/name")`, 'invalid');
    }
    const parts = req.filename.split('/');
    if (req.filename.length === 0 || req.filename.includes('\\') || parts.some((p) => p === '' || p === '.' || p === '..')) {
      throw new HubError(`"${req.filename}" is not a file path inside a repository`, 'invalid');
    }
    if (revision.length === 0 || revision.split('/').some((p) => p === '' || p === '.' || p === '..')) {
      throw new HubError(`"${revision}" is not a revision`, 'invalid');
    }
    return { repo: req.repo, repoType, revision, filename: req.filename };
  }

  #repoUrl(repo: string, repoType: RepoType): string {
    return `${this.endpoint}/${repoType === 'dataset' ? 'datasets/' : ''}${repo}`;
  }

  #fromCache(cache: RepoCache, r: Required<HubFileRequest>, why: string): string | null {
    const commit = cache.commitFor(r.revision);
    if (commit !== undefined) {
      const hit = cache.cachedFile(commit, r.filename);
      if (hit) return hit;
      if (cache.isKnownMissing(commit, r.filename)) return null;
    }
    throw new HubError(
      `${why}, and ${r.filename} of ${this.#describe(r)} (revision ${r.revision}) is not in the cache ${this.cacheDir}` +
        (this.offline ? ' (HF_HUB_OFFLINE=1: download it once with network access, or unset HF_HUB_OFFLINE)' : ''),
      this.offline ? 'offline' : 'network',
    );
  }

  async #resolve(req: HubFileRequest): Promise<string | null> {
    const r = this.#normalize(req);
    const cache = new RepoCache(this.cacheDir, r.repo, r.repoType);
    // A commit id whose snapshot entry exists: nothing to ask.
    if (COMMIT_RE.test(r.revision)) {
      const hit = cache.cachedFile(r.revision, r.filename);
      if (hit) return hit;
      if (this.offline && cache.isKnownMissing(r.revision, r.filename)) return null;
    }
    if (this.offline) return this.#fromCache(cache, r, 'offline mode (HF_HUB_OFFLINE)');

    const url =
      `${this.#repoUrl(r.repo, r.repoType)}/resolve/${encodeURIComponent(r.revision)}/` +
      r.filename.split('/').map(encodeURIComponent).join('/');
    let meta: FileMeta | { missing: string | undefined };
    try {
      meta = await this.#head(url, r);
    } catch (err) {
      const fallback = err instanceof NetworkError || (err instanceof HubError && ['network', 'unauthorized', 'http'].includes(err.kind));
      if (!fallback) throw err;
      const reason = err instanceof Error ? err.message : String(err);
      let hit: string | null;
      try {
        hit = this.#fromCache(cache, r, reason);
      } catch {
        throw err; // not cached either: the hub's own answer says most
      }
      this.#say(`hub: ${reason}; using the cached ${r.repo}/${r.filename}`);
      return hit;
    }
    if ('missing' in meta) {
      if (meta.missing !== undefined) {
        await cache.markMissing(meta.missing, r.filename);
        await cache.writeRef(r.revision, meta.missing);
      }
      return null;
    }
    await cache.writeRef(r.revision, meta.commit);
    const pointer = cache.cachedFile(meta.commit, r.filename);
    if (pointer) return pointer;
    const blob = cache.blobPath(meta.etag);
    if (!existsSync(blob)) await this.#downloadOnce(blob, meta, r);
    return cache.link(meta.commit, r.filename, meta.etag);
  }

  async #head(url: string, r: Required<HubFileRequest>): Promise<FileMeta | { missing: string | undefined }> {
    const res = await httpRequest(url, {
      method: 'HEAD',
      headers: this.#headers(true),
      redirects: 'same-origin',
      timeoutMs: this.#timeoutMs,
    });
    if (res.status === 404) {
      const code = header(res, 'x-error-code');
      if (code === 'EntryNotFound' || (code === undefined && header(res, 'x-repo-commit') !== undefined)) {
        discard(res);
        return { missing: header(res, 'x-repo-commit') };
      }
    }
    if (res.status >= 400) this.#throwStatus(res, r, await this.#hubSays(res, 'HEAD'));
    discard(res);
    const commit = header(res, 'x-repo-commit');
    if (commit === undefined || !COMMIT_RE.test(commit)) {
      throw new HubError(
        `${new URL(url).origin} answered ${r.filename} without an X-Repo-Commit header: it does not look like a ` +
          `HuggingFace hub (check HF_ENDPOINT, proxy and firewall)`,
        'http',
      );
    }
    const etag = normalizeEtag(header(res, 'x-linked-etag') ?? header(res, 'etag'));
    if (etag === undefined || !ETAG_RE.test(etag)) {
      throw new HubError(`the hub gave no usable ETag for ${r.filename} of ${this.#describe(r)}`, 'http');
    }
    const isRedirect = res.status >= 300 && res.status < 400;
    const sizeHeader = header(res, 'x-linked-size') ?? (isRedirect ? undefined : header(res, 'content-length'));
    const size = sizeHeader !== undefined && /^\d+$/.test(sizeHeader) ? Number(sizeHeader) : undefined;
    const loc = header(res, 'location');
    const location = isRedirect && loc !== undefined ? new URL(loc, res.url).href : res.url;
    return { commit, etag, size, location };
  }

  #throwStatus(res: HttpResponse, r: { repo: string; repoType: RepoType; revision: string; filename?: string }, says = ''): never {
    const what = this.#describe(r);
    // The header is the server's text: masked like the rest of what it says.
    const rawCode = header(res, 'x-error-code');
    const code = rawCode === undefined ? undefined : cutText(this.#redact(rawCode), 80);
    const hub = says ? ` (the hub says: ${says})` : '';
    if (res.status === 401 || res.status === 403 || code === 'RepoNotFound' || code === 'GatedRepo') {
      const hint = this.#token
        ? 'the token (HF_TOKEN) was sent and refused: check that it has access'
        : 'set HF_TOKEN to a token with access if it is private or gated';
      throw new HubError(`${what} was refused (HTTP ${res.status}${code ? ` ${code}` : ''}): it does not exist, or ${hint}${hub}`, 'unauthorized');
    }
    if (res.status === 404 && code === 'RevisionNotFound') {
      throw new HubError(`${what} has no revision ${r.revision}${hub}`, 'not-found');
    }
    if (res.status === 404) {
      throw new HubError(`${what} was not found (HTTP 404${code ? ` ${code}` : ''})${hub}`, 'not-found');
    }
    throw new HubError(`the hub answered HTTP ${res.status} for ${what}${r.filename ? ` / ${r.filename}` : ''}${hub}`, 'http');
  }

  async #downloadOnce(blob: string, meta: FileMeta, r: Required<HubFileRequest>): Promise<void> {
    const running = this.#inflight.get(blob);
    if (running) return running;
    const job = this.#download(blob, meta, r).finally(() => this.#inflight.delete(blob));
    this.#inflight.set(blob, job);
    return job;
  }

  /** Downloads into blobs/<etag>.incomplete (resuming what is there), verifies it, renames it into place. */
  async #download(blob: string, meta: FileMeta, r: Required<HubFileRequest>): Promise<void> {
    const partial = `${blob}.incomplete`;
    await mkdir(path.dirname(blob), { recursive: true });
    const sameOrigin = new URL(meta.location).origin === new URL(this.endpoint).origin;
    const label = `${r.repo}/${r.filename}`;
    this.#say(`hub: downloading ${label} (${formatBytes(meta.size)})`);
    let lastError = '';
    let complete = false;
    for (let attempt = 0; attempt <= this.#retries && !complete; attempt++) {
      let have = await sizeOf(partial);
      if (meta.size !== undefined && have > meta.size) {
        await truncate(partial, 0);
        have = 0;
      }
      if (meta.size !== undefined && have === meta.size && have > 0) {
        complete = true;
        break;
      }
      if (attempt > 0) await new Promise((res) => setTimeout(res, Math.min(2000, 100 * attempt)));
      if (have > 0) this.#say(`hub: resuming ${label} at ${formatBytes(have)}`);
      const headers = this.#headers(sameOrigin);
      if (have > 0) headers['range'] = `bytes=${have}-`;
      let res: HttpResponse;
      try {
        res = await httpRequest(meta.location, { method: 'GET', headers, redirects: 'all', timeoutMs: this.#timeoutMs });
      } catch (err) {
        if (!(err instanceof NetworkError)) throw err;
        lastError = err.message;
        continue;
      }
      if (res.status === 416) {
        // The range starts at or past the end: what we have is suspect, start over.
        discard(res);
        await truncate(partial, 0);
        continue;
      }
      if (res.status !== 200 && res.status !== 206) {
        this.#throwStatus(res, r, await this.#hubSays(res, 'GET'));
      }
      let append = false;
      if (res.status === 206) {
        const m = /^bytes (\d+)-/.exec(header(res, 'content-range') ?? '');
        if (!m || Number(m[1]) !== have) {
          discard(res);
          await truncate(partial, 0);
          lastError = `the server sent a range other than the one asked for`;
          continue;
        }
        append = true;
      }
      try {
        await appendBody(res, partial, append);
      } catch (err) {
        lastError = `connection lost after ${formatBytes(await sizeOf(partial))} (${err instanceof Error ? err.message : String(err)})`;
        this.#say(`hub: ${label}: ${lastError}`);
        continue;
      }
      if (meta.size === undefined || (await sizeOf(partial)) === meta.size) {
        complete = true;
        break;
      }
      lastError = `the body ended at ${formatBytes(await sizeOf(partial))} of ${formatBytes(meta.size)}`;
    }
    if (!complete) {
      throw new HubError(
        `download of ${label} did not complete after ${this.#retries + 1} attempts (${lastError}); ` +
          `the partial file ${partial} is kept and the next call resumes it`,
        'network',
      );
    }
    await this.#verify(partial, meta, label);
    await rename(partial, blob);
  }

  async #verify(file: string, meta: FileMeta, label: string): Promise<void> {
    const kind = digestKindOf(meta.etag);
    if (kind === undefined) return; // an etag that is not a content hash: the size check above is all we have
    const digest = await fileDigest(file, kind);
    if (digest !== meta.etag) {
      await rm(file, { force: true });
      throw new HubError(
        `download of ${label} is corrupt: its ${kind} is ${digest}, the hub says ${meta.etag}; ` +
          `the partial file was removed, try again`,
        'integrity',
      );
    }
  }

  async #list(repo: string, repoType: RepoType, revision: string): Promise<HubListing> {
    const r = this.#normalize({ repo, repoType, revision, filename: 'x' });
    const cache = new RepoCache(this.cacheDir, r.repo, r.repoType);
    const cached = (why: string): HubListing => {
      const commit = cache.commitFor(r.revision);
      const files = commit !== undefined ? cache.listSnapshot(commit) : [];
      if (commit === undefined || files.length === 0) {
        throw new HubError(
          `${why}, and ${this.#describe(r)} (revision ${r.revision}) has no snapshot in the cache ${this.cacheDir}` +
            (this.offline ? ' (HF_HUB_OFFLINE=1: fetch it once with network access)' : ''),
          this.offline ? 'offline' : 'network',
        );
      }
      return { repo: r.repo, repoType: r.repoType, revision: r.revision, commit, files, fromCache: true };
    };
    if (this.offline) return cached('offline mode (HF_HUB_OFFLINE)');
    const url = `${this.endpoint}/api/${r.repoType}s/${r.repo}/revision/${encodeURIComponent(r.revision)}`;
    let res: HttpResponse;
    try {
      res = await httpRequest(url, { method: 'GET', headers: this.#headers(true), redirects: 'same-origin', timeoutMs: this.#timeoutMs });
    } catch (err) {
      if (!(err instanceof NetworkError)) throw err;
      const listing = cached(err.message);
      this.#say(`hub: ${err.message}; using the cached listing of ${r.repo}`);
      return listing;
    }
    if (res.status !== 200) {
      const says = await this.#hubSays(res, 'GET');
      if (res.status >= 500 || res.status === 401 || res.status === 403) {
        try {
          const listing = cached(`the hub answered HTTP ${res.status}`);
          this.#say(`hub: HTTP ${res.status} for ${r.repo}; using the cached listing`);
          return listing;
        } catch {
          // fall through to the precise error
        }
      }
      this.#throwStatus(res, r, says);
    }
    let info: { sha?: unknown; siblings?: unknown };
    try {
      info = JSON.parse(await readText(res)) as typeof info;
    } catch (err) {
      // V8's message quotes a few characters of the body: masked with the rest in #guard.
      throw new HubError(`the hub's listing of ${this.#describe(r)} is not JSON (${err instanceof Error ? err.message : String(err)})`, 'http');
    }
    const commit = typeof info.sha === 'string' ? info.sha : '';
    if (!COMMIT_RE.test(commit) || !Array.isArray(info.siblings)) {
      throw new HubError(`the hub's listing of ${this.#describe(r)} has no commit sha or file list`, 'http');
    }
    const files = info.siblings
      .map((s: unknown) => (s !== null && typeof s === 'object' ? (s as { rfilename?: unknown }).rfilename : undefined))
      .filter((f): f is string => typeof f === 'string')
      .sort();
    await cache.writeRef(r.revision, commit);
    return { repo: r.repo, repoType: r.repoType, revision: r.revision, commit, files, fromCache: false };
  }
}

let shared: HubClient | undefined;
let sharedKey = '';

/** A client configured from the environment (rebuilt when the relevant variables change). */
export function defaultHubClient(): HubClient {
  const env = process.env;
  const key = [
    env['HF_ENDPOINT'],
    env['HF_TOKEN'],
    env['HUGGING_FACE_HUB_TOKEN'],
    env['HF_HUB_OFFLINE'],
    env['HF_HUB_CACHE'],
    env['HUGGINGFACE_HUB_CACHE'],
    env['HF_HOME'],
    env['XDG_CACHE_HOME'],
  ].join('\u0000');
  if (!shared || key !== sharedKey) {
    shared = new HubClient();
    sharedKey = key;
  }
  return shared;
}
