// What ZeRO-3 does not train yet, refused from the config alone: by `rpo launch` before it starts
// any rank, and by each rank (started by torchrun or a scheduler) before it connects or reads any
// data. Stages 0 to 2 train every loss, LoRA included (docs/distributed.md).
import { ConfigError } from '../config/errors.js';
import type { RunConfig } from '../config/index.js';
import { lossHasValueHead } from '../loss/table.js';

/**
 * ZeRO-3 (RPO_ZERO=3 / --zero 3) shards the decoder layers of the policy and the reference.
 * - Every forward gathers its layers from all ranks, so ranks must run the same forwards; sampling
 *   during evaluation gives each rank its own prompts and lengths.
 * - LoRA's frozen base and ppo's value head sit outside the sharded units, and their gradient
 *   paths (the adapters' sync, the head's all-reduce) are stage 0–2's.
 * Each is refused (exit 2) with the stage that trains it.
 */
export function refuseUnsupportedZero3(config: RunConfig, zero: number): void {
  if (zero !== 3) return;
  if (config.sample_during_eval) throw new ConfigError('sample_during_eval=true with ZeRO-3 (--zero 3): sampling from sharded parameters is not supported yet; use --zero 2 or sample_during_eval=false');
  if (config.lora.enabled) throw new ConfigError('lora.enabled=true with ZeRO-3 (--zero 3): sharding a LoRA model is not supported yet; use --zero 2 (the adapters and their state are sharded there)');
  if (lossHasValueHead(config.loss.name)) throw new ConfigError(`loss=${config.loss.name} with ZeRO-3 (--zero 3): sharding a model with a value head is not supported yet; use --zero 2`);
}
