// `rpo plan [overrides..]`: the per-device memory budget of a training run, from its config (the
// same Hydra-style overrides as `rpo train`) and the model's shape, without loading or
// downloading weights. The arithmetic is lib/plan/estimate.ts; docs/memory.md explains it.
import { ConfigError, engineOptimizer, formatConfig, loadConfigFromArgv, lossUsesReference, type RunConfig } from '../config/index.js';
import { estimateLoraPlan, formatLoraPlan } from '../plan/lora.js';
import {
  CPU_HEADROOM,
  CUDA_HEADROOM,
  PRECISIONS,
  dtypeBytes,
  estimatePlan,
  largestFittingMicroBatch,
  lossRowGroups,
  parseMemorySize,
  shapeOf,
  type PlanInputs,
  type Precision,
} from '../plan/estimate.js';
import { formatPlan, formatTable, planJson, type PlanContext, type TableRow } from '../plan/format.js';
import { resolveModelShape, type Shape } from '../plan/models.js';
import { lossHasValueHead, lossIsUnpaired } from '../loss/table.js';
import { ZERO_RULES, parseZeroStage, type ZeroStage } from '../parallel/zero_stages.js';
import type { OptionTable } from './options.js';
import { PLAN_OPTIONS } from './plan_options.js';

export interface PlanOptions {
  /** null: the config's `precision` key, else auto. In --table mode a list. */
  precisions: Precision[] | null;
  worldSizes: number[];
  deviceBytes: number | null;
  /** null: the config's model.activation_checkpointing. */
  activationCheckpointing: boolean | null;
  /** What is sharded when world size > 1 (lib/parallel/zero_stages.ts). */
  zeroStage: ZeroStage;
  json: boolean;
  table: boolean;
}

export const DEFAULT_DEVICE_MEMORY = '80GiB';
/** The stage planned when --zero is not given: ZeRO-1 (with world size 1 nothing is sharded anyway). */
export const DEFAULT_ZERO_STAGE: ZeroStage = 1;

/** The options as typed: PLAN_OPTIONS', and --no-activation-checkpointing (= --activation-checkpointing=false). */
const FLAGS: readonly string[] = [...Object.keys(PLAN_OPTIONS).map((k) => `--${k}`), '--no-activation-checkpointing'];

/** A switch: present or not, never given a value. */
function isSwitch(flag: string): boolean {
  return flag === '--no-activation-checkpointing' || (PLAN_OPTIONS as OptionTable)[flag.slice(2)]?.type === 'boolean';
}

function parsePrecisions(v: string, list: boolean): Precision[] {
  const names = v === 'all' && list ? [...PRECISIONS] : v.split(',').map((s) => s.trim());
  if (!list && names.length !== 1) throw new ConfigError(`--precision takes one of ${PRECISIONS.join(', ')} (a list, or all, only with --table)`);
  for (const n of names) {
    if (!(PRECISIONS as readonly string[]).includes(n)) throw new ConfigError(`--precision: expected ${PRECISIONS.join(', ')}${list ? ' or all' : ''}, got ${JSON.stringify(n)}`);
  }
  return names as Precision[];
}

function parseWorldSizes(v: string, list: boolean): number[] {
  const parts = v.split(',').map((s) => s.trim());
  if (!list && parts.length !== 1) throw new ConfigError('--world-size takes one number (a list only with --table)');
  return parts.map((s) => {
    if (!/^\d+$/.test(s) || Number(s) < 1) throw new ConfigError(`--world-size: expected a whole number ≥ 1, got ${JSON.stringify(s)}`);
    return Number(s);
  });
}

/**
 * Splits `rpo plan`'s own options from the Hydra overrides after the command. Options take
 * `--opt value` or `--opt=value`; everything else is passed on as typed.
 */
export function splitPlanArgs(args: readonly string[]): { options: PlanOptions; hydra: string[] } {
  const raw = new Map<string, string>();
  const hydra: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.indexOf('=');
    const flag = eq === -1 ? a : a.slice(0, eq);
    if (!FLAGS.includes(flag)) {
      hydra.push(a);
      continue;
    }
    if (isSwitch(flag)) {
      if (eq !== -1) throw new ConfigError(`${flag} takes no value`);
      raw.set(flag, 'true');
      continue;
    }
    if (flag === '--activation-checkpointing') {
      const v = eq === -1 ? 'true' : a.slice(eq + 1);
      if (v !== 'true' && v !== 'false') throw new ConfigError(`--activation-checkpointing: expected true or false, got ${JSON.stringify(v)}`);
      raw.set(flag, v);
      continue;
    }
    let value = eq === -1 ? args[i + 1] : a.slice(eq + 1);
    if (eq === -1) i++;
    if (value === undefined || value === '') throw new ConfigError(`${flag} needs a value`);
    raw.set(flag, value);
  }
  const table = raw.has('--table');
  let deviceBytes: number | null;
  try {
    deviceBytes = parseMemorySize(raw.get('--device-memory') ?? DEFAULT_DEVICE_MEMORY);
  } catch (e) {
    throw new ConfigError(`--device-memory: ${(e as Error).message}`);
  }
  let zeroStage: ZeroStage;
  try {
    zeroStage = parseZeroStage(raw.get('--zero') ?? String(DEFAULT_ZERO_STAGE), '--zero');
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  let activationCheckpointing: boolean | null = null;
  if (raw.has('--activation-checkpointing')) activationCheckpointing = raw.get('--activation-checkpointing') === 'true';
  if (raw.has('--no-activation-checkpointing')) activationCheckpointing = false;
  const p = raw.get('--precision');
  return {
    options: {
      precisions: p === undefined ? (table ? [...PRECISIONS] : null) : parsePrecisions(p, table),
      worldSizes: parseWorldSizes(raw.get('--world-size') ?? (table ? '1,2,8' : '1'), table),
      deviceBytes,
      activationCheckpointing,
      zeroStage,
      json: raw.has('--json'),
      table,
    },
    hydra,
  };
}

