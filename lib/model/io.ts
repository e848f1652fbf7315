// HF-format model directories <-> engine models: config.json + safetensors (single file or
// shards + index), exactly the layout transformers' save_pretrained writes and reads.
import { mkdirSync } from 'node:fs';
import path from 'node:path';

import { Model, type Dtype, type InitOptions } from '../native.js';
import { loadHfConfig, modelConfigToHf, type HfConfigExtras } from './config.js';
import { DEFAULT_MAX_SHARD_BYTES, SINGLE_FILE, checkTensorsAgainstParams, resolveCheckpoint } from './safetensors.js';
import { writeFileAtomic } from '../util/files.js';

export { DEFAULT_MAX_SHARD_BYTES };

export interface LoadModelOptions {
  dtype?: Dtype;
  device?: string;
}

/** Loads `<dir>/config.json` and its safetensors weights into a new engine model. */
export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<Model> {
  const config = loadHfConfig(dir);
  const { tensors } = resolveCheckpoint(dir);
  // No random init: every weight is overwritten by the checkpoint (load checks that all are).
  const init: InitOptions = { dtype: options.dtype ?? 'float32', device: options.device ?? 'cpu', init: false };
  const model = await Model.create(config, init);
  try {
    const { load } = checkTensorsAgainstParams(tensors, model.params(), {
      tieWordEmbeddings: config.tie_word_embeddings,
      file: path.join(dir, SINGLE_FILE),
    });
    await model.load(load);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return model;
}

export interface SaveModelOptions {
  maxShardBytes?: number;
  /** Token ids written into config.json (transformers reads them from there). */
  configExtras?: HfConfigExtras;
}

/**
 * Writes config.json and the weights (model.safetensors, or shards + index above
 * maxShardBytes, as transformers' save_pretrained writes them) into `dir`, each file
 * atomically, the index after the shards. Tensor names are the HF checkpoint keys.
 */
export async function saveModel(model: Model, dir: string, options: SaveModelOptions = {}): Promise<void> {
  mkdirSync(dir, { recursive: true });
  // The engine lays the files out and streams each tensor as the writer reaches it.
  await model.saveSafetensors(dir, options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES);
  const hf = modelConfigToHf(model.config, model.dtype, options.configExtras ?? {});
  writeFileAtomic(path.join(dir, 'config.json'), [Buffer.from(JSON.stringify(hf, null, 2) + '\n')]);
}
