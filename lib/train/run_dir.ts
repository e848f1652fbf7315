// A run directory (`<cache_dir>/<exp_name>/`) belongs to one run at a time.
//
// - An exclusive lock file (`.rpo.lock`: pid, host, start time) is taken before anything is
//   written and removed when the run ends. A second run on the same directory is refused while
//   the holder lives; a lock left by a dead process on this host is reported and taken over. A
//   lock from another host cannot be checked from here, so it is reported with the way out.
// - A fresh run (no `resume=`) refuses a directory that holds an earlier run's checkpoint unless
//   `overwrite=true`, which deletes only what rpo wrote there (never the user's own files).
// - Temp directories of checkpoint writes killed midway (`.checkpoint.tmp-<pid>`,
//   `step-N.tmp-<pid>`) are removed once the lock is held: no other writer can exist then.
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';

import { ConfigError } from '../config/errors.js';
import { holdsCheckpoint } from './checkpoint.js';

export const LOCK_FILE = '.rpo.lock';

/** What the lock file holds. */
export interface LockInfo {
  pid: number;
  host: string;
  started: string;
  command: string;
}

/** Files and directories rpo writes into a run directory: all that `overwrite=true` deletes. */
const RUN_OUTPUTS = [/^LATEST$/, /^LATEST\.prev$/, /^step-\d+$/, /^step-\d+\.tmp-\d+$/, /^\.checkpoint\.tmp-\d+$/, /^metrics\.jsonl(\.tmp-\d+)?$/, /^config\.yaml$/, /^report\.html$/, /^tb$/, /^samples$/];
const TEMP_DIR = /^(?:\.checkpoint|step-\d+)\.tmp-(\d+)$/;

/** Whether a process with this pid exists on this host (EPERM: it exists, owned by someone else). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * mkdir -p with the real reason on failure. Node's recursive mkdir reports ENOENT when a parent
 * cannot be created (a read-only file system, say); retrying the first missing component alone
 * gives the true error (EROFS, EACCES, ENOSPC, ENOTDIR), which is what the user needs to see.
 */
export function ensureDir(dir: string, what = 'directory'): void {
  try {
    mkdirSync(dir, { recursive: true });
    return;
  } catch (err) {
    let missing = path.resolve(dir);
    while (!existsSync(path.dirname(missing)) && path.dirname(missing) !== missing) missing = path.dirname(missing);
    let reason = (err as Error).message;
    try {
      mkdirSync(missing);
    } catch (inner) {
      reason = (inner as Error).message;
    }
    throw new Error(`cannot create the ${what} ${dir}: ${reason}`);
  }
}

function readLock(file: string): LockInfo | null {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockInfo>;
    if (typeof parsed.pid !== 'number' || typeof parsed.host !== 'string') return null;
    return { pid: parsed.pid, host: parsed.host, started: String(parsed.started ?? '?'), command: String(parsed.command ?? '?') };
  } catch {
    return null;
  }
}

/** Creates the lock file exclusively (O_EXCL): of two runs racing, exactly one succeeds. */
function createLock(file: string, info: LockInfo): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new Error(`cannot create the lock file ${file}: ${(err as Error).message}`);
  }
  try {
    writeSync(fd, JSON.stringify(info) + '\n');
  } finally {
    closeSync(fd);
  }
  return true;
}

export interface RunLock {
  file: string;
  /** A stale lock that was taken over, for the run's messages. */
  tookOverFrom: LockInfo | null;
  release(): void;
}

/** Takes the run directory's lock, or throws a ConfigError naming the run that holds it. */
export function lockRunDir(runDir: string, command = process.argv.slice(1).join(' ')): RunLock {
  ensureDir(runDir, 'run directory');
  const file = path.join(runDir, LOCK_FILE);
  const info: LockInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString(), command };
  let tookOverFrom: LockInfo | null = null;
  if (!createLock(file, info)) {
    const holder = readLock(file);
    if (holder && holder.host !== info.host) {
      throw new ConfigError(
        `run directory ${runDir} is locked by pid ${holder.pid} on host ${holder.host} (since ${holder.started}). ` +
          `If that run is no longer running, delete ${file}; or choose another exp_name.`,
      );
    }
    if (holder && holder.pid !== process.pid && pidAlive(holder.pid)) {
      throw new ConfigError(
        `run directory ${runDir} is in use by another run (pid ${holder.pid} on this host, since ${holder.started}: ${holder.command}). ` +
          'Wait for it to finish, or choose another exp_name.',
      );
    }
    // The holder is dead (or the file is unreadable, i.e. torn by a crash): take it over. Should
    // two runs take over at once, the exclusive create below lets only one of them through.
    tookOverFrom = holder ?? { pid: -1, host: info.host, started: '?', command: '(unreadable lock file)' };
    try {
      unlinkSync(file);
    } catch {
      // another run removed it first; the exclusive create decides
    }
    if (!createLock(file, info)) {
      const now = readLock(file);
      throw new ConfigError(`run directory ${runDir} is in use by another run (pid ${now?.pid ?? '?'} on ${now?.host ?? '?'}); choose another exp_name`);
    }
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    // Only our own lock: never delete one another run took over after a stale-lock decision.
    if (readLock(file)?.pid === process.pid) rmSync(file, { force: true });
    process.off('exit', release);
  };
  process.on('exit', release);
  return { file, tookOverFrom, release };
}

/** Removes temp directories of checkpoint writes by processes that are gone; returns their names. */
export function removeStaleTemps(runDir: string): string[] {
  const removed: string[] = [];
  if (!existsSync(runDir)) return removed;
  for (const name of readdirSync(runDir)) {
    const m = TEMP_DIR.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    rmSync(path.join(runDir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/** The checkpoint an earlier run left in the directory, or null when there is none. */
export function earlierRun(runDir: string): string | null {
  return holdsCheckpoint(runDir);
}

/** The error for a fresh run over an earlier one: names both ways forward. */
export function earlierRunError(runDir: string, checkpoint: string): ConfigError {
  return new ConfigError(
    `run directory ${runDir} already holds a run (checkpoint ${checkpoint}). ` +
      `To continue it: resume=${runDir}. To delete it and start over: overwrite=true. Or choose another exp_name.`,
  );
}

/** overwrite=true: deletes what rpo wrote in the run directory, nothing else; returns the names. */
export function clearRunOutputs(runDir: string): string[] {
  const removed: string[] = [];
  if (!existsSync(runDir)) return removed;
  for (const name of readdirSync(runDir)) {
    if (!RUN_OUTPUTS.some((re) => re.test(name))) continue;
    rmSync(path.join(runDir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed.sort();
}
