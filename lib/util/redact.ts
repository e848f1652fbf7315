// Masking secrets (API keys, hub tokens) in text that leaves the process: messages on a
// terminal, error messages, and every file rpo writes from what a server or a model sent.
//
// Two rules make it hold against servers that echo what they were sent:
// - Mask first, then cut. A message cut to N characters before masking can end in the middle of
//   a key, and the half that is left no longer matches the key: it leaks. Callers mask the whole
//   text and only then shorten it.
// - Fragments count. A body the server cut itself (or an error message that quotes a few
//   characters of its input, as V8's JSON.parse does) can hold a prefix, suffix or middle piece of
//   the key. Every run of text made of MIN_FRAGMENT_LENGTH or more characters of a secret
//   (consecutive in the secret) is masked, so no piece of a key longer than that survives.
//
// Secrets shorter than MIN_SECRET_LENGTH are not masked: a short value ("1", "none", "test") is
// not a credential worth hiding, and masking it would garble ordinary words and numbers all over
// the output (rationale text, paths, counts).

/** What a masked secret (or a piece of one) becomes. */
export const MASK = '***';

/** Secrets shorter than this are left alone (see above). */
export const MIN_SECRET_LENGTH = 8;

/**
 * The shortest piece of a secret that is masked. A random key's 6-character piece is about as
 * likely in ordinary text as a lottery win (62^6 ≈ 5.7·10^10 values), so this masks nothing by
 * accident, while the few characters it lets through say nothing useful about the key.
 */
export const MIN_FRAGMENT_LENGTH = 6;

/** Masks secrets in a text. */
export type Redactor = (text: string) => string;

/** The secrets worth masking: set, trimmed of nothing (a key is sent as it is), long enough, once each. */
export function usableSecrets(secrets: readonly (string | null | undefined)[]): string[] {
  const out = new Set<string>();
  for (const s of secrets) if (typeof s === 'string' && s.length >= MIN_SECRET_LENGTH) out.add(s);
  return [...out];
}

/**
 * `text` with every occurrence of each secret, and every piece of one of at least
 * MIN_FRAGMENT_LENGTH characters, replaced by ***. Adjacent or overlapping matches become one ***.
 */
export function redactText(text: string, secrets: readonly (string | null | undefined)[]): string {
  return makeRedactor(secrets)(text);
}

/** A redactor for a fixed set of secrets (those too short to mask are dropped). */
export function makeRedactor(secrets: readonly (string | null | undefined)[]): Redactor {
  const k = MIN_FRAGMENT_LENGTH;
  // Every k-character piece of every secret. A piece of length m >= k is covered whole by the
  // windows that match inside it; all secrets are matched together on the original text, so one
  // mask never splits another secret's match.
  const windows = new Set<string>();
  for (const secret of usableSecrets(secrets)) {
    for (let j = 0; j + k <= secret.length; j++) windows.add(secret.slice(j, j + k));
  }
  if (windows.size === 0) return (text) => text;
  return (text) => {
    if (text.length < k) return text;
    const marked = new Uint8Array(text.length);
    let any = false;
    for (let i = 0; i + k <= text.length; i++) {
      if (windows.has(text.slice(i, i + k))) {
        marked.fill(1, i, i + k);
        any = true;
      }
    }
    if (!any) return text;
    let out = '';
    for (let i = 0; i < text.length; ) {
      const start = i;
      const masked = marked[i] === 1;
      while (i < text.length && (marked[i] === 1) === masked) i++;
      out += masked ? MASK : text.slice(start, i);
    }
    return out;
  };
}

/**
 * A JSON-like value with every string (object keys included) masked: for records written as
 * JSON, where a secret with a character JSON escapes would not match in the serialized text.
 */
export function redactDeep<T>(value: T, redact: Redactor): T {
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return redact(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([key, x]) => [redact(key), walk(x)]));
    }
    return v;
  };
  return walk(value) as T;
}

/** The error with its message and stack masked (in place, so its class and fields stay). */
export function redactError<E>(err: E, redact: Redactor): E {
  if (err instanceof Error) {
    const message = redact(err.message);
    const stack = err.stack === undefined ? undefined : redact(err.stack);
    try {
      err.message = message;
      if (stack !== undefined) err.stack = stack;
    } catch {
      // A frozen error: wrap it instead of letting the secret through.
      return new Error(message) as unknown as E;
    }
  }
  return err;
}

/**
 * Shortens text to `n` characters (plus …) after collapsing whitespace. Mask before calling it:
 * cutting first could leave a piece of a secret that no longer matches it.
 */
export function cutText(text: string, n = 200): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > n ? `${one.slice(0, n)}…` : one;
}

// ---- secrets that came from the environment into a config ------------------------------------
//
// `'++wandb.entity=${oc.env:HF_TOKEN}'` puts a token into the resolved config, from where it would
// reach config.yaml, report.html, notices and error messages. The config resolver registers each
// value it reads from a variable whose name says it is a secret, and every place that writes a
// config or prints a message masks the registered values (redactSecrets). The registry is the
// process's: a value once resolved stays masked for the rest of the process, whichever config
// object it travels in.

/** Variable names whose values are secrets: *TOKEN*, *KEY*, *SECRET* (any case). */
export function isSecretName(name: string): boolean {
  return /TOKEN|KEY|SECRET/i.test(name);
}

const registered = new Set<string>();
let registeredRedactor: Redactor = (text) => text;

/** Records a secret value: redactSecrets masks it from now on (too-short values are not, see usableSecrets). */
export function registerSecret(value: string): void {
  if (registered.has(value)) return;
  registered.add(value);
  registeredRedactor = makeRedactor([...registered]);
}

/** `text` with every registered secret (and every piece of one) masked. */
export function redactSecrets(text: string): string {
  return registeredRedactor(text);
}
