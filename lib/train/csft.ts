// Token-conditioned SFT (the seed's csft, Korbak et al. 2023): each pair trains its chosen response
// after prompt + chosen_control_token and its rejected response after prompt +
// rejected_control_token. As the seed did, the two tokens are added to the tokenizer as special
// tokens and the embeddings grown to the new vocabulary; the run trains from that model, so its
// checkpoints carry the tokens and transformers loads them as they are.
//
// The new embedding rows (input, and output when untied) are the mean of the old rows: what
// transformers' resize_token_embeddings does by default (mean_resizing, up to its 1e-9-scaled
// noise). The resized model is written once to <run dir>/csft_base and reused.
import { copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readSync, closeSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';

import type { TokenizedExample, TokenizedSequence } from '../data/batch/index.js';
import { loadTokenizer } from '../data/tokenize/index.js';
import { TOKENIZER_FILES } from '../model/init.js';
import { resolveCheckpoint, writeSafetensorsFile, type WritableTensor } from '../model/safetensors.js';
import { writeFileAtomic } from '../util/files.js';
import type { RunConfig } from '../config/index.js';
import { resolveRunModel, type ResolvedModel } from './data.js';

export interface ControlTokens {
  chosen: string;
  rejected: string;
}

const EMBEDDINGS = ['model.embed_tokens.weight', 'lm_head.weight'];

function readJson(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
}

/** tokenizer.json + tokenizer_config.json with `tokens` added as special tokens (ids after the last one); returns their ids. */
function addTokens(srcDir: string, outDir: string, tokens: readonly string[]): Map<string, number> {
  const tj = readJson(path.join(srcDir, 'tokenizer.json'));
  const added = (tj.added_tokens as Array<{ id: number; content: string }> | undefined) ?? [];
  const vocab = ((tj.model as { vocab?: Record<string, number> } | undefined)?.vocab ?? {}) as Record<string, number>;
  let next = Math.max(-1, ...Object.values(vocab), ...added.map((t) => t.id)) + 1;
  const ids = new Map<string, number>();
  const cfgFile = path.join(srcDir, 'tokenizer_config.json');
  const cfg = existsSync(cfgFile) ? readJson(cfgFile) : {};
  const decoder = (cfg.added_tokens_decoder as Record<string, unknown> | undefined) ?? {};
  for (const content of tokens) {
    const have = added.find((t) => t.content === content)?.id ?? vocab[content];
    if (have !== undefined) {
      ids.set(content, have);
      continue;
    }
    const entry = { id: next, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
    added.push(entry);
    decoder[String(next)] = { content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
    ids.set(content, next++);
  }
  tj.added_tokens = added;
  cfg.added_tokens_decoder = decoder;
  for (const name of TOKENIZER_FILES) if (existsSync(path.join(srcDir, name))) copyFileSync(path.join(srcDir, name), path.join(outDir, name));
  writeFileAtomic(path.join(outDir, 'tokenizer.json'), [Buffer.from(JSON.stringify(tj))]);
  writeFileAtomic(path.join(outDir, 'tokenizer_config.json'), [Buffer.from(JSON.stringify(cfg, null, 2) + '\n')]);
  return ids;
}

/** Rows [rows, H] of a float32 or bfloat16 tensor, grown to `newRows` with the mean of the old rows. */
function growRows(data: Uint8Array, dtype: string, shape: readonly number[], newRows: number, what: string): Uint8Array {
  const [rows, width] = shape as [number, number];
  const f32 = new Float32Array(rows * width);
  if (dtype === 'F32') f32.set(new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)));
  else if (dtype === 'BF16') {
    const u16 = new Uint16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    const u32 = new Uint32Array(f32.buffer);
    for (let i = 0; i < u16.length; i++) u32[i] = u16[i]! << 16;
  } else throw new Error(`csft: ${what} is ${dtype}; growing the embeddings supports F32 and BF16 checkpoints`);
  const mean = new Float64Array(width);
  for (let r = 0; r < rows; r++) for (let c = 0; c < width; c++) mean[c]! += f32[r * width + c]! / rows;
  const out = new Float32Array(newRows * width);
  out.set(f32);
  for (let r = rows; r < newRows; r++) for (let c = 0; c < width; c++) out[r * width + c] = mean[c]!;
  if (dtype === 'F32') return new Uint8Array(out.buffer);
  // bfloat16: round to nearest even.
  const u32 = new Uint32Array(out.buffer);
  const u16 = new Uint16Array(u32.length);
  for (let i = 0; i < u32.length; i++) {
    const x = u32[i]!;
    u16[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return new Uint8Array(u16.buffer);
}

/** The model directory with its embeddings grown to `vocab` rows (config.json's vocab_size too). */
function growModel(srcDir: string, outDir: string, vocab: number): void {
  const config = readJson(path.join(srcDir, 'config.json'));
  const old = Number(config.vocab_size);
  const { tensors } = resolveCheckpoint(srcDir);
  const out: WritableTensor[] = [];
  for (const t of tensors) {
    const bytes = new Uint8Array(t.end - t.begin);
    const fd = openSync(t.file, 'r');
    try {
      readSync(fd, bytes, 0, bytes.length, t.begin);
    } finally {
      closeSync(fd);
    }
    if (EMBEDDINGS.includes(t.name) && vocab > old) {
      if (t.shape[0] !== old) throw new Error(`csft: ${t.name} has ${t.shape[0]} rows, config.json's vocab_size is ${old}`);
      out.push({ name: t.name, dtype: t.dtype, shape: [vocab, t.shape[1]!], data: growRows(bytes, t.dtype, t.shape, vocab, t.name) });
    } else out.push({ name: t.name, dtype: t.dtype, shape: [...t.shape], data: bytes });
  }
  writeSafetensorsFile(path.join(outDir, 'model.safetensors'), out);
  config.vocab_size = Math.max(old, vocab);
  writeFileAtomic(path.join(outDir, 'config.json'), [Buffer.from(JSON.stringify(config, null, 2) + '\n')]);
  if (existsSync(path.join(srcDir, 'generation_config.json'))) copyFileSync(path.join(srcDir, 'generation_config.json'), path.join(outDir, 'generation_config.json'));
}

/**
 * The run's base model with the control tokens: `<runDir>/csft_base`, made once from `base`
 * (tokenizer files with the tokens added, embeddings grown when a token id is past the vocabulary).
 */
export async function csftBase(base: ResolvedModel, runDir: string, tokens: ControlTokens): Promise<ResolvedModel & { ids: ControlTokens & Record<'chosenId' | 'rejectedId', number> }> {
  const dir = path.join(runDir, 'csft_base');
  if (!existsSync(path.join(dir, 'model.safetensors'))) {
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    try {
      const ids = addTokens(base.tokenizerDir, tmp, [tokens.chosen, tokens.rejected]);
      growModel(base.modelDir, tmp, Math.max(...ids.values()) + 1);
      rmSync(dir, { recursive: true, force: true });
      renameSync(tmp, dir);
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      throw err;
    }
  }
  const tokenizer = await loadTokenizer(dir);
  const id = (t: string): number => {
    const v = tokenizer.tokenToId(t);
    if (v === null) throw new Error(`csft: ${dir}'s tokenizer has no token ${JSON.stringify(t)} (remove ${dir} to make it again)`);
    return v;
  };
  return { modelDir: dir, tokenizerDir: dir, tokenizer, ids: { ...tokens, chosenId: id(tokens.chosen), rejectedId: id(tokens.rejected) } };
}

/** `seq` with `tokenId` after its prompt; a response token is cut (before EOS) when it would pass maxLength. */
export function withControlToken(seq: TokenizedSequence, tokenId: number, maxLength: number): TokenizedSequence {
  const prompt = seq.ids.slice(0, seq.promptLength);
  let response = seq.ids.slice(seq.promptLength); // response tokens + EOS
  const over = prompt.length + 1 + response.length - maxLength;
  let cut = false;
  if (over > 0) {
    response = [...response.slice(0, Math.max(0, response.length - 1 - over)), response[response.length - 1]!];
    cut = true;
  }
  return {
    ...seq,
    ids: [...prompt, tokenId, ...response],
    promptLength: prompt.length + 1,
    fullLength: seq.fullLength + 1,
    fullPromptLength: seq.fullPromptLength + 1,
    responseTruncated: seq.responseTruncated || cut,
    truncated: seq.truncated || cut,
    dropped: seq.dropped || response.length < 2,
  };
}

/** ConditionalSFTDataLoader's examples: each pair's chosen after the chosen token, its rejected after the rejected token, both SFT targets. */
export function csftExamples(pairs: readonly TokenizedExample[], ids: { chosenId: number; rejectedId: number }, maxLength: number): TokenizedExample[] {
  const out: TokenizedExample[] = [];
  const example = (id: string, seq: TokenizedSequence): TokenizedExample => ({ id, chosen: seq, rejected: seq, truncated: seq.truncated, dropped: seq.dropped });
  for (const p of pairs) {
    const c = withControlToken(p.chosen, ids.chosenId, maxLength);
    const r = withControlToken(p.rejected, ids.rejectedId, maxLength);
    if (!c.dropped) out.push(example(`${p.id}:chosen`, c));
    if (!r.dropped) out.push(example(`${p.id}:rejected`, r));
  }
  return out;
}

/** A csft run's model: the configured base with the config's control tokens (csftBase). */
export async function csftRunModel(config: RunConfig, runDir: string): ReturnType<typeof csftBase> {
  const chosen = config.loss.chosen_control_token;
  const rejected = config.loss.rejected_control_token;
  if (!chosen || !rejected) throw new Error('loss=csft needs loss.chosen_control_token and loss.rejected_control_token');
  return csftBase(await resolveRunModel(config), runDir, { chosen, rejected });
}
