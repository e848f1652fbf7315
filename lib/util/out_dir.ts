// An output directory that rpo fills with files of its own: the model directory of `rpo init`
// and `rpo merge`. The rules are those of `rpo rationales --out` (lib/rationales/output.ts):
//
// - A non-empty directory is refused unless --overwrite.
// - --overwrite removes only what rpo wrote there, never a user's notes or scripts (they are kept
//   and listed in the notice), and a file rpo did not write at a name it writes (a user's own
//   config.json, another model's weights) makes rpo refuse the directory: it is never touched.
//
// What is "ours" is decided by a record, not by name: rpo lists the files it wrote, with their
// size and modification time, in WRITTEN_MANIFEST, and a file is ours while it still matches its
// entry. Size and time rather than a hash (as rationales' sidecar has): a merged 7B model is
// 14 GB, and hashing it on every write and every --overwrite costs a minute for nothing a user
// would do by accident (replacing or editing a file changes its time). A directory from before
// the manifest existed holds no file that is provably ours, so --overwrite refuses it, naming
// the files: the user removes them.
//
// The new files are built in `<out>.tmp-<pid>` beside the directory, then moved in: a new
// directory by one rename, an existing one file by file after removing our earlier files.
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';

import { writeFileAtomic } from './files.js';
import { UsageError } from './usage_error.js';

/** The record of the files rpo wrote into the directory (a dot-file: loaders skip it). */
export const WRITTEN_MANIFEST = '.rpo-written.json';

interface WrittenEntry {
  size: number;
  mtimeMs: number;
}

interface Manifest {
  rpo_written: 1;
  files: Record<string, WrittenEntry>;
}

export interface OutDirSurvey {
  /** Files rpo wrote (top level, the manifest included): what --overwrite removes. */
  ours: string[];
  /** Files at names rpo writes (or data a loader would mix in) that rpo did not write: they block the directory. */
  foreign: string[];
  /** Everything else (notes, scripts, sub-directories with '/'): left alone. */
  others: string[];
}

/** The first `max` names and how many there are in all, for messages. */
export function listNames(names: readonly string[], max = 5): string {
  return `${names.slice(0, max).join(', ')}${names.length > max ? `, ... ${names.length} in all` : ''}`;
}

/** The notice after --overwrite removed `removed` from `out` and kept `others`, or null when there is nothing to say. */
export function overwriteNotice(out: string, removed: readonly string[], others: readonly string[]): string | null {
  const kept = others.length > 0 ? `; kept ${others.length} other file(s) rpo did not write: ${listNames(others)}` : '';
  if (removed.length === 0 && kept === '') return null;
  return `--overwrite: removed ${removed.length > 0 ? removed.join(', ') : 'nothing'} from ${out}${kept}`;
}

function readManifest(file: string): Manifest | null {
  try {
    const doc = JSON.parse(readFileSync(file, 'utf8')) as Partial<Manifest>;
    if (doc.rpo_written !== 1 || doc.files === null || typeof doc.files !== 'object' || Array.isArray(doc.files)) return null;
    return doc as Manifest;
  } catch {
    return null;
  }
}

function entryOf(file: string): WrittenEntry {
  const st = statSync(file);
  return { size: st.size, mtimeMs: st.mtimeMs };
}

/**
 * Sorts the top-level entries of `dir` into ours (recorded in the manifest and unchanged since),
 * foreign (`claims(name)`: a name rpo writes or a file a loader of the directory would read) and others.
 */
export function surveyOutDir(dir: string, claims: (name: string) => boolean): OutDirSurvey {
  const survey: OutDirSurvey = { ours: [], foreign: [], others: [] };
  if (!existsSync(dir)) return survey;
  const manifestFile = path.join(dir, WRITTEN_MANIFEST);
  const manifest = existsSync(manifestFile) ? readManifest(manifestFile) : null;
  for (const name of readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    const st = lstatSync(full);
    if (name === WRITTEN_MANIFEST) {
      (manifest !== null ? survey.ours : survey.foreign).push(name);
      continue;
    }
    const rec = manifest?.files[name];
    if (st.isFile() && rec !== undefined && rec.size === st.size && rec.mtimeMs === st.mtimeMs) survey.ours.push(name);
    else if (claims(name)) survey.foreign.push(st.isDirectory() ? `${name}/` : name);
    else survey.others.push(st.isDirectory() ? `${name}/` : name);
  }
  return survey;
}

