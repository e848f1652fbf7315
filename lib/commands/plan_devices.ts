// The README's table of how many 80 GB GPUs the seed's largest configs need (llama30b, llama65b),
// computed by the planner from those configs, so the README has one author:
// scripts/plan-devices.mjs prints it or writes it between the README's markers, and
// test/unit/plan_devices.test.ts fails when the README's copy differs.
import { deviceTable } from '../plan/devices.js';
import { parameterCounts, type Precision } from '../plan/estimate.js';
import { ConfigError } from '../config/index.js';
import { DEFAULT_DEVICE_MEMORY, loadPlanConfig } from './plan.js';
import { parseMemorySize } from '../plan/estimate.js';

/** The seed's configs the table covers: each as `model=<name>`, with its batch_size and accumulation. */
export const DEVICE_TABLE_MODELS = ['llama30b', 'llama65b'] as const;
export const DEVICE_TABLE_PRECISIONS: readonly Precision[] = ['fp32', 'bf16-pure', 'bf16-mixed'];
/** The loss planned: RDPO with its live bf16 reference model (the seed's setting). */
export const DEVICE_TABLE_LOSS = 'rdpo';

export const README_BEGIN = '<!-- rpo plan devices: begin (scripts/plan-devices.mjs writes this table) -->';
export const README_END = '<!-- rpo plan devices: end -->';

/** The table, with activation checkpointing on, on devices of DEFAULT_DEVICE_MEMORY (80 GiB). */
export function seedDeviceTable(): string {
  const deviceBytes = parseMemorySize(DEFAULT_DEVICE_MEMORY);
  const models = DEVICE_TABLE_MODELS.map((name) => {
    const loaded = loadPlanConfig([`loss=${DEVICE_TABLE_LOSS}`, `model=${name}`]);
    if ('cfg' in loaded) throw new ConfigError('unexpected --cfg');
    const m = loaded.config.model;
    const params = parameterCounts(loaded.inputs('fp32', 1, true, { zeroStage: 0, deviceBytes }).shape).total;
    return {
      label: `${name} (${(params / 1e9).toFixed(1)} B; batch_size ${m.batch_size}, max_length ${m.max_length})`,
      inputs: (precision: Precision, zeroStage: 0 | 1 | 2 | 3) => loaded.inputs(precision, 1, true, { zeroStage, deviceBytes }),
    };
  });
  return deviceTable(models, DEVICE_TABLE_PRECISIONS);
}

/** The README block between the markers (the markers included). */
export function readmeDeviceBlock(): string {
  return `${README_BEGIN}\n${seedDeviceTable()}\n${README_END}`;
}
