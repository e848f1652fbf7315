// metrics.jsonl: one JSON line per logged step, appended and flushed as it happens, so a
// crash loses at most the line being written. On resume the file is cut back to the
// checkpoint's step (see truncateMetrics), so it holds each step once.
import { appendFileSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { fileWriteError } from '../util/files.js';
import { ensureDir } from './run_dir.js';

export type MetricRecord = Record<string, number | string | null>;

export class MetricsLog {
  constructor(readonly file: string) {
    ensureDir(path.dirname(file), 'run directory');
  }
  append(record: MetricRecord): void {
    try {
      appendFileSync(this.file, JSON.stringify(record) + '\n');
    } catch (err) {
      throw fileWriteError(err, 'writing', this.file);
    }
  }
}

/**
 * Cuts a metrics log back to the records of steps ≤ `step` (the checkpoint a run resumes from):
 * the steps after it are trained again and logged again. A torn line (a crash or a full disk
 * while writing) is dropped. Written to a temp file and renamed, so a crash here loses nothing.
 * Returns the number of lines dropped.
 */
export function truncateMetrics(file: string, step: number): number {
  if (!existsSync(file)) return 0;
  const lines = readFileSync(file, 'utf8').split('\n');
  const kept: string[] = [];
  let dropped = 0;
  for (const line of lines) {
    if (line.trim() === '') continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      dropped += 1;
      continue;
    }
    const s = (record as { step?: unknown } | null)?.step;
    if (typeof record !== 'object' || record === null || typeof s !== 'number' || s > step) {
      dropped += 1;
      continue;
    }
    kept.push(line);
  }
  if (dropped === 0) return 0;
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, kept.map((l) => l + '\n').join(''));
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw fileWriteError(err, 'writing', file);
  }
  return dropped;
}

/**
 * Averages step metrics over micro-batches, weighting each by its pairs: the mean over the
 * examples of the global batch, whatever the micro-batch sizes.
 */
export class MetricAverager {
  private sums = new Map<string, number>();
  private weight = 0;

  add(metrics: Record<string, number>, pairs: number): void {
    for (const [k, v] of Object.entries(metrics)) this.sums.set(k, (this.sums.get(k) ?? 0) + v * pairs);
    this.weight += pairs;
  }

  get count(): number {
    return this.weight;
  }

  mean(prefix = ''): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of this.sums) out[prefix + k] = v / this.weight;
    return out;
  }
}
