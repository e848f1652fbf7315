// `rpo eval` never replaces an earlier output silently (issue 22, D5): an existing samples or
// metrics file is a usage error (exit 2) that names the file and the override that replaces it,
// before any model is loaded; `++overwrite=true` replaces it.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { REPO, rpo } from './cli.js';

const PAIRS = path.join(REPO, 'test', 'fixtures', 'data', 'pairs');
let work: string;
let modelDir: string;

function evalArgs(mode: string, extra: string[] = []): string[] {
  return [
    'eval', `++mode=${mode}`, 'loss=sft', 'model=tiny', `model.name_or_path=${modelDir}`, `datasets=[${PAIRS}]`,
    'exp_name=guarded', `cache_dir=${work}`, `samples_dir=${path.join(work, 'samples')}`, '++n_samples=2', 'model.eval_batch_size=2', ...extra,
  ];
}

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-e2e-eval-out-'));
  modelDir = path.join(work, 'tiny');
  const r = rpo(['init', modelDir, '--preset', 'tiny', '--seed', '5']);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('rpo eval and an existing output (D5)', () => {
  for (const [mode, name] of [['sample', 'guarded.json'], ['eval', 'eval_guarded.json']] as const) {
    it(`mode=${mode}: a second run is refused (exit 2, the file and ++overwrite=true named) and leaves the file as it was; ++overwrite=true replaces it`, () => {
      const file = path.join(work, 'samples', name);
      const first = rpo(evalArgs(mode));
      expect(first.code, first.stderr).toBe(0);
      // The user's edits (or hours of sampling) in the file: a second run must not replace them.
      writeFileSync(file, '["kept"]\n');
      const before = statSync(file).mtimeMs;
      const again = rpo(evalArgs(mode));
      expect(again.code, again.stderr).toBe(2);
      expect(again.stderr).toContain(`${file} exists`);
      expect(again.stderr).toContain('++overwrite=true');
      // Refused before the model was loaded.
      expect(again.stderr).not.toMatch(/policy: /);
      expect(readFileSync(file, 'utf8')).toBe('["kept"]\n');
      expect(statSync(file).mtimeMs).toBe(before);

      const replaced = rpo(evalArgs(mode, ['++overwrite=true']));
      expect(replaced.code, replaced.stderr).toBe(0);
      expect(replaced.stderr).toContain(`overwrite=true: ${file} will be replaced`);
      const out = JSON.parse(readFileSync(file, 'utf8')) as unknown;
      if (mode === 'sample') expect((out as Array<{ policy: string }>).map((s) => typeof s.policy)).toEqual(['string', 'string']);
      else expect((out as { eval_loss: number }).eval_loss).toBeTypeOf('number');
    }, 180_000);
  }
});
