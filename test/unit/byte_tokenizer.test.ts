// rpo's own byte-level BPE tokenizer (lib/model/byte_tokenizer.ts) against HF's libraries: the
// files it writes load in transformers 5's AutoTokenizer and in Python `tokenizers` and give the
// same ids, decodes and chat renderings as rpo's loadTokenizer — for both pre-tokenizer flavours,
// each in a directory whose config.json makes AutoTokenizer pick the class it would pick for a
// model of that family (Llama: TokenizersBackend runs tokenizer.json as is; Qwen2: transformers
// rebuilds the pipeline as Qwen2Tokenizer, which the 'qwen2' flavour must reproduce).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BYTE_TOKENIZER_CHAT_TEMPLATE,
  ENGLISH_SAMPLE,
  byteLevelTokenizerFiles,
  bytesToUnicode,
  learnMerges,
  writeByteLevelTokenizer,
  type BytePreTokenizer,
} from '../../lib/model/byte_tokenizer.js';
import { loadTokenizer, type ChatMessage, type Tokenizer } from '../../lib/data/tokenize/index.js';
import { runPython } from '../reference/python.js';

const TEXTS: string[] = [
  'Hello world',
  'Hello world!',
  'The quick brown fox jumps over the lazy dog.',
  ' leading space',
  '  two leading spaces',
  'trailing space ',
  'trailing spaces   ',
  ' hi  there\n\nx',
  'a   b    c\t\td',
  'tab\there\tand\r\nCRLF\r\n',
  '\n',
  '\n\n\n',
  ' ',
  '    ',
  '',
  'a',
  "I'M don't you'll it's WE'VE they'd",
  '1234567890 3.14159 1,000,000 0x1F 2024-05-12',
  'héllo wörld ñ ß ﬁ Å',
  'NFD: A\u030a e\u0301 (combining marks)',
  '日本語のテキスト、中文文本，한국어 텍스트',
  'Привет, мир! مرحبا بالعالم שלום עולם नमस्ते दुनिया',
  'emoji 🤗👍🏽👨‍👩‍👧 and flags 🇫🇷🇯🇵',
  'zero\u200bwidth\u00a0nbsp\ufeffbom',
  '```python\ndef f(x):\n    return x ** 2\n```',
  'https://example.com/path?a=1&b=two#frag',
  '“smart quotes” ‘single’ «guillemets» — – …',
  'Ġ Ċ ĉ bytes-to-unicode lookalikes',
  '<s>already a bos</s> and <pad> inside text',
  '<|user|>\nWhat is 2+2?\n<|assistant|>\n4</s>',
  '\n\nHuman: What is the capital of France?\n\nAssistant: Paris.',
  'x'.repeat(300),
  ENGLISH_SAMPLE.slice(0, 2000),
];

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
  [{ role: 'user', content: 'text with <s> and </s> inside' }],
];

// English prose that is not in ENGLISH_SAMPLE.
const UNSEEN =
  'Once upon a time there was a small village at the foot of a hill. The people who lived there grew ' +
  'wheat and kept sheep, and every autumn they held a market where farmers from the nearby towns came ' +
  'to sell their goods. Which answer is better, and why? Explain your reasoning in a few sentences, then ' +
  'give your final choice. The weather today is cold and windy, so remember to wear a coat if you go outside.';

interface RefSide {
  with_special: number[][];
  without_special: number[][];
  decode: string[];
  decode_skip: string[];
}
interface Ref {
  auto: RefSide & {
    class: string;
    bos_token_id: number | null;
    eos_token_id: number | null;
    pad_token_id: number | null;
    chat_template: string | null;
    chats: Array<{ text: string; ids: number[] } | null>;
  };
  raw: RefSide;
}

const FLAVOURS: ReadonlyArray<{ flavour: BytePreTokenizer; modelType: string; hfClass: string }> = [
  { flavour: 'gpt2', modelType: 'llama', hfClass: 'TokenizersBackend' },
  { flavour: 'qwen2', modelType: 'qwen2', hfClass: 'Qwen2Tokenizer' },
];

