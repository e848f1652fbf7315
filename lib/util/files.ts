// Writing files safely: atomic replacement (temp file, fsync, rename) and I/O errors that name
// the file the caller meant. Checkpoints, caches, samples, reports and rationales all use them.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';

/**
 * An I/O failure on `file` as a user needs to read it: "no space left on device writing FILE"
 * for ENOSPC (the wording the engine uses too), else Node's message and the file. Node's own
 * text for a failed write(2) names no file at all ("ENOSPC: no space left on device, write").
 * `code` and `path` (the file the caller asked for, not the temp file) stay on the error.
 */
export function fileWriteError(err: unknown, verb: string, file: string): NodeJS.ErrnoException {
  const e = err as NodeJS.ErrnoException;
  const cause = e.code === 'ENOSPC' ? 'no space left on device' : e instanceof Error ? e.message : String(err);
  const out: NodeJS.ErrnoException = new Error(`${cause} ${verb} ${file}`, { cause: err });
  if (e.code !== undefined) out.code = e.code;
  if (e.errno !== undefined) out.errno = e.errno;
  if (e.syscall !== undefined) out.syscall = e.syscall;
  out.path = file;
  return out;
}

/**
 * Writes `chunks` to `file` through a temp file in the same directory, fsync and a rename. On
 * any failure (a full disk included) the temp file is removed, `file` is left as it was, and
 * the error names `file` (see fileWriteError).
 */
export function writeFileAtomic(file: string, chunks: readonly Uint8Array[]): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`);
  let fd: number;
  try {
    fd = openSync(tmp, 'wx');
  } catch (e) {
    throw fileWriteError(e, 'creating a temp file for', file);
  }
  let verb = 'writing';
  try {
    try {
      for (const c of chunks) {
        let done = 0;
        while (done < c.length) done += writeSync(fd, c, done, c.length - done);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    verb = 'renaming into place';
    renameSync(tmp, file);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // The temp file is already gone; the original error is what matters.
    }
    throw fileWriteError(e, verb, file);
  }
}