export interface PreparedOut {
  /** The directory (absolute). */
  dir: string;
  /** It exists already (the new files go in beside what is kept). */
  exists: boolean;
  survey: OutDirSurvey;
}

/**
 * Checks that `dir` can take rpo's output before any work is done: refuses (UsageError, exit 2)
 * a file, a non-empty directory without `overwrite`, and a directory holding files rpo did not
 * write at the names it writes. `flag` names the option that allows replacing (--overwrite).
 */
export function prepareOutDir(dir: string, o: { overwrite: boolean; flag: string; claims: (name: string) => boolean }): PreparedOut {
  const abs = path.resolve(dir);
  if (path.parse(abs).root === abs) throw new UsageError(`refusing to write into the file-system root ${abs}`);
  if (!existsSync(abs)) return { dir: abs, exists: false, survey: { ours: [], foreign: [], others: [] } };
  if (!statSync(abs).isDirectory()) throw new UsageError(`${abs} exists and is not a directory`);
  const survey = surveyOutDir(abs, o.claims);
  const entries = survey.ours.length + survey.foreign.length + survey.others.length;
  if (entries > 0 && !o.overwrite) {
    throw new UsageError(
      `${abs} exists and is not empty (${entries} entries); choose another directory or pass ${o.flag} to replace what rpo wrote there ` +
        `(it removes only rpo's own files)`,
    );
  }
  if (survey.foreign.length > 0) {
    throw new UsageError(
      `${abs} holds files rpo did not write at the names it writes, or weights a loader would mix in (${listNames(survey.foreign)}); ` +
        `rpo never removes them, not even with ${o.flag}: move them away or choose another directory`,
    );
  }
  return { dir: abs, exists: true, survey };
}

/** The temp directory the output is built in (beside it, so the moves are renames). */
export function tempOutDir(prepared: PreparedOut): string {
  const tmp = `${prepared.dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  return tmp;
}

function writeManifest(dir: string, names: readonly string[]): void {
  const files: Record<string, WrittenEntry> = {};
  for (const name of names) files[name] = entryOf(path.join(dir, name));
  const doc: Manifest = { rpo_written: 1, files };
  writeFileAtomic(path.join(dir, WRITTEN_MANIFEST), [Buffer.from(JSON.stringify(doc, null, 2) + '\n')]);
}

/**
 * Moves the files built in `tmp` into the prepared directory and records them: a new directory
 * by renaming `tmp`; an existing one by removing rpo's earlier files (surveyed again: nothing
 * else) and renaming each new file in. Returns the notice for the user (null: nothing to say).
 */
export function installOutDir(tmp: string, prepared: PreparedOut, claims: (name: string) => boolean): string | null {
  const names = readdirSync(tmp).filter((n) => n !== WRITTEN_MANIFEST).sort();
  if (!prepared.exists) {
    writeManifest(tmp, names);
    renameSync(tmp, prepared.dir);
    return null;
  }
  const now = surveyOutDir(prepared.dir, claims);
  if (now.foreign.length > 0) throw new UsageError(`${prepared.dir} changed while rpo worked: it holds files rpo did not write (${listNames(now.foreign)}); nothing was replaced`);
  // The manifest goes first and comes back last: a crash in between leaves files that are not
  // provably ours, which the next --overwrite refuses (naming them) rather than deletes.
  const removed = now.ours.filter((n) => n !== WRITTEN_MANIFEST);
  rmSync(path.join(prepared.dir, WRITTEN_MANIFEST), { force: true });
  for (const name of removed) if (!names.includes(name)) rmSync(path.join(prepared.dir, name), { force: true });
  for (const name of names) renameSync(path.join(tmp, name), path.join(prepared.dir, name));
  writeManifest(prepared.dir, names);
  rmSync(tmp, { recursive: true, force: true });
  return overwriteNotice(prepared.dir, removed, now.others);
}
