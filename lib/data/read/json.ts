// JSON: an array of objects, or {"data": [...]} (the `field="data"` form HF datasets reads).
// Like HF datasets' json loader, a `.json` file that is really JSON lines is read as such.
import { parseJsonlLine } from './jsonl.js';
import { maxJsonBytes, readFileBounded } from './limits.js';
import { DataFileError, describeType, isPlainObject, type DataRecord, type SourceRecord } from './records.js';
import { Utf8Issues, decodeUtf8, defaultWarn, invalidLines } from './utf8.js';

/** The list of records a parsed JSON document holds, or a message saying why it holds none. */
function recordsOf(doc: unknown): unknown[] | string {
  if (Array.isArray(doc)) return doc;
  if (isPlainObject(doc)) {
    if (Array.isArray(doc['data'])) return doc['data'];
    const keys = Object.keys(doc).slice(0, 8).join(', ');
    return `expected an array of objects or {"data": [...]}, found an object with keys ${keys || '(none)'}`;
  }
  return `expected an array of objects or {"data": [...]}, found ${describeType(doc)}`;
}

/** Looks like JSON lines: at least two non-blank lines and the first one is an object on its own. */
function looksLikeJsonl(text: string): boolean {
  const lines = text.split(/\r?\n/).filter((l) => l.trim().length > 0);
  if (lines.length < 2) return false;
  try {
    return isPlainObject(JSON.parse(lines[0]!));
  } catch {
    return false;
  }
}

function* jsonlRecords(text: string, file: string): Generator<SourceRecord> {
  const lines = text.split(/\r?\n/);
  let row = 0;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim().length === 0) continue;
    yield parseJsonlLine(lines[i]!, file, i + 1, row++);
  }
}

export interface JsonReadOptions {
  /** Warnings (invalid UTF-8); default: stderr. */
  onWarning?: (message: string) => void;
}

/** Reads the records of a `.json` (or `.json.gz`) file (the whole file is parsed at once, up to maxJsonBytes()); invalid UTF-8 is read as U+FFFD and warned about, with its lines. */
export async function* readJson(file: string, opts: JsonReadOptions = {}): AsyncGenerator<SourceRecord> {
  // Read (and gunzipped) under a bound, in chunks: a gzip bomb or a file past V8's longest
  // string is refused naming the file before it is held whole.
  const bytes = await readFileBounded(file, maxJsonBytes(), 'JSON lines (.jsonl) are streamed and have no such bound (RPO_MAX_JSON_BYTES raises it)');
  const { text: decoded, replaced } = decodeUtf8(bytes);
  if (replaced > 0) {
    const issues = new Utf8Issues(file, 'line');
    for (const { line, replaced: n } of invalidLines(bytes)) issues.add(line, n);
    issues.report(opts.onWarning ?? defaultWarn);
  }
  const text = decoded.replace(/^\uFEFF/, '');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    if (looksLikeJsonl(text)) {
      yield* jsonlRecords(text, file);
      return;
    }
    const why = err instanceof Error ? err.message : String(err);
    throw new DataFileError(`${file}: malformed JSON (${why})`, file);
  }
  const list = recordsOf(doc);
  if (typeof list === 'string') throw new DataFileError(`${file}: ${list}`, file);
  for (let row = 0; row < list.length; row++) {
    const item = list[row];
    if (!isPlainObject(item)) {
      throw new DataFileError(`${file} row ${row}: expected an object, found ${describeType(item)}`, file, { row });
    }
    yield { data: item as DataRecord, row };
  }
}
