// Progress of a split: rows done (resumed ones included), rows/s and tokens/s of this session,
// kept / filtered / failed so far, ETA. A live bar on a TTY; plain lines otherwise (the first,
// one every `plainEverySeconds`, and the last), never both.

export interface RowCounts {
  kept: number;
  filtered: number;
  failed: number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

/** The progress line (without the bar). `elapsed` covers this session's `sessionRows` only. */
export function describeRows(
  label: string,
  st: { done: number; total: number; resumed: number; sessionRows: number; sessionTokens: number; counts: RowCounts },
  elapsedSeconds: number,
): string {
  const rate = elapsedSeconds > 0 ? st.sessionRows / elapsedSeconds : 0;
  const tokRate = elapsedSeconds > 0 ? st.sessionTokens / elapsedSeconds : 0;
  const left = st.total - st.done;
  const eta = left === 0 ? 0 : rate > 0 ? left / rate : NaN;
  return [
    `${label} ${st.done}/${st.total} rows${st.resumed > 0 ? ` (${st.resumed} from the journal)` : ''}`,
    `${rate.toFixed(rate < 10 ? 2 : 1)} rows/s`,
    `${tokRate.toFixed(0)} tok/s`,
    `kept ${st.counts.kept}, filtered ${st.counts.filtered}, failed ${st.counts.failed}`,
    `ETA ${formatDuration(eta)}`,
  ].join(' | ');
}

export class RowProgress {
  private readonly started = Date.now();
  private lastPlain = -Infinity;
  private drawn = false;
  private done: number;
  private sessionRows = 0;
  private sessionTokens = 0;
  readonly counts: RowCounts = { kept: 0, filtered: 0, failed: 0 };

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly resumed: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly plainEverySeconds = 10,
  ) {
    this.done = resumed;
  }

  /** Rows finished now (each counted once), with their generated tokens. */
  add(kind: keyof RowCounts, tokens: number): void {
    this.done++;
    this.sessionRows++;
    this.sessionTokens += tokens;
    this.counts[kind]++;
  }

  /** Counts of rows read back from the journal (no rate contribution). */
  addResumed(kind: keyof RowCounts): void {
    this.counts[kind]++;
  }

  render(force = false): void {
    const elapsed = (Date.now() - this.started) / 1000;
    const line = describeRows(
      this.label,
      { done: this.done, total: this.total, resumed: this.resumed, sessionRows: this.sessionRows, sessionTokens: this.sessionTokens, counts: this.counts },
      elapsed,
    );
    if (this.stream.isTTY) {
      const width = this.stream.columns ?? 120;
      const fraction = this.total > 0 ? this.done / this.total : 1;
      const filled = Math.round(fraction * 20);
      this.stream.write(`\r${`[${'#'.repeat(filled)}${'.'.repeat(20 - filled)}] ${line}`.slice(0, width - 1)}\x1b[K`);
      this.drawn = true;
    } else if (force || elapsed - this.lastPlain >= this.plainEverySeconds) {
      this.stream.write(line + '\n');
      this.lastPlain = elapsed;
    }
  }

  /** Ends the live line. */
  finish(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
  }

  /** A message the bar must not overwrite. */
  log(message: string): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.stream.write(message + '\n');
  }
}
