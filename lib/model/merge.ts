// A LoRA adapter merged into its base (`rpo merge <adapter dir> --out DIR`): W + scaling · B A,
// written as an HF model directory transformers and vLLM load as is:
// config.json, safetensors, generation_config.json and the tokenizer files.
//
// - --out may not be, lie inside or contain the adapter or the base model directory (a usage
//   error naming both): --overwrite there used to delete what the merge reads.
// - The output is built in a temp directory beside --out and moved into place; --overwrite
//   replaces only the files rpo wrote there (lib/util/out_dir.ts), never a user's other files.
// - Weights that are not finite are refused, naming the tensor, and nothing is written: a NaN in
//   the adapter, or a merge that overflows (a huge lora_alpha / r).
import { copyFileSync, existsSync, rmSync } from 'node:fs';
import path from 'node:path';

import type { Dtype } from '../native.js';
import { firstNonFinite, firstNonFiniteOf, type NonFinite } from './finite.js';
import { TOKENIZER_FILES, isModelDirName } from './init.js';
import { saveModel } from './io.js';
import { ADAPTER_WEIGHTS, isAdapterDir, readAdapterConfig } from './lora.js';
import { adapterBaseDir, configDtype, configTokenIds, loadPolicyModel } from './policy.js';
import { readSafetensorsHeader } from './safetensors.js';
import { installOutDir, prepareOutDir, tempOutDir } from '../util/out_dir.js';
import { overlapMessage } from '../util/paths.js';
import { UsageError } from '../util/usage_error.js';

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

/** A UsageError when --out overlaps `input`. */
function refuseOverlap(out: string, input: { what: string; path: string }): void {
  const overlap = overlapMessage({ what: '--out', path: out }, [input]);
  if (overlap !== null) throw new UsageError(`rpo merge: ${overlap}: rpo writes the merged model into --out (and --overwrite removes files there), which must not touch what it reads; choose another --out`);
}

function nonFiniteText(bad: NonFinite): string {
  return `tensor "${bad.tensor}" in ${bad.file} has ${bad.value} at element ${bad.index}`;
}

export async function mergeAdapter(adapterDir: string, o: MergeOptions): Promise<string> {
  if (!isAdapterDir(adapterDir)) throw new Error(`rpo merge: ${adapterDir} is not a PEFT adapter directory (no adapter_config.json)`);
  refuseOverlap(o.out, { what: 'the adapter', path: adapterDir });
  const prepared = prepareOutDir(o.out, { overwrite: o.overwrite ?? false, flag: '--overwrite', claims: isModelDirName });
  const baseDir = await adapterBaseDir(adapterDir, o.base);
  refuseOverlap(o.out, { what: 'the base model', path: baseDir });
  const adapterFile = path.join(adapterDir, ADAPTER_WEIGHTS);
  if (existsSync(adapterFile)) {
    const bad = firstNonFiniteOf(readSafetensorsHeader(adapterFile).tensors);
    if (bad !== null) throw new Error(`rpo merge: the adapter is not finite: ${nonFiniteText(bad)}; nothing was written`);
  }
  const dtype = o.dtype ?? configDtype(baseDir);
  o.onMessage?.(`merging ${adapterDir} into ${baseDir} (${dtype})`);
  const { model } = await loadPolicyModel(adapterDir, { base: o.base, dtype });
  const tmp = tempOutDir(prepared);
  try {
    await model.mergeLora();
    await saveModel(model, tmp, { configExtras: configTokenIds(baseDir) });
    // A finite adapter can still overflow the merged weights (scaling = lora_alpha / r).
    const bad = firstNonFinite(tmp);
    if (bad !== null) {
      const cfg = readAdapterConfig(adapterDir);
      throw new Error(
        `rpo merge: the merged weights are not finite: ${nonFiniteText(bad).replace(tmp, prepared.dir)} ` +
          `(the adapter's scaling is lora_alpha ${cfg.lora_alpha} / ${cfg.use_rslora ? `sqrt(r ${cfg.r})` : `r ${cfg.r}`}, in ${dtype}); nothing was written`,
      );
    }
    // The adapter directory's tokenizer and generation config (a checkpoint carries them), else the base's.
    for (const name of CARRIED) {
      const src = [adapterDir, baseDir].map((d) => path.join(d, name)).find((f) => existsSync(f));
      if (src) copyFileSync(src, path.join(tmp, name));
    }
    const notice = installOutDir(tmp, prepared, isModelDirName);
    if (notice !== null) o.onMessage?.(notice);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    model.dispose();
  }
  return prepared.dir;
}
