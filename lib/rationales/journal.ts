// The append-only journal of a split's generation: `<out>/.progress-<split>.jsonl`.
//
// Line 1 is a header with the hash of everything that decides the generated text (dataset rows,
// generator, model, template, sampling); each further line is one row's outcome, appended as it
// arrives and fsync'd before the next. A restart with the same arguments reads the journal back
// and skips the rows it holds; a restart with different ones is refused (naming what changed).
// A line cut short by a kill is dropped (the file is truncated back to the last whole line) and
// its row generated again. Finalizing writes the split's file atomically, then removes the journal.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';

import type { FilterReason } from './filters.js';

export const JOURNAL_VERSION = 1;

/** One row's outcome (`i`: the row's index in the split). The last line for an index wins (a failed row is retried on restart). */
export type JournalEntry =
  | { i: number; id: string; text: string; finish: 'stop' | 'length'; tokens: number | null }
  | { i: number; id: string; error: string }
  | { i: number; id: string; skip: Extract<FilterReason, 'prompt_too_long'> };

export interface JournalHeader {
  journal: 'rpo-rationales';
  version: number;
  split: string;
  hash: string;
  /** What the hash covers, for naming the difference when a restart is refused. */
  args: Record<string, unknown>;
}

/** A restart whose arguments differ from the interrupted run's. */
export class ResumeMismatchError extends Error {
  override name = 'ResumeMismatchError';
}

/** JSON with object keys sorted at every level: the input of every hash here. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export function hashArgs(args: Record<string, unknown>): string {
  return createHash('sha256').update(canonicalJson(args)).digest('hex');
}

/** The top-level keys whose values differ between two argument records. */
export function differingKeys(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys.filter((k) => canonicalJson(a[k] ?? null) !== canonicalJson(b[k] ?? null));
}

function isEntry(v: unknown): v is JournalEntry {
  if (v === null || typeof v !== 'object') return false;
  const e = v as Record<string, unknown>;
  if (typeof e.i !== 'number' || typeof e.id !== 'string') return false;
  if (typeof e.text === 'string') return e.finish === 'stop' || e.finish === 'length';
  return typeof e.error === 'string' || e.skip === 'prompt_too_long';
}

export class Journal {
  private constructor(
    readonly file: string,
    private fd: number | null,
    /** Outcomes read back from an earlier run, by row index (last line wins). */
    readonly previous: Map<number, JournalEntry>,
  ) {}

  /**
   * Opens `file` for appending: reads back an existing journal (refusing one from other
   * arguments), or starts a new one with `header`.
   */
  static open(file: string, header: Omit<JournalHeader, 'journal' | 'version'>): Journal {
    const full: JournalHeader = { journal: 'rpo-rationales', version: JOURNAL_VERSION, ...header };
    const previous = new Map<number, JournalEntry>();
    if (existsSync(file)) {
      const buf = readFileSync(file);
      const lastNewline = buf.lastIndexOf(0x0a);
      const whole = lastNewline < 0 ? '' : buf.subarray(0, lastNewline).toString('utf8');
      const lines = whole.length > 0 ? whole.split('\n') : [];
      let old: JournalHeader | null = null;
      if (lines.length > 0) {
        try {
          old = JSON.parse(lines[0]!) as JournalHeader;
        } catch {
          old = null;
        }
        if (!old || old.journal !== 'rpo-rationales') {
          throw new Error(`${file} is not an rpo rationales journal (first line: ${lines[0]!.slice(0, 80)}); remove it or use --overwrite`);
        }
        if ((old.version !== JOURNAL_VERSION || old.hash !== full.hash) && lines.length > 1) {
          const diff = differingKeys(old.args ?? {}, full.args);
          throw new ResumeMismatchError(
            `${file} is the journal of an interrupted run with different arguments` +
              `${diff.length > 0 ? ` (they differ in: ${diff.join(', ')})` : ''}: rerun with the same arguments to resume it, ` +
              `or pass --overwrite to discard it and start over`,
          );
        }
        if (old.version !== JOURNAL_VERSION || old.hash !== full.hash) old = null; // nothing journaled yet: start over
        for (let n = 1; n < lines.length; n++) {
          let v: unknown;
          try {
            v = JSON.parse(lines[n]!);
          } catch {
            throw new Error(`${file}: line ${n + 1} is not JSON; the journal is damaged (use --overwrite to start over)`);
          }
          if (!isEntry(v)) throw new Error(`${file}: line ${n + 1} is not a journal entry; the journal is damaged (use --overwrite to start over)`);
          previous.set(v.i, v);
        }
      }
      const fd = openSync(file, 'r+');
      try {
        if (old === null) {
          // Killed before the header was whole, or no row journaled under other arguments: start again.
          ftruncateSync(fd, 0);
          writeAll(fd, Buffer.from(JSON.stringify(full) + '\n'), 0);
          fsyncSync(fd);
        } else if (lastNewline + 1 !== buf.length) {
          // Drop a line cut short by a kill; append after the last whole line.
          ftruncateSync(fd, lastNewline + 1);
          fsyncSync(fd);
        }
      } catch (err) {
        closeSync(fd);
        throw err;
      }
      closeSync(fd);
      return new Journal(file, openSync(file, 'a'), previous);
    }
    const fd = openSync(file, 'wx');
    writeAll(fd, Buffer.from(JSON.stringify(full) + '\n'), null);
    fsyncSync(fd);
    return new Journal(file, fd, previous);
  }

  /** Throws as open() would (other arguments, a damaged file), without creating or changing anything. */
  static check(file: string, header: Omit<JournalHeader, 'journal' | 'version'>): void {
    if (!existsSync(file)) return;
    const lines = readFileSync(file, 'utf8').split('\n');
    const whole = lines.slice(0, -1);
    if (whole.length < 2) return; // no row journaled: open() starts it again
    let old: JournalHeader | null = null;
    try {
      old = JSON.parse(whole[0]!) as JournalHeader;
    } catch {
      old = null;
    }
    if (!old || old.journal !== 'rpo-rationales') {
      throw new Error(`${file} is not an rpo rationales journal (first line: ${whole[0]!.slice(0, 80)}); remove it or use --overwrite`);
    }
    if (old.version !== JOURNAL_VERSION || old.hash !== header.hash) {
      const diff = differingKeys(old.args ?? {}, header.args);
      throw new ResumeMismatchError(
        `${file} is the journal of an interrupted run with different arguments` +
          `${diff.length > 0 ? ` (they differ in: ${diff.join(', ')})` : ''}: rerun with the same arguments to resume it, ` +
          `or pass --overwrite to discard it and start over`,
      );
    }
  }

  /** Appends outcomes (one write, one fsync). */
  append(entries: readonly JournalEntry[]): void {
    if (entries.length === 0) return;
    if (this.fd === null) throw new Error(`journal ${this.file} is closed`);
    writeAll(this.fd, Buffer.from(entries.map((e) => JSON.stringify(e) + '\n').join('')), null);
    fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  /** Closes and deletes the journal (after the split's file is in place). */
  remove(): void {
    this.close();
    rmSync(this.file, { force: true });
  }
}

function writeAll(fd: number, data: Buffer, position: number | null): void {
  let done = 0;
  while (done < data.length) {
    done += writeSync(fd, data, done, data.length - done, position === null ? null : position + done);
  }
}
