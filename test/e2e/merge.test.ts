// `rpo merge` and `rpo init` against the directories they must not harm (issue 22, D3), and merge
// against weights that are not finite (D14), through the CLI: exit codes and files on disk.
// The adapter is written here by hand in PEFT's layout (q_proj and v_proj of every layer, r = 2)
// on a tiny `rpo init` base; the merged weight is checked against W + (alpha / r) · B A computed
// here in float64.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readSafetensorsHeader, writeSafetensorsFile } from '../../lib/model/safetensors.js';
import { WRITTEN_MANIFEST } from '../../lib/util/out_dir.js';
import { rpo } from './cli.js';

let work: string;
let base: string;
let adapter: string;
const R = 2;
const ALPHA = 4;
const TARGETS = ['q_proj', 'v_proj'];

/** sha256 of every file under `dir` by relative path: to show a directory was not touched. */
function digestTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, prefix: string): void => {
    for (const name of readdirSync(d).sort()) {
      const full = path.join(d, name);
      if (existsSync(full) && readdirSync(d, { withFileTypes: true }).find((e) => e.name === name)!.isDirectory()) walk(full, `${prefix}${name}/`);
      else out[`${prefix}${name}`] = createHash('sha256').update(readFileSync(full)).digest('hex');
    }
  };
  walk(dir, '');
  return out;
}

/** A tensor's float32 values from a safetensors file. */
function tensorOf(file: string, name: string): { shape: number[]; data: Float32Array } {
  const t = readSafetensorsHeader(file).tensors.find((x) => x.name === name);
  if (!t) throw new Error(`${file}: no tensor ${name}`);
  expect(t.dtype).toBe('F32');
  const bytes = readFileSync(file).subarray(t.begin, t.end);
  return { shape: t.shape, data: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)) };
}

/** Deterministic small values in [-0.5, 0.5). */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  });
}

/** Writes a PEFT adapter for `baseDir` into `dir`; `poison` sets one value of one tensor. */
function writeAdapter(dir: string, baseDir: string, o: { alpha?: number; poison?: { tensor: string; at: number; value: number } } = {}): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'adapter_config.json'),
    JSON.stringify({ peft_type: 'LORA', r: R, lora_alpha: o.alpha ?? ALPHA, lora_dropout: 0, target_modules: TARGETS, base_model_name_or_path: baseDir, bias: 'none' }),
  );
  const weights = path.join(baseDir, 'model.safetensors');
  const tensors = [];
  let seed = 1;
  for (const t of readSafetensorsHeader(weights).tensors) {
    const m = /^model\.layers\.(\d+)\.self_attn\.(q_proj|v_proj)\.weight$/.exec(t.name);
    if (!m) continue;
    const [out, inp] = t.shape as [number, number];
    const prefix = `base_model.model.${t.name.replace(/\.weight$/, '')}`;
    for (const [name, shape] of [[`${prefix}.lora_A.weight`, [R, inp]], [`${prefix}.lora_B.weight`, [out, R]]] as const) {
      const data = values(shape[0] * shape[1], seed++);
      if (o.poison?.tensor === name) data[o.poison.at] = o.poison.value;
      tensors.push({ name, dtype: 'F32', shape: [...shape], data: new Uint8Array(data.buffer) });
    }
  }
  writeSafetensorsFile(path.join(dir, 'adapter_model.safetensors'), tensors);
}

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-e2e-merge-'));
  base = path.join(work, 'base');
  const r = rpo(['init', base, '--preset', 'tiny', '--seed', '3']);
  expect(r.code, r.stderr).toBe(0);
  adapter = path.join(work, 'adapter');
  writeAdapter(adapter, base);
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('rpo merge --out against its inputs (D3)', () => {
  it('--out equal to, inside or containing the adapter or the base is refused (exit 2, both named), even with --overwrite; nothing is touched', () => {
    const before = { adapter: digestTree(adapter), base: digestTree(base) };
    const alias = path.join(work, 'adapter-alias');
    symlinkSync(adapter, alias);
    const cases: Array<[string, RegExp]> = [
      [adapter, /--out .*adapter is the adapter .*adapter/],
      [`${adapter}/`, /is the adapter/],
      [alias, /--out .*adapter-alias \(.*adapter\) is the adapter/],
      [path.join(adapter, 'merged'), /--out .*adapter\/merged is inside the adapter/],
      [work, /the adapter .*adapter is inside --out/],
      [base, /--out .*base is the base model .*base/],
      [path.join(base, 'sub'), /is inside the base model/],
    ];
    for (const [out, message] of cases) {
      const r = rpo(['merge', adapter, '--out', out, '--overwrite']);
      expect(r.code, `${out}: ${r.stderr}`).toBe(2);
      expect(r.stderr, out).toMatch(message);
    }
    expect(digestTree(adapter)).toEqual(before.adapter);
    expect(digestTree(base)).toEqual(before.base);
    expect(existsSync(path.join(adapter, 'merged'))).toBe(false);
  }, 120_000);

  it('--overwrite into a directory with the user\'s files replaces only what rpo wrote; a file of the user\'s at rpo\'s names blocks it', () => {
    const proj = path.join(work, 'proj');
    mkdirSync(path.join(proj, 'src'), { recursive: true });
    writeFileSync(path.join(proj, 'notes.txt'), 'my notes');
    writeFileSync(path.join(proj, 'src', 'main.ts'), 'code');
    // Not empty: refused without --overwrite, untouched.
    const plain = rpo(['merge', adapter, '--out', proj]);
    expect(plain.code, plain.stderr).toBe(2);
    expect(plain.stderr).toMatch(/exists and is not empty .*--overwrite/);
    expect(readdirSync(proj).sort()).toEqual(['notes.txt', 'src']);

    const first = rpo(['merge', adapter, '--out', proj, '--overwrite']);
    expect(first.code, first.stderr).toBe(0);
    expect(readFileSync(path.join(proj, 'notes.txt'), 'utf8')).toBe('my notes');
    expect(readFileSync(path.join(proj, 'src', 'main.ts'), 'utf8')).toBe('code');
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', WRITTEN_MANIFEST]) expect(existsSync(path.join(proj, f)), f).toBe(true);
    // The merged weight is W + (alpha / r) B A.
    const name = 'model.layers.1.self_attn.v_proj.weight';
    const w = tensorOf(path.join(base, 'model.safetensors'), name);
    const a = tensorOf(path.join(adapter, 'adapter_model.safetensors'), `base_model.model.${name.replace(/\.weight$/, '')}.lora_A.weight`);
    const b = tensorOf(path.join(adapter, 'adapter_model.safetensors'), `base_model.model.${name.replace(/\.weight$/, '')}.lora_B.weight`);
    const merged = tensorOf(path.join(proj, 'model.safetensors'), name);
    const [rows, cols] = w.shape as [number, number];
    let worst = 0;
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        let ba = 0;
        for (let k = 0; k < R; k++) ba += b.data[i * R + k]! * a.data[k * cols + j]!;
        worst = Math.max(worst, Math.abs(merged.data[i * cols + j]! - (w.data[i * cols + j]! + (ALPHA / R) * ba)));
      }
    }
    expect(worst).toBeLessThan(1e-5);

    // Again: the earlier merge's files are replaced, the user's kept and listed.
    const again = rpo(['merge', adapter, '--out', proj, '--overwrite']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/--overwrite: removed .*config\.json.*model\.safetensors.* from .*proj; kept 2 other file\(s\) rpo did not write: notes\.txt, src\//);
    expect(readFileSync(path.join(proj, 'notes.txt'), 'utf8')).toBe('my notes');

    // A config.json the user edited (or one rpo never wrote) is not rpo's: refused, untouched.
    writeFileSync(path.join(proj, 'config.json'), '{"mine": true}');
    const blocked = rpo(['merge', adapter, '--out', proj, '--overwrite']);
    expect(blocked.code, blocked.stderr).toBe(2);
    expect(blocked.stderr).toMatch(/holds files rpo did not write .*config\.json.*not even with --overwrite/);
    expect(readFileSync(path.join(proj, 'config.json'), 'utf8')).toBe('{"mine": true}');
    expect(existsSync(path.join(proj, 'model.safetensors'))).toBe(true);
  }, 120_000);
});

