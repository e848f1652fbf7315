// The local generator: any supported HF model directory (or hub id) through the engine's
// batched KV-cache generation, on CUDA when there is one.
//
// Each request is the rendered rationale template as one user turn of the model's chat
// template (with the generation prompt); a tokenizer without a chat template gets the seed's
// prefixes from configs/config.yaml (human_prefix + request + human_suffix + assistant_prefix).
// Requests longer than --max-prompt-tokens (default: the model's context minus
// --max-new-tokens) are not sent: they are filtered as prompt_too_long.
//
// Reproducible, interrupted or not: the rows are sorted by request length (longest first, then
// by index) and cut into fixed batches of --batch-size; batch k samples with seed + k. A batch is
// generated whole even when a restart finds some of its rows done (their outputs are dropped),
// so every row's text is the same as in an uninterrupted run.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { DEFAULT_CONFIG_DIR, parseYaml } from '../config/index.js';
import { loadTokenizer, type Tokenizer } from '../data/tokenize/index.js';
import { resolveModelDir } from '../hub/index.js';
import { loadHfConfig } from '../model/config.js';
import { loadModel } from '../model/io.js';
import { isAdapterDir } from '../model/lora.js';
import { adapterBaseDir, loadPolicyModel } from '../model/policy.js';
import type { Dtype, GenerateOptions, Model } from '../native.js';
import { resolveDevice } from '../train/device.js';
import type { Generator, GeneratorOutcome, WorkRow } from './generator.js';

export interface LocalOptions {
  /** A model directory or hub id. */
  model: string;
  /** auto (CUDA when available), cpu, cuda, cuda:N. */
  device: string;
  /** auto: bfloat16 on CUDA, float32 on the CPU. */
  dtype: 'auto' | Dtype;
  batchSize: number;
  maxNewTokens: number;
  /** 0: greedy. */
  temperature: number;
  topP: number;
  /** 0: off. */
  topK: number;
  seed: number;
  /** Default: max_position_embeddings - maxNewTokens. */
  maxPromptTokens?: number;
}

export interface PromptPrefixes {
  human_prefix: string;
  human_suffix: string;
  assistant_prefix: string;
}

/** The seed's default prefixes (configs/config.yaml). */
export function defaultPrefixes(): PromptPrefixes {
  const file = path.join(DEFAULT_CONFIG_DIR, 'config.yaml');
  const doc = parseYaml(readFileSync(file, 'utf8'), file) as Record<string, unknown>;
  const str = (k: string): string => {
    const v = doc[k];
    if (typeof v !== 'string') throw new Error(`${file}: ${k} is not a string`);
    return v;
  };
  return { human_prefix: str('human_prefix'), human_suffix: str('human_suffix'), assistant_prefix: str('assistant_prefix') };
}

/** The text a request becomes for the model: one user turn of its chat template, or the seed's prefixes. */
export function formatRequest(request: string, tok: Pick<Tokenizer, 'chatTemplate' | 'applyChatTemplate'>, prefixes: PromptPrefixes): string {
  if (tok.chatTemplate !== null) return tok.applyChatTemplate([{ role: 'user', content: request }], { addGenerationPrompt: true });
  return prefixes.human_prefix + request + prefixes.human_suffix + prefixes.assistant_prefix;
}

export class LocalGenerator implements Generator {
  private constructor(
    private readonly opts: LocalOptions,
    private readonly model: Model,
    private readonly tok: Tokenizer,
    readonly modelDir: string,
    readonly device: string,
    readonly dtype: Dtype,
    readonly promptFormat: 'chat_template' | 'prefixes',
    readonly maxPromptTokens: number,
    private readonly prefixes: PromptPrefixes,
  ) {}

