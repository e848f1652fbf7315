// How many devices a run needs: the fewest ranks over which the planner (estimate.ts) fits the run
// at some micro-batch, for each ZeRO stage. The README's 30B / 65B table is this, printed by
// scripts/plan-devices.mjs; nothing here reads files.
import { ZERO_STAGES, type ZeroStage } from '../parallel/zero_stages.js';
import { divisorsOf, largestFittingMicroBatch, type PlanInputs } from './estimate.js';

export interface DeviceCount {
  worldSize: number;
  /** The largest micro-batch that fits there: pairs per device and accumulation steps. */
  pairs: number;
  gradientAccumulationSteps: number;
  required: number;
  /** The batch_size it fits at: the run's, or (past it) one pair per device, devices × 1. */
  batchSize: number;
}

/** How far past the run's batch the search goes: world sizes doubling up to this. */
export const MAX_WORLD_SIZE = 1024;

/**
 * The fewest devices that fit the run: first with its batch_size (the world size divides it, the
 * accumulation steps are what the planner picks); when even batch_size devices do not fit, with
 * one pair per device on 2, 4, ... times as many (a larger batch: batch_size = devices), up to
 * MAX_WORLD_SIZE. null: none fits. `inputs` gives everything but the world size and accumulation.
 */
export function fewestDevices(inputs: PlanInputs): DeviceCount | null {
  if (inputs.deviceBytes === null) return null;
  for (const worldSize of divisorsOf(inputs.batchSize)) {
    const fit = largestFittingMicroBatch({ ...inputs, worldSize, gradientAccumulationSteps: 1 });
    if (fit) return { worldSize, ...fit, batchSize: inputs.batchSize };
  }
  for (let worldSize = 2 * inputs.batchSize; worldSize <= MAX_WORLD_SIZE; worldSize *= 2) {
    const fit = largestFittingMicroBatch({ ...inputs, batchSize: worldSize, worldSize, gradientAccumulationSteps: 1 });
    if (fit) return { worldSize, ...fit, batchSize: worldSize };
  }
  return null;
}

export interface DeviceTableModel {
  /** What the row says: the config name and the parameters, e.g. "llama65b (65.3 B)". */
  label: string;
  /** The run's inputs at each precision (world size and accumulation steps are searched). */
  inputs: (precision: PlanInputs['precision'], zeroStage: ZeroStage) => PlanInputs;
}

/** A markdown table: one row per model × precision, one column per ZeRO stage: the fewest devices. */
export function deviceTable(models: readonly DeviceTableModel[], precisions: readonly PlanInputs['precision'][]): string {
  const gib = (b: number): string => (b / 2 ** 30).toFixed(1);
  const out = [
    `| model | precision | ${ZERO_STAGES.map((z) => `ZeRO-${z}`).join(' | ')} |`,
    `|---|---|${ZERO_STAGES.map(() => '---|').join('')}`,
  ];
  for (const m of models) {
    for (const precision of precisions) {
      const cells = ZERO_STAGES.map((z) => {
        const x = m.inputs(precision, z);
        const n = fewestDevices(x);
        if (!n) return `none up to ${MAX_WORLD_SIZE}`;
        const batch = n.batchSize === x.batchSize ? '' : `, batch_size ${n.batchSize}`;
        return `**${n.worldSize}** (${n.pairs} pair${n.pairs === 1 ? '' : 's'} a device, gas ${n.gradientAccumulationSteps}${batch}: ${gib(n.required)} GiB)`;
      });
      out.push(`| ${m.label} | ${precision} | ${cells.join(' | ')} |`);
    }
  }
  return out.join('\n');
}
