// Every dataset the seed loads, on fixtures the real `datasets` library wrote in the layouts the
// seed read (test/reference/seed_fixtures.py: save_to_disk directories for the orca family, hub
// trees served by a local hub-shaped server for shp, hh, oasst and ultrabin), compared with a
// Python port of the seed's loaders run on the same files (test/reference/seed_loaders.py):
// the formatted and cleaned prompt, responses and rationale context of every pair, and each
// dataset's truncation end (issue 12, items 1, 2, 3 and 5).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { HALOS_PREFIXES, SEED_PREFIXES, formatExample, removeExtraSpaces, type FormatConfig, type Prefixes } from '../../lib/data/format/index.js';
import {
  DatasetError,
  KNOWN_DATASETS,
  SHP_MAX_PAIRS_PER_PROMPT,
  capPairsPerPrompt,
  datasetTraits,
  describeDatasetSource,
  hhTurns,
  loadPreferenceSplit,
  loadPromptSplit,
} from '../../lib/data/sources/index.js';
import type { PreferenceRow, Split } from '../../lib/data/types.js';
import { HubClient } from '../../lib/hub/index.js';
import { fakeCommit, startHubServer, type HubServer, type ServedFile } from '../fixtures/data/hub_server.js';
import { runPython } from '../reference/python.js';

interface SeedExample {
  prompt: string;
  prompt_rat: string;
  generations: string[];
  pairs: number[][];
  truncation_mode: string;
  dataset_name: string;
}
interface SeedRow {
  prompt: string;
  chosen: string;
  rejected: string;
  rationale?: string;
  prompt_rat?: string;
  truncation_mode: string;
}
type SeedOut = Record<string, { examples: SeedExample[]; rows?: SeedRow[]; pairs_before_cap?: number[][][] }>;
interface Manifest {
  repos: Record<string, { type: 'dataset'; files: string[] }>;
  cwd: string;
  single: string;
}

const SEED_NAMES = ['orca', 'orcarat', 'orcaratgen', 'orcaratspec', 'orcaratgen_llama3_8it', 'orcaratspec_llama3_8it', 'shp', 'hh', 'hh_helpful', 'hh_harmless', 'oasst', 'ultrabin'];
const SPLITS: Split[] = ['train', 'test'];

let tmp: string;
let made: Manifest;
let server: HubServer;
let seedRun: SeedOut;
let halosRun: SeedOut;

function hub(): HubClient {
  return new HubClient({ endpoint: server.endpoint, token: null, env: {}, cacheDir: path.join(tmp, 'hub-cache') });
}

function load(name: string, split: Split): Promise<PreferenceRow[]> {
  return loadPreferenceSplit(name, split, { hub: hub(), cwd: made.cwd, subsampleSeed: 0, onWarning: () => undefined });
}

function port(prefixes: Prefixes): SeedOut {
  return JSON.parse(runPython('seed_loaders.py', ['load', '--cwd', made.cwd, '--hub', path.join(tmp, 'made', 'hub')], JSON.stringify(prefixes))) as SeedOut;
}

/** The pairs the seed trains on: [prompt, chosen, rejected, rationale?] per pair, in its dict order. */
function seedPairs(examples: readonly SeedExample[]): string[][] {
  return examples.flatMap((ex) => ex.pairs.map((p) => [ex.prompt, ...p.map((k) => ex.generations[k]!)]));
}

/** rpo's formatted pairs, as seedPairs lays them out. */
function rpoPairs(rows: readonly PreferenceRow[], cfg: FormatConfig): string[][] {
  return rows.map((r) => {
    const f = formatExample(r, cfg);
    return f.rationale ? [f.chosen.prompt, f.chosen.response, f.rejected.response, f.rationale.response] : [f.chosen.prompt, f.chosen.response, f.rejected.response];
  });
}

const sorted = (pairs: string[][]): string[] => pairs.map((p) => JSON.stringify(p)).sort();

