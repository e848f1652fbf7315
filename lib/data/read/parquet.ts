// Parquet through hyparquet: snappy (built in), zstd / gzip / brotli / lz4 (hyparquet-compressors),
// nested columns assembled into plain JS values (list<struct<content, role>> → [{content, role}]).
// Read one row group at a time, so memory holds one group, not the file.
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';

import { DataFileError, type DataRecord, type SourceRecord } from './records.js';

export interface ParquetReadOptions {
  /** Top-level columns to read (those not in the file are ignored); all when absent. */
  columns?: readonly string[];
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
  let start = 0;
  for (const group of metadata.row_groups) {
    const end = start + Number(group.num_rows);
    if (end > start) {
      let rows: DataRecord[];
      try {
        rows = await parquetReadObjects({ file: buffer, metadata, compressors, rowStart: start, rowEnd: end, columns });
      } catch (err) {
        fail(file, err);
      }
      for (let i = 0; i < rows.length; i++) yield { data: rows[i]!, row: start + i };
    }
    start = end;
  }
}
