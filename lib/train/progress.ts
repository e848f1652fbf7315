// Progress for long loops: a live one-line bar on a TTY, plain periodic lines otherwise
// (CI logs, pipes), never both. StatusLine does the drawing; Progress formats training steps
// (rationale generation formats its rows in lib/rationales/progress.ts and draws here too).
import { redactSecrets } from '../util/redact.js';

export interface ProgressState {
  step: number;
  total: number;
  loss?: number;
  accuracy?: number;
  tokensPerSecond?: number;
  /** The share of computed positions that were padding. */
  paddingFraction?: number;
  /** Model FLOPs utilization (CUDA with a bf16 peak). */
  mfu?: number;
  extra?: string;
  /** What step counts ("prompts"), shown after step/total. */
  unit?: string;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

export function describeProgress(label: string, st: ProgressState, elapsedSeconds: number): string {
  const eta = st.step > 0 ? (elapsedSeconds / st.step) * (st.total - st.step) : NaN;
  const parts = [`${label} ${st.step}/${st.total}${st.unit ? ` ${st.unit}` : ''}`];
  if (st.loss !== undefined) parts.push(`loss ${st.loss.toFixed(4)}`);
  if (st.accuracy !== undefined) parts.push(`acc ${st.accuracy.toFixed(3)}`);
  if (st.tokensPerSecond !== undefined) parts.push(`${st.tokensPerSecond.toFixed(0)} tok/s`);
  if (st.paddingFraction !== undefined) parts.push(`pad ${(100 * st.paddingFraction).toFixed(1)}%`);
  if (st.mfu !== undefined) parts.push(`MFU ${(100 * st.mfu).toFixed(1)}%`);
  if (st.extra) parts.push(st.extra);
  parts.push(`ETA ${formatDuration(eta)}`);
  return parts.join(' | ');
}

/** One status line: redrawn in place with a bar on a TTY; elsewhere printed at most every `plainEverySeconds`. */
export class StatusLine {
  private readonly started = Date.now();
  private lastPlain = -Infinity;
  private drawn = false;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly plainEverySeconds = 10,
  ) {}

  /** Seconds since this line was created. */
  elapsed(): number {
    return (Date.now() - this.started) / 1000;
  }

  /** `fraction` fills the bar; `force` prints a plain line even between intervals (the last one). */
  draw(line: string, fraction: number, force = false): void {
    const elapsed = this.elapsed();
    if (this.stream.isTTY) {
      const width = this.stream.columns ?? 120;
      const filled = Math.round(Math.min(1, Math.max(0, fraction)) * 20);
      this.stream.write(`\r${`[${'#'.repeat(filled)}${'.'.repeat(20 - filled)}] ${line}`.slice(0, width - 1)}\x1b[K`);
      this.drawn = true;
    } else if (force || elapsed - this.lastPlain >= this.plainEverySeconds) {
      this.stream.write(line + '\n');
      this.lastPlain = elapsed;
    }
  }

  /** Ends the live line so later output starts on a fresh one. */
  done(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
  }

  /** A message that must not be overwritten by the bar (secrets from the environment masked: it may quote a config value). */
  log(message: string): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.stream.write(redactSecrets(message) + '\n');
  }
}

export class Progress {
  private readonly status: StatusLine;

  constructor(
    private readonly label: string,
    stream: NodeJS.WriteStream = process.stderr,
    plainEverySeconds = 10,
  ) {
    this.status = new StatusLine(stream, plainEverySeconds);
  }

  update(st: ProgressState): void {
    const line = describeProgress(this.label, st, this.status.elapsed());
    this.status.draw(line, st.total > 0 ? st.step / st.total : 0, st.step === st.total);
  }

  done(): void {
    this.status.done();
  }

  log(message: string): void {
    this.status.log(message);
  }
}
