// What data-parallel training does not support yet, refused from the config alone: by `rpo launch`
// before it starts any rank, and by each rank (started by torchrun or a scheduler) before it
// connects or reads any data.
import { ConfigError } from '../config/errors.js';
import type { RunConfig } from '../config/index.js';
import { lossHasValueHead } from '../loss/table.js';

/** Throws a ConfigError (exit 2) when `config` cannot train data-parallel. */
export function refuseUnsupportedDataParallel(config: RunConfig): void {
  // ppo whitens its advantages over the batch and keeps a value head beside the policy: neither
  // the statistics nor the head's gradients are reduced across ranks yet.
  if (lossHasValueHead(config.loss.name)) throw new ConfigError(`loss=${config.loss.name} with rpo launch: data-parallel training with a value head is not supported yet; train it on one device`);
  // The gradient sync and ZeRO shard cover every parameter; adapters-only sharding is not built yet.
  if (config.lora.enabled) throw new ConfigError('lora.enabled=true with rpo launch: data-parallel LoRA training is not supported yet; train LoRA on one device');
}

/**
 * ZeRO-3 (RPO_ZERO=3 / --zero 3): every forward of the policy gathers its layers from all ranks,
 * so ranks must run the same forwards. Sampling during evaluation gives each rank its own prompts
 * and lengths: refused (exit 2) until generation gathers in lockstep.
 */
export function refuseUnsupportedZero3(config: RunConfig, zero: number): void {
  if (zero !== 3) return;
  if (config.sample_during_eval) throw new ConfigError('sample_during_eval=true with ZeRO-3 (--zero 3): sampling from sharded parameters is not supported yet; use --zero 2 or sample_during_eval=false');
}