/** The config's `precision` key when it names a mode (auto, or no key: null). */
function configPrecision(config: RunConfig, raw: Record<string, unknown>): Precision | null {
  const v = (config as { precision?: unknown }).precision ?? raw.precision;
  if (typeof v !== 'string') return null;
  const name = v.replace(/_/g, '-');
  return (PRECISIONS as readonly string[]).includes(name) ? (name as Precision) : null;
}

/** Makes a config loadable without a dataset or run name: the planner reads neither. */
function withPlaceholders(hydra: readonly string[]): string[] {
  if (hydra.some((a) => a.startsWith('--config-path'))) return [...hydra];
  const given = (key: string): boolean => hydra.some((a) => new RegExp(`^\\+{0,2}${key}=`).test(a));
  return [...(given('exp_name') ? [] : ['exp_name=plan']), ...(given('datasets') ? [] : ['datasets=[plan]']), ...hydra];
}

export interface PlanRun {
  text: string;
  json: unknown;
}

/** Builds the plan (or the table) for the arguments after `plan`; throws ConfigError on usage errors. */
export function planFromArgs(args: readonly string[]): PlanRun | { cfg: string } {
  const { options, hydra } = splitPlanArgs(args);
  return planFor(options, hydra);
}

/** The plan (or the table) for plan options and the Hydra overrides that pick the run. */
function planFor(options: PlanOptions, hydra: readonly string[]): PlanRun | { cfg: string } {
  const loaded = loadPlanConfig(hydra);
  if ('cfg' in loaded) return loaded;
  const { config, resolved, device } = loaded;
  const fromConfig = loaded.configPrecision;
  const auto: Precision = device === 'cpu' ? 'fp32' : 'bf16-mixed';
  const precisions = options.precisions ?? [fromConfig ?? auto];
  const precisionSource = options.precisions ? '--precision' : fromConfig ? 'the config\'s precision key' : `auto: ${device === 'cpu' ? 'fp32 on the CPU' : 'bf16-mixed on CUDA'}`;
  const checkpointing = options.activationCheckpointing ?? config.model.activation_checkpointing;
  const inputs = (precision: Precision, worldSize: number, ck: boolean): PlanInputs => loaded.inputs(precision, worldSize, ck, options);
  const ctx = (fitting: PlanContext['fitting']): PlanContext => ({
    loss: config.loss.name,
    modelSource: resolved.source,
    architecture: resolved.config.architecture,
    precisionSource,
    device,
    fitting,
  });

  const check = (inputs: PlanInputs): void => {
    // A token budget cuts the batch by tokens: no pair count to divide.
    if (inputs.tokensPerMicroBatch !== null && inputs.tokensPerMicroBatch !== undefined) return;
    if (!Number.isInteger(inputs.batchSize / (inputs.gradientAccumulationSteps * inputs.worldSize))) {
      throw new ConfigError(
        `model.batch_size ${inputs.batchSize} does not split into model.gradient_accumulation_steps ${inputs.gradientAccumulationSteps} × world size ${inputs.worldSize} micro-batches of whole pairs`,
      );
    }
  };

  if (options.table) {
    const rows: TableRow[] = [];
    for (const precision of precisions)
      for (const worldSize of options.worldSizes)
        for (const ck of [false, true]) {
          const x = inputs(precision, worldSize, ck);
          check(x);
          rows.push({ precision, worldSize, checkpointing: ck, plan: estimatePlan(x), fitting: largestFittingMicroBatch(x) });
        }
    const first = rows[0]!.plan;
    const head =
      `rpo plan --table: ${config.loss.name} on ${resolved.source}; batch_size ${config.model.batch_size}, max_length ${config.model.max_length}, ` +
      `chunk_tokens ${config.chunk_tokens}, ${first.inputs.optimizer}, ${device === 'cpu' ? 'CPU' : 'CUDA'} device of ${(options.deviceBytes! / 2 ** 30).toFixed(2)} GiB; ` +
      `reference model ${first.inputs.referenceBytes === null ? 'none' : `live (${config.model.reference_dtype})`}; ZeRO-${options.zeroStage} when world size > 1 (${ZERO_RULES[options.zeroStage].summary}); GiB per device`;
    return {
      text: `${head}\n\n${formatTable(rows)}`,
      json: rows.map((r) => ({ ...planJson(r.plan, ctx(r.fitting)) })),
    };
  }

  const x = inputs(precisions[0]!, options.worldSizes[0]!, checkpointing);
  check(x);
  const plan = estimatePlan(x);
  const c = ctx(largestFittingMicroBatch(x));
  if (config.lora.enabled) {
    // The LoRA budget beside the full fine-tuning one (lib/plan/lora.ts): no reference model.
    const full = estimatePlan({ ...x, referenceBytes: null });
    const lora = { r: config.lora.r, targetModules: config.lora.target_modules };
    const lp = estimateLoraPlan(full, lora, x.precision === 'fp32' ? 4 : 2);
    const text = formatPlan(plan, c) + '\n' + formatLoraPlan(lp, full, lora, x.precision === 'fp32' ? 'fp32' : 'bf16');
    return { text, json: { ...planJson(plan, c), lora: lp } };
  }
  return { text: formatPlan(plan, c), json: planJson(plan, c) };
}

