// The model's own tokenizer: HF `tokenizers` (the Rust library Python's `tokenizers` and
// transformers' fast tokenizers wrap, here through its official Node binding) runs tokenizer.json
// as written, so ids equal Python's `tokenizers.Tokenizer.from_file(...)` exactly. Special tokens
// and add_bos_token / add_eos_token follow tokenizer_config.json the way transformers resolves
// them; chat templates render with @huggingface/jinja with the variables transformers passes.
//
// Encoding is asynchronous (the binding runs it off the main thread); decode too.
import { Template } from '@huggingface/jinja';
import { Tokenizer as RustTokenizer } from 'tokenizers';
import { readTokenizerFiles, type SpecialTokenKey, type TokenizerFiles } from './files.js';
import { renderBounded } from './chat_template.js';

export { readTokenizerFiles, SPECIAL_TOKEN_KEYS } from './files.js';
export type { AddedTokenInfo, SpecialTokenKey, TokenizerFiles } from './files.js';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface EncodeOptions {
  /** Add the tokens the tokenizer adds around a sequence (BOS for Llama-2, none for Qwen). Default true, as HF. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Default false, as HF. */
  skipSpecialTokens?: boolean;
}

export interface ChatTemplateOptions {
  /** Append the assistant header (the generation prompt). Default false, as HF. */
  addGenerationPrompt?: boolean;
  /** Extra template variables (HF's **kwargs of apply_chat_template, e.g. enable_thinking). */
  variables?: Record<string, unknown>;
}

/** Token ids of a text encoded without special tokens, with each token's span in the text. */
export interface EncodingWithOffsets {
  ids: number[];
  /** [start, end) of each token in the text, in JS string (UTF-16) indices. */
  offsets: Array<[number, number]>;
}

export interface Tokenizer {
  /** The directory the files came from (absolute). */
  readonly dir: string;
  /** Vocabulary size including added tokens. */
  readonly vocabSize: number;
  readonly bosToken: string | null;
  readonly bosTokenId: number | null;
  readonly eosToken: string | null;
  readonly eosTokenId: number | null;
  /** The pad token; falls back to the EOS token when the files name none (as HALOs does). */
  readonly padToken: string | null;
  readonly padTokenId: number | null;
  readonly unkTokenId: number | null;
  /** encode(..., {addSpecialTokens: true}) puts BOS first. */
  readonly addBosToken: boolean;
  /** encode(..., {addSpecialTokens: true}) puts EOS last. */
  readonly addEosToken: boolean;
  /** The chat template (null: the tokenizer has none). */
  readonly chatTemplate: string | null;
  /** Ids that end generation: generation_config.json's eos_token_id(s), else the EOS token. */
  readonly stopTokenIds: readonly number[];
  /** Ids of the added tokens marked special. */
  readonly specialTokenIds: ReadonlySet<number>;
  /** Special tokens by HF name (bos_token, eos_token, ...), as the chat template sees them. */
  readonly specialTokens: Readonly<Partial<Record<SpecialTokenKey, string>>>;

  /**
   * The most characters (UTF-16 units) of text one token can cover: the longest token string in
   * the vocabulary. A byte-level token's string has one character per byte it stands for, a
   * SentencePiece token's one per character (a byte-fallback <0xAB> more), and a text character
   * is at least one byte, so no token covers more text than its string is long.
   */
  readonly maxTokenChars: number;

  encode(text: string, options?: EncodeOptions): Promise<number[]>;
  /** Many texts at once (runs them concurrently). */
  encodeBatch(texts: readonly string[], options?: EncodeOptions): Promise<number[][]>;
  /** Ids without special tokens and each token's span in `text`. */
  encodeWithOffsets(text: string): Promise<EncodingWithOffsets>;
  decode(ids: readonly number[], options?: DecodeOptions): Promise<string>;
  tokenToId(token: string): number | null;
  idToToken(id: number): string | null;
  /** Renders the chat template (HF's apply_chat_template(..., tokenize=False)). Throws if there is none. */
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string;
}

/** Loads tokenizer.json + tokenizer_config.json (+ special_tokens_map.json, chat_template.jinja, generation_config.json) from `dir`. */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  const files = readTokenizerFiles(dir);
  let rust: RustTokenizer;
  try {
    rust = RustTokenizer.fromString(files.tokenizerJson);
  } catch (err) {
    throw new Error(`Cannot load ${files.dir}/tokenizer.json: ${(err as Error).message}`);
  }
  // transformers never applies a truncation or padding stored in tokenizer.json unless asked to.
  rust.disableTruncation();
  rust.disablePadding();
  const tok = new HfTokenizer(files, rust);
  await tok.init();
  return tok;
}

/** Code-point offsets (what the binding reports) → UTF-16 offsets, for texts with astral characters. */
function codePointToUtf16(text: string): Int32Array | null {
  let astral = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      astral = true;
      break;
    }
  }
  if (!astral) return null;
  const map: number[] = [];
  let u = 0;
  for (const ch of text) {
    map.push(u);
    u += ch.length;
  }
  map.push(u);
  return Int32Array.from(map);
}

class HfTokenizer implements Tokenizer {
  readonly dir: string;
  readonly vocabSize: number;
  readonly bosToken: string | null;
  readonly bosTokenId: number | null;
  readonly eosToken: string | null;
  readonly eosTokenId: number | null;
  readonly padToken: string | null;
  readonly padTokenId: number | null;
  readonly unkTokenId: number | null;
  addBosToken = false;
  addEosToken = false;
  readonly chatTemplate: string | null;
  readonly stopTokenIds: readonly number[];
  readonly specialTokenIds: ReadonlySet<number>;
  readonly specialTokens: Readonly<Partial<Record<SpecialTokenKey, string>>>;

  readonly maxTokenChars: number;

