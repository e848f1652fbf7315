// PEFT adapter directories <-> an engine model's LoRA adapters: adapter_config.json and
// adapter_model.safetensors with PEFT's key names
// (base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight), the files
// peft.PeftModel.from_pretrained(base, dir) reads. docs/lora.md.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import type { LoraSection } from '../config/lora.js';
import type { LoraOptions, Model, ModelConfig, TensorSpec } from '../native.js';
import { writeFileAtomic } from '../util/files.js';
import { buildSafetensorsHeader, readSafetensorsHeader } from './safetensors.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

/** What rpo reads from an adapter_config.json. */
export interface AdapterConfig {
  base_model_name_or_path: string | null;
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  target_modules: string[];
  use_rslora: boolean;
}

/** Whether `dir` is a PEFT adapter directory (it has adapter_config.json). */
export function isAdapterDir(dir: string): boolean {
  return existsSync(path.join(dir, ADAPTER_CONFIG));
}

/** The engine's LoRA options for a config's `lora:` section. */
export function loraOptions(lora: Pick<LoraSection, 'r' | 'alpha' | 'dropout' | 'target_modules' | 'rslora' | 'init'>, seed: number): LoraOptions {
  return { r: lora.r, alpha: lora.alpha, dropout: lora.dropout, targetModules: [...lora.target_modules], rslora: lora.rslora, init: lora.init, seed };
}

/**
 * Reads and checks an adapter_config.json: a plain LoRA adapter (no DoRA, no per-layer ranks, no
 * trained biases or extra modules); anything else is an error naming the key.
 */
