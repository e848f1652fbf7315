// Invalid UTF-8 in data files (issue 9, item 13a): read as U+FFFD, as before, but never silently:
// one warning per file naming its lines (JSON lines, JSON) or rows (parquet) and the count.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { decodeUtf8, readAllRecords } from '../../lib/data/read/index.js';
import { loadPreferenceSplit } from '../../lib/data/sources/index.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'rpo-utf8-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');
const LATIN1_E_ACUTE = Buffer.from([0xe9]); // "é" in Latin-1: not UTF-8
const TRUNCATED_EURO = Buffer.from([0xe2, 0x82]); // "€" without its last byte
const REAL_FFFD = Buffer.from('\uFFFD', 'utf8'); // a U+FFFD that is in the file as valid UTF-8

function row(prompt: Buffer, n: number): Buffer {
  return Buffer.concat([ascii('{"prompt": "'), prompt, ascii(`", "chosen": "c${n}", "rejected": "r${n}"}`)]);
}

/** Lines 2 and 4 are invalid UTF-8; line 3 holds a U+FFFD written as valid UTF-8. */
function jsonlBytes(): Buffer {
  return Buffer.concat([
    row(ascii('fine'), 1), ascii('\n'),
    row(Buffer.concat([ascii('caf'), LATIN1_E_ACUTE]), 2), ascii('\n'),
    row(Buffer.concat([ascii('kept '), REAL_FFFD]), 3), ascii('\r\n'),
    row(Buffer.concat([ascii('price 5'), TRUNCATED_EURO]), 4), ascii('\n'),
  ]);
}

async function readWarnings(file: string): Promise<{ warnings: string[]; prompts: string[] }> {
  const warnings: string[] = [];
  const recs = await readAllRecords(file, { onWarning: (m) => warnings.push(m) });
  return { warnings, prompts: recs.map((r) => r.data['prompt'] as string) };
}

describe('invalid UTF-8 in data files', () => {
  it('decodeUtf8 counts replacements, not U+FFFD that was in the file', () => {
    expect(decodeUtf8(Buffer.concat([ascii('caf'), LATIN1_E_ACUTE])).replaced).toBe(1);
    expect(decodeUtf8(Buffer.concat([ascii('a'), REAL_FFFD]))).toEqual({ text: 'a\uFFFD', replaced: 0 });
    expect(decodeUtf8(Buffer.concat([LATIN1_E_ACUTE, REAL_FFFD])).replaced).toBe(1);
  });

  it('JSON lines: one warning with file:line of each bad line and the count', async () => {
    const file = path.join(tmp, 'bad.jsonl');
    writeFileSync(file, jsonlBytes());
    const { warnings, prompts } = await readWarnings(file);
    expect(prompts).toEqual(['fine', 'caf\uFFFD', 'kept \uFFFD', 'price 5\uFFFD']);
    expect(warnings).toEqual([`${file}: invalid UTF-8 on 2 lines (${file}:2, ${file}:4): 2 characters were read as U+FFFD`]);
  });

  it('JSON lines that are valid UTF-8 give no warning', async () => {
    const file = path.join(tmp, 'good.jsonl');
    writeFileSync(file, Buffer.concat([row(ascii('fine'), 1), ascii('\n'), row(REAL_FFFD, 2), ascii('\n')]));
    expect((await readWarnings(file)).warnings).toEqual([]);
  });

  it('JSON (an indented array): the lines of the file', async () => {
    const file = path.join(tmp, 'bad.json');
    const lines = [ascii('['), Buffer.concat([ascii('  '), row(ascii('ok'), 1), ascii(',')]), Buffer.concat([ascii('  '), row(Buffer.concat([ascii('na'), LATIN1_E_ACUTE, LATIN1_E_ACUTE]), 2)]), ascii(']')];
    writeFileSync(file, Buffer.concat(lines.flatMap((l) => [l, ascii('\n')])));
    const { warnings, prompts } = await readWarnings(file);
    expect(prompts).toEqual(['ok', 'na\uFFFD\uFFFD']);
    expect(warnings).toEqual([`${file}: invalid UTF-8 on 1 line (${file}:3): 2 characters were read as U+FFFD`]);
  });

  it('parquet: the rows holding an invalid string', async () => {
    const file = path.join(tmp, 'bad.parquet');
    const bad = Buffer.concat([ascii('caf'), LATIN1_E_ACUTE]);
    const buf = parquetWriteBuffer({
      columnData: [
        { name: 'prompt', data: ['p0', new Uint8Array(bad), 'p2', 'p3'], type: 'STRING' },
        { name: 'chosen', data: ['c0', 'c1', 'c2', new Uint8Array(Buffer.concat([ascii('x'), TRUNCATED_EURO]))], type: 'STRING' },
        { name: 'rejected', data: ['r0', 'r1', 'r2', 'r3'], type: 'STRING' },
      ],
      rowGroupSize: 2,
    });
    writeFileSync(file, Buffer.from(buf));
    const { warnings, prompts } = await readWarnings(file);
    expect(prompts).toEqual(['p0', 'caf\uFFFD', 'p2', 'p3']);
    expect(warnings).toEqual([`${file}: invalid UTF-8 on 2 rows (row 1, row 3): 2 characters were read as U+FFFD`]);
  });

  it('through a dataset source: the warning reaches the caller', async () => {
    const file = path.join(tmp, 'pairs.jsonl');
    writeFileSync(file, Buffer.concat(Array.from({ length: 40 }, (_, i) => [row(i === 7 ? Buffer.concat([ascii('x'), LATIN1_E_ACUTE]) : ascii(`p${i}`), i), ascii('\n')]).flat()));
    const warnings: string[] = [];
    await loadPreferenceSplit(file, 'train', { onWarning: (m) => warnings.push(m) });
    expect(warnings).toEqual([`${file}: invalid UTF-8 on 1 line (${file}:8): 1 character was read as U+FFFD`]);
  });
});