/** A run's config and model shape, loaded once, and the estimator's inputs for any cell of its plan. */
export interface PlanConfig {
  config: RunConfig;
  resolved: ReturnType<typeof resolveModelShape>;
  device: 'cuda' | 'cpu';
  /** The config's `precision` key when it names a mode (auto, or no key: null). */
  configPrecision: Precision | null;
  inputs: (precision: Precision, worldSize: number, checkpointing: boolean, options: Pick<PlanOptions, 'zeroStage' | 'deviceBytes'>) => PlanInputs;
}

/** Loads the run the Hydra overrides pick (or, with --cfg, its printed config); usage errors as ConfigError. */
export function loadPlanConfig(hydra: readonly string[]): PlanConfig | { cfg: string } {
  const loaded = loadConfigFromArgv(withPlaceholders(hydra));
  for (const n of loaded.notices) console.error(`rpo: notice: ${n}`);
  if (loaded.args.cfg) return { cfg: formatConfig(loaded.raw) };
  const config = loaded.config;
  let resolved: ReturnType<typeof resolveModelShape>;
  try {
    resolved = resolveModelShape(config.model, loaded.choices.model ?? null);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const device: 'cuda' | 'cpu' = config.device === 'cpu' ? 'cpu' : 'cuda';
  return {
    config,
    resolved,
    device,
    configPrecision: configPrecision(config, loaded.raw as Record<string, unknown>),
    inputs: (precision, worldSize, ck, options) => planInputs(config, precision, worldSize, ck, options, device, resolved.config),
  };
}

/** The estimator's inputs for one cell of the plan: the config at a precision, world size and checkpointing. */
function planInputs(
  config: RunConfig,
  precision: Precision,
  worldSize: number,
  checkpointing: boolean,
  options: Pick<PlanOptions, 'zeroStage' | 'deviceBytes'>,
  device: 'cuda' | 'cpu',
  shape: Shape,
): PlanInputs {
  // Unpaired losses run their reference live whatever precompute_reference says (their KL rows are made per batch).
  const live = lossUsesReference(config.loss.name) && (!config.precompute_reference || lossIsUnpaired(config.loss.name));
  return {
    shape: shapeOf(shape),
    precision,
    optimizer: engineOptimizer(config).optimizer,
    batchSize: config.model.batch_size,
    gradientAccumulationSteps: config.model.gradient_accumulation_steps,
    tokensPerMicroBatch: config.model.tokens_per_micro_batch,
    worldSize,
    zeroStage: options.zeroStage,
    groups: lossRowGroups(config.loss),
    seqLen: config.model.max_length,
    checkpointing,
    chunkTokens: config.chunk_tokens,
    headPath: device === 'cpu' ? 'chunked' : 'cuda-kernel',
    referenceBytes: live ? dtypeBytes(config.model.reference_dtype) : null,
    // The engine builds an attention mask only where a sliding window cuts into the rows.
    masked: shape.sliding_window > 0 && shape.sliding_window < config.model.max_length,
    valueHead: lossHasValueHead(config.loss.name),
    headroom: device === 'cpu' ? CPU_HEADROOM : CUDA_HEADROOM,
    deviceBytes: options.deviceBytes,
  };
}

/** `rpo plan`: prints the budget (or --json, or --table); exit 0, or 2 on a usage error (thrown). */
export function runPlanCommand(args: readonly string[]): number {
  const { options, hydra } = splitPlanArgs(args);
  const out = planFor(options, hydra);
  if ('cfg' in out) {
    process.stdout.write(out.cfg);
    return 0;
  }
  console.log(options.json ? JSON.stringify(out.json, null, 2) : out.text);
  return 0;
}
