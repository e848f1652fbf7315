// safetensors headers in TypeScript. The C++ engine never parses JSON: it copies the byte
// ranges handed to it as TensorSpec (load) and writes the header built here followed by the
// parameters' bytes (save). So every check a file's bytes must pass before they are trusted
// happens here, reading only the 8-byte length and the header (a 15 GB file is never read whole).
//
// Format (https://github.com/huggingface/safetensors): u64 little-endian N, then N bytes of
// UTF-8 JSON `{"__metadata__": {str: str}, name: {dtype, shape, data_offsets: [begin, end]}}`,
// then the data section; offsets are relative to the data section, and the tensors cover it
// exactly, without gaps or overlaps.
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../util/files.js';

/** One tensor of a safetensors file, as the engine reads it (its byte range checked here first). */
export interface TensorSpec {
  name: string;
  file: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

export interface ParamInfo {
  name: string;
  /** safetensors dtype: F32, BF16, F16 */
  dtype: string;
  shape: number[];
  nbytes: number;
}

/** Bytes per element of every dtype the safetensors spec names (sub-byte F4/F6 excluded). */
const DTYPE_BYTES: ReadonlyMap<string, number> = new Map([
  ['F64', 8], ['F32', 4], ['F16', 2], ['BF16', 2],
  ['I64', 8], ['I32', 4], ['I16', 2], ['I8', 1],
  ['U64', 8], ['U32', 4], ['U16', 2], ['U8', 1],
  ['BOOL', 1], ['F8_E4M3', 1], ['F8_E5M2', 1],
]);

/** Dtypes the engine converts to its own parameter dtype on load. */
const FLOAT_DTYPES: ReadonlySet<string> = new Set(['F64', 'F32', 'F16', 'BF16']);

/** Headers larger than this are refused before allocating (the Rust reader uses the same cap). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/**
 * The deepest nesting of arrays and objects accepted in a header or index file. A real header
 * is 3 deep (`{name: {shape: [..]}}`); serde_json, which the Rust reader uses, stops at 128.
 * V8's JSON.parse takes any depth, but every recursive walk afterwards (JSON.stringify in an
 * error message, a validator) would overflow the stack on a hostile 200k-deep file.
 */
export const MAX_JSON_DEPTH = 64;

export const SINGLE_FILE = 'model.safetensors';
/**
 * The largest data section of one weights file: huggingface_hub's MAX_SHARD_SIZE, "5GB" (decimal,
 * as it parses sizes), transformers 4's save_pretrained default (transformers 5 raised its own to
 * 50GB; smaller files resume and upload in pieces).
 */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;
export const INDEX_FILE = 'model.safetensors.index.json';

/** Bytes per element of a safetensors dtype, or undefined when the dtype is unknown. */
export function dtypeBytes(dtype: string): number | undefined {
  return DTYPE_BYTES.get(dtype);
}

export interface SafetensorsHeader {
  file: string;
  fileSize: number;
  /** N: the JSON header's byte length, padding included. */
  headerLength: number;
  /** 8 + N: where the data section starts. */
  dataStart: number;
  /** Sorted by offset; begin/end are absolute file offsets. */
  tensors: TensorSpec[];
  metadata: Record<string, string>;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** A short rendering of an untrusted JSON value for error messages; never throws. */
function show(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = Array.isArray(v) ? '[...]' : typeof v === 'object' && v !== null ? '{...}' : String(v);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/**
 * How deep arrays and objects nest in JSON text, counted without parsing (brackets inside
 * strings do not count), stopping as soon as `limit` is passed. Linear and stack-free, so it
 * is safe on any input.
 */
function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // a backslash escapes the next character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return false;
}

/** Refuses untrusted JSON text nested deeper than MAX_JSON_DEPTH, naming the file. */
function checkJsonDepth(file: string, text: string, what: string): void {
  if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) {
    throw new Error(`${file}: ${what} is nested more than ${MAX_JSON_DEPTH} levels deep; the file is malformed or corrupt`);
  }
}

/** "a, b, c" with at most `max` items, so a wrong-model error stays readable. */
function listNames(names: readonly string[], max = 20): string {
  const shown = names.slice(0, max).map((n) => JSON.stringify(n)).join(', ');
  return names.length > max ? `${shown} ... and ${names.length - max} more` : shown;
}

/** Element count × element size, in BigInt so hostile shapes cannot overflow to a match. */
function byteSize(shape: readonly number[], elemBytes: number): bigint {
  let n = BigInt(elemBytes);
  for (const d of shape) n *= BigInt(d);
  return n;
}

function isShape(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((d) => Number.isSafeInteger(d) && (d as number) >= 0);
}

// ---------------------------------------------------------------------------------------------
// Reading

/** Reads exactly buf.length bytes at `position` (readSync may return short counts). */
function readExactly(fd: number, buf: Uint8Array, position: number): number {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

interface RawTensor {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/** Validates one header entry; offsets stay relative to the data section. */
function parseTensorEntry(file: string, name: string, v: unknown, dataSize: number): RawTensor {
  const where = `${file}: tensor ${JSON.stringify(name)}`;
  if (!isPlainObject(v)) throw new Error(`${where}: entry is not an object (${show(v)})`);
  const { dtype, shape, data_offsets: offsets } = v;
  if (typeof dtype !== 'string' || !DTYPE_BYTES.has(dtype)) {
    throw new Error(`${where}: unknown dtype ${show(dtype)} (known: ${[...DTYPE_BYTES.keys()].join(' ')})`);
  }
  if (!isShape(shape)) throw new Error(`${where}: shape ${show(shape)} is not an array of non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
    throw new Error(`${where}: data_offsets ${show(offsets)} is not a pair of non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw new Error(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
  const need = byteSize(shape, DTYPE_BYTES.get(dtype) ?? 0);
  if (BigInt(end - begin) !== need) {
    throw new Error(
      `${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape ${fmtShape(shape)} of ${dtype} needs ${need}`,
    );
  }
  if (end > dataSize) {
    throw new Error(`${where}: data_offsets [${begin}, ${end}] run past the data section (${dataSize} bytes)`);
  }
  return { name, dtype, shape: [...shape], begin, end };
}

/** The spec's layout rule: sorted by offset, tensors tile [0, dataSize) exactly. */
function checkLayout(file: string, sorted: readonly RawTensor[], dataSize: number): void {
  let cursor = 0;
  let prev: RawTensor | undefined;
  for (const t of sorted) {
    if (t.begin < cursor && prev) {
      throw new Error(
        `${file}: tensors ${JSON.stringify(prev.name)} [${prev.begin}, ${prev.end}] and ${JSON.stringify(t.name)} [${t.begin}, ${t.end}] overlap`,
      );
    }
    if (t.begin > cursor) {
      throw new Error(
        `${file}: gap of ${t.begin - cursor} bytes in the data section before tensor ${JSON.stringify(t.name)} (data_offsets [${t.begin}, ${t.end}]; the previous tensor ends at ${cursor})`,
      );
    }
    cursor = t.end;
    prev = t;
  }
  if (cursor !== dataSize) {
    throw new Error(`${file}: ${dataSize - cursor} trailing bytes after the last tensor (data section is ${dataSize} bytes, tensors cover ${cursor})`);
  }
}

/**
 * Parses and validates header bytes (the N bytes after the length prefix) against a data
 * section of `dataSize` bytes. Pure: `file` is only used in messages and the returned specs.
 */
export function parseSafetensorsHeader(file: string, headerBytes: Uint8Array, dataSize: number): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new Error(`${file}: header is not valid UTF-8`);
  }
  const first = /[^ \t\r\n]/.exec(text);
  if (!first) throw new Error(`${file}: header is empty`);
  if (first[0] !== '{') throw new Error(`${file}: header does not start with "{" (found ${JSON.stringify(first[0])}); not a safetensors file`);
  checkJsonDepth(file, text, 'header');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: header is not valid JSON: ${(e as Error).message}`);
  }
  if (!isPlainObject(json)) throw new Error(`${file}: header is not a JSON object`);

  let metadata: Record<string, string> = {};
  const raw: RawTensor[] = [];
  for (const [key, value] of Object.entries(json)) {
    if (key === '__metadata__') {
      if (!isPlainObject(value)) throw new Error(`${file}: __metadata__ is not an object (${show(value)})`);
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') throw new Error(`${file}: __metadata__ value for ${JSON.stringify(k)} is not a string (${show(v)})`);
      }
      // fromEntries defines own properties, so a key like "__proto__" stays data.
      metadata = Object.fromEntries(Object.entries(value as Record<string, string>));
      continue;
    }
    raw.push(parseTensorEntry(file, key, value, dataSize));
  }
  // Sort by (begin, end) so zero-size tensors sharing an offset order before their neighbour.
  raw.sort((a, b) => a.begin - b.begin || a.end - b.end);
  checkLayout(file, raw, dataSize);

  const headerLength = headerBytes.length;
  const dataStart = 8 + headerLength;
  const tensors: TensorSpec[] = raw.map((t) => ({
    name: t.name,
    file,
    dtype: t.dtype,
    shape: t.shape,
    begin: dataStart + t.begin,
    end: dataStart + t.end,
  }));
  return { file, fileSize: dataStart + dataSize, headerLength, dataStart, tensors, metadata };
}

/** Reads and validates a safetensors file's header; only the first 8 + N bytes are read. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new Error(`${file}: cannot open: ${(e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${file}: not a regular file`);
    const size = st.size;
    if (size < 8) throw new Error(`${file}: truncated: ${size} bytes, a safetensors file has at least the 8-byte header length`);
    const prefix = new Uint8Array(8);
    if (readExactly(fd, prefix, 0) !== 8) throw new Error(`${file}: truncated while reading the header length`);
    const n = new DataView(prefix.buffer).getBigUint64(0, true);
    // Both bounds are checked on the BigInt, before it becomes a Number or an allocation size.
    if (n > BigInt(MAX_HEADER_BYTES)) {
      throw new Error(`${file}: header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte cap; not a safetensors file or corrupt`);
    }
    if (n > BigInt(size - 8)) {
      throw new Error(`${file}: header length ${n} runs past the end of the file (${size} bytes); the file is truncated or not safetensors`);
    }
    const headerLength = Number(n);
    const headerBytes = new Uint8Array(headerLength);
    if (readExactly(fd, headerBytes, 8) !== headerLength) throw new Error(`${file}: truncated while reading the header`);
    return parseSafetensorsHeader(file, headerBytes, size - 8 - headerLength);
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoint directories

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read: ${(e as Error).message}`);
  }
  checkJsonDepth(file, text, 'JSON');
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new Error(`${file}: invalid JSON: ${(e as Error).message}`);
  }
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** The index's weight_map, validated: shard names must stay inside the checkpoint directory. */
function readWeightMap(indexFile: string): Map<string, string> {
  const index = readJson(indexFile);
  if (!isPlainObject(index)) throw new Error(`${indexFile}: not a JSON object`);
  const wm = index.weight_map;
  if (!isPlainObject(wm)) throw new Error(`${indexFile}: "weight_map" is missing or not an object`);
  const out = new Map<string, string>();
  for (const [name, shard] of Object.entries(wm)) {
    if (typeof shard !== 'string' || shard === '') {
      throw new Error(`${indexFile}: weight_map entry for tensor ${JSON.stringify(name)} is not a file name (${show(shard)})`);
    }
    const norm = path.normalize(shard);
    if (path.isAbsolute(shard) || norm === '..' || norm.startsWith(`..${path.sep}`)) {
      throw new Error(`${indexFile}: weight_map entry for tensor ${JSON.stringify(name)} points outside the checkpoint directory (${JSON.stringify(shard)})`);
    }
    out.set(name, shard);
  }
  if (out.size === 0) throw new Error(`${indexFile}: weight_map is empty`);
  return out;
}

function resolveSharded(dir: string, indexFile: string): { files: string[]; tensors: TensorSpec[] } {
  const weightMap = readWeightMap(indexFile);
  const shardNames = [...new Set(weightMap.values())].sort();
  const missing = shardNames.filter((s) => !isFile(path.join(dir, s)));
  if (missing.length > 0) {
    throw new Error(`${indexFile}: shard file${missing.length > 1 ? 's' : ''} named in weight_map not found in ${dir}: ${listNames(missing)}`);
  }
  const headers = new Map(shardNames.map((s) => [s, readSafetensorsHeader(path.join(dir, s))] as const));

  // Where each tensor actually is; a name in two shards would make the load ambiguous.
  const foundIn = new Map<string, string>();
  for (const [shard, h] of headers) {
    for (const t of h.tensors) {
      const other = foundIn.get(t.name);
      if (other !== undefined) {
        throw new Error(`${indexFile}: tensor ${JSON.stringify(t.name)} appears in two shards: ${other} and ${shard}`);
      }
      foundIn.set(t.name, shard);
    }
  }
  const problems: string[] = [];
  for (const [name, shard] of weightMap) {
    const actual = foundIn.get(name);
    if (actual === shard) continue;
    problems.push(
      actual === undefined
        ? `tensor ${JSON.stringify(name)} is mapped to ${shard} but no shard holds it`
        : `tensor ${JSON.stringify(name)} is mapped to ${shard} but is in ${actual}`,
    );
  }
  for (const [name, shard] of foundIn) {
    if (!weightMap.has(name)) problems.push(`shard ${shard} holds tensor ${JSON.stringify(name)} that the index does not list`);
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 20);
    if (problems.length > 20) shown.push(`... and ${problems.length - 20} more`);
    throw new Error(`${indexFile}: index and shards disagree:\n  ${shown.join('\n  ')}`);
  }
  const files = shardNames.map((s) => path.join(dir, s));
  const tensors = shardNames.flatMap((s) => headers.get(s)?.tensors ?? []);
  return { files, tensors };
}

/**
 * The tensors of a checkpoint directory: `model.safetensors`, else the shards named by
 * `model.safetensors.index.json` (the order transformers looks in). `stem`: files of another
 * name laid out the same way (`optimizer`: AdamW's state beside optimizer.pt).
 */
export function resolveCheckpoint(dir: string, stem = 'model'): { files: string[]; tensors: TensorSpec[] } {
  const singleName = `${stem}.safetensors`;
  const indexName = `${stem}.safetensors.index.json`;
  const single = path.join(dir, singleName);
  if (isFile(single)) return { files: [single], tensors: readSafetensorsHeader(single).tensors };
  const index = path.join(dir, indexName);
  if (isFile(index)) return resolveSharded(dir, index);
  const hint = stem === 'model' && ['pytorch_model.bin', 'pytorch_model.bin.index.json'].some((f) => existsSync(path.join(dir, f)))
    ? ' (found PyTorch .bin weights: convert them to safetensors first)'
    : '';
  throw new Error(`no safetensors checkpoint in ${dir}: looked for ${singleName} and ${indexName}${hint}`);
}

// ---------------------------------------------------------------------------------------------
// Matching a checkpoint to a model's parameters

/** Buffers HF checkpoints sometimes carry that are recomputed, not loaded. */
function isRotaryBuffer(name: string): boolean {
  return name === 'rotary_emb.inv_freq' || name.endsWith('.rotary_emb.inv_freq');
}

/**
 * GPTNeoX files written by older transformers (Pythia's) hold each layer's causal-mask buffers,
 * `attention.bias` (bool [1, 1, P, P]) and `attention.masked_bias` (a scalar); transformers skips
 * them on load (`_keys_to_ignore_on_load_unexpected`), and so does rpo.
 */
function isNeoXMaskBuffer(name: string): boolean {
  return /^gpt_neox\.layers\.\d+\.attention\.(bias|masked_bias)$/.test(name);
}

/**
 * Pairs every parameter with its tensor. All problems are gathered into one error (missing,
 * wrong shape, non-float dtype, unexpected), so a wrong checkpoint is diagnosed in one run.
 * `load` follows the order of `params`.
 */
export function checkTensorsAgainstParams(
  tensors: readonly TensorSpec[],
  params: readonly ParamInfo[],
  opts: { tieWordEmbeddings: boolean; file?: string },
): { load: TensorSpec[]; ignored: string[] } {
  const label = opts.file ?? 'checkpoint';
  const byName = new Map<string, TensorSpec>();
  for (const t of tensors) {
    const prev = byName.get(t.name);
    if (prev) throw new Error(`${label}: tensor ${JSON.stringify(t.name)} appears twice (${prev.file} and ${t.file})`);
    byName.set(t.name, t);
  }
  const paramNames = new Set(params.map((p) => p.name));

  const missing: string[] = [];
  const bad: string[] = [];
  const load: TensorSpec[] = [];
  for (const p of params) {
    const t = byName.get(p.name);
    if (!t) {
      missing.push(p.name);
      continue;
    }
    const name = JSON.stringify(p.name);
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
      bad.push(`tensor ${name}: expected shape ${fmtShape(p.shape)} but found ${fmtShape(t.shape)} (${path.basename(t.file)})`);
    } else if (!FLOAT_DTYPES.has(t.dtype)) {
      bad.push(`tensor ${name}: dtype ${t.dtype} is not a floating dtype (F32, F16, BF16, F64) (${path.basename(t.file)})`);
    } else {
      load.push(t);
    }
  }
  const ignored: string[] = [];
  const unexpected: string[] = [];
  for (const t of tensors) {
    if (paramNames.has(t.name)) continue;
    // Tied models compute logits with the embedding matrix; a saved head copy (lm_head, GPTNeoX's
    // embed_out) is redundant.
    const headCopy = opts.tieWordEmbeddings && (t.name === 'lm_head.weight' || t.name === 'embed_out.weight');
    if (headCopy || isRotaryBuffer(t.name) || isNeoXMaskBuffer(t.name)) ignored.push(t.name);
    else unexpected.push(t.name);
  }
  const problems: string[] = [];
  if (missing.length > 0) problems.push(`missing ${missing.length} tensor${missing.length > 1 ? 's' : ''}: ${listNames(missing)}`);
  problems.push(...bad.slice(0, 20));
  if (bad.length > 20) problems.push(`... and ${bad.length - 20} more shape/dtype mismatches`);
  if (unexpected.length > 0) {
    problems.push(`unexpected ${unexpected.length} tensor${unexpected.length > 1 ? 's' : ''} the model has no parameter for: ${listNames(unexpected)}`);
  }
  if (problems.length > 0) throw new Error(`${label}: checkpoint does not match the model:\n  ${problems.join('\n  ')}`);
  return { load, ignored };
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface HeaderTensor {
  name: string;
  dtype: string;
  shape: readonly number[];
}

export interface BuiltHeader {
  /** The JSON header, space-padded to a multiple of 8 bytes (UTF-8). */
  header: string;
  /** Byte length of `header` (what goes in the u64 prefix). */
  headerLength: number;
  /** Data section size: the sum of the tensors' byte sizes. */
  dataBytes: number;
  /** Per tensor, in the given order: [begin, end) relative to the data section. */
  offsets: Array<[number, number]>;
}

/**
 * A header with the tensors laid out contiguously in the given order (writeSafetensorsFile, and
 * the adapter file the engine's Model.save fills). Metadata comes first, as safetensors' own
 * writer puts it.
 */
export function buildSafetensorsHeader(
  tensors: readonly HeaderTensor[],
  metadata: Record<string, string> = { format: 'pt' },
): BuiltHeader {
  const seen = new Set<string>();
  const parts: string[] = [`"__metadata__":${JSON.stringify(metadata)}`];
  const offsets: Array<[number, number]> = [];
  let cursor = 0;
  for (const t of tensors) {
    const where = `tensor ${JSON.stringify(t.name)}`;
    if (t.name === '__metadata__' || seen.has(t.name)) throw new Error(`safetensors header: ${where} is reserved or given twice`);
    seen.add(t.name);
    const size = DTYPE_BYTES.get(t.dtype);
    if (size === undefined) throw new Error(`safetensors header: ${where}: unknown dtype ${JSON.stringify(t.dtype)}`);
    if (!isShape(t.shape)) throw new Error(`safetensors header: ${where}: shape ${show(t.shape)} is not an array of non-negative integers`);
    const nbytes = Number(byteSize(t.shape, size));
    const entry = { dtype: t.dtype, shape: [...t.shape], data_offsets: [cursor, cursor + nbytes] };
    parts.push(`${JSON.stringify(t.name)}:${JSON.stringify(entry)}`);
    offsets.push([cursor, cursor + nbytes]);
    cursor += nbytes;
  }
  if (!Number.isSafeInteger(cursor)) throw new Error('safetensors header: total size is not a safe integer');
  const json = `{${parts.join(',')}}`;
  const len = Buffer.byteLength(json, 'utf8');
  const padded = json + ' '.repeat((8 - (len % 8)) % 8);
  return { header: padded, headerLength: Buffer.byteLength(padded, 'utf8'), dataBytes: cursor, offsets };
}

export interface WritableTensor extends HeaderTensor {
  data: Uint8Array;
}

/**
 * A small pure-TS safetensors writer (small files: csft's output, test fixtures): tensors in
 * the given order, written atomically. Model checkpoints go through the engine's streamed
 * writer (Model.saveSafetensors), which lays files out as transformers does.
 */
export function writeSafetensorsFile(
  file: string,
  tensors: readonly WritableTensor[],
  metadata: Record<string, string> = { format: 'pt' },
): void {
  const built = buildSafetensorsHeader(tensors, metadata);
  tensors.forEach((t, i) => {
    const [b, e] = built.offsets[i] ?? [0, 0];
    if (t.data.length !== e - b) {
      throw new Error(`${file}: tensor ${JSON.stringify(t.name)}: ${t.data.length} data bytes but shape ${fmtShape(t.shape)} of ${t.dtype} needs ${e - b}`);
    }
  });
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(built.headerLength), true);
  writeFileAtomic(file, [prefix, Buffer.from(built.header, 'utf8'), ...tensors.map((t) => t.data)]);
}
