// Arrow IPC files, as HF `datasets` writes them (save_to_disk: `data-00000-of-0000N.arrow`, the
// IPC *stream* format) and as pyarrow writes either IPC format. Read with the maintained
// `apache-arrow` package, one record batch at a time (datasets writes batches of 1000 rows), and
// turned into plain JS values: lists → arrays, structs → objects, 64-bit integers → numbers
// (bigint only beyond 2^53), so a record looks the same as from the parquet and JSON readers.
import { createReadStream } from 'node:fs';

import { MapRow, RecordBatchReader, StructRow, Vector, type RecordBatch } from 'apache-arrow';

import { DataFileError, type DataRecord, type SourceRecord } from './records.js';

export interface ArrowReadOptions {
  /** Top-level columns to read (those not in the file are ignored); all when absent. */
  columns?: readonly string[];
}

/** An Arrow value (Vector, StructRow, MapRow, bigint, ...) as a plain JS value. */
export function plainArrowValue(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === 'bigint') {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  }
  if (typeof value !== 'object' || value instanceof Uint8Array || value instanceof Date) return value;
  // A list cell is a Vector; a fixed-size list of numbers may come back as a typed array.
  if (value instanceof Vector) return Array.from(value as Iterable<unknown>, plainArrowValue);
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<unknown>, plainArrowValue);
  if (Array.isArray(value)) return value.map(plainArrowValue);
  if (value instanceof MapRow) {
    return Object.fromEntries(Array.from(value as Iterable<[unknown, unknown]>, ([k, x]) => [String(k), plainArrowValue(x)]));
  }
  // A struct cell (StructRow) and anything else object-like: its fields.
  const fields = value instanceof StructRow ? (value.toJSON() as Record<string, unknown>) : (value as Record<string, unknown>);
  const out: DataRecord = {};
  for (const [k, x] of Object.entries(fields)) out[k] = plainArrowValue(x);
  return out;
}

/** Streams the records of an Arrow IPC file (stream or file format). */
export async function* readArrow(file: string, opts: ArrowReadOptions = {}): AsyncGenerator<SourceRecord> {
  const input = createReadStream(file);
  let row = 0;
  const failed = (err: unknown): DataFileError =>
    err instanceof DataFileError
      ? err
      : new DataFileError(`${file}${row > 0 ? ` row ${row}` : ''}: cannot read as Arrow IPC (${err instanceof Error ? err.message : String(err)})`, file, row > 0 ? { row } : undefined);
  try {
    let batches: AsyncIterable<RecordBatch>;
    try {
      const reader = await RecordBatchReader.from(input);
      batches = (await reader.open()) as AsyncIterable<RecordBatch>;
    } catch (err) {
      throw failed(err);
    }
    const it = batches[Symbol.asyncIterator]();
    for (;;) {
      let step: IteratorResult<RecordBatch>;
      try {
        step = await it.next();
      } catch (err) {
        throw failed(err);
      }
      if (step.done) break;
      const batch = step.value;
      const names = batch.schema.fields.map((f) => f.name).filter((n) => !opts.columns || opts.columns.includes(n));
      const columns = names.map((n) => [n, batch.getChild(n)] as const);
      for (let i = 0; i < batch.numRows; i++) {
        const data: DataRecord = {};
        for (const [name, col] of columns) data[name] = plainArrowValue(col ? col.get(i) : null);
        yield { data, row };
        row++;
      }
    }
  } finally {
    input.destroy();
  }
}
