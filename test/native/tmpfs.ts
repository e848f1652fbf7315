// A small real tmpfs for disk-full tests: mounted for one test file, filled until the kernel
// itself says ENOSPC, then given back a known amount of room. Needs root (CAP_SYS_ADMIN); where
// mounting is not allowed the caller skips, loudly.
import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface SmallDisk {
  dir: string;
  /** Fills the file system to the brim, then frees `headroom` bytes (rounded to pages by tmpfs). */
  fill(headroom: number): void;
  /** Removes everything on it, the filler included. */
  clear(): void;
  unmount(): void;
}

/** Mounts a tmpfs of `sizeKiB`; `{ skip }` with the reason when this process may not mount. */
export function mountSmallDisk(sizeKiB: number): SmallDisk | { skip: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'rpo-full-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKiB}k`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return { skip: `cannot mount a tmpfs (${(r.stderr || r.error?.message || 'mount failed').trim()}); disk-full tests need root` };
  }
  const filler = path.join(dir, '.filler');
  return {
    dir,
    fill(headroom: number): void {
      const fd = openSync(filler, 'w');
      const chunk = Buffer.alloc(4096, 1);
      let size = 0;
      try {
        for (;;) size += writeSync(fd, chunk);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      }
      ftruncateSync(fd, Math.max(0, size - headroom));
      closeSync(fd);
    },
    clear(): void {
      spawnSync('sh', ['-c', 'rm -rf -- "$1"/* "$1"/.[!.]*', 'sh', dir]);
    },
    unmount(): void {
      spawnSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
