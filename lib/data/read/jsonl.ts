// JSON lines: one object per line; blank lines are skipped; a malformed line is an error
// naming file:line.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

import { DataFileError, describeType, isPlainObject, type SourceRecord } from './records.js';

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

/** Streams the records of a `.jsonl` file. */
export async function* readJsonl(file: string): AsyncGenerator<SourceRecord> {
  const input = createReadStream(file, { encoding: 'utf8' });
  const lines = createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  let row = 0;
  try {
    for await (const raw of lines) {
      line++;
      const text = line === 1 ? raw.replace(/^\uFEFF/, '') : raw;
      if (text.trim().length === 0) continue;
      yield parseJsonlLine(text, file, line, row);
      row++;
    }
  } finally {
    lines.close();
    input.destroy();
  }
}
