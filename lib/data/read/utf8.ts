// Invalid UTF-8 in data files. Decoding replaces each bad byte sequence with U+FFFD, as every
// reader (and Python's `errors="replace"`) does; that changes the text the model trains on, so
// the readers say where it happened: the file, its lines (JSON) or rows (parquet), and how many
// characters were replaced. A file that is valid UTF-8 costs one native check (isUtf8).
import { isUtf8 } from 'node:buffer';

const warned = new Set<string>();

/**
 * Where warnings go when the caller gives no handler: stderr, so no replacement is silent. Each
 * message once per process: a single-file dataset is read for its train and its held-out test
 * split, and one warning about the file is enough.
 */
export function defaultWarn(message: string): void {
  if (warned.has(message)) return;
  warned.add(message);
  process.stderr.write(`rpo: warning: ${message}\n`);
}

const REPLACEMENT = 0xfffd;

function countReplacements(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === REPLACEMENT) n++;
  return n;
}

/** EF BF BD: a U+FFFD that was in the file as such (valid UTF-8, not a replacement). */
function countEncodedReplacements(bytes: Uint8Array): number {
  let n = 0;
  for (let i = 0; i + 2 < bytes.length; i++) if (bytes[i] === 0xef && bytes[i + 1] === 0xbf && bytes[i + 2] === 0xbd) n++;
  return n;
}

/**
 * `bytes` decoded as UTF-8, and how many U+FFFD the decoding put in place of invalid sequences
 * (0 for valid UTF-8; U+FFFD characters that were in the file as such are not counted).
 */
export function decodeUtf8(bytes: Uint8Array): { text: string; replaced: number } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = buf.toString('utf8');
  if (isUtf8(buf)) return { text, replaced: 0 };
  return { text, replaced: Math.max(1, countReplacements(text) - countEncodedReplacements(buf)) };
}

/** Collects the places of a file with invalid UTF-8 and words one warning for it. */
export class Utf8Issues {
  private readonly places: number[] = [];
  private replaced = 0;

  /** @param unit 'line' (1-based line numbers: file:line) or 'row' (0-based rows). */
  constructor(
    readonly file: string,
    readonly unit: 'line' | 'row',
  ) {}

  add(place: number, replaced: number): void {
    if (replaced <= 0) return;
    if (this.places[this.places.length - 1] !== place) this.places.push(place);
    this.replaced += replaced;
  }

  get count(): number {
    return this.places.length;
  }

  /** The warning, or null when the file was valid UTF-8. */
  message(max = 10): string | null {
    if (this.places.length === 0) return null;
    const shown = this.places.slice(0, max).map((p) => (this.unit === 'line' ? `${this.file}:${p}` : `row ${p}`));
    const more = this.places.length > max ? ` and ${this.places.length - max} more` : '';
    const n = this.places.length;
    const where = `${n} ${this.unit}${n === 1 ? '' : 's'}`;
    return (
      `${this.file}: invalid UTF-8 on ${where} (${shown.join(', ')}${more}): ` +
      `${this.replaced} character${this.replaced === 1 ? ' was' : 's were'} read as U+FFFD`
    );
  }

  /** Sends the warning, if any, to `warn`. */
  report(warn: (message: string) => void): void {
    const m = this.message();
    if (m !== null) warn(m);
  }
}

/**
 * The 1-based numbers of the lines of `bytes` (split at LF) that are not valid UTF-8, with the
 * replacements each decodes to. For a whole-file buffer already known to be invalid.
 */
export function invalidLines(bytes: Buffer): Array<{ line: number; replaced: number }> {
  const out: Array<{ line: number; replaced: number }> = [];
  let start = 0;
  let line = 1;
  while (start <= bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length;
    const { replaced } = decodeUtf8(bytes.subarray(start, end));
    if (replaced > 0) out.push({ line, replaced });
    start = end + 1;
    line++;
  }
  return out;
}