  private compiledTemplate: Template | null = null;

  constructor(
    private readonly files: TokenizerFiles,
    private readonly rust: RustTokenizer,
  ) {
    this.dir = files.dir;
    this.vocabSize = rust.getVocabSize(true);
    this.specialTokens = { ...files.specialTokens };
    const idOf = (key: SpecialTokenKey): number | null => {
      const s = files.specialTokens[key];
      if (s === undefined) return null;
      const id = rust.tokenToId(s);
      if (id === null || id === undefined) {
        throw new Error(`${files.dir}: ${key} ${JSON.stringify(s)} is not in the vocabulary of tokenizer.json`);
      }
      return id;
    };
    this.bosToken = files.specialTokens.bos_token ?? null;
    this.bosTokenId = idOf('bos_token');
    this.eosToken = files.specialTokens.eos_token ?? null;
    this.eosTokenId = idOf('eos_token');
    this.unkTokenId = idOf('unk_token');
    const pad = idOf('pad_token');
    this.padToken = pad !== null ? (files.specialTokens.pad_token ?? null) : this.eosToken;
    this.padTokenId = pad !== null ? pad : this.eosTokenId;
    this.chatTemplate = files.chatTemplate;
    this.maxTokenChars = Object.keys(rust.getVocab(true)).reduce((m, t) => Math.max(m, t.length), 1);
    const stops = files.generationEosIds.length > 0 ? [...files.generationEosIds] : [];
    if (this.eosTokenId !== null && !stops.includes(this.eosTokenId)) stops.push(this.eosTokenId);
    this.stopTokenIds = stops;
    this.specialTokenIds = new Set(files.addedTokens.filter((t) => t.special).map((t) => t.id));
  }

  /** What tokenizer.json's post-processor adds around a sequence: BOS first (Llama-2, Mistral, Meta's
   *  Llama-3 files: a TemplateProcessing), EOS last, or nothing (Qwen: ByteLevel). transformers 5
   *  ignores tokenizer_config.json's add_bos_token / add_eos_token when tokenizer.json exists; so
   *  does rpo (where they disagree with the post-processor, the post-processor wins). */
  async init(): Promise<void> {
    const probe = 'a';
    const withSp = (await this.rust.encode(probe, null, { addSpecialTokens: true })).getIds();
    const without = (await this.rust.encode(probe, null, { addSpecialTokens: false })).getIds();
    let at = -1;
    for (let i = 0; i + without.length <= withSp.length; i++) {
      if (without.every((v, k) => withSp[i + k] === v)) {
        at = i;
        break;
      }
    }
    const prefix = at >= 0 ? withSp.slice(0, at) : [];
    const suffix = at >= 0 ? withSp.slice(at + without.length) : [];
    this.addBosToken = this.bosTokenId !== null && prefix.includes(this.bosTokenId);
    this.addEosToken = this.eosTokenId !== null && suffix.includes(this.eosTokenId);
  }

  async encode(text: string, options: EncodeOptions = {}): Promise<number[]> {
    if (typeof text !== 'string') throw new TypeError(`encode: expected a string, got ${typeof text}`);
    return (await this.rust.encode(text, null, { addSpecialTokens: options.addSpecialTokens ?? true })).getIds();
  }

  async encodeBatch(texts: readonly string[], options: EncodeOptions = {}): Promise<number[][]> {
    return Promise.all(texts.map((t) => this.encode(t, options)));
  }

  async encodeWithOffsets(text: string): Promise<EncodingWithOffsets> {
    if (typeof text !== 'string') throw new TypeError(`encode: expected a string, got ${typeof text}`);
    const enc = await this.rust.encode(text, null, { addSpecialTokens: false });
    const ids = enc.getIds();
    const raw = enc.getOffsets();
    const map = codePointToUtf16(text);
    const offsets: Array<[number, number]> = raw.map((o) => {
      const s = o[0] ?? 0;
      const e = o[1] ?? s;
      return map ? [map[s] ?? text.length, map[e] ?? text.length] : [s, e];
    });
    return { ids, offsets };
  }

  async decode(ids: readonly number[], options: DecodeOptions = {}): Promise<string> {
    return this.rust.decode([...ids], options.skipSpecialTokens ?? false);
  }

  tokenToId(token: string): number | null {
    return this.rust.tokenToId(token) ?? null;
  }

  idToToken(id: number): string | null {
    return this.rust.idToToken(id) ?? null;
  }

  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    if (this.chatTemplate === null) {
      throw new Error(
        `The tokenizer in ${this.dir} has no chat template (no chat_template in tokenizer_config.json, ` +
          `no chat_template.jinja): use template: prefixes, or a tokenizer that has one`,
      );
    }
    if (messages.length === 0) throw new Error('applyChatTemplate: no messages');
    const where = this.files.chatTemplateFile ?? this.dir;
    if (this.compiledTemplate === null) {
      try {
        this.compiledTemplate = new Template(this.chatTemplate);
      } catch (err) {
        throw new Error(`${where}: the chat template does not parse: ${(err as Error).message}`);
      }
    }
    // What transformers passes: its special_tokens_map (the tokens that are set), messages, tools
    // and documents (None), add_generation_prompt, then the caller's kwargs.
    const variables: Record<string, unknown> = {
      ...this.specialTokens,
      ...(options.variables ?? {}),
      messages: messages.map((m) => ({ ...m })),
      tools: null,
      documents: null,
      add_generation_prompt: options.addGenerationPrompt ?? false,
    };
    try {
      return renderBounded(this.compiledTemplate, variables);
    } catch (err) {
      // A stack overflow (a template's macro calling itself) is a RangeError: the template's fault too.
      throw new Error(`${where}: the chat template failed: ${(err as Error).message}`);
    }
  }
}
