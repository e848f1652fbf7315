// JSON lines: one object per line; blank lines are skipped; a malformed line is an error
// naming file:line; invalid UTF-8 is a warning naming file:line (utf8.ts).
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';

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
 * with its line number. A line longer than a read chunk is joined once, from its pieces.
 */
async function* byteLines(file: string): AsyncGenerator<Buffer> {
  const raw = createReadStream(file);
  // pipeline: an error of either stream (a missing file, bad gzip data) ends the iteration with it.
  const input = file.toLowerCase().endsWith('.gz') ? pipeline(raw, createGunzip(), () => undefined) : raw;
  let pending: Buffer[] = [];
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      let start = 0;
      let nl: number;
      while ((nl = chunk.indexOf(0x0a, start)) >= 0) {
        const piece = chunk.subarray(start, nl);
        yield pending.length > 0 ? Buffer.concat([...pending, piece]) : piece;
        pending = [];
        start = nl + 1;
      }
      if (start < chunk.length) pending.push(chunk.subarray(start));
    }
    if (pending.length > 0) yield Buffer.concat(pending);
  } finally {
    input.destroy();
    raw.destroy();
  }
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
  for await (const bytes of byteLines(file)) {
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
