// Per-rank peak memory of a data-parallel run, for the ZeRO memory tests: starts `world` ranks of
// `rpo train <args>` with the torchrun environment (as `rpo launch` would; world 1 is one ordinary
// process), each preloading report_peak.ts, and returns each rank's peak resident set (VmHWM,
// bytes) over its whole run, model load and every step included. The peak is the kernel's
// count for the process (LibTorch, Node and the CPU allocator's cache included), so compare runs
// of the same model and data that differ only in what is measured (e.g. RPO_ZERO).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { freePort } from '../../lib/parallel/launch.js';
import { REPO } from './cli.js';

export interface RankPeaksOptions {
  /** Ranks (1: a single process, no torchrun environment). */
  world: number;
  /** `rpo train` arguments, the same for every rank. */
  args: readonly string[];
  /** Extra environment for every rank (RPO_ZERO, RPO_NUM_THREADS, ...). */
  env?: Record<string, string>;
}

export interface RankPeaks {
  /** Each rank's VmHWM in bytes, by rank. */
  peaks: number[];
  /** Each rank's stderr (for failures). */
  stderr: string[];
}

/** Runs the ranks to completion; throws (with their stderr) when any exits non-zero. */
export async function measureRankPeaks(options: RankPeaksOptions): Promise<RankPeaks> {
  const dir = mkdtempSync(path.join(tmpdir(), 'rpo-rank-peaks-'));
  const port = await freePort();
  const tsx = pathToFileURL(path.join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
  const preload = pathToFileURL(path.join(REPO, 'test', 'e2e', 'report_peak.ts')).href;
  const entry = path.join(REPO, 'test', 'e2e', 'cli_entry.ts');
  try {
    const runs = Array.from({ length: options.world }, (_, rank) => {
      const dist = options.world > 1
        ? { RANK: String(rank), WORLD_SIZE: String(options.world), LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: String(options.world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) }
        : {};
      const child = spawn(process.execPath, ['--import', tsx, '--import', preload, entry, 'train', ...options.args], {
        cwd: REPO,
        env: { ...process.env, ...options.env, ...dist, RPO_TEST_PEAK_FILE: path.join(dir, `rank-${rank}`) },
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      return new Promise<{ code: number | null; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stderr })));
    });
    const done = await Promise.all(runs);
    const failed = done.findIndex((d) => d.code !== 0);
    if (failed >= 0) throw new Error(`rank ${failed} exited with ${done[failed]!.code}:\n${done[failed]!.stderr}`);
    const peaks = done.map((_, rank) => Number(readFileSync(path.join(dir, `rank-${rank}`), 'utf8')));
    if (peaks.some((p) => !(p > 0))) throw new Error(`no peak RSS read (VmHWM needs Linux /proc): ${peaks.join(', ')}`);
    return { peaks, stderr: done.map((d) => d.stderr) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
