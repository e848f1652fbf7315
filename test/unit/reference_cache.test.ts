// The precomputed reference log-probs file (lib/train/reference_cache.ts): written and read back
// exactly; a damaged or foreign file is an error naming its path, to delete.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readReferenceCache, writeReferenceCache, type ReferenceTable } from '../../lib/train/reference_cache.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'rpo-refcache-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const table: ReferenceTable = new Map([
  ['a', { chosen: { sum: -3.5, mean: -0.875, count: 4 }, rejected: { sum: -6, mean: -2, count: 3 } }],
  ['b', { chosen: { sum: -1.25, mean: -1.25, count: 1 }, rejected: { sum: -0.5, mean: -0.25, count: 2 } }],
]);

describe('reference log-probs cache', () => {
  it('reads back what it wrote, for its key only', () => {
    const file = path.join(tmp, 'ok', 'reference.json');
    writeReferenceCache(file, 'k1', table);
    expect(readReferenceCache(file, 'k1')).toEqual(table);
    expect(() => readReferenceCache(file, 'k2')).toThrow(`${file}: not a reference cache for key k2; delete it to recompute`);
    expect(readReferenceCache(path.join(tmp, 'absent.json'), 'k1')).toBeNull();
  });

  it('a damaged file (cut short, or JSON of another shape) is an error naming it, to delete (D10)', () => {
    const file = path.join(tmp, 'cut', 'reference.json');
    writeReferenceCache(file, 'k1', table);
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.slice(0, text.length >> 1));
    expect(() => readReferenceCache(file, 'k1')).toThrow(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not a readable reference cache \\(.*\\); delete it to recompute$`));
    for (const body of ['null', '[]', '{"format":"rpo-reference-logps-1","key":"k1"}']) {
      writeFileSync(file, body);
      expect(() => readReferenceCache(file, 'k1')).toThrow(`${file}: not a reference cache for key k1; delete it to recompute`);
    }
  });
});
