// A policy directory as rpo's commands take it: an HF model directory, or a PEFT adapter
// directory (adapter_config.json + adapter_model.safetensors) whose base is resolved from
// adapter_config.json's base_model_name_or_path (a local directory or a hub id).
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { resolveModelDir } from '../hub/index.js';
import type { Model } from '../native.js';
import type { HfConfigExtras } from './config.js';
import { loadModel, type LoadModelOptions } from './io.js';
import { isAdapterDir, loadAdapter, readAdapterConfig } from './lora.js';

/** The base model directory of an adapter directory (`base` overrides adapter_config.json's). */
export async function adapterBaseDir(adapterDir: string, base?: string): Promise<string> {
  const name = base ?? readAdapterConfig(adapterDir).base_model_name_or_path;
  if (!name) throw new Error(`${path.join(adapterDir, 'adapter_config.json')}: base_model_name_or_path is null; name the base model (model.name_or_path, or --base for rpo merge)`);
  return resolveModelDir(name, { tokenizer: false });
}

/**
 * Loads `dir` as a policy: an HF model directory as is, an adapter directory as its base plus the
 * adapters (on: generation and log-probs use them). Returns the model and the directory its base
 * weights came from.
 */
export async function loadPolicyModel(dir: string, options: LoadModelOptions & { base?: string } = {}): Promise<{ model: Model; baseDir: string; adapter: boolean }> {
  if (!isAdapterDir(dir)) return { model: await loadModel(dir, options), baseDir: dir, adapter: false };
  const baseDir = await adapterBaseDir(dir, options.base);
  const model = await loadModel(baseDir, options);
  try {
    await loadAdapter(model, dir);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return { model, baseDir, adapter: true };
}

/** bos / eos / pad token ids from a model directory's config.json (what saveModel writes back). */
export function configTokenIds(dir: string): HfConfigExtras {
  try {
    const c = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const id = (v: unknown) => (typeof v === 'number' || v === null ? v : Array.isArray(v) && v.every((x) => typeof x === 'number') ? (v as number[]) : undefined);
    const out: HfConfigExtras = {};
    const bos = id(c.bos_token_id);
    const eos = id(c.eos_token_id);
    const pad = id(c.pad_token_id);
    if (bos !== undefined && !Array.isArray(bos)) out.bos_token_id = bos;
    if (eos !== undefined) out.eos_token_id = eos;
    if (pad !== undefined && !Array.isArray(pad)) out.pad_token_id = pad;
    return out;
  } catch {
    return {};
  }
}

/** The dtype a model directory's config.json records (dtype, or torch_dtype), float32 when none. */
export function configDtype(dir: string): 'float32' | 'bfloat16' | 'float16' {
  try {
    const c = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const d = c.dtype ?? c.torch_dtype;
    return d === 'bfloat16' || d === 'float16' ? d : 'float32';
  } catch {
    return 'float32';
  }
}
