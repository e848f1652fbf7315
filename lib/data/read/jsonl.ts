// JSON lines: one object per line; blank lines are skipped; a malformed line is an error
// naming file:line; invalid UTF-8 is a warning naming file:line (utf8.ts).
import { fileChunks, formatBytes, maxLineBytes } from './limits.js';
import { DataFileError, describeType, isPlainObject, type SourceRecord } from './records.js';
import { Utf8Issues, decodeUtf8, defaultWarn } from './utf8.js';

/** Parses one JSON-lines line (already known not to be blank) into an object, or throws naming file:line. */
export function parseJsonlLine(text: string, file: string, line: number, row: number): SourceRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new DataFileError(`${file}:${line}: malformed JSON (${why})`, file, { line, row });
  }
  if (!isPlainObject(value)) {
    throw new DataFileError(`${file}:${line}: expected a JSON object per line, found ${describeType(value)}`, file, {
      line,
      row,
    });
  }
  return { data: value, row, line };
}

/**
 * The lines of a file as bytes, split at LF (a CR before it is left for JSON.parse, which reads
 * it as whitespace). Bytes, not text: decoding per line is what lets invalid UTF-8 be reported
 * with its line number. A line longer than a read chunk is joined once, from its pieces; one
 * longer than `maxLine` is refused as it grows (a file with no line end, such as /dev/zero,
 * would otherwise be held whole).
 */
async function* byteLines(file: string, maxLine: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let line = 1;
  const tooLong = () =>
    new DataFileError(`${file}:${line}: line longer than ${formatBytes(maxLine)} (RPO_MAX_LINE_BYTES); not JSON lines, or a record too large to read`, file, { line });
  for await (const chunk of fileChunks(file)) {
    let start = 0;
    let nl: number;
    while ((nl = chunk.indexOf(0x0a, start)) >= 0) {
      const piece = chunk.subarray(start, nl);
      if (pendingBytes + piece.length > maxLine) throw tooLong();
      yield pending.length > 0 ? Buffer.concat([...pending, piece]) : piece;
      pending = [];
      pendingBytes = 0;
      line++;
      start = nl + 1;
    }
    if (start < chunk.length) {
      pending.push(chunk.subarray(start));
      pendingBytes += chunk.length - start;
      if (pendingBytes > maxLine) throw tooLong();
    }
  }
  if (pending.length > 0) yield Buffer.concat(pending);
}

export interface JsonlReadOptions {
  /** Warnings (invalid UTF-8); default: stderr. */
  onWarning?: (message: string) => void;
}

/** Streams the records of a `.jsonl` (or `.jsonl.gz`) file; invalid UTF-8 is read as U+FFFD and warned about once, with its lines. */
export async function* readJsonl(file: string, opts: JsonlReadOptions = {}): AsyncGenerator<SourceRecord> {
  const issues = new Utf8Issues(file, 'line');
  let line = 0;
  let row = 0;
  for await (const bytes of byteLines(file, maxLineBytes())) {
    line++;
    const { text: raw, replaced } = decodeUtf8(bytes);
    issues.add(line, replaced);
    const text = (line === 1 ? raw.replace(/^\uFEFF/, '') : raw).replace(/\r$/, '');
    if (text.trim().length === 0) continue;
    yield parseJsonlLine(text, file, line, row);
    row++;
  }
  issues.report(opts.onWarning ?? defaultWarn);
}
