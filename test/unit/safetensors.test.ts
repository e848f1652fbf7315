import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  MAX_HEADER_BYTES,
  buildSafetensorsHeader,
  checkTensorsAgainstParams,
  readSafetensorsHeader,
  resolveCheckpoint,
  writeSafetensorsFile,
  type WritableTensor,
} from '../../lib/model/safetensors.js';
import { writeFileAtomic } from '../../lib/util/files.js';
import type { ParamInfo, TensorSpec } from '../../lib/native.js';
import { mountSmallDisk } from '../native/tmpfs.js';

let root: string;
let counter = 0;

beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'rpo-safetensors-'));
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A fresh directory for one test. */
function freshDir(): string {
  const dir = path.join(root, `case-${++counter}`);
  mkdirSync(dir);
  return dir;
}

/** u64 little-endian, byte by byte (independent of the code under test). */
function u64le(n: number): number[] {
  const out: number[] = [];
  let v = BigInt(n);
  for (let i = 0; i < 8; i++) {
    out.push(Number(v & 0xffn));
    v >>= 8n;
  }
  return out;
}

/** Hand-assembles a file: 8-byte LE length, header bytes, data bytes. */
function rawFile(file: string, header: string | Uint8Array, data: number[] | Uint8Array = [], lengthOverride?: number): string {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : Buffer.from(header);
  const len = lengthOverride ?? h.length;
  writeFileSync(file, Buffer.concat([Buffer.from(u64le(len)), h, Buffer.from(data)]));
  return file;
}

/** A header object's JSON, for hand-built files (no padding: the reader must not need it). */
function headerJson(entries: Record<string, unknown>): string {
  return JSON.stringify(entries);
}

function bytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 7) & 0xff;
  return out;
}

function param(name: string, dtype: string, shape: number[]): ParamInfo {
  const size = { F32: 4, BF16: 2, F16: 2 }[dtype] ?? 4;
  return { name, dtype, shape, nbytes: shape.reduce((a, b) => a * b, 1) * size };
}

function tensorFor(p: ParamInfo, seed = 1): WritableTensor {
  return { name: p.name, dtype: p.dtype, shape: p.shape, data: bytes(p.nbytes, seed) };
}

function readRange(file: string, begin: number, end: number): Uint8Array {
  const fd = openSync(file, 'r');
  try {
    const buf = new Uint8Array(end - begin);
    readSync(fd, buf, 0, buf.length, begin);
    return buf;
  } finally {
    closeSync(fd);
  }
}

describe('readSafetensorsHeader on hand-assembled bytes', () => {
  it('reads dtype, shape and absolute offsets of a file built byte by byte', () => {
    const dir = freshDir();
    // Header text written out literally: 140 bytes, then 4 spaces of padding to 144.
    const header =
      '{"__metadata__":{"format":"pt"},"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},' +
      '"b":{"dtype":"I32","shape":[1,1],"data_offsets":[4,8]}}    ';
    expect(Buffer.byteLength(header)).toBe(144);
    const file = path.join(dir, 'tiny.safetensors');
    const data = [1, 2, 3, 4, 5, 6, 7, 8];
    // 144 = 0x90: the first length byte is 0x90, the other seven are zero.
    writeFileSync(file, Buffer.from([0x90, 0, 0, 0, 0, 0, 0, 0, ...Buffer.from(header), ...data]));

    const h = readSafetensorsHeader(file);
    expect(h.headerLength).toBe(144);
    expect(h.dataStart).toBe(152);
    expect(h.fileSize).toBe(160);
    expect(h.metadata).toEqual({ format: 'pt' });
    expect(h.tensors).toEqual<TensorSpec[]>([
      { name: 'a', file, dtype: 'F16', shape: [2], begin: 152, end: 156 },
      { name: 'b', file, dtype: 'I32', shape: [1, 1], begin: 156, end: 160 },
    ]);
    // The offsets point at the right bytes.
    expect([...readRange(file, 156, 160)]).toEqual([5, 6, 7, 8]);
  });

  it('returns tensors sorted by offset whatever the header order, and accepts zero-size tensors', () => {
    const dir = freshDir();
    const header = headerJson({
      late: { dtype: 'U8', shape: [3], data_offsets: [2, 5] },
      empty: { dtype: 'F32', shape: [0, 7], data_offsets: [2, 2] },
      early: { dtype: 'BF16', shape: [1], data_offsets: [0, 2] },
    });
    const file = rawFile(path.join(dir, 'm.safetensors'), header, [9, 9, 1, 2, 3]);
    const h = readSafetensorsHeader(file);
    expect(h.tensors.map((t) => t.name)).toEqual(['early', 'empty', 'late']);
    expect(h.metadata).toEqual({});
    const start = 8 + Buffer.byteLength(header);
    expect(h.tensors.map((t) => [t.begin - start, t.end - start])).toEqual([[0, 2], [2, 2], [2, 5]]);
  });

  it('accepts an empty checkpoint (only metadata, no data)', () => {
    const dir = freshDir();
    const file = rawFile(path.join(dir, 'e.safetensors'), '{"__metadata__":{"k":"v"}}   ');
    const h = readSafetensorsHeader(file);
    expect(h.tensors).toEqual([]);
    expect(h.metadata).toEqual({ k: 'v' });
  });

  it('reads only the header of a large (sparse) file, with offsets past 4 GiB', () => {
    const dir = freshDir();
    const big = 5 * 2 ** 30; // 5 GiB of F32: 1342177280 elements
    const header = headerJson({
      small: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      big: { dtype: 'F32', shape: [big / 4], data_offsets: [8, 8 + big] },
    });
    const file = rawFile(path.join(dir, 'big.safetensors'), header, bytes(8));
    truncateSync(file, 8 + Buffer.byteLength(header) + 8 + big); // sparse: no 5 GiB on disk
    const h = readSafetensorsHeader(file);
    const last = h.tensors[1];
    expect(last?.name).toBe('big');
    expect(last?.end).toBe(8 + Buffer.byteLength(header) + 8 + big);
    expect(last?.end).toBeGreaterThan(2 ** 32);
  });
});

