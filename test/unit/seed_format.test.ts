// The pieces of the seed's data path on their own (issue 12, items 1, 2 and 5): formatting
// defaults and presets, the text cleaning applied to the formatted strings (not the raw fields),
// multi-turn prompts, the orcarat rationale question, and the readers the seed's sources need
// (Arrow IPC as pyarrow and datasets write it, gzipped JSON lines).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  HALOS_PREFIXES,
  SEED_PREFIXES,
  formatExample,
  formatPrompt,
  rationaleContext,
  removeExtraSpaces,
  type ChatTemplater,
  type FormatConfig,
} from '../../lib/data/format/index.js';
import { dataFormatOf, readAllRecords } from '../../lib/data/read/index.js';
import { loadConfig } from '../../lib/config/index.js';
import type { PreferenceRow } from '../../lib/data/types.js';
import { runPython } from '../reference/python.js';

let tmp: string;
let arrowDir: string;

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'rpo-seed-format-'));
  runPython('seed_fixtures.py', ['--out', path.join(tmp, 'made')]);
  arrowDir = path.join(tmp, 'made', 'arrow');
}, 120_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('formatting defaults', () => {
  it("configs/config.yaml has the seed's active prefixes; HALOs' are a preset", () => {
    const c = loadConfig({ overrides: ['loss=dpo', 'model=tiny', 'datasets=[orcaratspec]', 'exp_name=x'], env: {} }).config;
    expect({ human_prefix: c.human_prefix, human_suffix: c.human_suffix, assistant_prefix: c.assistant_prefix, assistant_suffix: c.assistant_suffix }).toEqual(SEED_PREFIXES);
    // HALOs' values as overrides (real newlines inside the quotes, as bash's $'"\n<|user|>\n"' passes them)
    const halos = loadConfig({
      overrides: ['loss=dpo', 'model=tiny', 'datasets=[orcaratspec]', 'exp_name=x', 'human_prefix="\n<|user|>\n"', 'human_suffix=""', 'assistant_prefix="\n<|assistant|>\n"', 'assistant_suffix=""'],
      env: {},
    }).config;
    expect({ human_prefix: halos.human_prefix, human_suffix: halos.human_suffix, assistant_prefix: halos.assistant_prefix, assistant_suffix: halos.assistant_suffix }).toEqual(HALOS_PREFIXES);
  });
});

describe("the seed's text cleaning", () => {
  const row: PreferenceRow = { id: 'r', prompt: ' two  spaces\tand\t\ttabs ', chosen: ' a  b ', rejected: 'c\n\n  d', rationale: 'why  so' };

  it('runs of spaces and tabs become one space; newlines stay', () => {
    expect(removeExtraSpaces('a  b\t\tc \t d\n\n  e')).toBe('a b c d\n\n e');
  });

  it('cleans the formatted prompt (prefixes included), every response and the rationale target, never the rationale context', () => {
    const cfg: FormatConfig = { human_prefix: '[INST] ', human_suffix: ' [/INST]', assistant_prefix: '', assistant_suffix: '  </s>', remove_extra_spaces: true };
    const f = formatExample(row, cfg);
    // The prefix's trailing space and the prompt's leading one merge, as the seed cleaned "[INST]  two".
    expect(f.chosen.prompt).toBe('[INST] two spaces\tand tabs [/INST]'); // one tab is not a run
    expect(f.chosen.response).toBe(' a b </s>');
    expect(f.rejected.response).toBe('c\n\n d </s>');
    expect(f.rationale!.response).toBe('why so </s>');
    expect(f.rationale!.prompt).toBe(rationaleContext(row, cfg));
    expect(f.rationale!.prompt).toContain('Given the prompt:\n two  spaces\tand\t\ttabs \n');
    expect(f.rationale!.prompt).toContain('Response above:" a  b "');
    // off: the text as written
    const raw = formatExample(row, { ...cfg, remove_extra_spaces: false });
    expect(raw.chosen.prompt).toBe('[INST]  two  spaces\tand\t\ttabs  [/INST]');
  });

  it('chat template mode: the texts are cleaned before the template renders them', () => {
    const chat: ChatTemplater = { applyChatTemplate: (m) => m.map((x) => `<${x.role}>  ${x.content}`).join('|') + '<assistant>' };
    const cfg: FormatConfig = { ...SEED_PREFIXES, template: 'chat', remove_extra_spaces: true };
    expect(formatPrompt('a  b', cfg, chat)).toBe('<user>  a b<assistant>');
    expect(formatExample(row, cfg, chat).chosen.response).toBe(' a b ');
  });
});