  static async open(opts: LocalOptions, onMessage: (m: string) => void = () => undefined): Promise<LocalGenerator> {
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new Error('--batch-size must be an integer >= 1');
    // A LoRA adapter directory (PEFT's, or an rpo LoRA checkpoint): its base from adapter_config.json,
    // its own tokenizer files when it carries them.
    const adapterDir = isAdapterDir(path.resolve(opts.model)) ? path.resolve(opts.model) : null;
    const modelDir = adapterDir ? await adapterBaseDir(adapterDir) : await resolveModelDir(opts.model);
    const tokDir = adapterDir && existsSync(path.join(adapterDir, 'tokenizer.json')) ? adapterDir : modelDir;
    const device = resolveDevice(opts.device);
    const dtype: Dtype = opts.dtype === 'auto' ? (device.startsWith('cuda') ? 'bfloat16' : 'float32') : opts.dtype;
    const config = loadHfConfig(modelDir);
    const maxPromptTokens = opts.maxPromptTokens ?? config.max_position_embeddings - opts.maxNewTokens;
    if (!(maxPromptTokens >= 1)) {
      throw new Error(
        `--max-new-tokens ${opts.maxNewTokens} leaves no room for the request in ${modelDir} (max_position_embeddings ${config.max_position_embeddings})`,
      );
    }
    const tok = await loadTokenizer(tokDir);
    const promptFormat = tok.chatTemplate !== null ? 'chat_template' : 'prefixes';
    if (promptFormat === 'prefixes') onMessage(`the tokenizer of ${modelDir} has no chat template: requests use the seed's prefixes (configs/config.yaml)`);
    onMessage(`loading ${modelDir}${adapterDir ? ` with the adapter ${adapterDir}` : ''} on ${device} (${dtype})`);
    const model = adapterDir ? (await loadPolicyModel(adapterDir, { dtype, device })).model : await loadModel(modelDir, { dtype, device });
    return new LocalGenerator(opts, model, tok, modelDir, device, dtype, promptFormat, maxPromptTokens, defaultPrefixes());
  }

  /** The token ids of a request: formatted, encoded bare, with exactly one BOS when the tokenizer uses one. */
  async encode(request: string): Promise<Int32Array> {
    const text = formatRequest(request, this.tok, this.prefixes);
    let ids = await this.tok.encode(text, { addSpecialTokens: false });
    if (this.tok.addBosToken && this.tok.bosTokenId !== null && ids[0] !== this.tok.bosTokenId) ids = [this.tok.bosTokenId, ...ids];
    return Int32Array.from(ids);
  }

  settings(): GenerateOptions {
    const o = this.opts;
    return {
      maxNewTokens: o.maxNewTokens,
      doSample: o.temperature > 0,
      temperature: o.temperature > 0 ? o.temperature : 1,
      topP: o.topP,
      topK: o.topK,
      stopTokenIds: [...this.tok.stopTokenIds],
      padTokenId: this.tok.padTokenId ?? 0,
    };
  }

  async run(rows: readonly WorkRow[], done: ReadonlySet<number>, emit: (o: GeneratorOutcome[]) => void, signal: AbortSignal): Promise<void> {
    const encoded = await Promise.all(rows.map(async (r) => ({ row: r, ids: await this.encode(r.request) })));
    const tooLong: GeneratorOutcome[] = [];
    const fit: typeof encoded = [];
    for (const e of encoded) {
      if (e.ids.length > this.maxPromptTokens) {
        if (!done.has(e.row.i)) tooLong.push({ i: e.row.i, id: e.row.id, skip: 'prompt_too_long' });
      } else fit.push(e);
    }
    if (tooLong.length > 0) emit(tooLong);
    fit.sort((a, b) => b.ids.length - a.ids.length || a.row.i - b.row.i);
    const settings = this.settings();
    const size = this.opts.batchSize;
    for (let k = 0; k * size < fit.length; k++) {
      if (signal.aborted) return;
      const batch = fit.slice(k * size, (k + 1) * size);
      if (batch.every((e) => done.has(e.row.i))) continue;
      const r = await this.model.generate(batch.map((e) => e.ids), { ...settings, seed: this.opts.seed + k });
      const out: GeneratorOutcome[] = [];
      for (let j = 0; j < batch.length; j++) {
        const e = batch[j]!;
        if (done.has(e.row.i)) continue;
        const ids = Array.from(r.tokens[j]!);
        // A reasoning model's closed <think> block is not part of the rationale.
        const text = (await this.tok.decode(ids, { skipSpecialTokens: true })).replace(/^\s*<think>[\s\S]*?<\/think>/, '').trim();
        out.push({ i: e.row.i, id: e.row.id, text, finish: r.finishReasons[j]!, tokens: ids.length });
      }
      emit(out);
    }
  }

  close(): void {
    this.model.dispose();
  }
}
