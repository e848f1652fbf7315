// An OpenAI-compatible chat-completions client (OpenAI, vLLM, llama.cpp's server, TGI, ...):
// POST {base}/v1/chat/completions, bounded concurrency, a timeout per request, retries with
// exponential backoff and jitter on 429 / 408 / 5xx / connection errors / timeouts (a server's
// Retry-After is honoured), and errors that say what was wrong on other 4xx answers and on
// malformed bodies. The API key goes in `Authorization: Bearer` and nowhere else: every message
// and every completion that leaves this module has it (and any 6+ character piece of it) replaced
// by "***" — masked before any cut, so a key straddling the cut cannot leave half of itself.
import { cutText, makeRedactor, type Redactor } from '../util/redact.js';
import type { Generator, GeneratorOutcome, WorkRow } from './generator.js';

export interface OpenAIOptions {
  /** Server root, e.g. http://127.0.0.1:8000 (a trailing /v1 is accepted). */
  baseUrl: string;
  /** The `model` field of the requests. */
  model: string;
  /** Sent as `Authorization: Bearer <key>` when set. */
  apiKey?: string;
  /** Other secrets to mask in messages and completions (e.g. HF_TOKEN); the key always is. */
  secrets?: readonly string[];
  concurrency: number;
  timeoutMs: number;
  /** Retries after the first attempt. */
  retries: number;
  /** First backoff delay; doubles per retry, with jitter, up to maxBackoffMs. */
  backoffMs: number;
  maxBackoffMs?: number;
  maxNewTokens: number;
  temperature: number;
  topP: number;
  /** Sent only when > 0 (not an OpenAI field; vLLM and llama.cpp read it). */
  topK: number;
  /** Request i gets seed + i. */
  seed: number;
  /** Called before each retry (message already redacted). */
  onRetry?: (id: string, message: string, delayMs: number) => void;
}

/** Chat-completions endpoint of a base URL. */
export function chatCompletionsUrl(base: string): string {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new OpenAIError(`openai: ${JSON.stringify(base)} is not a URL (expected e.g. openai:http://127.0.0.1:8000)`, 'fatal');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new OpenAIError(`openai: ${base} must be an http:// or https:// URL`, 'fatal');
  }
  const p = url.pathname.replace(/\/+$/, '');
  url.pathname = p.endsWith('/v1') ? `${p}/chat/completions` : `${p}/v1/chat/completions`;
  return url.toString();
}

/**
 * kind: 'retry' (try again after a delay), 'row' (this row fails, the run goes on), 'fatal' (the
 * run cannot go on: a bad key, a wrong URL or model).
 */