describe('rpo init DIR --overwrite (D3)', () => {
  it('keeps a run directory\'s files that rpo init did not write; refuses a DIR overlapping its --tokenizer', () => {
    const run = path.join(work, 'run');
    mkdirSync(path.join(run, 'step-8'), { recursive: true });
    writeFileSync(path.join(run, 'notes.md'), 'what I tried');
    writeFileSync(path.join(run, 'config.yaml'), 'exp_name: run\n');
    writeFileSync(path.join(run, 'step-8', 'trainer_state.json'), '{}');
    const before = digestTree(run);
    const r = rpo(['init', run, '--preset', 'tiny', '--overwrite']);
    expect(r.code, r.stderr).toBe(0);
    const after = digestTree(run);
    for (const [f, h] of Object.entries(before)) expect(after[f], f).toBe(h);
    expect(existsSync(path.join(run, 'model.safetensors'))).toBe(true);

    const tok = rpo(['init', path.join(base, 'copy'), '--tokenizer', base, '--overwrite']);
    expect(tok.code, tok.stderr).toBe(2);
    expect(tok.stderr).toMatch(/the output directory .*base\/copy is inside the tokenizer directory .*base/);
    const self = rpo(['init', base, '--tokenizer', base, '--overwrite']);
    expect(self.code, self.stderr).toBe(2);
    expect(self.stderr).toMatch(/is the tokenizer directory/);
    expect(existsSync(path.join(base, 'copy'))).toBe(false);
  }, 120_000);
});

describe('rpo merge refuses weights that are not finite (D14)', () => {
  it('a huge lora_alpha that overflows the merge, and a NaN in the adapter: exit 1 naming the tensor, nothing written', () => {
    const huge = path.join(work, 'adapter-huge');
    writeAdapter(huge, base, { alpha: 1e308 });
    const out = path.join(work, 'merged-huge');
    const r = rpo(['merge', huge, '--out', out]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/merged weights are not finite: tensor "model\.layers\.\d+\.self_attn\.(q|v)_proj\.weight" .* has -?inf at element \d+ .*lora_alpha 1e\+308 \/ r 2/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(work).filter((n) => n.includes('.tmp-'))).toEqual([]);

    const nan = path.join(work, 'adapter-nan');
    const poisoned = 'base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight';
    writeAdapter(nan, base, { poison: { tensor: poisoned, at: 5, value: Number.NaN } });
    const n = rpo(['merge', nan, '--out', out]);
    expect(n.code, n.stderr).toBe(1);
    expect(n.stderr).toContain(`the adapter is not finite: tensor "${poisoned}"`);
    expect(n.stderr).toMatch(/has NaN at element 5/);
    expect(existsSync(out)).toBe(false);
  }, 120_000);
});
