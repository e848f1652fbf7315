// A full disk while saving is an ordinary error naming the file: the process lives on, no
// partial or temp file is left, and whatever was there before is untouched. A real tmpfs, really
// full (see tmpfs.ts); the optimizer-state case runs in a child process because LibTorch's own
// writer used to abort the process (SIGABRT from a destructor) on ENOSPC.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { saveModel } from '../../lib/model/io.js';
import { Model } from '../../lib/native.js';
import { tinyConfig } from './helpers.js';
import { runChild } from './run_child.js';
import { mountSmallDisk } from './tmpfs.js';

const disk = mountSmallDisk(700);
if ('skip' in disk) console.warn(`SKIPPED disk-full tests: ${disk.skip}`);
const mounted = 'dir' in disk ? disk : undefined;

/** Files on the disk, but the filler. */
function listing(dir: string): string[] {
  return readdirSync(dir).filter((f) => f !== '.filler').sort();
}

describe.skipIf(!mounted)('a full disk while saving', () => {
  const d = mounted!;
  afterEach(() => d.clear());
  afterAll(() => d.unmount());

  it('Trainer.saveState rejects with "no space left on device" and the file; the process lives, nothing partial stays', () => {
    const dir = path.join(d.dir, '.checkpoint.tmp-1');
    writeFileSync(path.join(d.dir, 'keep.txt'), 'mine');
    // ~200 KB of AdamW moments into 32 KiB of room
    d.fill(32 * 1024);
    mkdirSync(dir);
    const file = path.join(dir, 'optimizer.pt');
    const out = runChild(['save-state', file]);
    expect(out.signal, out.stderr).toBeNull();
    expect(out.code, out.stderr).toBe(0);
    expect(out.result?.ok).toBe(false);
    // AdamW's moments go first, streamed into optimizer.safetensors beside the archive.
    expect(out.result?.message).toBe(`no space left on device writing ${path.join(dir, 'optimizer.safetensors')}`);
    expect(readdirSync(dir)).toEqual([]);
    expect(readFileSync(path.join(d.dir, 'keep.txt'), 'utf8')).toBe('mine');
  });

  it('saveState with room to spare still writes the files (the same child, a roomy disk)', () => {
    const file = path.join(d.dir, 'optimizer.pt');
    const out = runChild(['save-state', file]);
    expect(out.result, out.stderr).toEqual({ ok: true });
    expect(listing(d.dir)).toEqual(['optimizer.pt', 'optimizer.safetensors']);
  });

  it('saveModel: the weights file fails with the message naming model.safetensors, and no temp file stays', async () => {
    const model = await Model.create(tinyConfig(), { seed: 6 });
    const dir = path.join(d.dir, 'model');
    mkdirSync(dir);
    d.fill(32 * 1024); // the weights are ~100 KB
    await expect(saveModel(model, dir)).rejects.toThrow(`no space left on device writing ${path.join(dir, 'model.safetensors')}`);
    expect(readdirSync(dir)).toEqual([]);
    model.dispose();
  });
});
