// The LoRA side of a training run (docs/lora.md): the policy is the base model plus adapters
// (fresh, from lora.from, or from the checkpoint being resumed), only the adapters train, the
// reference is the same base with the adapters off, and checkpoints are PEFT adapter directories.
import { existsSync } from 'node:fs';
import path from 'node:path';

import { ConfigError, type LoraSection, type RunConfig } from '../config/index.js';
import { loadModel, type LoadModelOptions } from '../model/io.js';
import { loadAdapter, loraOptions, loraRankProblem } from '../model/lora.js';
import type { Model } from '../native.js';

/** The adapters a policy carries: what adapter_config.json records. */
export type AdapterShape = Pick<LoraSection, 'r' | 'alpha' | 'dropout' | 'rslora'>;

/**
 * base_model_name_or_path for the adapters of a run: the weights' absolute path when they are a
 * local directory, else the hub id (both what `rpo eval` and PEFT's AutoPeftModel resolve).
 */
export function adapterBaseModel(config: Pick<RunConfig, 'model'>): string {
  const weights = config.model.load_from ?? config.model.name_or_path;
  const local = path.resolve(weights);
  return existsSync(local) ? local : weights;
}

/**
 * The base model from `modelDir` with adapters: the checkpoint's when resuming (`resumeFrom` is
 * an adapter directory), else lora.from's, else fresh ones drawn from the run's seed.
 */
export async function loadLoraPolicy(
  config: Pick<RunConfig, 'lora' | 'seed'>,
  modelDir: string,
  resumeFrom: string | null,
  options: LoadModelOptions,
): Promise<{ policy: Model; shape: AdapterShape }> {
  const policy = await loadModel(modelDir, options);
  try {
    const from = resumeFrom ?? config.lora.from;
    if (from) {
      // A saved adapter's own r, alpha and targets; the run's dropout (PEFT saves the one it trained with).
      const cfg = await loadAdapter(policy, from, { dropout: config.lora.dropout });
      return { policy, shape: { r: cfg.r, alpha: cfg.lora_alpha, dropout: config.lora.dropout, rslora: cfg.use_rslora } };
    }
    const rank = loraRankProblem(config.lora.r, policy.config);
    if (rank) throw new ConfigError(`lora.r: ${rank}`);
    await policy.addLora(loraOptions(config.lora, config.seed));
    return { policy, shape: config.lora };
  } catch (err) {
    policy.dispose();
    throw err;
  }
}
