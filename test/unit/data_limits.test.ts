// Hostile and damaged data files (lib/data/read/limits.ts), made here on the fly: a .json.gz that
// expands past the bound (a small gzip bomb), a .json past it, a JSON-lines line past its bound
// (plain, gzipped, and /dev/zero behind a .jsonl name), a truncated .jsonl.gz. Each is an error
// naming the file, raised while reading, with bounds set small by env so the tests are fast.
import { spawnSync } from 'node:child_process';
import { constants } from 'node:buffer';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { DataFileError, readAllRecords } from '../../lib/data/read/index.js';
import { DEFAULT_MAX_JSON_BYTES, DEFAULT_MAX_LINE_BYTES } from '../../lib/data/read/limits.js';

const MiB = 1024 * 1024;
let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'rpo-data-limits-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(() => {
  delete process.env.RPO_MAX_JSON_BYTES;
  delete process.env.RPO_MAX_LINE_BYTES;
});

async function errorOf(file: string): Promise<DataFileError> {
  try {
    await readAllRecords(file);
  } catch (err) {
    expect(err).toBeInstanceOf(DataFileError);
    return err as DataFileError;
  }
  throw new Error(`${file} was read without an error`);
}

const row = (i: number) => JSON.stringify({ prompt: `p${i}`, chosen: `c${i}`, rejected: `r${i}` });

describe('bounded reading of data files (D6, D10)', () => {
  it('the default bounds are below V8\'s longest string', () => {
    expect(DEFAULT_MAX_JSON_BYTES).toBeLessThan(constants.MAX_STRING_LENGTH);
    expect(DEFAULT_MAX_LINE_BYTES).toBeLessThan(constants.MAX_STRING_LENGTH);
  });

  it('a .json.gz expanding past the bound is refused naming it; under the bound it reads', async () => {
    process.env.RPO_MAX_JSON_BYTES = String(1 * MiB);
    // 8 MiB of a valid JSON array padded with spaces: 8 KiB compressed.
    const body = Buffer.alloc(8 * MiB, 0x20);
    Buffer.from(`[${row(0)}]`).copy(body);
    const bomb = path.join(tmp, 'bomb.json.gz');
    writeFileSync(bomb, gzipSync(body));
    const e = await errorOf(bomb);
    expect(e.message).toBe(`${bomb}: expands to more than 1 MiB, the most read whole; JSON lines (.jsonl) are streamed and have no such bound (RPO_MAX_JSON_BYTES raises it)`);
    process.env.RPO_MAX_JSON_BYTES = String(16 * MiB);
    expect((await readAllRecords(bomb)).map((r) => r.data)).toEqual([JSON.parse(row(0))]);
  });

  it('a .json larger than the bound is refused naming it', async () => {
    process.env.RPO_MAX_JSON_BYTES = String(1 * MiB);
    const big = path.join(tmp, 'big.json');
    writeFileSync(big, `[${Array.from({ length: 40_000 }, (_, i) => row(i)).join(',')}]`);
    expect((await errorOf(big)).message).toMatch(new RegExp(`^${big.replace(/[.]/g, '\\.')}: is larger than 1 MiB, the most read whole`));
  });

  it('a JSON-lines line past the bound is refused naming file:line, plain and gzipped; shorter lines read', async () => {
    process.env.RPO_MAX_LINE_BYTES = String(1 * MiB);
    const long = JSON.stringify({ prompt: 'x'.repeat(2 * MiB), chosen: 'a', rejected: 'b' });
    for (const gz of [false, true]) {
      const file = path.join(tmp, gz ? 'long.jsonl.gz' : 'long.jsonl');
      const text = `${row(0)}\n${long}\n${row(2)}\n`;
      writeFileSync(file, gz ? gzipSync(text) : text);
      const e = await errorOf(file);
      expect(e.message).toBe(`${file}:2: line longer than 1 MiB (RPO_MAX_LINE_BYTES); not JSON lines, or a record too large to read`);
      expect(e.where).toEqual({ line: 2 });
      process.env.RPO_MAX_LINE_BYTES = String(4 * MiB);
      expect((await readAllRecords(file)).map((r) => r.line)).toEqual([1, 2, 3]);
      process.env.RPO_MAX_LINE_BYTES = String(1 * MiB);
    }
  });

  it('a truncated .jsonl.gz is an error naming the file and saying it is cut short', async () => {
    const whole = gzipSync(Array.from({ length: 2000 }, (_, i) => row(i)).join('\n'));
    const cut = path.join(tmp, 'cut.jsonl.gz');
    writeFileSync(cut, whole.subarray(0, whole.length - 100));
    expect((await errorOf(cut)).message).toMatch(new RegExp(`^${cut.replace(/[.]/g, '\\.')}: cannot read as gzip: the gzip data ends early \\(the file is truncated\\)`));
  });

  it('train.jsonl → /dev/zero (no line end, ever) is refused naming it, in bounded memory', () => {
    const zero = path.join(tmp, 'train.jsonl');
    symlinkSync('/dev/zero', zero);
    // A child under a 1.5 GB data ulimit: an unbounded read fails there, not on this machine.
    const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'read_records_child.ts');
    const r = spawnSync('bash', ['-c', `ulimit -d 1500000; exec "${process.execPath}" --import tsx "${child}" "${zero}"`], {
      env: { ...process.env, RPO_MAX_LINE_BYTES: String(1 * MiB) },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ error: `${zero}:1: line longer than 1 MiB (RPO_MAX_LINE_BYTES); not JSON lines, or a record too large to read` });
  }, 90_000);
});
