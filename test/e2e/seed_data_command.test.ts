// `rpo data` through the CLI on the seed's datasets (issue 12, "Done when"): the seed's train
// command reads data/orcaratspec (a datasets.save_to_disk directory, as the seed's
// load_from_disk('../data/orcaratspec')) and shows its rows formatted with the seed's prefixes,
// cleaned and truncated keep_start; the new hub datasets (shp, hh_helpful, oasst) come from a
// local hub-shaped server (HF_ENDPOINT), the seed's ./orca and ./rationalorca from the working
// directory. Fixtures: test/reference/seed_fixtures.py (the real `datasets` library).
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { fakeCommit, startHubServer, type HubServer, type ServedFile } from '../fixtures/data/hub_server.js';
import { runPython } from '../reference/python.js';
import { REPO, type CliResult } from './cli.js';

/**
 * The CLI as a child process in another working directory (the seed's layout: data/<name> under
 * it). cli.ts's helpers import tsx by name, which resolves from the working directory; here it is
 * imported by path.
 */
function rpoIn(cwd: string, args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  const tsx = pathToFileURL(path.join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
  const entry = path.join(REPO, 'test', 'e2e', 'cli_entry.ts');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', tsx, entry, ...args], { cwd, env: { ...process.env, RPO_NUM_THREADS: '2', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const LLAMA3 = path.join(REPO, 'node_modules', '@lenml', 'tokenizer-llama3', 'models');
const SEED_COMMAND = ['loss=rdpo', '++loss.gamma=0.001', 'lr=5e-7', 'model=mistral7bv2', 'datasets=[orcaratspec]', 'exp_name=rdpo_g0-001_lr5e-7_orcaratspec_mistral7b2', 'mode=train'];

let work: string;
let cwd: string;
let modelDir: string;
let server: HubServer;

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-seed-data-cmd-'));
  const made = JSON.parse(runPython('seed_fixtures.py', ['--out', path.join(work, 'made')])) as { repos: Record<string, { files: string[] }>; cwd: string };
  cwd = made.cwd;
  server = await startHubServer();
  for (const [repo, info] of Object.entries(made.repos)) {
    const files = new Map<string, ServedFile>();
    for (const f of info.files) files.set(f, { content: readFileSync(path.join(work, 'made', 'hub', repo, f)), lfs: true });
    server.addRepo({ repo, type: 'dataset', commit: fakeCommit(repo), files });
  }
  // A model directory with the Llama-3 tokenizer (`rpo data` reads the tokenizer, never the weights).
  modelDir = path.join(work, 'llama3-tok');
  mkdirSync(modelDir);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(LLAMA3, f), path.join(modelDir, f));
  writeFileSync(path.join(modelDir, 'config.json'), JSON.stringify({ model_type: 'llama', architectures: ['LlamaForCausalLM'] }));
}, 300_000);

afterAll(async () => {
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

const env = (): NodeJS.ProcessEnv => ({ HF_ENDPOINT: server.endpoint, HF_HUB_CACHE: path.join(work, 'hub-cache'), HF_TOKEN: '', HF_HUB_OFFLINE: '' });

/** The "=== dataset" header and example blocks of one dataset in `rpo data`'s output. */
function section(stdout: string, name: string): string {
  const start = stdout.indexOf(`=== dataset ${name} `);
  expect(start, `no section for ${name} in:\n${stdout}`).toBeGreaterThanOrEqual(0);
  const end = stdout.indexOf('\n=== dataset ', start + 1);
  const stats = stdout.indexOf('\ntrain: ', start);
  return stdout.slice(start, [end, stats].filter((i) => i > 0).reduce((a, b) => Math.min(a, b), stdout.length));
}

describe("rpo data on the seed's datasets", () => {
  it("the seed's command: data/orcaratspec (save_to_disk), the seed's prefixes, cleaned, keep_start", async () => {
    const r = await rpoIn(cwd, ['data', ...SEED_COMMAND, `model.name_or_path=${modelDir}`, 'model.max_length=40', 'model.max_prompt_length=24', '-n', '2'], env());
    expect(r.code, r.stderr).toBe(0);
    const s = section(r.stdout, 'orcaratspec');
    expect(s).toContain(`(${path.join(cwd, 'data', 'orcaratspec')}): 9 train / 5 test rows; truncation keep_start; extra spaces removed; rationale question above-below`);
    expect(s.match(/^--- orcaratspec:train:\d+/gm)).toEqual(['--- orcaratspec:train:0', '--- orcaratspec:train:1']);
    // Row 0's prompt is long: cut to its first 24 tokens (keep_start), the seed's user header first.
    expect(s).toContain('--- orcaratspec:train:0 (truncated)');
    expect(s).toContain('prompt   | "<|start_header_id|>user<|end_header_id|>spec train prompt 0 p0w0');
    // Row 1: "prompt 1  two  spaces" cleaned, the assistant header last; the response ends <|eot_id|><|end_of_text|>.
    expect(s).toContain('prompt   | "<|start_header_id|>user<|end_header_id|>spec train prompt 1 two spaces<|eot_id|><|start_header_id|>assistant<|end_header_id|>"');
    expect(s).toContain('response | "spec train chosen 1\\ttab and tabs');
    expect(s).toMatch(/response \| "The response above is better: spec 1 with \\"quotes\\" <\|eot_id\|><\|end_of_text\|>"/);
    expect(r.stdout).toContain('keep_start; drop_last true');
  });

  it('shp, hh_helpful and oasst from the hub, orca and orcarat from the seed\'s ./orca and ./rationalorca', async () => {
    const r = await rpoIn(cwd, ['data', 'loss=dpo', 'model=mistral7bv2', `model.name_or_path=${modelDir}`, 'datasets=[shp,hh_helpful,oasst,orca,orcarat]', 'exp_name=x', '-n', '1'], env());
    expect(r.code, r.stderr).toBe(0);
    const shp = section(r.stdout, 'shp');
    expect(shp).toContain('(hf://datasets/stanfordnlp/SHP): 14 train / 10 test rows; truncation keep_start; extra spaces removed');
    expect(shp).toContain('prompt   | "<|start_header_id|>user<|end_header_id|>askacademics post 0: what do you think?<|eot_id|><|start_header_id|>assistant<|end_header_id|>"');
    const hh = section(r.stdout, 'hh_helpful');
    expect(hh).toContain('(hf://datasets/Anthropic/hh-rlhf/helpful-base/): 6 train / 4 test rows; truncation keep_end');
    expect(hh).toContain('prompt   | "<|start_header_id|>user<|end_header_id|>helpful-base train question 0<|eot_id|><|start_header_id|>assistant<|end_header_id|>"');
    const oasst = section(r.stdout, 'oasst');
    expect(oasst).toContain('(hf://datasets/OpenAssistant/oasst1): 5 train / 5 test rows; truncation keep_end');
    expect(oasst).toContain('response | "Magnetic fields\\tcome from moving charges.<|eot_id|><|end_of_text|>"');
    expect(section(r.stdout, 'orca')).toContain(`(${path.join(cwd, 'orca')}): 6 train / 3 test rows; truncation keep_start`);
    expect(section(r.stdout, 'orcarat')).toContain(`(${path.join(cwd, 'rationalorca')}): 7 train / 4 test rows; truncation keep_start`);
  });
});
