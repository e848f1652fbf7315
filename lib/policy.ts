// A trained model with its tokenizer, for scripts and the REPL: text in, text (or log-probs) out.
import { existsSync } from 'node:fs';
import path from 'node:path';

import { loadTokenizer, type Tokenizer } from './data/tokenize/index.js';
import { tokenizePair, type TokenizeConfig } from './data/batch/index.js';
import { formatPrompt, SEED_PREFIXES, type FormatConfig } from './data/format/index.js';
import { resolveModelDir } from './hub/index.js';
import { loadModel } from './model/io.js';
import { isAdapterDir } from './model/lora.js';
import { loadPolicyModel } from './model/policy.js';
import type { Dtype, GenerateOptions, Model } from './native.js';

/**
 * The prompt format `rpo train` uses by default (configs/config.yaml: the seed's Llama-3 header
 * prefixes, its text cleaning): what a model trained with the default config expects.
 */
export const SEED_FORMAT: FormatConfig = { ...SEED_PREFIXES, template: 'prefixes', remove_extra_spaces: true };

export interface PolicyOptions {
  dtype?: Dtype;
  device?: string;
  /** How prompts are formatted (default: the seed's prefixes). */
  format?: FormatConfig;
}

export interface SampleOptions extends Omit<GenerateOptions, 'stopTokenIds' | 'padTokenId'> {
  /** Prompts decoded at once (the slots of one continuous batch); default 16. */
  batchSize?: number;
}

export class Policy {
  private constructor(
    readonly model: Model,
    readonly tokenizer: Tokenizer,
    readonly format: FormatConfig,
    readonly dir: string,
  ) {}

  /**
   * Loads an HF model directory (or hub id) with its tokenizer; or a LoRA adapter directory
   * (PEFT's, or an rpo LoRA checkpoint) on its base, with the adapter's tokenizer files when it has them.
   */
  static async load(dirOrHubId: string, options: PolicyOptions = {}): Promise<Policy> {
    const local = path.resolve(dirOrHubId);
    if (isAdapterDir(local)) {
      const { model, baseDir } = await loadPolicyModel(local, { dtype: options.dtype, device: options.device });
      const tokenizer = await loadTokenizer(existsSync(path.join(local, 'tokenizer.json')) ? local : baseDir);
      return new Policy(model, tokenizer, options.format ?? SEED_FORMAT, local);
    }
    const dir = await resolveModelDir(dirOrHubId);
    const [model, tokenizer] = await Promise.all([loadModel(dir, { dtype: options.dtype, device: options.device }), loadTokenizer(dir)]);
    return new Policy(model, tokenizer, options.format ?? SEED_FORMAT, dir);
  }

  /** Completions for raw prompts (formatted as in training), decoded without special tokens. */
  async sample(prompts: readonly string[], options: SampleOptions = {}): Promise<string[]> {
    const tok = this.tokenizer;
    // One continuous batch of `batchSize` slots (a finished prompt's slot takes the next).
    const encoded = await Promise.all(
      prompts.map(async (p) => {
        let ids = await tok.encode(formatPrompt(p, this.format, tok), { addSpecialTokens: false });
        if (tok.addBosToken && tok.bosTokenId !== null && ids[0] !== tok.bosTokenId) ids = [tok.bosTokenId, ...ids];
        return Int32Array.from(ids);
      }),
    );
    const { batchSize, ...gen } = options;
    const r = await this.model.generate(encoded, {
      maxNewTokens: 128,
      ...gen,
      slots: batchSize ?? gen.slots ?? 16,
      stopTokenIds: [...tok.stopTokenIds],
      padTokenId: tok.padTokenId ?? 0,
    });
    const out: string[] = [];
    for (const t of r.tokens) out.push((await tok.decode(Array.from(t), { skipSpecialTokens: true })).trim());
    return out;
  }

  /**
   * Summed and mean log-prob of `response` after the raw `prompt`, formatted and tokenized exactly
   * as training formats and tokenizes a row's chosen response (the policy's format: prefixes or
   * the chat template, then one BOS where the tokenizer uses one, EOS after the response, which
   * is scored too), without truncation.
   */
  async logprob(prompt: string, response: string): Promise<{ sum: number; mean: number; tokens: number }> {
    const cfg: TokenizeConfig = { ...this.format, max_length: 1 << 20, max_prompt_length: 1 << 20 };
    const seq = await tokenizePair(prompt, response, this.tokenizer, cfg);
    const T = seq.ids.length;
    const lossMask = new Uint8Array(T);
    for (let t = Math.max(1, seq.promptLength); t < T; t++) lossMask[t] = 1;
    const r = await this.model.logprobs({ rows: 1, seqLen: T, inputIds: Int32Array.from(seq.ids), attentionMask: new Uint8Array(T).fill(1), lossMask });
    return { sum: r.sum[0]!, mean: r.mean[0]!, tokens: r.count[0]! };
  }

  dispose(): void {
    this.model.dispose();
  }
}
