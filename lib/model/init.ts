// `rpo init`: a random-weight HF model directory with a tokenizer, which transformers'
// AutoModelForCausalLM / AutoTokenizer and rpo's loadModel / loadTokenizer load as is:
//
//   config.json              the preset's (or the given config.json's) shape, with the
//                            tokenizer's bos/eos/pad ids
//   model.safetensors        normal(0, initializer_range) weights from `seed` (Model.create)
//   tokenizer.json, tokenizer_config.json, special_tokens_map.json
//                            rpo's byte-level BPE (lib/model/byte_tokenizer.ts; Qwen2's pre-tokenizer
//                            for a Qwen2 model, which transformers 5 imposes on model_type qwen2), or
//                            the files of a tokenizer directory (e.g. a hub snapshot) copied as they are
//   generation_config.json   bos / eos (every stop id) / pad, do_sample, top_p 0.95 (the seed's)
//
// The directory is built in `<out>.tmp-<pid>` and moved into place at the end, so `out` is never
// left half-written; an existing non-empty `out` is refused unless `overwrite`, which replaces
// only the files rpo wrote there (lib/util/out_dir.ts), and `out` may not be, lie inside or
// contain the tokenizer directory or config.json it reads (a usage error, exit 2).
import { copyFileSync, existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { Model, type Dtype, type ModelConfig } from '../native.js';
import { loadTokenizer, type Tokenizer } from '../data/tokenize/index.js';
import { byteLevelTokenizerFiles } from './byte_tokenizer.js';
import { parseHfConfig, type HfConfigExtras } from './config.js';
import { saveModel } from './io.js';
import { PRESET_NAMES, presetConfig } from './presets.js';
import { installOutDir, prepareOutDir, tempOutDir } from '../util/out_dir.js';
import { overlapMessage, type NamedPath } from '../util/paths.js';
import { UsageError } from '../util/usage_error.js';

export const DEFAULT_PRESET = 'tiny';
export const DEFAULT_INIT_SEED = 0;

/** Files copied from a tokenizer directory when present (the first two are required). */
export const TOKENIZER_FILES: readonly string[] = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'chat_template.jinja',
  'chat_template.json',
  'added_tokens.json',
  'tokenizer.model',
];

const DTYPES: readonly Dtype[] = ['float32', 'bfloat16', 'float16'];

export interface InitModelOptions {
  /** A shape from lib/model/presets.ts (default 'tiny' when configJson is not given). */
  preset?: string;
  /** Path to an HF config.json to take the shape from instead; its vocab_size must cover the tokenizer. */
  configJson?: string;
  /** 'bytes' (default): rpo's byte-level BPE; otherwise a directory with tokenizer.json + tokenizer_config.json to copy. */
  tokenizer?: 'bytes' | string;
  /** Weight init seed (default 0). */
  seed?: number;
  /** Weight dtype (default float32). */
  dtype?: Dtype;
  /** Replace an existing non-empty `out`. */
  overwrite?: boolean;
}

export interface InitModelResult {
  /** The directory written (absolute). */
  dir: string;
  config: ModelConfig;
  /** The preset used (null when the shape came from configJson). */
  preset: string | null;
  numParameters: number;
  /** Ids the tokenizer can produce (config.vocab_size >= this). */
  tokenizerVocabSize: number;
  bosTokenId: number | null;
  eosTokenId: number | null;
  padTokenId: number | null;
  /** The files rpo wrote into `dir`, sorted (besides its record of them, WRITTEN_MANIFEST). */
  files: string[];
  /** What --overwrite removed and kept, for the user (null: `dir` was new or empty). */
  notice: string | null;
}

function readJsonFile(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${what} ${file} does not exist` : `Cannot read ${what} ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new Error(`${what} ${file} is not valid JSON: ${(err as Error).message}`);
  }
}

function writeJson(file: string, value: unknown): void {
  writeFileSync(file, JSON.stringify(value, null, 2) + '\n');
}

/** Validates the options that do not need the file system. */
function checkOptions(opts: InitModelOptions): void {
  if (opts.preset !== undefined && opts.configJson !== undefined) {
    throw new Error('initModelDir: give either a preset or a config.json, not both');
  }
  if (opts.seed !== undefined && (!Number.isSafeInteger(opts.seed) || opts.seed < 0)) {
    throw new Error(`initModelDir: seed must be a non-negative integer (got ${opts.seed})`);
  }
  if (opts.dtype !== undefined && !DTYPES.includes(opts.dtype)) {
    throw new Error(`initModelDir: unknown dtype ${JSON.stringify(opts.dtype)}; supported: ${DTYPES.join(', ')}`);
  }
  if (opts.preset !== undefined && !PRESET_NAMES.includes(opts.preset)) {
    throw new Error(`unknown model preset ${JSON.stringify(opts.preset)}; known presets: ${PRESET_NAMES.join(', ')}`);
  }
}

/**
 * Names that belong to a model directory rpo writes (config, weights, tokenizer, generation
 * config), and files a loader of the directory would read beside them (other weights, an adapter
 * config): in an output directory, such a file that rpo did not write blocks it (lib/util/out_dir.ts).
 */
export function isModelDirName(name: string): boolean {
  return (
    name === 'config.json' ||
    name === 'generation_config.json' ||
    name === 'adapter_config.json' ||
    TOKENIZER_FILES.includes(name) ||
    /\.(safetensors|bin|pt|pth|gguf)$/.test(name) ||
    /^(model|pytorch_model)\.(safetensors|bin)\.index\.json$/.test(name)
  );
}

interface TokenizerSource {
  /** Writes the tokenizer's files into `dir`. */
  write(dir: string, config: ModelConfig): void;
  vocabSize: number;
  bos: number | null;
  eos: number | null;
  /** The pad token the files name (null: none, generation falls back to EOS). */
  explicitPad: number | null;
  /** generation_config.json's pad: the explicit pad, else EOS. */
  pad: number | null;
  stopIds: readonly number[];
}

