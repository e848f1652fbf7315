// Progress for long loops: a live one-line bar on a TTY, plain periodic lines otherwise
// (CI logs, pipes), never both.

export interface ProgressState {
  step: number;
  total: number;
  loss?: number;
  accuracy?: number;
  tokensPerSecond?: number;
  extra?: string;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

export function describeProgress(label: string, st: ProgressState, elapsedSeconds: number): string {
  const eta = st.step > 0 ? (elapsedSeconds / st.step) * (st.total - st.step) : NaN;
  const parts = [`${label} ${st.step}/${st.total}`];
  if (st.loss !== undefined) parts.push(`loss ${st.loss.toFixed(4)}`);
  if (st.accuracy !== undefined) parts.push(`acc ${st.accuracy.toFixed(3)}`);
  if (st.tokensPerSecond !== undefined) parts.push(`${st.tokensPerSecond.toFixed(0)} tok/s`);
  if (st.extra) parts.push(st.extra);
  parts.push(`ETA ${formatDuration(eta)}`);
  return parts.join(' | ');
}

export class Progress {
  private readonly started = Date.now();
  private lastPlain = 0;
  private drawn = false;

  constructor(
    private readonly label: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly plainEverySeconds = 10,
  ) {}

  update(st: ProgressState): void {
    const elapsed = (Date.now() - this.started) / 1000;
    const line = describeProgress(this.label, st, elapsed);
    if (this.stream.isTTY) {
      const width = this.stream.columns ?? 120;
      const fraction = st.total > 0 ? st.step / st.total : 0;
      const barWidth = 20;
      const filled = Math.round(fraction * barWidth);
      const bar = `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] `;
      this.stream.write(`\r${(bar + line).slice(0, width - 1).padEnd(Math.min(width - 1, 0))}\x1b[K`);
      this.drawn = true;
    } else if (st.step === st.total || elapsed - this.lastPlain >= this.plainEverySeconds || this.lastPlain === 0) {
      this.stream.write(line + '\n');
      this.lastPlain = elapsed || 1e-9;
    }
  }

  /** Ends the live line so later output starts on a fresh one. */
  done(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
  }

  /** A message that must not be overwritten by the bar. */
  log(message: string): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.stream.write(message + '\n');
  }
}
