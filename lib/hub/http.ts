// A small HTTP(S) client over node:http / node:https for the hub: explicit redirect policy,
// the Authorization header dropped when a redirect leaves the origin, an idle timeout.
import http from 'node:http';
import https from 'node:https';

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The URL that answered (after the redirects followed). */
  url: string;
  /** The body; consume it or call `discard`. */
  body: http.IncomingMessage;
}

export interface HttpRequestOptions {
  method: 'GET' | 'HEAD';
  headers: Record<string, string>;
  /** 'none': return 3xx as is; 'same-origin': follow those that stay on the origin; 'all': follow all. */
  redirects: 'none' | 'same-origin' | 'all';
  /** Socket idle timeout. */
  timeoutMs: number;
}

/** A failure to talk to the server at all (refused, reset, timed out, DNS): the cache may still help. */
export class NetworkError extends Error {
  override name = 'NetworkError';
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

const MAX_REDIRECTS = 10;

export function discard(res: HttpResponse): void {
  res.body.resume();
}

export function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

function once(url: URL, opts: HttpRequestOptions, headers: Record<string, string>): Promise<http.IncomingMessage> {
  const mod = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : undefined;
  if (!mod) return Promise.reject(new Error(`unsupported URL scheme ${url.protocol} (${url.origin})`));
  return new Promise((resolve, reject) => {
    const req = mod.request(url, { method: opts.method, headers }, resolve);
    req.setTimeout(opts.timeoutMs, () => {
      req.destroy(Object.assign(new Error(`no response from ${url.origin} in ${opts.timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      reject(new NetworkError(`cannot reach ${url.origin}: ${err.message}`, err.code));
    });
    req.end();
  });
}

/** Sends one request, following redirects as `opts.redirects` says. */
export async function httpRequest(url: string, opts: HttpRequestOptions): Promise<HttpResponse> {
  let current = new URL(url);
  const origin = current.origin;
  let headers = { ...opts.headers };
  for (let hop = 0; ; hop++) {
    const res = await once(current, opts, headers);
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    const isRedirect = status >= 300 && status < 400 && status !== 304 && location !== undefined;
    if (!isRedirect || opts.redirects === 'none') return { status, headers: res.headers, url: current.href, body: res };
    const next = new URL(location, current);
    if (opts.redirects === 'same-origin' && next.origin !== origin) {
      return { status, headers: res.headers, url: current.href, body: res };
    }
    res.resume();
    if (hop >= MAX_REDIRECTS) throw new NetworkError(`too many redirects from ${origin}`, 'EREDIRECTS');
    if (next.origin !== current.origin) {
      // Never carry credentials to another host (signed CDN URLs need none).
      headers = Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== 'authorization'));
    }
    current = next;
  }
}

/** Reads a whole (small) body as text. */
export async function readText(res: HttpResponse, limit = 64 * 1024 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      res.body.destroy();
      throw new Error(`response from ${new URL(res.url).origin} is larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