function byteTokenizerSource(): TokenizerSource {
  const made = byteLevelTokenizerFiles();
  return {
    write(dir, config) {
      const files = byteLevelTokenizerFiles({
        modelMaxLength: config.max_position_embeddings,
        preTokenizer: config.architecture === 'Qwen2ForCausalLM' ? 'qwen2' : 'gpt2',
      }).files;
      for (const [name, json] of Object.entries(files)) writeJson(path.join(dir, name), json);
    },
    vocabSize: made.vocabSize,
    bos: made.bosTokenId,
    eos: made.eosTokenId,
    explicitPad: made.padTokenId,
    pad: made.padTokenId,
    stopIds: [made.eosTokenId],
  };
}

async function dirTokenizerSource(src: string): Promise<TokenizerSource> {
  const abs = path.resolve(src);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) {
    throw new Error(`tokenizer directory ${abs} does not exist (pass tokenizer 'bytes' for rpo's built-in byte-level tokenizer)`);
  }
  const missing = TOKENIZER_FILES.slice(0, 2).filter((f) => !existsSync(path.join(abs, f)));
  if (missing.length > 0) {
    throw new Error(`tokenizer directory ${abs} is missing ${missing.join(' and ')} (rpo init copies a fast tokenizer's files: ${TOKENIZER_FILES.slice(0, 3).join(', ')})`);
  }
  let tok: Tokenizer;
  try {
    tok = await loadTokenizer(abs);
  } catch (err) {
    throw new Error(`tokenizer directory ${abs} does not load: ${(err as Error).message}`);
  }
  const explicitPad = tok.specialTokens.pad_token !== undefined ? tok.padTokenId : null;
  return {
    write(dir) {
      for (const f of TOKENIZER_FILES) {
        const from = path.join(abs, f);
        if (existsSync(from)) copyFileSync(from, path.join(dir, f));
      }
    },
    vocabSize: tok.vocabSize,
    bos: tok.bosTokenId,
    eos: tok.eosTokenId,
    explicitPad,
    pad: tok.padTokenId,
    stopIds: tok.stopTokenIds,
  };
}

function configFromJson(file: string, vocabSize: number): ModelConfig {
  const abs = path.resolve(file);
  const config = parseHfConfig(readJsonFile(abs, 'config'), abs);
  if (config.vocab_size < vocabSize) {
    throw new Error(
      `${abs}: vocab_size ${config.vocab_size} is smaller than the tokenizer's ${vocabSize} ids; ` +
        `use a config with vocab_size >= ${vocabSize} (or a preset, which sizes the vocabulary from the tokenizer)`,
    );
  }
  return config;
}

/**
 * Writes a random-weight HF model directory `out` (see the top of this file) and returns what it
 * wrote. Built in `<out>.tmp-<pid>`, then moved into place.
 */
export async function initModelDir(out: string, opts: InitModelOptions = {}): Promise<InitModelResult> {
  checkOptions(opts);
  const dir = path.resolve(out);
  const inputs: NamedPath[] = [];
  if (opts.tokenizer !== undefined && opts.tokenizer !== 'bytes') inputs.push({ what: 'the tokenizer directory', path: opts.tokenizer });
  if (opts.configJson !== undefined) inputs.push({ what: 'the config', path: opts.configJson });
  const overlap = overlapMessage({ what: 'the output directory', path: out }, inputs);
  if (overlap !== null) throw new UsageError(`${overlap}: rpo writes the model there and must not touch what it reads; choose another directory`);
  const prepared = prepareOutDir(dir, { overwrite: opts.overwrite ?? false, flag: 'overwrite (--overwrite)', claims: isModelDirName });

  const tokenizer = opts.tokenizer ?? 'bytes';
  const source = tokenizer === 'bytes' ? byteTokenizerSource() : await dirTokenizerSource(tokenizer);
  const preset = opts.configJson !== undefined ? null : (opts.preset ?? DEFAULT_PRESET);
  const config = preset !== null ? presetConfig(preset, source.vocabSize) : configFromJson(opts.configJson!, source.vocabSize);
  const dtype = opts.dtype ?? 'float32';

  const tmp = tempOutDir(prepared);
  let numParameters: number;
  let notice: string | null;
  let files: string[];
  try {
    source.write(tmp, config);
    const extras: HfConfigExtras = { bos_token_id: source.bos, eos_token_id: source.eos };
    if (source.explicitPad !== null) extras.pad_token_id = source.explicitPad;
    const model = await Model.create(config, { seed: opts.seed ?? DEFAULT_INIT_SEED, dtype, device: 'cpu' });
    try {
      numParameters = model.numParameters;
      await saveModel(model, tmp, { configExtras: extras });
    } finally {
      model.dispose();
    }
    const generation: Record<string, unknown> = {};
    if (source.bos !== null) generation.bos_token_id = source.bos;
    if (source.stopIds.length > 0) generation.eos_token_id = source.stopIds.length === 1 ? source.stopIds[0] : [...source.stopIds];
    if (source.pad !== null) generation.pad_token_id = source.pad;
    generation.do_sample = true;
    generation.top_p = 0.95;
    writeJson(path.join(tmp, 'generation_config.json'), generation);

    files = readdirSync(tmp).sort();
    notice = installOutDir(tmp, prepared, isModelDirName);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }

  return {
    dir,
    config,
    preset,
    numParameters,
    tokenizerVocabSize: source.vocabSize,
    bosTokenId: source.bos,
    eosTokenId: source.eos,
    padTokenId: source.explicitPad,
    files,
    notice,
  };
}
