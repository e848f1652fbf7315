// Checkpoints written and read without a whole model in one place (native/model/sharded_io.h):
// the streamed sharded writer against transformers' own save_pretrained (byte for byte, and
// from_pretrained loading it), the ranged reader against slices of the tensors read here from
// the files' bytes, a write that fails half-way, and a resume from shards (weights and AdamW's
// moments).
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, saveModel } from '../../lib/model/io.js';
import { resolveCheckpoint, type TensorSpec } from '../../lib/model/safetensors.js';
import { Model, Trainer, readSafetensorsRanges, writeSafetensors, type TensorRange } from '../../lib/native.js';
import { OPTIMIZER_STATE, saveCheckpoint, type TrainerState } from '../../lib/train/checkpoint.js';
import { runPython } from '../reference/python.js';
import { randomBatch, tinyConfig } from './helpers.js';

// tinyConfig's tensors: embeddings and head 97×32 fp32 = 12416 bytes, MLP matrices 8192,
// q/o 4096, k/v 2048, norms 128. A 10000-byte cap puts the embeddings and the head in files of
// their own (huggingface_hub's oversized-tensor rule) and splits the layers over several files.
const MAX_SHARD = 10_000;
const config = tinyConfig({ initializer_range: 0.1 });

let work: string;
beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-sharded-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Every regular file of a directory and its bytes. */
function snapshot(dir: string): Map<string, Buffer> {
  return new Map(readdirSync(dir).sort().map((f) => [f, readFileSync(path.join(dir, f))]));
}

/** A tensor's elements decoded here from the file's bytes (F32 as is, BF16 as the high half of an F32). */
function elementsOf(spec: TensorSpec): Float32Array {
  const bytes = readFileSync(spec.file).subarray(spec.begin, spec.end);
  if (spec.dtype === 'F32') return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  if (spec.dtype !== 'BF16') throw new Error(`no decoder for ${spec.dtype}`);
  const out = new Float32Array(bytes.length / 2);
  const view = new DataView(new ArrayBuffer(4));
  for (let i = 0; i < out.length; i++) {
    view.setUint32(0, bytes.readUInt16LE(2 * i) << 16, true);
    out[i] = view.getFloat32(0, true);
  }
  return out;
}

for (const dtype of ['float32', 'bfloat16'] as const) {
  describe(`a ${dtype} model saved in shards`, () => {
    let single: string;
    let sharded: string;
    let hf: string;
    let reference: { loaded: number; differ: string[]; missing: string[]; unexpected: string[]; mismatched: string[]; files: string[] };
    let names: string[];

    beforeAll(async () => {
      const model = await Model.create(config, { seed: 7, dtype });
      names = model.params().map((p) => p.name);
      single = path.join(work, `${dtype}-single`);
      sharded = path.join(work, `${dtype}-sharded`);
      hf = path.join(work, `${dtype}-hf`);
      await saveModel(model, single);
      await saveModel(model, sharded, { maxShardBytes: MAX_SHARD });
      model.dispose();
      reference = JSON.parse(
        runPython('hf_sharded_save.py', ['--single', single, '--sharded', sharded, '--out', hf, '--max-shard-size', String(MAX_SHARD), '--dtype', dtype]),
      ) as typeof reference;
    });

    it('writes several files and an index, byte for byte what transformers save_pretrained writes', () => {
      const ours = readdirSync(sharded).filter((f) => f.endsWith('.safetensors') || f.endsWith('.index.json')).sort();
      const theirs = reference.files.filter((f) => f.endsWith('.safetensors') || f.endsWith('.index.json'));
      expect(ours.length).toBeGreaterThan(4);
      expect(ours).toContain('model.safetensors.index.json');
      expect(ours).toEqual(theirs);
      for (const f of ours) expect(readFileSync(path.join(sharded, f)).equals(readFileSync(path.join(hf, f))), f).toBe(true);
    });

    it('transformers from_pretrained loads it, every tensor equal to the unsharded save', () => {
      expect(reference.loaded).toBe(names.length);
      expect({ differ: reference.differ, missing: reference.missing, unexpected: reference.unexpected, mismatched: reference.mismatched }).toEqual({
        differ: [],
        missing: [],
        unexpected: [],
        mismatched: [],
      });
    });

    it('the ranged reader equals slices of the full tensors, within tensors and across shard files', async () => {
      const { files, tensors } = resolveCheckpoint(sharded);
      expect(files.length).toBeGreaterThan(4);
      const byName = new Map(tensors.map((t) => [t.name, t]));
      const specs = names.map((n) => byName.get(n)!);
      expect(specs.every((s) => s.dtype === (dtype === 'float32' ? 'F32' : 'BF16'))).toBe(true);
      const full = specs.map(elementsOf);
      const flat = new Float32Array(full.reduce((n, t) => n + t.length, 0));
      full.reduce((at, t) => (flat.set(t, at), at + t.length), 0);

      // Three ranks' flat shards of the whole model (in state-dict order), cut into per-tensor ranges here.
      const world = 3;
      for (let rank = 0; rank < world; rank++) {
        const begin = Math.floor((rank * flat.length) / world);
        const end = Math.floor(((rank + 1) * flat.length) / world);
        const ranges: TensorRange[] = [];
        let cursor = 0;
        specs.forEach((s, i) => {
          const n = full[i]!.length;
          const lo = Math.max(begin, cursor);
          const hi = Math.min(end, cursor + n);
          if (lo < hi) ranges.push({ name: s.name, start: lo - cursor, end: hi - cursor });
          cursor += n;
        });
        // Each rank's shard spans tensors of several files; the later ones start inside a tensor.
        expect(new Set(ranges.map((r) => byName.get(r.name)!.file)).size).toBeGreaterThan(1);
        if (rank > 0) expect(ranges[0]!.start).toBeGreaterThan(0);
        const got = await readSafetensorsRanges(tensors, ranges);
        expect(got).toEqual(flat.slice(begin, end));
      }
      // A few odd ranges inside one tensor, and an empty one.
      const q = specs.findIndex((s) => s.name.endsWith('layers.1.self_attn.q_proj.weight'));
      const got = await readSafetensorsRanges(tensors, [
        { name: specs[q]!.name, start: 5, end: 6 },
        { name: specs[q]!.name, start: 33, end: 1000 },
        { name: specs[q]!.name, start: 7, end: 7 },
      ]);
      expect(got).toEqual(Float32Array.from([...full[q]!.slice(5, 6), ...full[q]!.slice(33, 1000)]));
    });

    it('a range outside the tensor or of a tensor the checkpoint lacks is an error naming them', async () => {
      const { tensors } = resolveCheckpoint(sharded);
      const norm = tensors.find((t) => t.name === 'model.norm.weight')!;
      await expect(readSafetensorsRanges(tensors, [{ name: norm.name, start: 10, end: 33 }])).rejects.toThrow(
        `${norm.file}: tensor "model.norm.weight": element range [10, 33) is not within its 32 elements`,
      );
      await expect(readSafetensorsRanges(tensors, [{ name: 'model.nope', start: 0, end: 1 }])).rejects.toThrow('checkpoint has no tensor "model.nope"');
    });
  });
}

