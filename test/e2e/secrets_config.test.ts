// A secret put into a run's config from the environment (`'++wandb.entity=${oc.env:HF_TOKEN}'`)
// never leaves the process in clear (issue 22, D7): not in what `rpo train` prints, not in any
// file of the run directory (config.yaml, report.html, metrics, checkpoints), not in `--cfg job
// --resolve`. A value from an ordinary variable is written as it is.
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { REPO, rpo } from './cli.js';

const PAIRS = path.join(REPO, 'test', 'fixtures', 'data', 'pairs');
const TOKEN = 'hf_Qm4Rt8Yu2Io6Pa0Sd3Fg7Hj1Kl5Zx9Cv';
let work: string;
let modelDir: string;

/** Every 6-character piece of `secret` found in `text` (what the masking must leave none of). */
function pieces(text: string, secret: string): string[] {
  const found: string[] = [];
  for (let i = 0; i + 6 <= secret.length; i++) if (text.includes(secret.slice(i, i + 6))) found.push(secret.slice(i, i + 6));
  return found;
}

/** Every file under `dir`, as latin1 text (binary files too: a checkpoint could carry the config). */
function filesUnder(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) for (const [f, t] of filesUnder(full)) out.set(f, t);
    else out.set(full, readFileSync(full).toString('latin1'));
  }
  return out;
}

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-e2e-secrets-'));
  modelDir = path.join(work, 'tiny');
  const r = rpo(['init', modelDir, '--preset', 'tiny', '--seed', '5']);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('a secret from ${oc.env:...} in a run config (D7)', () => {
  it('rpo train: masked in its output and in every file of the run directory; an ordinary variable is not', () => {
    const args = [
      'train', 'loss=sft', 'model=tiny', `model.name_or_path=${modelDir}`, `datasets=[${PAIRS}]`, 'exp_name=secret-run', `cache_dir=${work}`,
      `samples_dir=${path.join(work, 'samples')}`, 'n_examples=8', 'model.batch_size=4', 'eval_every=4', 'model.eval_batch_size=4',
      '++wandb.entity=${oc.env:HF_TOKEN}', '++wandb.project=${oc.env:TEAM_NAME}',
    ];
    const r = rpo(args, { env: { HF_TOKEN: TOKEN, TEAM_NAME: 'alignment-team' } });
    expect(r.code, r.stderr).toBe(0);
    // The notice about the ignored key is printed, masked.
    expect(r.stderr).toMatch(/ignored: wandb\.entity="\*\*\*"/);
    expect(r.stderr).toMatch(/ignored: wandb\.project="alignment-team"/);
    expect(pieces(r.stdout + r.stderr, TOKEN)).toEqual([]);
    const files = filesUnder(path.join(work, 'secret-run'));
    expect([...files.keys()].map((f) => path.basename(f))).toEqual(expect.arrayContaining(['config.yaml', 'report.html', 'metrics.jsonl']));
    for (const [file, text] of files) expect(pieces(text, TOKEN), file).toEqual([]);
    const yaml = files.get(path.join(work, 'secret-run', 'config.yaml'))!;
    expect(yaml).toMatch(/entity: '?\*\*\*'?/);
    expect(yaml).toMatch(/project: alignment-team/);
    expect(files.get(path.join(work, 'secret-run', 'report.html'))).toContain('alignment-team');

    // --cfg job --resolve prints the resolved config: masked too.
    const cfg = rpo([...args.slice(0, 1), ...args.slice(1), '--cfg', 'job', '--resolve'], { env: { HF_TOKEN: TOKEN, TEAM_NAME: 'alignment-team' } });
    expect(cfg.code, cfg.stderr).toBe(0);
    expect(cfg.stdout).toMatch(/entity: /);
    expect(pieces(cfg.stdout + cfg.stderr, TOKEN)).toEqual([]);
  }, 300_000);

  it('an error message quoting the value is masked', () => {
    const r = rpo(
      ['train', 'loss=sft', 'model=tiny', `model.name_or_path=${modelDir}`, `datasets=[${PAIRS}]`, 'exp_name=${oc.env:API_KEY}', `cache_dir=${work}`],
      { env: { API_KEY: 'sk-abc/def-0123456789' } },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/exp_name/);
    expect(pieces(r.stdout + r.stderr, 'sk-abc/def-0123456789')).toEqual([]);
  }, 60_000);
});