describe('readSafetensorsHeader rejects malformed files, naming the file', () => {
  const okTensor = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };

  it('truncated file (< 8 bytes)', () => {
    const file = path.join(freshDir(), 'short.safetensors');
    writeFileSync(file, Buffer.from([1, 0, 0, 0, 0]));
    expect(() => readSafetensorsHeader(file)).toThrow(/short\.safetensors: truncated: 5 bytes/);
  });

  it('header length past the end of the file', () => {
    const file = rawFile(path.join(freshDir(), 'eof.safetensors'), '{}', [], 1000);
    expect(() => readSafetensorsHeader(file)).toThrow(/eof\.safetensors: header length 1000 runs past the end of the file \(10 bytes\)/);
  });

  it('header length over the 100 MiB cap (checked before allocating)', () => {
    const file = rawFile(path.join(freshDir(), 'cap.safetensors'), '{}', [], MAX_HEADER_BYTES + 1);
    expect(() => readSafetensorsHeader(file)).toThrow(/cap\.safetensors: header length 104857601 exceeds the 104857600-byte cap/);
    // A length with the top bit set must not wrap into a small number.
    const huge = path.join(freshDir(), 'huge.safetensors');
    writeFileSync(huge, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0x80, 0x7b, 0x7d]));
    expect(() => readSafetensorsHeader(huge)).toThrow(/huge\.safetensors: header length 9223372036854775808 exceeds/);
  });

  it('header that is not JSON', () => {
    const file = rawFile(path.join(freshDir(), 'notjson.safetensors'), '{"a": {"dtype": ');
    expect(() => readSafetensorsHeader(file)).toThrow(/notjson\.safetensors: header is not valid JSON/);
  });

  it('header that does not start with "{"', () => {
    const file = rawFile(path.join(freshDir(), 'pickle.safetensors'), Buffer.from([0x80, 0x02, 0x7d, 0x71]).toString('latin1'));
    expect(() => readSafetensorsHeader(file)).toThrow(/pickle\.safetensors: header (does not start with|is not valid UTF-8)/);
    const str = rawFile(path.join(freshDir(), 'str.safetensors'), '  "abc"');
    expect(() => readSafetensorsHeader(str)).toThrow(/str\.safetensors: header does not start with "\{" \(found "\\""\)/);
  });

  it('a JSON array header', () => {
    const file = rawFile(path.join(freshDir(), 'array.safetensors'), '[{"dtype":"F32"}]');
    expect(() => readSafetensorsHeader(file)).toThrow(/array\.safetensors: header does not start with "\{" \(found "\["\)/);
  });

  it('a header nested 200k deep is a clear error naming the file, not a stack overflow', () => {
    const deep = 200_000;
    const nested = '['.repeat(deep) + ']'.repeat(deep);
    const file = rawFile(path.join(freshDir(), 'deep.safetensors'), `{"a":${nested}}`);
    expect(() => readSafetensorsHeader(file)).toThrow(/deep\.safetensors: header is nested more than \d+ levels deep; the file is malformed/);
    // the same inside a tensor entry, where the shape is validated
    const shape = rawFile(path.join(freshDir(), 'shape.safetensors'), `{"w":{"dtype":"F32","shape":${nested},"data_offsets":[0,0]}}`);
    expect(() => readSafetensorsHeader(shape)).toThrow(/shape\.safetensors: header is nested more than/);
    // brackets inside strings are not nesting: a real header with odd tensor names still reads
    const names = rawFile(path.join(freshDir(), 'names.safetensors'), headerJson({ ['['.repeat(500)]: okTensor, ['{'.repeat(500) + '\\"']: { dtype: 'F32', shape: [0], data_offsets: [8, 8] } }), bytes(8));
    expect(readSafetensorsHeader(names).tensors.map((t) => t.name).sort()).toEqual(['['.repeat(500), '{'.repeat(500) + '\\"'].sort());
  });

  it('an index file nested 200k deep names the index', () => {
    const dir = freshDir();
    writeFileSync(path.join(dir, 'model.safetensors.index.json'), `{"weight_map":{"w":${'['.repeat(200_000)}${']'.repeat(200_000)}}}`);
    expect(() => resolveCheckpoint(dir)).toThrow(/model\.safetensors\.index\.json: JSON is nested more than \d+ levels deep/);
  });

  it('header bytes that are not UTF-8, and an all-space header', () => {
    const bad = rawFile(path.join(freshDir(), 'utf.safetensors'), new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x7d]));
    expect(() => readSafetensorsHeader(bad)).toThrow(/utf\.safetensors: header is not valid UTF-8/);
    const blank = rawFile(path.join(freshDir(), 'blank.safetensors'), '        ');
    expect(() => readSafetensorsHeader(blank)).toThrow(/blank\.safetensors: header is empty/);
  });

  it('unknown dtype', () => {
    const file = rawFile(path.join(freshDir(), 'dtype.safetensors'), headerJson({ w: { dtype: 'F12', shape: [2], data_offsets: [0, 4] } }), bytes(4));
    expect(() => readSafetensorsHeader(file)).toThrow(/dtype\.safetensors: tensor "w": unknown dtype "F12"/);
  });

  it('overlapping offsets', () => {
    const header = headerJson({
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    });
    const file = rawFile(path.join(freshDir(), 'overlap.safetensors'), header, bytes(12));
    expect(() => readSafetensorsHeader(file)).toThrow(/overlap\.safetensors: tensors "a" \[0, 8\] and "b" \[4, 12\] overlap/);
  });

  it('a gap between tensors', () => {
    const header = headerJson({
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [12, 20] },
    });
    const file = rawFile(path.join(freshDir(), 'gap.safetensors'), header, bytes(20));
    expect(() => readSafetensorsHeader(file)).toThrow(/gap\.safetensors: gap of 4 bytes in the data section before tensor "b"/);
  });

  it('a first tensor that does not start at 0', () => {
    const header = headerJson({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } });
    const file = rawFile(path.join(freshDir(), 'start.safetensors'), header, bytes(8));
    expect(() => readSafetensorsHeader(file)).toThrow(/start\.safetensors: gap of 4 bytes .* before tensor "a"/);
  });

  it('byte size that does not match shape × dtype', () => {
    const header = headerJson({ 'model.norm.weight': { dtype: 'F16', shape: [4], data_offsets: [0, 12] } });
    const file = rawFile(path.join(freshDir(), 'model.safetensors'), header, bytes(12));
    expect(() => readSafetensorsHeader(file)).toThrow(
      /model\.safetensors: tensor "model\.norm\.weight": data_offsets \[0, 12\] hold 12 bytes but shape \[4\] of F16 needs 8/,
    );
  });

  it('a shape whose byte size overflows is a mismatch, not a wrap-around', () => {
    const header = headerJson({ w: { dtype: 'F32', shape: [2 ** 40, 2 ** 30], data_offsets: [0, 0] } });
    const file = rawFile(path.join(freshDir(), 'overflow.safetensors'), header);
    expect(() => readSafetensorsHeader(file)).toThrow(/overflow\.safetensors: tensor "w": .*needs 4722366482869645213696/);
  });

  it('data_offsets past the data section', () => {
    const header = headerJson({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } });
    const file = rawFile(path.join(freshDir(), 'past.safetensors'), header, bytes(8));
    expect(() => readSafetensorsHeader(file)).toThrow(/past\.safetensors: tensor "w": data_offsets \[0, 16\] run past the data section \(8 bytes\)/);
  });

  it('data_offsets that end before they begin, or are not two integers', () => {
    const rev = rawFile(path.join(freshDir(), 'rev.safetensors'), headerJson({ w: { dtype: 'U8', shape: [0], data_offsets: [4, 0] } }), bytes(4));
    expect(() => readSafetensorsHeader(rev)).toThrow(/rev\.safetensors: tensor "w": data_offsets \[4, 0\] end before they begin/);
    const three = rawFile(path.join(freshDir(), 'three.safetensors'), headerJson({ w: { dtype: 'U8', shape: [1], data_offsets: [0, 1, 2] } }), bytes(1));
    expect(() => readSafetensorsHeader(three)).toThrow(/three\.safetensors: tensor "w": data_offsets \[0,1,2\] is not a pair/);
    const neg = rawFile(path.join(freshDir(), 'negoff.safetensors'), headerJson({ w: { dtype: 'U8', shape: [1], data_offsets: [-1, 0] } }), bytes(1));
    expect(() => readSafetensorsHeader(neg)).toThrow(/negoff\.safetensors: tensor "w": data_offsets/);
  });

  it('negative or non-integer shape', () => {
    const neg = rawFile(path.join(freshDir(), 'neg.safetensors'), headerJson({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }));
    expect(() => readSafetensorsHeader(neg)).toThrow(/neg\.safetensors: tensor "w": shape \[-1\] is not an array of non-negative integers/);
    const frac = rawFile(path.join(freshDir(), 'frac.safetensors'), headerJson({ w: { dtype: 'F32', shape: [1.5], data_offsets: [0, 6] } }), bytes(6));
    expect(() => readSafetensorsHeader(frac)).toThrow(/frac\.safetensors: tensor "w": shape \[1\.5\] is not an array/);
    const str = rawFile(path.join(freshDir(), 'strshape.safetensors'), headerJson({ w: { dtype: 'F32', shape: '2', data_offsets: [0, 8] } }), bytes(8));
    expect(() => readSafetensorsHeader(str)).toThrow(/strshape\.safetensors: tensor "w": shape "2"/);
  });

  it('trailing bytes after the last tensor', () => {
    const file = rawFile(path.join(freshDir(), 'trail.safetensors'), headerJson({ a: okTensor }), bytes(12));
    expect(() => readSafetensorsHeader(file)).toThrow(/trail\.safetensors: 4 trailing bytes after the last tensor/);
  });

  it('a tensor entry that is not an object, and bad __metadata__', () => {
    const notObj = rawFile(path.join(freshDir(), 'entry.safetensors'), headerJson({ a: [1, 2] }));
    expect(() => readSafetensorsHeader(notObj)).toThrow(/entry\.safetensors: tensor "a": entry is not an object/);
    const meta = rawFile(path.join(freshDir(), 'meta.safetensors'), headerJson({ __metadata__: { format: 'pt', step: 3 }, a: okTensor }), bytes(8));
    expect(() => readSafetensorsHeader(meta)).toThrow(/meta\.safetensors: __metadata__ value for "step" is not a string/);
    const metaArr = rawFile(path.join(freshDir(), 'meta2.safetensors'), headerJson({ __metadata__: ['x'] }));
    expect(() => readSafetensorsHeader(metaArr)).toThrow(/meta2\.safetensors: __metadata__ is not an object/);
  });

  it('a missing file', () => {
    expect(() => readSafetensorsHeader(path.join(root, 'nope.safetensors'))).toThrow(/nope\.safetensors: cannot open/);
  });
});