export function readAdapterConfig(dir: string): AdapterConfig {
  const file = path.join(dir, ADAPTER_CONFIG);
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not a readable adapter config (${(err as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error(`${file}: expected a JSON object`);
  const c = doc as Record<string, unknown>;
  const bad = (key: string, want: string) => new Error(`${file}: "${key}" ${want}, got ${JSON.stringify(c[key])}`);
  if (c.peft_type !== 'LORA') throw bad('peft_type', 'must be "LORA" (rpo trains LoRA adapters only)');
  const unsupported: Array<[string, (v: unknown) => boolean, string]> = [
    ['use_dora', (v) => v === undefined || v === false, 'DoRA adapters are not supported'],
    ['bias', (v) => v === undefined || v === 'none', 'trained biases are not supported (bias must be "none")'],
    ['lora_bias', (v) => v === undefined || v === false, 'lora_bias adapters are not supported'],
    ['fan_in_fan_out', (v) => v === undefined || v === false, 'fan_in_fan_out (GPT-2 Conv1D) is not supported'],
    ['modules_to_save', (v) => v === undefined || v === null || (Array.isArray(v) && v.length === 0), 'modules_to_save (fully trained extra modules) is not supported'],
    ['layers_to_transform', (v) => v === undefined || v === null, 'layers_to_transform is not supported'],
    ['rank_pattern', (v) => v === undefined || v === null || (typeof v === 'object' && Object.keys(v as object).length === 0), 'per-module ranks (rank_pattern) are not supported'],
    ['alpha_pattern', (v) => v === undefined || v === null || (typeof v === 'object' && Object.keys(v as object).length === 0), 'per-module alphas (alpha_pattern) are not supported'],
  ];
  for (const [key, ok, why] of unsupported) if (!ok(c[key])) throw new Error(`${file}: ${why} (${JSON.stringify(key)}: ${JSON.stringify(c[key])})`);
  if (typeof c.r !== 'number' || !Number.isInteger(c.r) || c.r < 1) throw bad('r', 'must be a positive integer');
  if (typeof c.lora_alpha !== 'number' || !(c.lora_alpha > 0)) throw bad('lora_alpha', 'must be a number > 0');
  const dropout = c.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || dropout < 0 || dropout >= 1) throw bad('lora_dropout', 'must be a number in [0, 1)');
  let targets: string[];
  if (typeof c.target_modules === 'string') {
    // PEFT reads a string as a regular expression (full match), except the all-linear shorthand.
    if (c.target_modules.toLowerCase() !== 'all-linear') throw bad('target_modules', 'as a regular expression is not supported (give a list of module names)');
    targets = ['all-linear'];
  } else if (Array.isArray(c.target_modules) && c.target_modules.length > 0 && c.target_modules.every((t) => typeof t === 'string' && t !== '')) {
    targets = [...(c.target_modules as string[])].sort();
  } else {
    throw bad('target_modules', 'must be a list of module names or "all-linear"');
  }
  const base = c.base_model_name_or_path;
  if (base !== undefined && base !== null && typeof base !== 'string') throw bad('base_model_name_or_path', 'must be a string or null');
  return {
    base_model_name_or_path: (base as string | null | undefined) ?? null,
    r: c.r,
    lora_alpha: c.lora_alpha,
    lora_dropout: dropout,
    target_modules: targets,
    use_rslora: c.use_rslora === true,
  };
}

/**
 * Why `r` cannot be a LoRA rank for this model, or undefined. Every linear LoRA adapts has
 * hidden_size as its input or output width, so B·A (out × r times r × in) has rank at most
 * hidden_size: a larger r adds parameters (r · (in + out) a linear) and nothing they can express.
 * Checked before the adapters are allocated: a hostile r (3,000,000) would otherwise ask for
 * terabytes, and the process would be killed with no message.
 */
export function loraRankProblem(r: number, config: Pick<ModelConfig, 'hidden_size'>): string | undefined {
  if (r <= config.hidden_size) return undefined;
  return `r=${r} is larger than the model's hidden size ${config.hidden_size}, the most rank an adapter of it can have`;
}

/**
 * Checks an adapter file's tensors against its config's r before anything is allocated: lora_A
 * is [r, in] and lora_B [out, r] (the widths against the model's linears are checked by the
 * engine on load, once the adapters, bounded by r, exist).
 */
function checkAdapterRanks(file: string, tensors: readonly TensorSpec[], r: number): void {
  for (const t of tensors) {
    const rankDim = t.name.endsWith('.lora_A.weight') ? 0 : t.name.endsWith('.lora_B.weight') ? 1 : -1;
    if (rankDim < 0) continue; // a stray tensor is named after the adapters exist
    if (t.shape.length !== 2 || t.shape[rankDim] !== r) {
      const want = rankDim === 0 ? `[${r}, in]` : `[out, ${r}]`;
      throw new Error(`${file}: tensor "${t.name}" has shape [${t.shape.join(', ')}]; adapter_config.json's r=${r} makes it ${want}`);
    }
  }
}

/** Adds adapters shaped as `dir`'s adapter_config.json says to `model` and loads its weights. */
export async function loadAdapter(model: Model, dir: string, opts: { dropout?: number } = {}): Promise<AdapterConfig> {
  const cfg = readAdapterConfig(dir);
  const file = path.join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(file)) {
    const bin = existsSync(path.join(dir, 'adapter_model.bin')) ? ' (found adapter_model.bin: save it with safe_serialization=True)' : '';
    throw new Error(`${dir}: no ${ADAPTER_WEIGHTS}${bin}`);
  }
  const rank = loraRankProblem(cfg.r, model.config);
  if (rank) throw new Error(`${path.join(dir, ADAPTER_CONFIG)}: "r": ${rank}`);
  const header = readSafetensorsHeader(file);
  checkAdapterRanks(file, header.tensors, cfg.r);
  await model.addLora({
    r: cfg.r,
    alpha: cfg.lora_alpha,
    dropout: opts.dropout ?? cfg.lora_dropout,
    targetModules: cfg.target_modules,
    rslora: cfg.use_rslora,
  });
  // PEFT saves an adapter named other than "default" with the same keys (the name is dropped).
  const expected = new Map(model.adapterParams().map((p) => [p.name, p]));
  const unexpected = header.tensors.filter((t) => !expected.has(t.name)).map((t) => t.name);
  if (unexpected.length > 0) {
    throw new Error(`${file}: tensors this model's adapters (${cfg.target_modules.join(', ')}) have no place for: ${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ` and ${unexpected.length - 5} more` : ''}`);
  }
  await model.loadAdapters(header.tensors);
  return cfg;
}

/** adapter_config.json as PEFT writes it for these adapters. */
export function adapterConfigJson(lora: Pick<LoraSection, 'r' | 'alpha' | 'dropout' | 'rslora'>, targetModules: readonly string[], baseModel: string): Record<string, unknown> {
  return {
    task_type: 'CAUSAL_LM',
    peft_type: 'LORA',
    base_model_name_or_path: baseModel,
    revision: null,
    inference_mode: true,
    r: lora.r,
    target_modules: [...targetModules].sort(),
    lora_alpha: lora.alpha,
    lora_dropout: lora.dropout,
    fan_in_fan_out: false,
    bias: 'none',
    use_rslora: lora.rslora,
    modules_to_save: null,
    init_lora_weights: true,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    use_dora: false,
    lora_bias: false,
  };
}

/** The adapted modules' leaf names (q_proj, ...) from the adapters' PEFT keys. */
export function adaptedModuleNames(model: Model): string[] {
  const names = new Set<string>();
  for (const p of model.adapterParams()) {
    const m = /\.([^.]+)\.lora_A\.weight$/.exec(p.name);
    if (m) names.add(m[1]!);
  }
  return [...names].sort();
}

/**
 * Writes adapter_model.safetensors (fp32, PEFT's keys) and adapter_config.json into `dir`, each
 * file atomically. `baseModel` goes into base_model_name_or_path (what PEFT and rpo load under it).
 */
export async function saveAdapter(
  model: Model,
  dir: string,
  opts: { lora: Pick<LoraSection, 'r' | 'alpha' | 'dropout' | 'rslora'>; baseModel: string },
): Promise<void> {
  const params = model.adapterParams();
  if (params.length === 0) throw new Error('saveAdapter: the model has no LoRA adapters');
  mkdirSync(dir, { recursive: true });
  const { header } = buildSafetensorsHeader(params);
  await model.save(path.join(dir, ADAPTER_WEIGHTS), header, params.map((p) => p.name));
  const config = adapterConfigJson(opts.lora, adaptedModuleNames(model), opts.baseModel);
  writeFileAtomic(path.join(dir, ADAPTER_CONFIG), [Buffer.from(JSON.stringify(config, null, 2) + '\n')]);
}