describe('a write that fails half-way', () => {
  const tensor = (name: string, n: number, fill: number) => ({ name, dtype: 'F32', shape: [n], data: new Uint8Array(new Float32Array(n).fill(fill).buffer) });

  it('leaves the previous checkpoint as it was: no file renamed, no temp file left', async () => {
    const dir = path.join(work, 'interrupted');
    mkdirSync(dir);
    const v1 = ['a', 'b', 'c', 'd', 'e'].map((n, i) => tensor(n, 1000, i));
    await writeSafetensors(dir, v1, { maxShardBytes: 8000 });
    const before = snapshot(dir);
    expect([...before.keys()]).toEqual([
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
      'model.safetensors.index.json',
    ]);
    // New values for every tensor; the fourth one's bytes do not fit its shape, so the producer
    // throws when the writer reaches it, after two files of the new checkpoint are written.
    const v2 = ['a', 'b', 'c', 'd', 'e'].map((n, i) => tensor(n, 1000, 10 + i));
    v2[3] = { ...v2[3]!, data: new Uint8Array(3996) };
    await expect(writeSafetensors(dir, v2, { maxShardBytes: 8000 })).rejects.toThrow(
      `${path.join(dir, 'model-00002-of-00003.safetensors')}: tensor "d": 3996 bytes given, shape [1000] of F32 needs 4000`,
    );
    const after = snapshot(dir);
    expect([...after.keys()]).toEqual([...before.keys()]);
    for (const [f, bytes] of before) expect(after.get(f)?.equals(bytes), f).toBe(true);
  });

  it('a later write of another layout replaces the files and removes the stale ones', async () => {
    const dir = path.join(work, 'relayout');
    mkdirSync(dir);
    await writeSafetensors(dir, ['a', 'b', 'c'].map((n, i) => tensor(n, 1000, i)), { maxShardBytes: 4000 });
    expect(readdirSync(dir).length).toBe(4);
    await writeSafetensors(dir, ['a', 'b', 'c'].map((n, i) => tensor(n, 1000, i)), { maxShardBytes: 1e9 });
    expect(readdirSync(dir)).toEqual(['model.safetensors']);
    await writeSafetensors(dir, ['a', 'b'].map((n, i) => tensor(n, 1000, i)), { maxShardBytes: 4000 });
    expect(readdirSync(dir).sort()).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
  });
});

