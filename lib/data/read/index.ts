// Readers for local data files: `.jsonl` / `.ndjson`, `.json`, `.parquet`. Each yields plain
// records with their position, so callers can name the file and line or row in errors.
import { readJson } from './json.js';
import { readJsonl } from './jsonl.js';
import { readParquet } from './parquet.js';
import { DataFileError, type DataFormat, type SourceRecord } from './records.js';

export { readJson } from './json.js';
export { readJsonl } from './jsonl.js';
export { readParquet, type ParquetReadOptions } from './parquet.js';
export {
  DataFileError,
  describeType,
  isPlainObject,
  recordLocation,
  type DataFormat,
  type DataRecord,
  type SourceRecord,
} from './records.js';

/** The format of a data file by its extension, or undefined for anything else. */
export function dataFormatOf(file: string): DataFormat | undefined {
  const lower = file.toLowerCase();
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson')) return 'jsonl';
  if (lower.endsWith('.json')) return 'json';
  if (lower.endsWith('.parquet')) return 'parquet';
  return undefined;
}

export interface ReadOptions {
  /** Parquet only: read just these top-level columns (a speed-up; other formats return all keys). */
  columns?: readonly string[];
}

/** Streams the records of a data file, choosing the reader by extension. */
export function readRecords(file: string, opts: ReadOptions = {}): AsyncGenerator<SourceRecord> {
  const format = dataFormatOf(file);
  switch (format) {
    case 'jsonl':
      return readJsonl(file);
    case 'json':
      return readJson(file);
    case 'parquet':
      return readParquet(file, opts);
    default:
      throw new DataFileError(`${file}: unsupported data file (expected .jsonl, .json or .parquet)`, file);
  }
}

/** All records of a data file, in order. */
export async function readAllRecords(file: string, opts: ReadOptions = {}): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  for await (const rec of readRecords(file, opts)) out.push(rec);
  return out;
}
