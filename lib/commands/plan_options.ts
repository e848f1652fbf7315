// `rpo plan`'s own options, declared once: yargs shows them in --help (lib/cli.ts) and
// splitPlanArgs (lib/commands/plan.ts) takes them out of the arguments by this table, leaving the
// rest, as typed, to be read as Hydra overrides (yargs would reparse their values).
import type { OptionTable } from './options.js';

export const PLAN_OPTIONS = {
  precision: { type: 'string', describe: 'fp32 | bf16-pure | bf16-mixed | bf16-sr (default: the config\'s precision, else bf16-mixed on CUDA, fp32 with device=cpu)' },
  'world-size': { type: 'string', describe: 'devices sharing the batch; > 1: ZeRO sharding by --zero (default 1)' },
  zero: { type: 'string', describe: 'ZeRO stage with world size > 1: 0 nothing sharded; 1 optimizer state and master weights (default); 2 gradients too; 3 weights too (gathered per layer)' },
  'device-memory': { type: 'string', describe: 'device size, e.g. 80GB (10^9) or 80GiB (2^30) (default 80GiB)' },
  'activation-checkpointing': { type: 'string', describe: 'true | false (default: model.activation_checkpointing)' },
  json: { type: 'boolean', describe: 'print the numbers as JSON (bytes)' },
  table: { type: 'boolean', describe: 'a markdown table over precisions × world sizes (--world-size 1,2,8) × checkpointing off/on' },
} as const satisfies OptionTable;