describe('writeSafetensorsFile', () => {
  it('writes a file the reader parses back, with an 8-byte padded header and the data in order', () => {
    const dir = freshDir();
    const file = path.join(dir, 'w.safetensors');
    const tensors: WritableTensor[] = [
      { name: 'x', dtype: 'F32', shape: [2, 3], data: bytes(24, 1) },
      { name: 'y', dtype: 'BF16', shape: [5], data: bytes(10, 2) },
      { name: 'z', dtype: 'U8', shape: [], data: bytes(1, 3) },
    ];
    writeSafetensorsFile(file, tensors);
    const raw = readFileSync(file);
    const len = Number(raw.readBigUInt64LE(0));
    expect(len % 8).toBe(0);
    expect(raw[8]).toBe(0x7b); // '{'
    const header = raw.subarray(8, 8 + len).toString('utf8');
    expect(JSON.parse(header)).toEqual({
      __metadata__: { format: 'pt' },
      x: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] },
      y: { dtype: 'BF16', shape: [5], data_offsets: [24, 34] },
      z: { dtype: 'U8', shape: [], data_offsets: [34, 35] },
    });
    expect(raw.length).toBe(8 + len + 35);
    const h = readSafetensorsHeader(file);
    for (const t of tensors) {
      const spec = h.tensors.find((s) => s.name === t.name);
      expect(spec).toBeDefined();
      expect(readRange(file, spec?.begin ?? 0, spec?.end ?? 0)).toEqual(t.data);
    }
    // Atomic write: nothing but the target is left in the directory.
    expect(readdirSync(dir)).toEqual(['w.safetensors']);
  });

  it('pads by bytes, not characters (non-ASCII names)', () => {
    const file = path.join(freshDir(), 'u.safetensors');
    writeSafetensorsFile(file, [{ name: 'poids.é', dtype: 'F16', shape: [1], data: bytes(2) }]);
    const raw = readFileSync(file);
    expect(Number(raw.readBigUInt64LE(0)) % 8).toBe(0);
    expect(readSafetensorsHeader(file).tensors[0]?.name).toBe('poids.é');
  });

  it('refuses data whose length does not match the shape, and duplicate names', () => {
    const file = path.join(freshDir(), 'bad.safetensors');
    expect(() => writeSafetensorsFile(file, [{ name: 'x', dtype: 'F32', shape: [2], data: bytes(7) }])).toThrow(/bad\.safetensors: tensor "x": 7 data bytes but shape \[2\] of F32 needs 8/);
    expect(() =>
      writeSafetensorsFile(file, [
        { name: 'x', dtype: 'U8', shape: [1], data: bytes(1) },
        { name: 'x', dtype: 'U8', shape: [1], data: bytes(1) },
      ]),
    ).toThrow(/tensor "x" is reserved or given twice/);
  });
});

