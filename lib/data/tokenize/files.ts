// Reads the tokenizer files of an HF model directory and resolves them the way transformers 5's
// AutoTokenizer does (the pinned reference, test/reference/requirements.txt):
//  - special tokens from tokenizer_config.json; special_tokens_map.json only for a legacy config
//    (one without added_tokens_decoder), where it wins over the config's entries;
//  - add_bos_token / add_eos_token are not read: with a tokenizer.json, transformers 5 drops
//    them and tokenizer.json's post-processor alone decides what encode adds;
//  - the chat template from chat_template.jinja, else chat_template.json, else
//    tokenizer_config.json's chat_template;
//  - generation_config.json's eos_token_id(s): the ids that stop generation.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/** The special-token names transformers passes to chat templates (its SPECIAL_TOKENS_ATTRIBUTES). */
export const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;
export type SpecialTokenKey = (typeof SPECIAL_TOKEN_KEYS)[number];

/** An added token as tokenizer.json lists it. */
export interface AddedTokenInfo {
  id: number;
  content: string;
  special: boolean;
}

export interface TokenizerFiles {
  dir: string;
  /** tokenizer.json as text (handed to the Rust tokenizer as is). */
  tokenizerJson: string;
  addedTokens: AddedTokenInfo[];
  /** Special tokens by name (strings; absent where the files name none). */
  specialTokens: Partial<Record<SpecialTokenKey, string>>;
  chatTemplate: string | null;
  /** The file the chat template came from (chat_template.jinja, chat_template.json or tokenizer_config.json). */
  chatTemplateFile: string | null;
  /** generation_config.json's eos_token_id (a number or a list), [] when absent. */
  generationEosIds: number[];
  /** The raw tokenizer_config.json (for callers that need more keys). */
  config: Record<string, unknown>;
}

function readJson(file: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`Cannot read ${what} ${file}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${what} ${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`${what} ${file} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** A token as the config files write it: "text", {"content": "text", ...} (AddedToken) or null. */
function tokenString(value: unknown, file: string, key: string): string | null | undefined {
  if (value === undefined) return undefined;
  if (value === null) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && !Array.isArray(value)) {
    const content = (value as Record<string, unknown>)['content'];
    if (typeof content === 'string') return content;
  }
  throw new Error(`${file}: ${key} must be a string, an object with "content", or null (got ${JSON.stringify(value)})`);
}

function chatTemplateOf(value: unknown, file: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  // Older files: a list of named templates; transformers uses the one named "default".
  if (Array.isArray(value)) {
    const named = value as Array<{ name?: unknown; template?: unknown }>;
    const pick = named.find((t) => t && t.name === 'default') ?? named[0];
    if (pick && typeof pick.template === 'string') return pick.template;
  }
  throw new Error(`${file}: chat_template must be a string or a list of {name, template} (got ${JSON.stringify(value).slice(0, 200)})`);
}

/** Reads and validates the tokenizer files of `dir`. Throws, naming the directory and file, when one is missing or malformed. */
export function readTokenizerFiles(dir: string): TokenizerFiles {
  const abs = path.resolve(dir);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) {
    throw new Error(`Tokenizer directory ${abs} does not exist`);
  }
  const tokFile = path.join(abs, 'tokenizer.json');
  const cfgFile = path.join(abs, 'tokenizer_config.json');
  const missing = [tokFile, cfgFile].filter((f) => !existsSync(f)).map((f) => path.basename(f));
  if (missing.length > 0) {
    throw new Error(
      `Tokenizer directory ${abs} lacks ${missing.join(' and ')}: rpo needs a fast tokenizer's files ` +
        `(tokenizer.json and tokenizer_config.json, as transformers saves them)`,
    );
  }
  let tokenizerJson: string;
  try {
    tokenizerJson = readFileSync(tokFile, 'utf8');
  } catch (err) {
    throw new Error(`Cannot read tokenizer file ${tokFile}: ${(err as Error).message}`);
  }
  let tokParsed: Record<string, unknown>;
  try {
    tokParsed = JSON.parse(tokenizerJson) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`Tokenizer file ${tokFile} is not valid JSON: ${(err as Error).message}`);
  }
  if (tokParsed === null || typeof tokParsed !== 'object' || typeof tokParsed['model'] !== 'object') {
    throw new Error(`Tokenizer file ${tokFile} has no "model": not a tokenizers (tokenizer.json) file`);
  }
  const addedTokens: AddedTokenInfo[] = [];
  const rawAdded = tokParsed['added_tokens'];
  if (Array.isArray(rawAdded)) {
    for (const t of rawAdded as Array<Record<string, unknown>>) {
      if (typeof t['id'] === 'number' && typeof t['content'] === 'string') {
        addedTokens.push({ id: t['id'], content: t['content'], special: t['special'] === true });
      }
    }
  }

  const config = readJson(cfgFile, 'Tokenizer config');
  const specialTokens: Partial<Record<SpecialTokenKey, string>> = {};
  for (const key of SPECIAL_TOKEN_KEYS) {
    const v = tokenString(config[key], cfgFile, key);
    if (typeof v === 'string') specialTokens[key] = v;
  }
  const mapFile = path.join(abs, 'special_tokens_map.json');
  if (config['added_tokens_decoder'] === undefined && existsSync(mapFile)) {
    const map = readJson(mapFile, 'Special tokens map');
    for (const key of SPECIAL_TOKEN_KEYS) {
      const v = tokenString(map[key], mapFile, key);
      if (typeof v === 'string') specialTokens[key] = v;
    }
  }

  let chatTemplate: string | null = null;
  const jinjaFile = path.join(abs, 'chat_template.jinja');
  const ctJsonFile = path.join(abs, 'chat_template.json');
  let chatTemplateFile: string | null;
  if (existsSync(jinjaFile)) {
    chatTemplate = readFileSync(jinjaFile, 'utf8');
    chatTemplateFile = jinjaFile;
  } else if (existsSync(ctJsonFile)) {
    chatTemplate = chatTemplateOf(readJson(ctJsonFile, 'Chat template file')['chat_template'], ctJsonFile);
    chatTemplateFile = ctJsonFile;
  } else {
    chatTemplate = chatTemplateOf(config['chat_template'], cfgFile);
    chatTemplateFile = cfgFile;
  }

  const generationEosIds: number[] = [];
  const genFile = path.join(abs, 'generation_config.json');
  if (existsSync(genFile)) {
    const gen = readJson(genFile, 'Generation config');
    const eos = gen['eos_token_id'];
    for (const v of Array.isArray(eos) ? eos : [eos]) {
      if (typeof v === 'number' && Number.isInteger(v)) generationEosIds.push(v);
    }
  }

  return {
    dir: abs,
    tokenizerJson,
    addedTokens,
    specialTokens,
    chatTemplate,
    chatTemplateFile: chatTemplate === null ? null : chatTemplateFile,
    generationEosIds,
    config,
  };
}
