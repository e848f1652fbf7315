// What every reader yields, and the error every reader throws.

/** One record of a data file: a plain object with the file's columns as keys. */
export type DataRecord = Record<string, unknown>;

/** A record and where it came from, for error messages that name it. */
export interface SourceRecord {
  data: DataRecord;
  /** 0-based index of the record in its file. */
  row: number;
  /** 1-based line number (JSON lines only). */
  line?: number;
}

/** The file formats the readers understand. */
export type DataFormat = 'jsonl' | 'json' | 'parquet' | 'arrow';

/** A problem with a data file: names the file and, where known, the line or row. */
export class DataFileError extends Error {
  override name = 'DataFileError';
  constructor(
    message: string,
    readonly file: string,
    readonly where?: { line?: number; row?: number },
  ) {
    super(message);
  }
}

/** "file:line (row r)" for JSON lines, "file row r" otherwise; used by every error that names a record. */
export function recordLocation(file: string, rec: Pick<SourceRecord, 'row' | 'line'>): string {
  return rec.line !== undefined ? `${file}:${rec.line} (row ${rec.row})` : `${file} row ${rec.row}`;
}

/** A short description of a JSON value's type, for "is a number, not a string" messages. */
export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'bigint') return 'an integer';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a number';
  if (typeof value === 'boolean') return 'a boolean';
  if (typeof value === 'string') return 'a string';
  return typeof value;
}

export function isPlainObject(value: unknown): value is DataRecord {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