function cfgFor(name: string, prefixes: Prefixes): FormatConfig {
  const t = datasetTraits(name);
  return { ...prefixes, remove_extra_spaces: t.remove_extra_spaces, rationale_prompt: t.rationale_prompt };
}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'rpo-seed-data-'));
  made = JSON.parse(runPython('seed_fixtures.py', ['--out', path.join(tmp, 'made')])) as Manifest;
  server = await startHubServer();
  for (const [repo, info] of Object.entries(made.repos)) {
    const files = new Map<string, ServedFile>();
    for (const f of info.files) files.set(f, { content: readFileSync(path.join(tmp, 'made', 'hub', repo, f)), lfs: !f.endsWith('.json') });
    server.addRepo({ repo, type: 'dataset', commit: fakeCommit(repo), files });
  }
  seedRun = port(SEED_PREFIXES);
  halosRun = port(HALOS_PREFIXES);
}, 300_000);

afterAll(async () => {
  await server?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('every seed dataset by name, against the port of the seed\'s loaders', () => {
  it('rpo knows every name the seed loads', () => {
    for (const name of [...SEED_NAMES, 'alpacaeval']) expect(KNOWN_DATASETS).toContain(name);
  });

  it('truncation end per dataset: keep_start for shp, ultrabin and the orca family, keep_end for hh and oasst', () => {
    for (const name of SEED_NAMES) {
      for (const split of SPLITS) {
        const modes = new Set(seedRun[`${name}/${split}`]!.examples.map((e) => e.truncation_mode));
        expect([...modes], `${name}/${split}`).toEqual([datasetTraits(name).truncation_mode]);
      }
      expect(datasetTraits(name).remove_extra_spaces, name).toBe(true);
    }
    expect(datasetTraits('./my.jsonl')).toEqual({ truncation_mode: 'keep_end', remove_extra_spaces: true, rationale_prompt: 'above-below' });
  });

  // Both prefix sets: the seed's (Llama-3 headers, with suffixes) and HALOs' (empty suffixes).
  for (const [label, prefixes] of [['seed prefixes', SEED_PREFIXES], ['HALOs prefixes', HALOS_PREFIXES]] as const) {
    const run = (): SeedOut => (label === 'seed prefixes' ? seedRun : halosRun);

    it.each(['orca', 'orcarat', 'orcaratgen', 'orcaratspec', 'orcaratgen_llama3_8it', 'orcaratspec_llama3_8it', 'ultrabin', 'oasst'])(
      `%s (${label}): the same formatted, cleaned pairs in both splits`,
      async (name) => {
        for (const split of SPLITS) {
          const rows = await load(name, split);
          expect(sorted(rpoPairs(rows, cfgFor(name, prefixes))), `${name}/${split}`).toEqual(sorted(seedPairs(run()[`${name}/${split}`]!.examples)));
        }
      },
    );

    it(`shp (${label}): the score-ratio filter (train only), at most five pairs per prompt, chosen from the seed's candidates`, async () => {
      const test = await load('shp', 'test');
      expect(sorted(rpoPairs(test, cfgFor('shp', prefixes)))).toEqual(sorted(seedPairs(run()['shp/test']!.examples)));
      const out = run()['shp/train']!;
      const train = rpoPairs(await load('shp', 'train'), cfgFor('shp', prefixes));
      // Every candidate pair the seed had (after the filter, before its random cap), per prompt.
      const candidates = new Map<string, string[]>();
      out.examples.forEach((ex, i) => {
        const before = out.pairs_before_cap![i]!;
        candidates.set(ex.prompt, before.map((p) => JSON.stringify([ex.prompt, ...p.map((k) => ex.generations[k]!)])));
      });
      const byPrompt = new Map<string, string[]>();
      for (const p of train) byPrompt.set(p[0]!, [...(byPrompt.get(p[0]!) ?? []), JSON.stringify(p)]);
      expect([...byPrompt.keys()].sort()).toEqual([...candidates.keys()].sort());
      let capped = 0;
      for (const [prompt, got] of byPrompt) {
        const all = candidates.get(prompt)!;
        expect(got.length).toBe(Math.min(SHP_MAX_PAIRS_PER_PROMPT, all.length));
        for (const g of got) expect(all).toContain(g);
        if (all.length > SHP_MAX_PAIRS_PER_PROMPT) capped++;
        else expect(got.sort()).toEqual([...all].sort());
      }
      expect(capped).toBeGreaterThan(0); // the fixture has a prompt with more than five pairs
      // The seed kept as many pairs per prompt.
      expect(seedPairs(out.examples).length).toBe(train.length);
    });

    it(`hh, hh_helpful, hh_harmless (${label}): each transcript's turns; the seed's turn order of prefix, suffix and text`, async () => {
      for (const name of ['hh', 'hh_helpful', 'hh_harmless']) {
        for (const split of SPLITS) {
          const rows = await load(name, split);
          const cfg = cfgFor(name, prefixes);
          const seed = sorted(seedPairs(run()[`${name}/${split}`]!.examples));
          if (prefixes.human_suffix === '' && prefixes.assistant_suffix === '') {
            // Empty suffixes (HALOs' formatting, what the seed's loader was written for): identical.
            expect(sorted(rpoPairs(rows, cfg)), `${name}/${split}`).toEqual(seed);
          } else {
            // With suffixes, the seed put each marker's suffix right after its prefix, before the
            // turn's text (a departure: docs/departures.md). rpo formats prefix + text + suffix;
            // moving each suffix back in front of the text gives the seed's strings exactly.
            const seedOrder = rows.map((r) => {
              const f = formatExample(r, cfg);
              const body = r.turns!.map((t) => (t.role === 'assistant' ? cfg.assistant_prefix + cfg.assistant_suffix : cfg.human_prefix + cfg.human_suffix) + t.content).join('');
              return [removeExtraSpaces(body + cfg.assistant_prefix + cfg.assistant_suffix), f.chosen.response, f.rejected.response];
            });
            expect(sorted(seedOrder), `${name}/${split}`).toEqual(seed);
            const first = formatExample(rows[0]!, cfg).chosen.prompt;
            expect(first.startsWith(cfg.human_prefix + rows[0]!.turns![0]!.content.replace(/[ \t]{2,}/g, ' ').slice(0, 5))).toBe(true);
            expect(first.endsWith(cfg.human_suffix + cfg.assistant_prefix)).toBe(true);
          }
        }
      }
    });
  }

  it('the rationale context is built from the raw row text (not cleaned), per row; the seed reused the last row\'s for a shared prompt', async () => {
    for (const name of ['orcarat', 'orcaratgen', 'orcaratspec', 'orcaratgen_llama3_8it', 'orcaratspec_llama3_8it']) {
      const seedRows = seedRun[`${name}/train`]!.rows!;
      const rows = await load(name, 'train');
      expect(rows.length).toBe(seedRows.length);
      const cfg = cfgFor(name, SEED_PREFIXES);
      const contexts = rows.map((r) => formatExample(r, cfg).rationale!.prompt);
      const shared = new Set(rows.filter((r, i) => rows.findIndex((o) => o.prompt === r.prompt) !== i).map((r) => r.prompt));
      expect(shared.size, name).toBe(1); // rows 2 and 3 share their prompt
      rows.forEach((r, i) => {
        const f = formatExample(r, cfg);
        const s = seedRows[i]!;
        expect([f.chosen.prompt, f.chosen.response, f.rejected.response, f.rationale!.response]).toEqual([s.prompt, s.chosen, s.rejected, s.rationale]);
        if (!shared.has(r.prompt)) {
          expect(f.rationale!.prompt, `${name} row ${i}`).toBe(s.prompt_rat);
        } else {
          // The seed kept one rationale context per prompt, the last row's, for every pair of it;
          // rpo gives each pair the context of its own responses.
          const last = rows.map((o, k) => [o, k] as const).filter(([o]) => o.prompt === r.prompt).pop()![1];
          expect(s.prompt_rat).toBe(contexts[last]);
          expect(f.rationale!.prompt).toContain(`Response above:"${r.chosen}"`.replace('Response above', name === 'orcarat' ? 'Assistant 1' : 'Response above'));
        }
        // Raw: runs of spaces in the row text survive in the context.
        if (/[ \t]{2,}/.test(r.chosen)) expect(f.rationale!.prompt).toContain(r.chosen);
      });
      if (name === 'orcarat') {
        expect(contexts[0]).toContain('Assistant 1:"');
        expect(contexts[0]!.endsWith(`"?\nProvide a rationale of your answer.${SEED_PREFIXES.assistant_prefix}`)).toBe(true);
      } else {
        expect(contexts[0]!.endsWith(`"?\n${SEED_PREFIXES.human_suffix}${SEED_PREFIXES.assistant_prefix}`)).toBe(true);
      }
    }
  });
});

describe('datasets.save_to_disk directories', () => {
  it('a seed name is read from data/<name> (or the seed\'s ./orca, ./rationalorca) under the working directory', () => {
    expect(describeDatasetSource('orcaratspec', made.cwd)).toBe(path.join(made.cwd, 'data', 'orcaratspec'));
    expect(describeDatasetSource('orca', made.cwd)).toBe(path.join(made.cwd, 'orca'));
    expect(describeDatasetSource('orcarat', made.cwd)).toBe(path.join(made.cwd, 'rationalorca'));
    // without a local copy: the hub
    expect(describeDatasetSource('orcaratspec', tmp)).toBe('hf://datasets/redsgnaoh/orcaratspec');
    expect(describeDatasetSource('hh_helpful', tmp)).toBe('hf://datasets/Anthropic/hh-rlhf/helpful-base/');
  });

  it('a dataset only the seed\'s disk had: an error naming where it was looked for', async () => {
    const e = await loadPreferenceSplit('orcaratspec_llama3_8it', 'train', { cwd: tmp }).catch((err: unknown) => err as Error);
    expect(e).toBeInstanceOf(DatasetError);
    expect((e as Error).message).toContain(`looked for ${path.join(tmp, 'data', 'orcaratspec_llama3_8it')}`);
    expect((e as Error).message).toContain('not published on the hub');
  });

  it('a save_to_disk DatasetDict by path: its splits, shards in state.json\'s order, Arrow values as plain JS', async () => {
    const dir = path.join(made.cwd, 'orca');
    const train = await loadPreferenceSplit(dir, 'train');
    const test = await loadPreferenceSplit(dir, 'test');
    expect(train.map((r) => r.prompt)).toEqual(Array.from({ length: 6 }, (_, i) => expect.stringMatching(new RegExp(`^orca train question ${i}`))));
    expect(test).toHaveLength(3);
    expect(train[1]!.prompt).toBe('orca train question 1  two  spaces'); // raw: cleaning is formatting's
    const rat = await loadPreferenceSplit(path.join(made.cwd, 'data', 'orcaratspec'), 'train');
    expect(rat.every((r) => typeof r.rationale === 'string')).toBe(true);
  });

  it('a single save_to_disk Dataset: its rows are the train split, with a held-out test split', async () => {
    const train = await loadPreferenceSplit(made.single, 'train');
    const test = await loadPreferenceSplit(made.single, 'test');
    expect(train.length + test.length).toBe(20);
    expect(test.length).toBeGreaterThan(0);
    expect((await loadPromptSplit(made.single, 'test')).length).toBe(test.length);
  });
});

describe('the seed\'s loaders\' rules, directly', () => {
  it('HH transcripts split into turns where the seed split them', () => {
    expect(hhTurns('\n\nHuman:   hi  there\n\nAssistant:\tHello.\n\nHuman: bye\n\nAssistant: ')).toEqual([
      { role: 'user', content: 'hi  there' },
      { role: 'assistant', content: 'Hello.' },
      { role: 'user', content: 'bye' },
    ]);
  });

  it('the per-prompt cap keeps rows in order and is a function of the seed', () => {
    const rows = Array.from({ length: 9 }, (_, i) => ({ prompt: i < 7 ? 'a' : 'b', i }));
    const a = capPairsPerPrompt(rows, 5, 1);
    expect(a.filter((r) => r.prompt === 'a')).toHaveLength(5);
    expect(a.filter((r) => r.prompt === 'b')).toHaveLength(2);
    expect(a.map((r) => r.i)).toEqual([...a.map((r) => r.i)].sort((x, y) => x - y));
    expect(capPairsPerPrompt(rows, 5, 1)).toEqual(a);
    const others = [2, 3, 4, 5, 6].map((s) => JSON.stringify(capPairsPerPrompt(rows, 5, s)));
    expect(others.some((o) => o !== JSON.stringify(a))).toBe(true);
  });
});
