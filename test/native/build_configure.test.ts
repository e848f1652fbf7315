// `npm run build:native` configures CMake again, and any build does when what it found changed
// (issue 22): cmake-js alone configures only an empty build directory, so "install libgloo-dev,
// then `npm run build:native`" (rpo info's remedy) used to change nothing. Real CMake runs of
// scripts/build-native.mjs --configure-only in a build directory of the test's own.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

// @ts-expect-error: a plain .mjs script, no type declarations
import { ensureGlooHeaders } from '../../scripts/gloo-headers.mjs';

const REPO = path.join(import.meta.dirname, '..', '..');
const build = mkdtempSync(path.join(os.tmpdir(), 'rpo-configure-'));
afterAll(() => rmSync(build, { recursive: true, force: true }));

/** One run of the build script; its output, and whether CMake was configured. */
function configure(gloo: string, ...flags: string[]): { out: string; configured: boolean } {
  const r = spawnSync(process.execPath, [path.join(REPO, 'scripts', 'build-native.mjs'), '--configure-only', ...flags], {
    cwd: REPO,
    encoding: 'utf8',
    env: { ...process.env, RPO_BUILD_DIR: build, RPO_GLOO_INCLUDE: gloo },
  });
  const out = r.stdout + r.stderr;
  expect(r.status, out).toBe(0);
  return { out, configured: /Configuring done/.test(out) };
}

describe('build-native configures again when what it found changed', () => {
  it('gloo headers appearing, then going, are seen without a clean build; nothing changed: no configure; --force: always', () => {
    const gloo = ensureGlooHeaders(() => {}) as string | null;
    expect(gloo, 'gloo headers: the system, RPO_GLOO_INCLUDE or .cache/gloo').not.toBeNull();

    const off = configure('none');
    expect(off.configured).toBe(true);
    expect(off.out).toContain('rpo: data parallelism OFF');

    // the headers are there now (the remedy's "install libgloo-dev"): the next build sees them
    const on = configure(gloo!);
    expect(on.configured).toBe(true);
    expect(on.out).toContain(`rpo: data parallelism ON (gloo headers in ${gloo})`);

    expect(configure(gloo!).configured).toBe(false);
    const forced = configure(gloo!, '--force');
    expect(forced.configured).toBe(true);
    expect(forced.out).toContain('rpo: data parallelism ON');

    // and gone again: not the cached path of the last configure
    const gone = configure('none');
    expect(gone.configured).toBe(true);
    expect(gone.out).toContain('rpo: data parallelism OFF');
  }, 300_000);
});
