// TensorBoard event files, written without TensorFlow: `tensorboard --logdir <run dir>/tb` shows
// the run's curves, and `wandb sync --sync-tensorboard <run dir>/tb` uploads them.
//
// No maintained npm package writes them (the registry has TFRecord readers, none for events), so
// this file does, in the two layers TensorBoard reads:
// - TFRecord framing: each record is uint64 length (little-endian), masked CRC-32C of those 8
//   bytes, the data, masked CRC-32C of the data. Mask: ((crc >>> 15) | (crc << 17)) + 0xa282ead8.
// - tensorflow.Event protobuf messages, hand-encoded: wall_time (1, double), step (2, int64),
//   file_version (3, string, first record "brain.Event:2"), summary (5). A Summary holds Values:
//   tag (1), simple_value (2, float) for a scalar, or metadata (9) naming the "text" plugin and a
//   tensor (8: dtype DT_STRING, a scalar shape, string_val) for text. Each run, and each resume,
//   starts with a session_log (7) START at its first step: TensorBoard takes a later START as a
//   restart and drops what an earlier attempt logged from that step on.
// Records are buffered and written by flush() (at each evaluation, every FLUSH_MS while steps
// arrive, and at close), each flush appended in one write, so a crash loses at most the records
// since the last flush and never leaves a torn record for a reader to stop at.
import { closeSync, openSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { fileWriteError } from '../util/files.js';
import { ensureDir } from './run_dir.js';

const FLUSH_MS = 10_000;

// --- CRC-32C (Castagnoli), table-driven ----------------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of data) crc = CRC_TABLE[(crc ^ b) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

export function maskedCrc32c(data: Uint8Array): number {
  const crc = crc32c(data);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: length, its masked CRC, the data, the data's masked CRC. */
export function tfRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(8 + 4 + data.length + 4);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

// --- protobuf wire format, the few field kinds an Event needs ------------------------------------

class Proto {
  private parts: Buffer[] = [];

  private varint(v: bigint): void {
    const bytes: number[] = [];
    let x = BigInt.asUintN(64, v);
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x !== 0n) b |= 0x80;
      bytes.push(b);
    } while (x !== 0n);
    this.parts.push(Buffer.from(bytes));
  }
  private key(field: number, wire: number): void {
    this.varint(BigInt((field << 3) | wire));
  }
  int(field: number, v: number | bigint): this {
    this.key(field, 0);
    this.varint(BigInt(v));
    return this;
  }
  double(field: number, v: number): this {
    this.key(field, 1);
    const b = Buffer.alloc(8);
    b.writeDoubleLE(v);
    this.parts.push(b);
    return this;
  }
  float(field: number, v: number): this {
    this.key(field, 5);
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.parts.push(b);
    return this;
  }
  bytes(field: number, v: Uint8Array | string): this {
    const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v);
    this.key(field, 2);
    this.varint(BigInt(b.length));
    this.parts.push(b);
    return this;
  }
  message(field: number, m: Proto): this {
    return this.bytes(field, m.finish());
  }
  finish(): Buffer {
    return Buffer.concat(this.parts);
  }
}

const DT_STRING = 7;

function event(wallTime: number, step: number, body?: (e: Proto) => void): Buffer {
  const e = new Proto().double(1, wallTime).int(2, step);
  body?.(e);
  return e.finish();
}

/** A Summary.Value holding a scalar (simple_value, float32 as TensorBoard stores it). */
function scalarValue(tag: string, value: number): Proto {
  return new Proto().bytes(1, tag).float(2, value);
}

/** A Summary.Value for the text plugin: a scalar DT_STRING tensor of markdown. */
function textValue(tag: string, markdown: string): Proto {
  const pluginData = new Proto().bytes(1, 'text');
  const metadata = new Proto().message(1, pluginData);
  const tensor = new Proto().int(1, DT_STRING).message(2, new Proto()).bytes(8, markdown);
  return new Proto().bytes(1, tag).message(9, metadata).message(8, tensor);
}

// --- the writer ------------------------------------------------------------------------------------

export class EventWriter {
  readonly file: string;
  private fd: number;
  private pending: Buffer[] = [];
  private lastFlush = Date.now();

  /** Opens a new event file in `dir` (TensorBoard reads every events.out.tfevents.* there). */
  constructor(dir: string, now: () => number = Date.now) {
    ensureDir(dir, 'TensorBoard directory');
    this.now = now;
    // TensorBoard reads a directory's event files in name order, and a SessionLog START only
    // purges what came before it in that order: the name sorts by time to the millisecond (then
    // this process's counter), never by pid.
    const ms = now();
    const order = `${String(ms % 1000).padStart(3, '0')}${String(EventWriter.counter++).padStart(6, '0')}`;
    this.file = path.join(dir, `events.out.tfevents.${Math.floor(ms / 1000)}.${os.hostname()}.${order}.${process.pid}`);
    try {
      this.fd = openSync(this.file, 'a');
    } catch (err) {
      throw fileWriteError(err, 'creating', this.file);
    }
    this.pending.push(tfRecord(event(now() / 1000, 0, (e) => e.bytes(3, 'brain.Event:2'))));
    this.flush();
  }
  private static counter = 0;
  private readonly now: () => number;

  /** Scalars at `step`, one Value each; non-finite values are written too (TensorBoard shows NaN). */
  scalars(step: number, values: Readonly<Record<string, number>>): void {
    const summary = new Proto();
    for (const [tag, v] of Object.entries(values)) summary.message(1, scalarValue(tag, v));
    this.pending.push(tfRecord(event(this.now() / 1000, step, (e) => e.message(5, summary))));
    if (this.now() - this.lastFlush >= FLUSH_MS) this.flush();
  }

  /**
   * A session start at `step` (SessionLog START). The run's first one marks its start; at each
   * later one TensorBoard forgets every value logged before it at `step` or later.
   */
  sessionStart(step: number): void {
    const START = 1;
    this.pending.push(tfRecord(event(this.now() / 1000, step, (e) => e.message(7, new Proto().int(1, START)))));
  }

  /** Markdown text at `step` (TensorBoard's Text tab). */
  text(step: number, tag: string, markdown: string): void {
    const summary = new Proto().message(1, textValue(tag, markdown));
    this.pending.push(tfRecord(event(this.now() / 1000, step, (e) => e.message(5, summary))));
  }

  /** Appends what is buffered in one write. */
  flush(): void {
    this.lastFlush = this.now();
    if (this.pending.length === 0) return;
    const data = Buffer.concat(this.pending);
    this.pending = [];
    try {
      let off = 0;
      while (off < data.length) off += writeSync(this.fd, data, off);
    } catch (err) {
      throw fileWriteError(err, 'writing', this.file);
    }
  }

  close(): void {
    try {
      this.flush();
    } finally {
      closeSync(this.fd);
    }
  }
}
