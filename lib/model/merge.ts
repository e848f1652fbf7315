// A LoRA adapter merged into its base (`rpo merge <adapter dir> --out DIR`): W + scaling · B A,
// written as an HF model directory transformers and vLLM load as is:
// config.json, safetensors, generation_config.json and the tokenizer files. The output is
// written into a temp directory and renamed into place.
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';

import type { Dtype } from '../native.js';
import { TOKENIZER_FILES } from './init.js';
import { saveModel } from './io.js';
import { isAdapterDir } from './lora.js';
import { adapterBaseDir, configDtype, configTokenIds, loadPolicyModel } from './policy.js';

// The tokenizer's files (those present) and the generation config travel with the merged model.
const CARRIED = ['generation_config.json', ...TOKENIZER_FILES];

export interface MergeOptions {
  out: string;
  /** The base model (a directory or hub id) instead of adapter_config.json's base_model_name_or_path. */
  base?: string;
  /** The merged weights' dtype; default the base's config.json dtype. */
  dtype?: Dtype;
  overwrite?: boolean;
  onMessage?: (m: string) => void;
}

export async function mergeAdapter(adapterDir: string, o: MergeOptions): Promise<string> {
  if (!isAdapterDir(adapterDir)) throw new Error(`rpo merge: ${adapterDir} is not a PEFT adapter directory (no adapter_config.json)`);
  const out = path.resolve(o.out);
  if (existsSync(out) && !o.overwrite) throw new Error(`rpo merge: ${out} exists (pass --overwrite to replace it)`);
  const baseDir = await adapterBaseDir(adapterDir, o.base);
  const dtype = o.dtype ?? configDtype(baseDir);
  o.onMessage?.(`merging ${adapterDir} into ${baseDir} (${dtype})`);
  const { model } = await loadPolicyModel(adapterDir, { base: o.base, dtype });
  const tmp = `${out}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  try {
    await model.mergeLora();
    mkdirSync(tmp, { recursive: true });
    await saveModel(model, tmp, { configExtras: configTokenIds(baseDir) });
    // The adapter directory's tokenizer and generation config (a checkpoint carries them), else the base's.
    for (const name of CARRIED) {
      const src = [adapterDir, baseDir].map((d) => path.join(d, name)).find((f) => existsSync(f));
      if (src) copyFileSync(src, path.join(tmp, name));
    }
    rmSync(out, { recursive: true, force: true });
    renameSync(tmp, out);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    model.dispose();
  }
  return out;
}