export class OpenAIError extends Error {
  override name = 'OpenAIError';
  constructor(
    message: string,
    readonly kind: 'retry' | 'row' | 'fatal',
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** A chat message (`rpo compare`'s judge sends two user messages, as the seed's compare.py). */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface Completion {
  text: string;
  finish: 'stop' | 'length';
  tokens: number | null;
}

/** Replaces every occurrence of `secret` (and every 6+ character piece of it) in `text` with *** (lib/util/redact.ts). */
export function redact(text: string, secret: string | undefined): string {
  return makeRedactor([secret])(text);
}

const NO_REDACTION: Redactor = (t) => t;

/** Retry-After (seconds or an HTTP date) or retry-after-ms, in ms; undefined when absent or bad. */
export function retryAfterMs(headers: Headers, now = Date.now()): number | undefined {
  const ms = headers.get('retry-after-ms');
  if (ms !== null && /^\s*\d+(\.\d+)?\s*$/.test(ms)) return Math.max(0, Number(ms));
  const v = headers.get('retry-after');
  if (v === null) return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(v)) return Math.max(0, Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Backoff before retry `attempt` (0-based): base·2^attempt capped, times a jitter in [0.5, 1). */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const full = Math.min(maxMs, baseMs * 2 ** attempt);
  return full * (0.5 + 0.5 * random());
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** At most this many characters of what a server said go into a message. */
const SNIPPET_CHARS = 200;

/** Masks, then cuts (never the other way round: see lib/util/redact.ts). */
function snippet(text: string, redact: Redactor, n = SNIPPET_CHARS): string {
  return cutText(redact(text), n);
}

/**
 * The server's own error message from an error body, else the body's start; masked, then cut.
 * The message is taken from the parsed JSON (where "\u0073k-..." is the key again), so masking
 * applies to what JSON.parse returns, not only to the raw body.
 */
export function serverMessage(body: string, redact: Redactor = NO_REDACTION): string {
  let message: string | undefined;
  try {
    const doc = JSON.parse(body) as { error?: unknown; message?: unknown; detail?: unknown };
    const e = doc.error;
    if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') message = (e as { message: string }).message;
    else if (typeof e === 'string') message = e;
    else if (typeof doc.message === 'string') message = doc.message;
    else if (typeof doc.detail === 'string') message = doc.detail;
  } catch {
    // not JSON: show the text
  }
  return snippet(message ?? body, redact) || '(empty body)';
}

/**
 * Parses a 2xx body into a completion; throws a 'row' error naming what is malformed. With
 * `redact`, the completion's text and the body quoted in errors are masked (a server can echo
 * the key in `choices[0].message.content`).
 */
export function parseCompletion(body: string, url: string, redact: Redactor = NO_REDACTION): Completion {
  const bad = (what: string): OpenAIError =>
    new OpenAIError(`malformed response from ${url}: ${what} (body: ${snippet(body, redact) || '(empty)'})`, 'row');
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    throw bad('the body is not JSON');
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw bad('the body is not a JSON object');
  const choices = (doc as { choices?: unknown }).choices;
  if (!Array.isArray(choices)) throw bad('no "choices" array');
  if (choices.length === 0) throw bad('"choices" is empty');
  const c = choices[0] as { message?: unknown; finish_reason?: unknown } | null;
  if (c === null || typeof c !== 'object') throw bad('choices[0] is not an object');
  const message = c.message as { content?: unknown } | null | undefined;
  if (message === null || typeof message !== 'object') throw bad('choices[0].message is missing');
  const content = message.content;
  if (content !== null && content !== undefined && typeof content !== 'string') throw bad('choices[0].message.content is not a string');
  const usage = (doc as { usage?: { completion_tokens?: unknown } }).usage;
  const tokens = usage && typeof usage.completion_tokens === 'number' ? usage.completion_tokens : null;
  return { text: typeof content === 'string' ? redact(content) : '', finish: c.finish_reason === 'length' ? 'length' : 'stop', tokens };
}

function networkCause(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  const cause = e?.cause;
  if (cause?.code) return `${cause.code}${cause.message ? `: ${cause.message}` : ''}`;
  if (cause?.message) return cause.message;
  return e?.message ?? String(err);
}

export class OpenAIGenerator implements Generator {
  readonly url: string;
  private readonly redactor: Redactor;

  constructor(private readonly opts: OpenAIOptions) {
    this.redactor = makeRedactor([opts.apiKey, ...(opts.secrets ?? [])]);
    this.url = chatCompletionsUrl(opts.baseUrl);
    if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1) throw new OpenAIError('--concurrency must be an integer >= 1', 'fatal');
  }

  private redact(s: string): string {
    return this.redactor(s);
  }

  /** One attempt. Throws OpenAIError(kind). */
  private async attempt(content: string | readonly ChatMessage[], seed: number, signal: AbortSignal): Promise<Completion> {
    const o = this.opts;
    const body: Record<string, unknown> = {
      model: o.model,
      messages: typeof content === 'string' ? [{ role: 'user', content }] : content,
      max_tokens: o.maxNewTokens,
      temperature: o.temperature,
      top_p: o.topP,
      seed,
      n: 1,
      stream: false,
    };
    if (o.topK > 0) body.top_k = o.topK;
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (o.apiKey) headers.authorization = `Bearer ${o.apiKey}`;
    const timeout = new AbortController();
    const onAbort = (): void => timeout.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      timeout.abort();
    }, o.timeoutMs);
    let status: number;
    let text: string;
    let resHeaders: Headers;
    try {
      const res = await fetch(this.url, { method: 'POST', headers, body: JSON.stringify(body), signal: timeout.signal });
      status = res.status;
      resHeaders = res.headers;
      text = await res.text();
    } catch (err) {
      if (signal.aborted) throw new OpenAIError('interrupted', 'fatal');
      if (timedOut) throw new OpenAIError(`no answer within ${(o.timeoutMs / 1000).toFixed(1)} s (timeout)`, 'retry');
      throw new OpenAIError(`connection error: ${this.redact(networkCause(err))}`, 'retry');
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
    if (status >= 200 && status < 300) return parseCompletion(text, this.url, this.redactor);
    const what = `HTTP ${status} from ${this.url}: ${serverMessage(text, this.redactor)}`;
    if (status === 429 || status === 408 || status === 409 || status >= 500) {
      throw new OpenAIError(what, 'retry', retryAfterMs(resHeaders));
    }
    if (status === 401 || status === 403) {
      throw new OpenAIError(
        `${what} — the server refused the credentials (${o.apiKey ? 'check the API key' : 'no API key was sent: set OPENAI_API_KEY or --api-key-env NAME'})`,
        'fatal',
      );
    }
    if (status === 404) {
      throw new OpenAIError(`${what} — check the base URL (requests go to {base}/v1/chat/completions) and --model ${o.model}`, 'fatal');
    }
    throw new OpenAIError(what, 'row');
  }

  /** One request (a user message, or the messages) with its retries. Throws OpenAIError 'row' (give up on this row) or 'fatal'. */
  async complete(id: string, content: string | readonly ChatMessage[], seed: number, signal: AbortSignal): Promise<Completion> {
    const o = this.opts;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.attempt(content, seed, signal);
      } catch (err) {
        const e = err instanceof OpenAIError ? err : new OpenAIError(String(err), 'row');
        const msg = this.redact(e.message);
        if (e.kind !== 'retry') throw new OpenAIError(msg, e.kind);
        if (attempt >= o.retries) throw new OpenAIError(`${msg} (gave up after ${attempt + 1} attempts)`, 'row');
        const delay = e.retryAfterMs !== undefined ? Math.min(e.retryAfterMs, 600_000) : backoffDelay(attempt, o.backoffMs, o.maxBackoffMs ?? 60_000);
        o.onRetry?.(id, msg, delay);
        await sleep(delay, signal);
        if (signal.aborted) throw new OpenAIError('interrupted', 'fatal');
      }
    }
  }

  /** Sends every row not in `done`, `concurrency` at a time, reporting each outcome as it arrives. */
  async run(rows: readonly WorkRow[], done: ReadonlySet<number>, emit: (o: GeneratorOutcome[]) => void, signal: AbortSignal): Promise<void> {
    const queue = rows.filter((r) => !done.has(r.i));
    const stop = new AbortController();
    const onAbort = (): void => stop.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    let fatal: OpenAIError | null = null;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (!stop.signal.aborted) {
        const row = queue[next++];
        if (!row) return;
        try {
          const c = await this.complete(row.id, row.request, this.opts.seed + row.i, stop.signal);
          if (stop.signal.aborted) return;
          emit([{ i: row.i, id: row.id, text: c.text.trim(), finish: c.finish, tokens: c.tokens }]);
        } catch (err) {
          const e = err as OpenAIError;
          if (stop.signal.aborted) return;
          if (e.kind === 'fatal') {
            fatal ??= e;
            stop.abort();
            return;
          }
          emit([{ i: row.i, id: row.id, error: this.redact(e.message) }]);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(this.opts.concurrency, Math.max(queue.length, 1)) }, worker));
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    if (fatal !== null && !signal.aborted) throw fatal;
  }

  close(): void {
    // fetch keeps no state of ours to free
  }
}
