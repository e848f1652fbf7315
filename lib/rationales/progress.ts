// Progress of a split: rows done (resumed ones included), rows/s and tokens/s of this session,
// kept / filtered / failed so far, ETA. A live bar on a TTY; plain lines otherwise (the first,
// one every `plainEverySeconds`, and the last), never both: drawn by lib/train/progress.ts.
import { StatusLine, formatDuration } from '../train/progress.js';

export interface RowCounts {
  kept: number;
  filtered: number;
  failed: number;
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
  private readonly status: StatusLine;
  private done: number;
  private sessionRows = 0;
  private sessionTokens = 0;
  readonly counts: RowCounts = { kept: 0, filtered: 0, failed: 0 };

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly resumed: number,
    stream: NodeJS.WriteStream = process.stderr,
    plainEverySeconds = 10,
  ) {
    this.status = new StatusLine(stream, plainEverySeconds);
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
    const line = describeRows(
      this.label,
      { done: this.done, total: this.total, resumed: this.resumed, sessionRows: this.sessionRows, sessionTokens: this.sessionTokens, counts: this.counts },
      this.status.elapsed(),
    );
    this.status.draw(line, this.total > 0 ? this.done / this.total : 1, force);
  }

  /** Ends the live line. */
  finish(): void {
    this.status.done();
  }

  /** A message the bar must not overwrite. */
  log(message: string): void {
    this.status.log(message);
  }
}
