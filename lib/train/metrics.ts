// metrics.jsonl: one JSON line per logged step, appended and flushed as it happens, so a
// crash loses at most the line being written.
import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';

export type MetricRecord = Record<string, number | string | null>;

export class MetricsLog {
  constructor(readonly file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
  }
  append(record: MetricRecord): void {
    appendFileSync(this.file, JSON.stringify(record) + '\n');
  }
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
