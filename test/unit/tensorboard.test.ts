// The TensorBoard event writer against TensorBoard's own readers (the pinned `tensorboard`
// package): every record's CRC, every scalar (as float32) and text value, and CRC-32C itself on
// the standard check value.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { EventWriter, crc32c, maskedCrc32c } from '../../lib/train/tensorboard.js';
import { runPython } from '../reference/python.js';

interface TbRead {
  files: string[];
  records: number;
  file_version: string;
  scalars: Record<string, [number, number | string][]>;
  text: Record<string, [number, string][]>;
  served: Record<string, [number, number | string][]>;
}

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'rpo-tb-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function read(dir: string): TbRead {
  return JSON.parse(runPython('tb_events.py', [dir])) as TbRead;
}

describe('CRC-32C', () => {
  it('has the standard check value and the TFRecord mask', () => {
    // CRC-32C("123456789") = 0xE3069283 (RFC 3720 B.4's check value).
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    const crc = 0xe3069283;
    expect(maskedCrc32c(Buffer.from('123456789'))).toBe(((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0);
  });
});

describe('event files', () => {
  it('TensorBoard reads back every scalar and text value', () => {
    const dir = path.join(tmp, 'run');
    const w = new EventWriter(dir);
    const want: Record<string, [number, number][]> = {};
    const put = (step: number, values: Record<string, number>) => {
      w.scalars(step, values);
      for (const [k, v] of Object.entries(values)) (want[k] ??= []).push([step, v]);
    };
    for (let step = 1; step <= 40; step++) {
      put(step, {
        loss: 0.6931 - step * 0.01 + Math.sin(step) * 1e-3,
        'rewards/accuracies': (step % 7) / 7,
        learning_rate: 5e-7 * Math.min(1, (step + 1) / 11),
        grad_norm: 10 ** (step / 10),
        tokens_per_second: 1234.5 + step,
        'logps/chosen': -1e4 * step,
      });
      if (step % 10 === 0) {
        put(step, { eval_loss: 0.7 - step / 1000, 'eval_rewards/accuracies': step / 40 });
        w.text(step, 'samples', `**step ${step}**\n\n| prompt | sample |\n|---|---|\n| 2+2= | 4 — “ok” ✓ |`);
        w.flush();
      }
    }
    put(41, { odd: Number.NaN, big: Infinity, tiny: 1e-45, neg: -0.1 });
    w.close();

    const r = read(dir);
    expect(r.files).toEqual([path.basename(w.file)]);
    expect(r.file_version).toBe('brain.Event:2');
    expect(r.records).toBe(1 + 41 + 4 + 4); // version, 41 scalar steps, 4 eval steps, 4 texts
    expect(Object.keys(r.scalars).sort()).toEqual(Object.keys(want).sort());
    for (const [tag, points] of Object.entries(want)) {
      const got = r.scalars[tag]!;
      expect(got.map((p) => p[0]), tag).toEqual(points.map((p) => p[0]));
      points.forEach(([, v], i) => {
        const g = got[i]![1];
        const f = Math.fround(v);
        if (Number.isNaN(f)) expect(g).toBe('nan');
        else if (!Number.isFinite(f)) expect(g).toBe(f > 0 ? 'inf' : '-inf');
        else expect(g, `${tag} #${i}`).toBe(f); // exactly the float32 of the value
      });
    }
    expect(r.served).toEqual(r.scalars);
    expect(r.text.samples!.map((p) => p[0])).toEqual([10, 20, 30, 40]);
    expect(r.text.samples![3]![1]).toBe('**step 40**\n\n| prompt | sample |\n|---|---|\n| 2+2= | 4 — “ok” ✓ |');
  }, 120_000);

  it('a restart (session start) drops what an earlier attempt logged from its step on, in both readers', () => {
    const dir = path.join(tmp, 'resumed');
    const first = new EventWriter(dir);
    first.sessionStart(1);
    for (let step = 1; step <= 10; step++) first.scalars(step, { loss: step });
    first.close();
    // resumed from a checkpoint at step 5: steps 6.. are trained (and logged) again
    const second = new EventWriter(dir);
    expect(path.basename(second.file) > path.basename(first.file)).toBe(true); // read after the first
    second.sessionStart(6);
    for (let step = 6; step <= 8; step++) second.scalars(step, { loss: 100 + step });
    second.close();
    const r = read(dir);
    const want = [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5], [6, 106], [7, 107], [8, 108]];
    expect(r.files).toHaveLength(2);
    expect(r.scalars.loss).toEqual(want);
    expect(r.served.loss).toEqual(want);
  }, 120_000);

  it('a damaged record is a CRC error in TensorBoard\'s reader (the framing is checked, not just parsed)', () => {
    const dir = path.join(tmp, 'bad');
    const w = new EventWriter(dir);
    w.scalars(1, { loss: 1 });
    w.close();
    const bytes = readFileSync(w.file);
    // flip one bit in the last record's data
    const at = bytes.length - 6;
    bytes.writeUInt8(bytes.readUInt8(at) ^ 1, at);
    writeFileSync(w.file, bytes);
    expect(() => read(dir)).toThrow(/crc32|DataLoss/i);
  }, 120_000);
});