let work: string;
const dirs = {} as Record<BytePreTokenizer, string>;
const toks = {} as Record<BytePreTokenizer, Tokenizer>;
const ours = {} as Record<BytePreTokenizer, { with: number[][]; without: number[][] }>;
const ref = {} as Record<BytePreTokenizer, Ref>;

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'rpo-bytetok-'));
  for (const { flavour, modelType } of FLAVOURS) {
    const dir = path.join(work, flavour);
    mkdirSync(dir);
    writeByteLevelTokenizer(dir, { preTokenizer: flavour });
    // AutoTokenizer picks the tokenizer class from config.json's model_type.
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: modelType, vocab_size: 512 }));
    dirs[flavour] = dir;
    const tok = await loadTokenizer(dir);
    toks[flavour] = tok;
    ours[flavour] = {
      with: await Promise.all(TEXTS.map((t) => tok.encode(t))),
      without: await Promise.all(TEXTS.map((t) => tok.encode(t, { addSpecialTokens: false }))),
    };
  }
  const decode: Record<string, number[][]> = {};
  for (const { flavour } of FLAVOURS) decode[dirs[flavour]] = ours[flavour].with;
  const names = FLAVOURS.map((f) => dirs[f.flavour]);
  const out = JSON.parse(runPython('hf_tokenize.py', names, JSON.stringify({ texts: TEXTS, chats: CHATS, decode }))) as Record<string, Ref>;
  for (const { flavour } of FLAVOURS) {
    const r = out[dirs[flavour]];
    if (!r) throw new Error(`hf_tokenize.py printed nothing for ${dirs[flavour]}`);
    ref[flavour] = r;
  }
}, 600_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('byteLevelTokenizerFiles', () => {
  it('lays out the vocabulary: 3 specials, the 256 bytes, then the merges; at most 512 ids', () => {
    const made = byteLevelTokenizerFiles();
    const tj = made.files['tokenizer.json'] as { model: { vocab: Record<string, number>; merges: string[][] }; added_tokens: Array<{ id: number; content: string; special: boolean }> };
    expect(made.vocabSize).toBe(509);
    expect(made.vocabSize).toBeLessThanOrEqual(512);
    expect(Object.keys(tj.model.vocab)).toHaveLength(made.vocabSize);
    expect(new Set(Object.values(tj.model.vocab)).size).toBe(made.vocabSize);
    expect(Math.max(...Object.values(tj.model.vocab))).toBe(made.vocabSize - 1);
    expect(tj.added_tokens.map((t) => [t.id, t.content, t.special])).toEqual([
      [0, '<pad>', true],
      [1, '<s>', true],
      [2, '</s>', true],
    ]);
    const b2u = bytesToUnicode();
    expect(new Set(b2u).size).toBe(256);
    for (let b = 0; b < 256; b++) expect(tj.model.vocab[b2u[b]!]).toBe(3 + b);
    expect(b2u[0x20]).toBe('Ġ');
    expect(b2u[0x0a]).toBe('Ċ');
    expect(b2u[0x41]).toBe('A');
    // Every merge joins two existing tokens into one that is in the vocabulary.
    for (const [a, b] of tj.model.merges) {
      expect(tj.model.vocab[a!]).toBeDefined();
      expect(tj.model.vocab[b!]).toBeDefined();
      expect(tj.model.vocab[a! + b!]).toBeDefined();
    }
    expect(made).toMatchObject({ bosTokenId: 1, eosTokenId: 2, padTokenId: 0 });
  });

  it('is deterministic, and extraMerges / modelMaxLength / trainingText do what they say', () => {
    expect(JSON.stringify(byteLevelTokenizerFiles())).toBe(JSON.stringify(byteLevelTokenizerFiles()));
    expect(byteLevelTokenizerFiles({ extraMerges: 0 }).vocabSize).toBe(259);
    expect(byteLevelTokenizerFiles({ extraMerges: 10 }).vocabSize).toBe(269);
    const cfg = byteLevelTokenizerFiles({ modelMaxLength: 2048 }).files['tokenizer_config.json'];
    expect(cfg).toMatchObject({
      bos_token: '<s>',
      eos_token: '</s>',
      pad_token: '<pad>',
      model_max_length: 2048,
      tokenizer_class: 'PreTrainedTokenizerFast',
      chat_template: BYTE_TOKENIZER_CHAT_TEMPLATE,
    });
    // A text whose pairs all occur once learns nothing.
    expect(byteLevelTokenizerFiles({ trainingText: 'abcdefg', extraMerges: 5 }).vocabSize).toBe(259);
    expect(() => byteLevelTokenizerFiles({ extraMerges: -1 })).toThrow(/extraMerges/);
    expect(() => byteLevelTokenizerFiles({ preTokenizer: 'bert' as BytePreTokenizer })).toThrow(/preTokenizer/);
  });

  it('learns merges greedily, most frequent pair first, ties to the pair that sorts first', () => {
    // 'hello', ' hello', ' help': "h e" and "e l" both occur 3 times; "e l" sorts first. Then
    // "h el" (3) beats "el l", "l o", "Ġ h" (2 each).
    expect(learnMerges('hello hello help', 2)).toEqual({
      merges: [
        ['e', 'l'],
        ['h', 'el'],
      ],
      tokens: ['el', 'hel'],
    });
  });

  it('writes the three files', () => {
    const dir = path.join(work, 'written');
    mkdirSync(dir);
    const made = writeByteLevelTokenizer(dir);
    for (const name of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'] as const) {
      expect(JSON.parse(readFileSync(path.join(dir, name), 'utf8'))).toEqual(made.files[name]);
    }
  });
});