describe('resume from a sharded checkpoint', () => {
  const batches = [0, 1, 2, 3].map((i) => randomBatch(70 + i, { rows: 2, seqLen: 10, vocab: config.vocab_size }));
  const step = async (trainer: Trainer, i: number): Promise<void> => {
    await trainer.microStep(batches[i]!, { nPairs: 2 });
    await trainer.optimizerStep({ lr: 1e-2 });
  };
  const state: TrainerState = {
    format: 'rpo-trainer-state-1', step: 2, examples: 4, epoch: 0, batchInEpoch: 2, lastEvalExamples: 0, dataFingerprint: 'x', seed: 0, wallSeconds: 0,
  };

  it('trains on to the same weights as a resume from one file', async () => {
    const empty = path.join(work, 'resume-empty');
    mkdirSync(empty);
    const model = await Model.create(config, { seed: 9 });
    const trainer = new Trainer(model, null, { loss: { name: 'sft' } });
    await step(trainer, 0);
    await step(trainer, 1);
    const save = (runDir: string, maxShardBytes?: number) =>
      saveCheckpoint({ runDir, model, trainer, state, tokenizerDir: empty, modelDir: empty, ...(maxShardBytes ? { maxShardBytes } : {}) });
    const fromOne = await save(path.join(work, 'run-single'));
    const fromShards = await save(path.join(work, 'run-sharded'), MAX_SHARD);
    trainer.dispose();
    model.dispose();
    expect(existsSync(path.join(fromOne, 'model.safetensors'))).toBe(true);
    expect(existsSync(path.join(fromOne, 'optimizer.safetensors'))).toBe(true);
    expect(readdirSync(fromShards).filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(4);
    // AdamW's moments are sharded by the same cap, beside optimizer.pt.
    expect(readdirSync(fromShards).filter((f) => /^optimizer-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(4);
    expect(existsSync(path.join(fromShards, 'optimizer.safetensors.index.json'))).toBe(true);

    // A rank's ranged read of the moments: the same numbers from the shards as from the one file.
    const one = resolveCheckpoint(fromOne, 'optimizer').tensors;
    const shards = resolveCheckpoint(fromShards, 'optimizer');
    expect(one.map((t) => t.name).sort()).toEqual(shards.tensors.map((t) => t.name).sort());
    expect(one.map((t) => t.name)).toContain('model.embed_tokens.weight.exp_avg_sq');
    const ranges: TensorRange[] = [
      { name: 'model.embed_tokens.weight.exp_avg', start: 3000, end: 3104 },
      { name: 'model.layers.0.self_attn.q_proj.weight.exp_avg_sq', start: 0, end: 1024 },
      { name: 'lm_head.weight.exp_avg', start: 0, end: 17 },
    ];
    expect(new Set(ranges.map((r) => shards.tensors.find((t) => t.name === r.name)!.file)).size).toBe(3);
    const fromShardFiles = await readSafetensorsRanges(shards.tensors, ranges);
    expect(fromShardFiles).toEqual(await readSafetensorsRanges(one, ranges));
    expect(fromShardFiles.some((v) => v !== 0)).toBe(true);

    const finals: Buffer[] = [];
    for (const dir of [fromOne, fromShards]) {
      const resumed = await loadModel(dir);
      const t = new Trainer(resumed, null, { loss: { name: 'sft' } });
      await t.loadState(path.join(dir, OPTIMIZER_STATE));
      await step(t, 2);
      await step(t, 3);
      const out = path.join(work, `final-${path.basename(path.dirname(dir))}`);
      await saveModel(resumed, out);
      finals.push(readFileSync(path.join(out, 'model.safetensors')));
      t.dispose();
      resumed.dispose();
    }
    expect(finals[0]!.equals(finals[1]!)).toBe(true);
  });

  it("refuses moments that are not the ones optimizer.pt describes, naming the file", async () => {
    const dir = path.join(work, 'run-single', 'LATEST');
    const other = path.join(work, 'swapped');
    mkdirSync(other);
    for (const f of readdirSync(dir)) writeFileSync(path.join(other, f), readFileSync(path.join(dir, f)));
    // Another state's tensors: the model's weights under the optimizer's file name.
    writeFileSync(path.join(other, 'optimizer.safetensors'), readFileSync(path.join(dir, 'model.safetensors')));
    const model = await loadModel(other);
    const t = new Trainer(model, null, { loss: { name: 'sft' } });
    await expect(t.loadState(path.join(other, OPTIMIZER_STATE))).rejects.toThrow(
      `${path.join(other, 'optimizer.safetensors')}: not the tensors of the optimizer state ${path.join(other, OPTIMIZER_STATE)}`,
    );
    t.dispose();
    model.dispose();
  });
});
