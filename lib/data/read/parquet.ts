// Parquet through hyparquet: snappy (built in), zstd / gzip / brotli / lz4 (hyparquet-compressors),
// nested columns assembled into plain JS values (list<struct<content, role>> → [{content, role}]).
// Read one row group at a time, so memory holds one group, not the file. Invalid UTF-8 in a
// string is read as U+FFFD and warned about once per file, with its rows (utf8.ts).
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';

import { DataFileError, type DataRecord, type SourceRecord } from './records.js';
import { Utf8Issues, decodeUtf8, defaultWarn } from './utf8.js';

export interface ParquetReadOptions {
  /** Top-level columns to read (those not in the file are ignored); all when absent. */
  columns?: readonly string[];
  /** Warnings (invalid UTF-8 in strings); default: stderr. */
  onWarning?: (message: string) => void;
}

/** Does any string in `value` (nested lists and structs included) belong to `bad`? */
function holdsBad(value: unknown, bad: ReadonlySet<string>): boolean {
  if (typeof value === 'string') return value.includes('\uFFFD') && bad.has(value);
  if (Array.isArray(value)) return value.some((v) => holdsBad(v, bad));
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array) && !(value instanceof Date)) {
    return Object.values(value).some((v) => holdsBad(v, bad));
  }
  return false;
}

function fail(file: string, err: unknown): never {
  if (err instanceof DataFileError) throw err;
  const why = err instanceof Error ? err.message : String(err);
  throw new DataFileError(`${file}: cannot read as parquet (${why})`, file);
}

/** Streams the records of a `.parquet` file. */
export async function* readParquet(file: string, opts: ParquetReadOptions = {}): AsyncGenerator<SourceRecord> {
  let buffer: Awaited<ReturnType<typeof asyncBufferFromFile>>;
  let metadata: Awaited<ReturnType<typeof parquetMetadataAsync>>;
  try {
    buffer = await asyncBufferFromFile(file);
    metadata = await parquetMetadataAsync(buffer);
  } catch (err) {
    fail(file, err);
  }
  const present = parquetSchema(metadata).children.map((c) => c.element.name);
  const columns = opts.columns ? present.filter((name) => opts.columns!.includes(name)) : undefined;
  // Strings are decoded here rather than by hyparquet's default (a non-fatal TextDecoder that
  // replaces bad bytes silently): the decoded form of each invalid one is remembered, and the
  // rows holding such a string are found after each row group is assembled.
  const issues = new Utf8Issues(file, 'row');
  const bad = new Map<string, number>();
  const stringFromBytes = (bytes: Uint8Array | undefined): string | undefined => {
    if (!bytes) return undefined;
    const { text, replaced } = decodeUtf8(bytes);
    if (replaced > 0) bad.set(text, replaced);
    return text;
  };
  let start = 0;
  for (const group of metadata.row_groups) {
    const end = start + Number(group.num_rows);
    if (end > start) {
      let rows: DataRecord[];
      bad.clear();
      try {
        rows = await parquetReadObjects({ file: buffer, metadata, compressors, rowStart: start, rowEnd: end, columns, parsers: { stringFromBytes } });
      } catch (err) {
        fail(file, err);
      }
      if (bad.size > 0) {
        const badSet = new Set(bad.keys());
        for (let i = 0; i < rows.length; i++) {
          if (!holdsBad(rows[i], badSet)) continue;
          let n = 0;
          for (const v of Object.values(rows[i]!)) n += replacementsIn(v, bad);
          issues.add(start + i, n);
        }
      }
      for (let i = 0; i < rows.length; i++) yield { data: rows[i]!, row: start + i };
    }
    start = end;
  }
  issues.report(opts.onWarning ?? defaultWarn);
}

/** Replacements in the invalid strings `value` holds (nested values included). */
function replacementsIn(value: unknown, bad: ReadonlyMap<string, number>): number {
  if (typeof value === 'string') return bad.get(value) ?? 0;
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + replacementsIn(v, bad), 0);
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array) && !(value instanceof Date)) {
    return Object.values(value).reduce((n: number, v) => n + replacementsIn(v, bad), 0);
  }
  return 0;
}
