// Readers for local data files: `.jsonl` / `.ndjson`, `.json` (either also gzipped: `.jsonl.gz`,
// as Anthropic/hh-rlhf ships), `.parquet`, `.arrow` (Arrow IPC, as datasets.save_to_disk writes).
// Each yields plain records with their position, so callers can name the file and line or row in
// errors.
import { readArrow } from './arrow.js';
import { readJson } from './json.js';
import { readJsonl } from './jsonl.js';
import { readParquet } from './parquet.js';
import { DataFileError, type DataFormat, type SourceRecord } from './records.js';

export { plainArrowValue, readArrow, type ArrowReadOptions } from './arrow.js';
export { readJson, type JsonReadOptions } from './json.js';
export { readJsonl, type JsonlReadOptions } from './jsonl.js';
export { decodeUtf8, defaultWarn, Utf8Issues } from './utf8.js';
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
  let lower = file.toLowerCase();
  const gz = lower.endsWith('.gz');
  if (gz) lower = lower.slice(0, -3);
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson')) return 'jsonl';
  if (lower.endsWith('.json')) return 'json';
  if (gz) return undefined;
  if (lower.endsWith('.parquet')) return 'parquet';
  if (lower.endsWith('.arrow')) return 'arrow';
  return undefined;
}

/** Is the file gzip-compressed (by its name: `.gz`)? */
export function isGzipped(file: string): boolean {
  return file.toLowerCase().endsWith('.gz');
}

export interface ReadOptions {
  /** Parquet and Arrow only: read just these top-level columns (a speed-up; other formats return all keys). */
  columns?: readonly string[];
  /** Warnings about the file (invalid UTF-8, with its lines or rows); default: stderr. */
  onWarning?: (message: string) => void;
}

/** Streams the records of a data file, choosing the reader by extension. */
export function readRecords(file: string, opts: ReadOptions = {}): AsyncGenerator<SourceRecord> {
  const format = dataFormatOf(file);
  switch (format) {
    case 'jsonl':
      return readJsonl(file, opts);
    case 'json':
      return readJson(file, opts);
    case 'parquet':
      return readParquet(file, opts);
    case 'arrow':
      return readArrow(file, opts);
    default:
      throw new DataFileError(`${file}: unsupported data file (expected .jsonl, .json, .parquet or .arrow; .jsonl.gz, .json.gz)`, file);
  }
}

/** All records of a data file, in order. */
export async function readAllRecords(file: string, opts: ReadOptions = {}): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  for await (const rec of readRecords(file, opts)) out.push(rec);
  return out;
}