describe('multi-turn prompts and the orcarat rationale question', () => {
  it('turns: each with its role\'s prefix and suffix, then assistant_prefix', () => {
    const turns = [
      { role: 'user' as const, content: 'hi' },
      { role: 'assistant' as const, content: 'hello' },
      { role: 'user' as const, content: 'bye' },
    ];
    const hp = SEED_PREFIXES;
    expect(formatPrompt('ignored', SEED_PREFIXES, undefined, turns)).toBe(
      `${hp.human_prefix}hi${hp.human_suffix}${hp.assistant_prefix}hello${hp.assistant_suffix}${hp.human_prefix}bye${hp.human_suffix}${hp.assistant_prefix}`,
    );
    const chat: ChatTemplater = { applyChatTemplate: (m, o) => JSON.stringify([m, o]) };
    expect(JSON.parse(formatPrompt('ignored', { ...SEED_PREFIXES, template: 'chat' }, chat, turns))).toEqual([turns, { addGenerationPrompt: true }]);
  });

  it("'numbered' (orcarat): Assistant 1 / Assistant 2 and the request, no human_suffix", () => {
    const ctx = rationaleContext({ prompt: 'P', chosen: 'C', rejected: 'R' }, { ...SEED_PREFIXES, rationale_prompt: 'numbered' });
    expect(ctx).toBe(
      `${SEED_PREFIXES.human_prefix}Given the prompt:\nP\nWhich of the following assistant's response is more preferable and strictly follows with the prompt question?\n` +
        `Assistant 1:"C"\nor\nAssistant 2:"R"?\nProvide a rationale of your answer.${SEED_PREFIXES.assistant_prefix}`,
    );
  });
});

describe('readers the seed\'s sources need', () => {
  it('Arrow IPC, file and stream formats (pyarrow): plain values, int64 as numbers (bigint beyond 2^53), nested lists and structs, maps, nulls', async () => {
    for (const f of ['file_format.arrow', 'stream_format.arrow']) {
      const recs = await readAllRecords(path.join(arrowDir, f));
      expect(recs.map((r) => r.row)).toEqual([0, 1, 2]);
      expect(recs.map((r) => r.data)).toEqual([
        { prompt: 'a', big: 1, msgs: [{ role: 'user', content: 'hi' }], tags: { k: 1 }, score: 0.5, ok: true },
        { prompt: null, big: 2n ** 60n, msgs: [], tags: {}, score: 1.25, ok: false },
        { prompt: 'c', big: -5, msgs: null, tags: { x: 2, y: 3 }, score: null, ok: null },
      ]);
      const some = await readAllRecords(path.join(arrowDir, f), { columns: ['prompt', 'absent'] });
      expect(some.map((r) => r.data)).toEqual([{ prompt: 'a' }, { prompt: null }, { prompt: 'c' }]);
    }
    const bad = path.join(tmp, 'bad.arrow');
    writeFileSync(bad, 'not arrow at all');
    await expect(readAllRecords(bad)).rejects.toThrow(/cannot read as Arrow IPC/);
  });

  it('gzipped JSON lines and JSON (.jsonl.gz, .json.gz)', async () => {
    expect(dataFormatOf('a/train.jsonl.gz')).toBe('jsonl');
    expect(dataFormatOf('x.json.gz')).toBe('json');
    expect(dataFormatOf('x.parquet.gz')).toBeUndefined();
    expect(dataFormatOf('x.arrow')).toBe('arrow');
    const lines = path.join(tmp, 'a.jsonl.gz');
    writeFileSync(lines, gzipSync('{"a": 1}\n\n{"a": "ü"}\n'));
    expect((await readAllRecords(lines)).map((r) => [r.data, r.line])).toEqual([[{ a: 1 }, 1], [{ a: 'ü' }, 3]]);
    const doc = path.join(tmp, 'a.json.gz');
    writeFileSync(doc, gzipSync('[{"a": 2}]'));
    expect((await readAllRecords(doc)).map((r) => r.data)).toEqual([{ a: 2 }]);
    const broken = path.join(tmp, 'broken.jsonl.gz');
    writeFileSync(broken, 'not gzip');
    await expect(readAllRecords(broken)).rejects.toThrow();
  });
});