describe('checkTensorsAgainstParams', () => {
  const params = [param('model.embed_tokens.weight', 'F32', [8, 4]), param('model.norm.weight', 'F32', [4]), param('lm_head.weight', 'F32', [8, 4])];
  const spec = (name: string, shape: number[], dtype = 'BF16', file = '/ck/model.safetensors'): TensorSpec => ({ name, file, dtype, shape, begin: 0, end: 0 });

  it('returns the tensors in parameter order and accepts other float dtypes', () => {
    const tensors = [spec('lm_head.weight', [8, 4], 'F16'), spec('model.norm.weight', [4], 'F64'), spec('model.embed_tokens.weight', [8, 4])];
    const r = checkTensorsAgainstParams(tensors, params, { tieWordEmbeddings: false });
    expect(r.load.map((t) => t.name)).toEqual(params.map((p) => p.name));
    expect(r.ignored).toEqual([]);
  });

  it('ignores lm_head.weight when embeddings are tied, and rotary buffers', () => {
    const tied = params.slice(0, 2);
    const tensors = [
      spec('model.embed_tokens.weight', [8, 4]),
      spec('model.norm.weight', [4]),
      spec('lm_head.weight', [8, 4]),
      spec('model.layers.0.self_attn.rotary_emb.inv_freq', [2], 'F32'),
    ];
    const r = checkTensorsAgainstParams(tensors, tied, { tieWordEmbeddings: true });
    expect(r.load.map((t) => t.name)).toEqual(['model.embed_tokens.weight', 'model.norm.weight']);
    expect(r.ignored.sort()).toEqual(['lm_head.weight', 'model.layers.0.self_attn.rotary_emb.inv_freq']);
  });

  it('lists every missing tensor in one error', () => {
    const tensors = [spec('model.norm.weight', [4])];
    expect(() => checkTensorsAgainstParams(tensors, params, { tieWordEmbeddings: false, file: '/ck' })).toThrow(
      /\/ck: checkpoint does not match the model:\n {2}missing 2 tensors: "model\.embed_tokens\.weight", "lm_head\.weight"/,
    );
  });

  it('reports unexpected tensors (lm_head.weight counts when not tied)', () => {
    const tensors = [spec('model.embed_tokens.weight', [8, 4]), spec('model.norm.weight', [4]), spec('lm_head.weight', [8, 4]), spec('model.extra.bias', [4])];
    expect(() => checkTensorsAgainstParams(tensors, params, { tieWordEmbeddings: false, file: 'ck' })).toThrow(
      /ck: checkpoint does not match the model:\n {2}unexpected 1 tensor the model has no parameter for: "model\.extra\.bias"/,
    );
    expect(() => checkTensorsAgainstParams(tensors.slice(0, 3), params.slice(0, 2), { tieWordEmbeddings: false, file: 'ck' })).toThrow(
      /unexpected 1 tensor .*"lm_head\.weight"/,
    );
  });

  it('names the tensor, expected and found shapes on a mismatch', () => {
    const tensors = [spec('model.embed_tokens.weight', [8, 4]), spec('model.norm.weight', [5]), spec('lm_head.weight', [4, 8])];
    const call = (): unknown => checkTensorsAgainstParams(tensors, params, { tieWordEmbeddings: false, file: 'ck' });
    expect(call).toThrow(/tensor "model\.norm\.weight": expected shape \[4\] but found \[5\] \(model\.safetensors\)/);
    expect(call).toThrow(/tensor "lm_head\.weight": expected shape \[8, 4\] but found \[4, 8\]/);
  });

  it('refuses non-floating dtypes and duplicate tensors', () => {
    const tensors = [spec('model.embed_tokens.weight', [8, 4], 'I32'), spec('model.norm.weight', [4]), spec('lm_head.weight', [8, 4])];
    expect(() => checkTensorsAgainstParams(tensors, params, { tieWordEmbeddings: false })).toThrow(
      /checkpoint: .*tensor "model\.embed_tokens\.weight": dtype I32 is not a floating dtype/s,
    );
    const dup = [...tensors, spec('model.norm.weight', [4], 'F32', '/ck/other.safetensors')];
    expect(() => checkTensorsAgainstParams(dup, params, { tieWordEmbeddings: false })).toThrow(/tensor "model\.norm\.weight" appears twice/);
  });
});