for (const { flavour, hfClass } of FLAVOURS) {
  describe(`the ${flavour} byte tokenizer against HF`, () => {
    it(`transformers loads it as ${hfClass} with the same special tokens`, () => {
      const a = ref[flavour].auto;
      expect(a.class).toBe(hfClass);
      expect([a.bos_token_id, a.eos_token_id, a.pad_token_id]).toEqual([1, 2, 0]);
      expect(a.chat_template).toBe(BYTE_TOKENIZER_CHAT_TEMPLATE);
      const t = toks[flavour];
      expect([t.bosTokenId, t.eosTokenId, t.padTokenId, t.vocabSize]).toEqual([1, 2, 0, 509]);
      expect(t.addBosToken).toBe(true);
      expect(t.addEosToken).toBe(false);
      expect(t.stopTokenIds).toEqual([2]);
    });

    it('gives the same ids as AutoTokenizer and tokenizers, with and without special tokens', () => {
      const r = ref[flavour];
      for (let i = 0; i < TEXTS.length; i++) {
        const what = `text ${i} ${JSON.stringify(TEXTS[i]!.slice(0, 40))}`;
        expect(ours[flavour].with[i], what).toEqual(r.auto.with_special[i]);
        expect(ours[flavour].without[i], what).toEqual(r.auto.without_special[i]);
        expect(ours[flavour].with[i], what).toEqual(r.raw.with_special[i]);
        expect(ours[flavour].without[i], what).toEqual(r.raw.without_special[i]);
      }
    });

    it('decodes as HF does, and round-trips every (NFC) text', async () => {
      const t = toks[flavour];
      const r = ref[flavour];
      for (let i = 0; i < TEXTS.length; i++) {
        const text = TEXTS[i]!;
        const ids = ours[flavour].with[i]!;
        const decoded = await t.decode(ids);
        expect(decoded).toBe(r.auto.decode[i]);
        expect(decoded).toBe(r.raw.decode[i]);
        expect(await t.decode(ids, { skipSpecialTokens: true })).toBe(r.auto.decode_skip[i]);
        // The qwen2 flavour normalizes to NFC (as Qwen2Tokenizer does); the gpt2 one keeps every byte.
        const expected = flavour === 'qwen2' ? text.normalize('NFC') : text;
        expect(decoded, `text ${i}`).toBe('<s>' + expected);
        expect(await t.decode(ours[flavour].without[i]!), `text ${i}`).toBe(expected);
      }
    });

    it('puts exactly one BOS first and nothing last', () => {
      for (let i = 0; i < TEXTS.length; i++) {
        if (TEXTS[i]!.includes('<s>') || TEXTS[i]!.includes('</s>')) continue;
        const ids = ours[flavour].with[i]!;
        expect(ids[0]).toBe(1);
        expect(ids.filter((id) => id === 1)).toHaveLength(1);
        expect(ids.slice(1)).toEqual(ours[flavour].without[i]);
        expect(ids.includes(2)).toBe(false);
      }
    });

    it('renders the chat template as apply_chat_template does, with one BOS and EOS after assistant turns', async () => {
      const t = toks[flavour];
      const r = ref[flavour].auto.chats;
      for (let c = 0; c < CHATS.length; c++) {
        const text = t.applyChatTemplate(CHATS[c]!, { addGenerationPrompt: true });
        expect(text).toBe(r[c]!.text);
        const ids = await t.encode(text, { addSpecialTokens: false });
        expect(ids).toEqual(r[c]!.ids);
        expect(ids[0]).toBe(1);
        if (!JSON.stringify(CHATS[c]).includes('<s>')) expect(ids.filter((id) => id === 1)).toHaveLength(1);
      }
      expect(t.applyChatTemplate(CHATS[3]!)).toBe('<s><|user|>\nHi!\n<|assistant|>\nHello! How can I help?</s>\n<|user|>\nTell me a joke.\n');
      expect(t.applyChatTemplate(CHATS[0]!, { addGenerationPrompt: true })).toBe('<s><|user|>\nHello there\n<|assistant|>\n');
    });
  });
}

describe('compression', () => {
  it('merges shorten English: over 2 characters per token on unseen prose, 1 without merges', async () => {
    const ids = await toks.gpt2.encode(UNSEEN, { addSpecialTokens: false });
    expect(UNSEEN.length / ids.length).toBeGreaterThan(2.0);
    const dir = path.join(work, 'bytes-only');
    mkdirSync(dir);
    writeByteLevelTokenizer(dir, { extraMerges: 0 });
    const bytesOnly = await loadTokenizer(dir);
    expect(await bytesOnly.encode(UNSEEN, { addSpecialTokens: false })).toHaveLength(Buffer.byteLength(UNSEEN));
    // The turn markers of the chat template are short too (they are in the training sample).
    expect((await toks.gpt2.encode('<|assistant|>\n', { addSpecialTokens: false })).length).toBeLessThanOrEqual(5);
  });
});
