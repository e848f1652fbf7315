// Bounds on what a data file may make this process hold at once, checked while reading (before
// the bytes are joined into one buffer or string), so a hostile or damaged file is an error
// naming it rather than a V8 crash or an out-of-memory kill: a .json.gz that expands to GBs, a
// .json past V8's longest string, a JSON-lines "line" with no end (a 3 GB line, /dev/zero).
// JSON lines are streamed, so only one line is bounded, not the file.
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';

import { DataFileError } from './records.js';

const MiB = 1024 * 1024;

/**
 * A .json document (after gunzip) is read whole, then parsed: its text and the parsed objects
 * live at once, several times the bytes. 256 MiB keeps that within a default Node heap and far
 * below V8's longest string (2^29 − 24 characters, ~512 MiB); bigger data belongs in JSON lines.
 */
export const DEFAULT_MAX_JSON_BYTES = 256 * MiB;
/** One JSON-lines line (one record): far beyond any real row, short of V8's longest string. */
export const DEFAULT_MAX_LINE_BYTES = 256 * MiB;

function fromEnv(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new DataFileError(`${name}=${text}: expected a positive number of bytes`, name);
  return n;
}

/** The bound on a whole .json document's bytes (RPO_MAX_JSON_BYTES overrides it). */
export function maxJsonBytes(): number {
  return fromEnv('RPO_MAX_JSON_BYTES', DEFAULT_MAX_JSON_BYTES);
}

/** The bound on one JSON-lines line's bytes (RPO_MAX_LINE_BYTES overrides it). */
export function maxLineBytes(): number {
  return fromEnv('RPO_MAX_LINE_BYTES', DEFAULT_MAX_LINE_BYTES);
}

/** "256 MiB" for whole MiB, else bytes. */
export function formatBytes(n: number): string {
  return n % MiB === 0 ? `${n / MiB} MiB` : `${n} bytes`;
}

/**
 * The byte chunks of a file, gunzipped when its name ends in .gz. A read or gzip error (a
 * missing file, a truncated or damaged .gz) is a DataFileError naming the file; the stream is
 * closed when the caller stops early.
 */
export async function* fileChunks(file: string): AsyncGenerator<Buffer> {
  const raw = createReadStream(file);
  const gz = file.toLowerCase().endsWith('.gz');
  // pipeline: an error of either stream ends the iteration with it.
  const input = gz ? pipeline(raw, createGunzip(), () => undefined) : raw;
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) yield chunk;
  } catch (err) {
    if (err instanceof DataFileError) throw err;
    const e = err as NodeJS.ErrnoException;
    const why = e.message ?? String(err);
    // zlib's codes: Z_BUF_ERROR ("unexpected end of file"), Z_DATA_ERROR ("incorrect header check").
    if (gz && typeof e.code === 'string' && e.code.startsWith('Z_')) {
      const what = e.code === 'Z_BUF_ERROR' ? 'the gzip data ends early (the file is truncated)' : 'not valid gzip data';
      throw new DataFileError(`${file}: cannot read as gzip: ${what} (${why})`, file);
    }
    throw new DataFileError(why.includes(file) ? why : `${file}: ${why}`, file);
  } finally {
    input.destroy();
    raw.destroy();
  }
}

/** A whole file (gunzipped when .gz) as one buffer, refused as soon as it passes `limit` bytes. */
export async function readFileBounded(file: string, limit: number, hint: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of fileChunks(file)) {
    total += chunk.length;
    if (total > limit) {
      const what = file.toLowerCase().endsWith('.gz') ? 'expands to more than' : 'is larger than';
      throw new DataFileError(`${file}: ${what} ${formatBytes(limit)}, the most read whole; ${hint}`, file);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}
