// `npm test` ends with a loud line for every test file that skipped part of itself, and why
// (scripts/skip-reporter.mjs, issue 22): checked on a real vitest run of a fixture project
// (test/fixtures/skips) with a suite skipped by skipIf after the file said why, a test skipped
// with ctx.skip(note), and a file that skips nothing.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = path.join(import.meta.dirname, '..', '..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'rpo-skips-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Skip { file: string; skipped: string[]; why: string[] }

function runFixture(): { out: string; skips: Skip[] } {
  const json = path.join(tmp, 'skips.json');
  const r = spawnSync(process.execPath, [
    path.join(REPO, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--root', path.join(REPO, 'test', 'fixtures', 'skips'),
    '--reporter=default', `--reporter=${path.join(REPO, 'scripts', 'skip-reporter.mjs')}`,
  ], { encoding: 'utf8', env: { ...process.env, RPO_SKIPS_JSON: json, NO_COLOR: '1' } });
  expect(r.status, r.stdout + r.stderr).toBe(0);
  return { out: r.stdout, skips: JSON.parse(readFileSync(json, 'utf8')) as Skip[] };
}

describe('the skip list at the end of npm test', () => {
  it('names each skipped suite (with its test count) and test, per file, with the reasons the file gave', () => {
    const { out, skips } = runFixture();
    expect(skips).toEqual([{
      file: 'skips.fixture.ts',
      skipped: ['suite "the widget" (2 tests)', 'test "the rest > skips itself with a note"'],
      why: ['the gizmo is missing', 'skips.fixture.ts: skipping the widget suite: no widget on this machine'],
    }]);
    expect(out).toContain('rpo test: 1 test file skipped part of what they test:');
    expect(out).toContain('SKIPPED in skips.fixture.ts: suite "the widget" (2 tests); test "the rest > skips itself with a note"');
    expect(out).toContain('  why: the gizmo is missing | skips.fixture.ts: skipping the widget suite: no widget on this machine');
    expect(out).not.toContain('clean.fixture.ts:');
  });
});
