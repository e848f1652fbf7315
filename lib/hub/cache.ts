// The HuggingFace hub cache layout, shared with Python's huggingface_hub:
//
//   <cache>/<models|datasets>--<org>--<name>/
//     blobs/<etag>                    file contents; etag = sha256 (LFS) or git blob sha1
//     blobs/<etag>.incomplete         a download in progress (resumed with a Range request)
//     refs/<revision>                 the commit a branch or tag pointed to (no newline)
//     snapshots/<commit>/<path>       relative symlinks to ../../blobs/<etag> (deeper for nested paths)
//     .no_exist/<commit>/<path>       empty marker: the file does not exist at that commit
//
// <cache> = HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expandHome } from '../util/paths.js';

export type RepoType = 'model' | 'dataset';

/** A full 40-hex commit id. */
export const COMMIT_RE = /^[0-9a-f]{40}$/;

function nonEmpty(v: string | undefined): string | undefined {
  return v !== undefined && v.length > 0 ? v : undefined;
}

/** `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`. */
export function hfHome(env: NodeJS.ProcessEnv = process.env): string {
  const home = nonEmpty(env['HF_HOME']);
  if (home) return path.resolve(expandHome(home));
  const xdg = nonEmpty(env['XDG_CACHE_HOME']) ?? path.join(os.homedir(), '.cache');
  return path.resolve(expandHome(xdg), 'huggingface');
}

/** The hub cache directory, resolved as huggingface_hub does. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = nonEmpty(env['HF_HUB_CACHE']) ?? nonEmpty(env['HUGGINGFACE_HUB_CACHE']);
  return explicit ? path.resolve(expandHome(explicit)) : path.join(hfHome(env), 'hub');
}

/** `models--org--name` / `datasets--org--name`. */
export function repoFolderName(repo: string, repoType: RepoType): string {
  return [`${repoType}s`, ...repo.split('/')].join('--');
}

/** Paths of one repository inside a cache directory. */
export class RepoCache {
  readonly root: string;
  constructor(
    readonly cacheDir: string,
    readonly repo: string,
    readonly repoType: RepoType,
  ) {
    this.root = path.join(cacheDir, repoFolderName(repo, repoType));
  }

  blobPath(etag: string): string {
    return path.join(this.root, 'blobs', etag);
  }

  snapshotDir(commit: string): string {
    return path.join(this.root, 'snapshots', commit);
  }

  pointerPath(commit: string, filename: string): string {
    return path.join(this.snapshotDir(commit), ...filename.split('/'));
  }

  noExistPath(commit: string, filename: string): string {
    return path.join(this.root, '.no_exist', commit, ...filename.split('/'));
  }

  /** The commit a revision points to in the cache: itself if it is a commit id, else refs/<revision>. */
  commitFor(revision: string): string | undefined {
    if (COMMIT_RE.test(revision)) return revision;
    const ref = path.join(this.root, 'refs', ...revision.split('/'));
    try {
      const commit = readFileSync(ref, 'utf8').trim();
      return COMMIT_RE.test(commit) ? commit : undefined;
    } catch {
      return undefined;
    }
  }

  /** Records that `revision` points to `commit` (atomic; nothing written for a commit id or an unchanged ref). */
  async writeRef(revision: string, commit: string): Promise<void> {
    if (revision === commit) return;
    const ref = path.join(this.root, 'refs', ...revision.split('/'));
    try {
      if ((await readFile(ref, 'utf8')) === commit) return;
    } catch {
      // absent: write it
    }
    await mkdir(path.dirname(ref), { recursive: true });
    const tmp = `${ref}.${process.pid}.${Date.now()}.tmp`;
    await writeFile(tmp, commit);
    await rename(tmp, ref);
  }

  /** The cached file for (commit, filename), if its snapshot entry exists and resolves. */
  cachedFile(commit: string, filename: string): string | undefined {
    const p = this.pointerPath(commit, filename);
    return existsSync(p) ? p : undefined;
  }

  isKnownMissing(commit: string, filename: string): boolean {
    return existsSync(this.noExistPath(commit, filename));
  }

  async markMissing(commit: string, filename: string): Promise<void> {
    const p = this.noExistPath(commit, filename);
    try {
      await mkdir(path.dirname(p), { recursive: true });
      await writeFile(p, '');
    } catch {
      // best effort, as huggingface_hub
    }
  }

  /** Every file of a cached snapshot, as repo-relative paths with '/' (sorted). */
  listSnapshot(commit: string): string[] {
    const root = this.snapshotDir(commit);
    const out: string[] = [];
    const walk = (dir: string, prefix: string): void => {
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        return;
      }
      for (const name of names) {
        const full = path.join(dir, name);
        let st;
        try {
          st = statSync(full); // follows the symlink: a dangling one is skipped
        } catch {
          continue;
        }
        if (st.isDirectory()) walk(full, `${prefix}${name}/`);
        else out.push(`${prefix}${name}`);
      }
    };
    walk(root, '');
    return out.sort();
  }

  /**
   * Points snapshots/<commit>/<filename> at blobs/<etag> with a relative symlink (as huggingface_hub
   * does), replacing whatever was there; copies the blob where symlinks are not allowed.
   */
  async link(commit: string, filename: string, etag: string): Promise<string> {
    const pointer = this.pointerPath(commit, filename);
    const blob = this.blobPath(etag);
    await mkdir(path.dirname(pointer), { recursive: true });
    await rm(pointer, { force: true });
    try {
      await symlink(path.relative(path.dirname(pointer), blob), pointer);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return pointer; // a concurrent writer made the same link
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EACCES') throw err;
      await copyFile(blob, pointer);
    }
    return pointer;
  }
}