describe('resolveCheckpoint', () => {
  const params = [
    param('model.embed_tokens.weight', 'F32', [6, 4]),
    param('model.layers.0.self_attn.q_proj.weight', 'F32', [4, 4]),
    param('model.layers.0.mlp.up_proj.weight', 'F32', [8, 4]),
    param('model.layers.1.self_attn.q_proj.weight', 'F32', [4, 4]),
    param('model.norm.weight', 'F32', [4]),
    param('lm_head.weight', 'F32', [6, 4]),
  ];
  const dataOf = new Map(params.map((p, i) => [p.name, bytes(p.nbytes, i + 1)]));

  interface FixtureShard {
    fileName: string;
    names: string[];
    header: string;
  }

  /**
   * A checkpoint written with the TS writer: params in order, a new shard whenever the next one
   * would pass maxShardBytes (the fixture's own split; the engine's, transformers' rule, is
   * tested against transformers in test/native/sharded_checkpoint.test.ts), then the index.
   */
  function writePlan(dir: string, maxShardBytes: number): { shards: FixtureShard[] } {
    const groups: ParamInfo[][] = [];
    let bytesInLast = Infinity;
    for (const p of params) {
      if (bytesInLast + p.nbytes > maxShardBytes) {
        groups.push([]);
        bytesInLast = 0;
      }
      groups[groups.length - 1]?.push(p);
      bytesInLast += p.nbytes;
    }
    const n = groups.length;
    const shards = groups.map((g, i): FixtureShard => {
      const fileName = n === 1 ? 'model.safetensors' : `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
      const tensors = g.map((p) => ({ name: p.name, dtype: p.dtype, shape: p.shape, data: dataOf.get(p.name) ?? new Uint8Array() }));
      writeSafetensorsFile(path.join(dir, fileName), tensors);
      return { fileName, names: g.map((p) => p.name), header: buildSafetensorsHeader(tensors).header };
    });
    if (n > 1) {
      const weightMap = Object.fromEntries(shards.flatMap((s) => s.names.map((name) => [name, s.fileName])));
      writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }, null, 2));
    }
    return { shards };
  }

  it('single file', () => {
    const dir = freshDir();
    writePlan(dir, 1e9);
    const r = resolveCheckpoint(dir);
    expect(r.files).toEqual([path.join(dir, 'model.safetensors')]);
    expect(r.tensors.map((t) => t.name)).toEqual(params.map((p) => p.name));
  });

  it('sharded round trip: write, resolve, and the offsets point at the right bytes', () => {
    const dir = freshDir();
    const plan = writePlan(dir, 200);
    expect(plan.shards.length).toBeGreaterThan(2);
    const r = resolveCheckpoint(dir);
    expect(r.files).toEqual(plan.shards.map((s) => path.join(dir, s.fileName)));
    expect(r.tensors.map((t) => t.name)).toEqual(plan.shards.flatMap((s) => s.names));
    for (const s of plan.shards) {
      const file = path.join(dir, s.fileName);
      // The written header is byte for byte the one built for the shard.
      const raw = readFileSync(file);
      const len = Number(raw.readBigUInt64LE(0));
      expect(raw.subarray(8, 8 + len).toString('utf8')).toBe(s.header);
      const offsets = JSON.parse(s.header) as Record<string, { data_offsets: [number, number] }>;
      for (const name of s.names) {
        const t = r.tensors.find((x) => x.name === name);
        expect(t?.file).toBe(file);
        expect([t?.begin, t?.end]).toEqual(offsets[name]?.data_offsets.map((o) => o + 8 + len));
        expect(readRange(file, t?.begin ?? 0, t?.end ?? 0)).toEqual(dataOf.get(name));
      }
    }
    const { load } = checkTensorsAgainstParams(r.tensors, params, { tieWordEmbeddings: false, file: dir });
    expect(load.map((t) => t.name)).toEqual(params.map((p) => p.name));
  });

  it('prefers model.safetensors over an index, as transformers does', () => {
    const dir = freshDir();
    writePlan(dir, 200);
    writeSafetensorsFile(path.join(dir, 'model.safetensors'), [{ name: 'only', dtype: 'U8', shape: [1], data: bytes(1) }]);
    expect(resolveCheckpoint(dir).tensors.map((t) => t.name)).toEqual(['only']);
  });

  it('says which files it looked for when there is no checkpoint', () => {
    const dir = freshDir();
    expect(() => resolveCheckpoint(dir)).toThrow(/no safetensors checkpoint in .*: looked for model\.safetensors and model\.safetensors\.index\.json$/);
    writeFileSync(path.join(dir, 'pytorch_model.bin'), 'x');
    expect(() => resolveCheckpoint(dir)).toThrow(/found PyTorch \.bin weights/);
  });

  it('an index naming a missing shard', () => {
    const dir = freshDir();
    const plan = writePlan(dir, 200);
    const gone = plan.shards[1]?.fileName ?? '';
    rmSync(path.join(dir, gone));
    expect(() => resolveCheckpoint(dir)).toThrow(new RegExp(`model\\.safetensors\\.index\\.json: shard file named in weight_map not found in .*: "${gone}"`));
  });

  it('a tensor in the wrong shard', () => {
    const dir = freshDir();
    const plan = writePlan(dir, 200);
    const indexFile = path.join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexFile, 'utf8')) as { weight_map: Record<string, string> };
    index.weight_map['model.norm.weight'] = plan.shards[0]?.fileName ?? '';
    writeFileSync(indexFile, JSON.stringify(index));
    const actual = plan.shards.find((s) => s.names.includes('model.norm.weight'))?.fileName ?? '';
    expect(() => resolveCheckpoint(dir)).toThrow(
      new RegExp(`index\\.json: index and shards disagree:\\n  tensor "model\\.norm\\.weight" is mapped to ${plan.shards[0]?.fileName} but is in ${actual}`),
    );
  });

  it('a tensor named in the index that no shard holds, and a shard tensor missing from the index', () => {
    const dir = freshDir();
    writePlan(dir, 200);
    const indexFile = path.join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexFile, 'utf8')) as { weight_map: Record<string, string> };
    const shardOfNorm = index.weight_map['model.norm.weight'] ?? '';
    delete index.weight_map['model.norm.weight'];
    index.weight_map['model.ghost.weight'] = shardOfNorm;
    writeFileSync(indexFile, JSON.stringify(index));
    const call = (): unknown => resolveCheckpoint(dir);
    expect(call).toThrow(/tensor "model\.ghost\.weight" is mapped to model-\d{5}-of-\d{5}\.safetensors but no shard holds it/);
    expect(call).toThrow(new RegExp(`shard ${shardOfNorm} holds tensor "model\\.norm\\.weight" that the index does not list`));
  });

  it('a tensor present in two shards', () => {
    const dir = freshDir();
    const plan = writePlan(dir, 200);
    const first = plan.shards[0];
    const second = plan.shards[1];
    if (!first || !second) throw new Error('plan too small');
    // Rewrite shard 2 with an extra copy of a shard-1 tensor.
    const dup = first.names[0] ?? '';
    const p = params.find((x) => x.name === dup);
    if (!p) throw new Error(dup);
    const extra = [...second.names.map((n) => params.find((x) => x.name === n)), p]
      .filter((x): x is ParamInfo => x !== undefined)
      .map((x) => tensorFor(x));
    writeSafetensorsFile(path.join(dir, second.fileName), extra);
    expect(() => resolveCheckpoint(dir)).toThrow(new RegExp(`tensor "${dup.replace(/\./g, '\\.')}" appears in two shards: ${first.fileName} and ${second.fileName}`));
  });

  it('a malformed shard is reported with its own file name', () => {
    const dir = freshDir();
    const plan = writePlan(dir, 200);
    const victim = path.join(dir, plan.shards[1]?.fileName ?? '');
    const fd = openSync(victim, 'r+');
    writeSync(fd, Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]), 0, 8, 0);
    closeSync(fd);
    expect(() => resolveCheckpoint(dir)).toThrow(/model-00002-of-\d{5}\.safetensors: header length 4294967295 (runs past|exceeds)/);
  });

  it('refuses an index without weight_map, invalid JSON, or shard names escaping the directory', () => {
    const dir = freshDir();
    const indexFile = path.join(dir, 'model.safetensors.index.json');
    writeFileSync(indexFile, '{"metadata": {}}');
    expect(() => resolveCheckpoint(dir)).toThrow(/index\.json: "weight_map" is missing or not an object/);
    writeFileSync(indexFile, '{"weight_map": ');
    expect(() => resolveCheckpoint(dir)).toThrow(/index\.json: invalid JSON/);
    writeFileSync(indexFile, JSON.stringify({ weight_map: { w: '../elsewhere/model.safetensors' } }));
    expect(() => resolveCheckpoint(dir)).toThrow(/index\.json: weight_map entry for tensor "w" points outside the checkpoint directory/);
    writeFileSync(indexFile, JSON.stringify({ weight_map: { w: 3 } }));
    expect(() => resolveCheckpoint(dir)).toThrow(/index\.json: weight_map entry for tensor "w" is not a file name/);
  });
});

const disk = mountSmallDisk(256);
if ('skip' in disk) console.warn(`SKIPPED writeFileAtomic disk-full test: ${disk.skip}`);
const mounted = 'dir' in disk ? disk : undefined;

describe.skipIf(!mounted)('writeFileAtomic on a full disk (a real tmpfs)', () => {
  afterAll(() => mounted?.unmount());

  it('throws "no space left on device writing FILE", keeps the old file, leaves no temp file', () => {
    const d = mounted!;
    const file = path.join(d.dir, 'config.json');
    writeFileSync(file, 'old');
    d.fill(8 * 1024);
    let err: NodeJS.ErrnoException | undefined;
    try {
      writeFileAtomic(file, [Buffer.alloc(64 * 1024, 0x20)]);
    } catch (e) {
      err = e as NodeJS.ErrnoException;
    }
    expect(err?.message).toBe(`no space left on device writing ${file}`);
    expect(err?.code).toBe('ENOSPC');
    expect(err?.path).toBe(file);
    expect(readFileSync(file, 'utf8')).toBe('old');
    expect(readdirSync(d.dir).sort()).toEqual(['.filler', 'config.json']);
  });
});
