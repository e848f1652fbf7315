// The one typed shape of a resolved run config, and its validation (run once, after
// composition and interpolation).
//
// validateConfig checks types and ranges and returns the typed RunConfig plus notices: lines
// the CLI prints about keys that were accepted but mean nothing here (the seed's FSDP, wandb,
// trainer-class keys ...) or that were mapped onto rpo's names (lambda_coef → lambda). Nothing
// here prints. Every error found is reported at once, one line each, in a single ConfigError.
//
// Keys the seed (HALOs, mid-2024) had and rpo maps:
//   loss.lambda_coef (slic)           → loss.lambda
//   loss.tau (ipo, later HALOs)       → loss.beta
//   loss.gamma (simpo, HALOs' name)   → loss.margin
//   loss.gamma_beta_ratio (simpo)     → loss.margin = ratio × beta
//   cache_reference_logprobs          → precompute_reference
//   optimizer: Adam                   → AdamW with weight decay 0 (the same update)
//   debug: true                       → no checkpoints and no final model are written
//   eval_every                        → rounded down to a multiple of model.batch_size, as
//                                       the seed's train.py did
// A seed alias wins over rpo's key when both are present: rpo's own files never contain the
// alias, so its presence means a user (or an old saved config) put it there.
import type { LossConfig, LossName, TrainPrecision } from '../native.js';
import { ConfigError, closest, suggestKey } from './errors.js';
import { LORA_KEYS, readLora, type LoraSection } from './lora.js';
import { allPaths } from './interpolate.js';
import { isMap, type ConfigMap, type ConfigValue } from './yaml.js';
import { LOSS_NAMES, RATIONALE_TERMS, lossDecl, lossParams, lossRationale, type RationaleTerm } from '../train/losses.js';

export type { LossName } from '../native.js';

// The losses and what each reads: lib/train/losses.ts (one table).
export { LOSS_NAMES, RATIONALE_TERMS, lossUsesReference, type RationaleTerm } from '../train/losses.js';
export const MODES = ['train', 'eval', 'sample', 'alpacaeval'] as const;
export const OPTIMIZERS = ['AdamW', 'RMSprop', 'Adam'] as const;
export const DTYPES = ['float32', 'bfloat16', 'float16'] as const;
export const TEMPLATES = ['prefixes', 'chat'] as const;
export const TRUNCATION_MODES = ['keep_end', 'keep_start'] as const;
export const RATIONALE_FORMS = ['code', 'paper'] as const;
/** How the policy trains (docs/precision.md); auto: bf16-mixed on CUDA, fp32 on the CPU. */
export const PRECISIONS = ['auto', 'fp32', 'bf16-pure', 'bf16-mixed', 'bf16-sr'] as const;
/** transformers' get_scheduler names rpo implements (null: the seed's warmup-then-constant). */
export const LR_SCHEDULER_TYPES = ['linear', 'cosine', 'constant_with_warmup'] as const;

export type Mode = (typeof MODES)[number];
export type Optimizer = (typeof OPTIMIZERS)[number];
export type Dtype = (typeof DTYPES)[number];
export type Template = (typeof TEMPLATES)[number];
export type TruncationMode = (typeof TRUNCATION_MODES)[number];
export type RationaleForm = (typeof RATIONALE_FORMS)[number];
export type Precision = (typeof PRECISIONS)[number];
export type LrSchedulerType = (typeof LR_SCHEDULER_TYPES)[number];
export type { TrainPrecision } from '../native.js';
export type { LoraSection } from './lora.js';

/** A dataset: a name (orcaratspec), a path, or a mapping the data layer validates (path + columns). */
export type DatasetRef = string | Readonly<Record<string, unknown>>;

export interface ModelSection {
  /** Hub id or local directory of the policy (and reference) weights. */
  name_or_path: string;
  /** null: the tokenizer of name_or_path. */
  tokenizer_name_or_path: string | null;
  /** A local model directory whose weights replace name_or_path's (e.g. an SFT run's output). */
  load_from: string | null;
  policy_dtype: Dtype;
  reference_dtype: Dtype;
  /** Gradient-norm clip; null or 0: no clipping. */
  max_grad_norm: number | null;
  /** Prompt + response tokens. */
  max_length: number;
  max_prompt_length: number;
  activation_checkpointing: boolean;
  /** Global batch (pairs per optimizer step). */
  batch_size: number;
  /** Micro-batches per optimizer step; divides batch_size. */
  gradient_accumulation_steps: number;
  /**
   * Rows per evaluation batch; for sampling, the slots decoded at once (continuous batching).
   * 'auto': sampling takes as many slots as fit in memory (lib/plan/generation.ts), loss
   * evaluation the training micro-batch (batch_size / gradient_accumulation_steps).
   */
  eval_batch_size: number | 'auto';
  // Seed keys with no effect in rpo (kept so a saved config reloads as it was):
  block_name: string | null;
  fsdp_policy_mp: string | null;
  v_head_max_grad_norm: number | null;
  use_flash_attention: boolean;
}

export interface LossSection {
  name: LossName;
  /** β; unused by sft. */
  beta: number;
  /** γ: the rationale weight (rdpo, rorpo, rorpo-simple, any paired loss with loss.rationale). */
  gamma: number | null;
  /** ε: cdpo's label-noise rate. */
  epsilon: number | null;
  /** λ: slic's NLL weight (the seed's lambda_coef). */
  lambda: number | null;
  /** simpo's target margin (the seed's gamma). */
  margin: number | null;
  /** rdpo's rationale term: 'code' −log σ(γ·π_r) (the seed's code), 'paper' −γ·π_r. */
  rationale_form: RationaleForm;
  /** The rationale term of dpo, cdpo, ipo, slic, simpo or orpo: none, logsigmoid −log σ(γ·π_r), linear −γ·π_r. */
  rationale: RationaleTerm;
  /** csft: the control tokens put after the prompt of a chosen / rejected response. */
  chosen_control_token: string | null;
  rejected_control_token: string | null;
  /** kto: the loss weights of desirable and undesirable examples. */
  desirable_weight: number | null;
  undesirable_weight: number | null;
  /** ppo (the seed's ppo.yaml): passes over a batch, ratio clip, GAE lambda, critic and KL weights. */
  ppo_epochs: number | null;
  cliprange: number | null;
  lam: number | null;
  critic_coef: number | null;
  KL_coef: number | null;
  /** Derived from the loss (docs/design.md's table); a differing user value is a notice. */
  use_reference_model: boolean;
  // Seed keys with no effect (the loss name picks the step and the data layout):
  trainer: string | null;
  dataloader: string | null;
}

export interface WandbSection {
  enabled: boolean;
  entity: string | null;
  project: string | null;
}

export interface RunConfig {
  seed: number;
  exp_name: string;
  datasets: DatasetRef[];
  mode: Mode;
  /** No checkpoints and no final model are written. */
  debug: boolean;
  cache_dir: string;
  /** Where the run's config, checkpoints and metrics go (default ${cache_dir}/${exp_name}). */
  local_run_dir: string;

  lr: number;
  n_epochs: number | null;
  n_examples: number | null;
  optimizer: Optimizer;
  warmup_steps: number;
  /** null: the seed's schedule, lr · min(1, (step + 1) / (warmup_steps + 1)); else transformers'. */
  lr_scheduler_type: LrSchedulerType | null;
  /** When set, warmup is ceil(warmup_ratio · total steps) instead of warmup_steps. */
  warmup_ratio: number | null;
  /** Evaluate every this many training examples (a multiple of model.batch_size). */
  eval_every: number;
  do_first_eval: boolean;
  /** Save a checkpoint at every evaluation. */
  intermediate_checkpoints: boolean;
  sample_during_eval: boolean;
  /** Test prompts sampled (greedy) at each evaluation when sample_during_eval is true. */
  n_eval_model_samples: number;

  n_samples: number;
  samples_dir: string;
  n_eval_examples: number | null;
  /** The trained policy to sample from (null: the run's final model). */
  saved_policy: string | null;
  top_p: number;

  human_prefix: string;
  human_suffix: string;
  assistant_prefix: string;
  assistant_suffix: string;
  /** 'prefixes': the four strings above (the seed); 'chat': the tokenizer's chat template. */
  template: Template;
  /**
   * Which end of an over-long prompt every dataset keeps; null (the default): each dataset's own,
   * as the seed set it (keep_start for shp, ultrabin and the orca family, keep_end otherwise).
   */
  truncation_mode: TruncationMode | null;
  /** Leave out each epoch's last batch when it is smaller than model.batch_size (the seed's loaders yielded full batches only). */
  drop_last: boolean;

  /** Compute reference log-probs once before training instead of keeping the reference model. */
  precompute_reference: boolean;
  /** CPU threads for the engine; null: LibTorch's default. */
  threads: number | null;
  /** 'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N'. */
  device: string;
  /**
   * How the policy trains: its weights' dtype and the optimizer's (docs/precision.md). 'auto':
   * bf16-mixed on CUDA, fp32 on the CPU. It decides the policy's dtype in training;
   * model.policy_dtype does not (a run prints a line when the two disagree).
   */
  precision: Precision;
  /** A checkpoint directory to resume from. */
  resume: string | null;
  /** Start a fresh run in a run directory that holds an earlier run, deleting what that run wrote. */
  overwrite: boolean;
  /** Label positions per chunk of the fused log-prob head. */
  chunk_tokens: number;

  // Seed keys with no effect in rpo:
  use_fsdp: boolean;
  fsdp_port: number | null;
  wandb: WandbSection;
  trainer: string | null;
  minimum_log_interval_secs: number;

  model: ModelSection;
  loss: LossSection;
  /** LoRA adapters (lib/config/lora.ts, docs/lora.md); off by default. */
  lora: LoraSection;
}

export interface Validated {
  config: RunConfig;
  /** One line each; the CLI prints them. */
  notices: string[];
}

// ---------------------------------------------------------------------------------------------
// Per-loss facts (docs/design.md)

/** The engine's loss options for a validated loss section (unused parameters left out). */
export function engineLossConfig(loss: LossSection): LossConfig {
  const out: LossConfig = { name: loss.name };
  for (const p of lossParams(loss)) {
    const v = loss[p];
    if (v !== null) out[p] = v;
  }
  if (loss.name === 'rdpo') out.rationale_form = loss.rationale_form;
  if (lossDecl(loss.name).rationale === '' && loss.rationale !== 'none') out.rationale = loss.rationale;
  return out;
}

/** The engine's optimizer and weight decay for a config (Adam = AdamW with no decay). */
export function engineOptimizer(config: Pick<RunConfig, 'optimizer'>): { optimizer: 'AdamW' | 'RMSprop'; weightDecay?: number } {
  return config.optimizer === 'Adam' ? { optimizer: 'AdamW', weightDecay: 0 } : { optimizer: config.optimizer };
}

/**
 * The precision a run trains in on `device` (already resolved: cpu, cuda, cuda:N). auto is
 * bf16-mixed on CUDA (bf16 matmuls at full tensor-core speed, fp32 master weights so small
 * updates are not rounded away) and fp32 on the CPU (most CPUs have no fast bf16 matmul: bf16
 * there costs time and precision and saves only memory).
 */
export function resolvePrecision(precision: Precision, device: string): TrainPrecision {
  if (precision !== 'auto') return precision;
  return device.startsWith('cuda') ? 'bf16-mixed' : 'fp32';
}

/** The dtype the policy is loaded in for training under a precision. */
export function precisionDtype(precision: TrainPrecision): Dtype {
  return precision === 'fp32' ? 'float32' : 'bfloat16';
}

const PRECISION_WHAT: Record<TrainPrecision, string> = {
  fp32: 'fp32 weights and AdamW moments, 16 bytes/param',
  'bf16-pure': 'bf16 weights and moments, 8 bytes/param; updates below half a bf16 step are lost',
  'bf16-mixed': 'bf16 compute weights, fp32 master weights and moments, 16 bytes/param',
  'bf16-sr': 'bf16 weights and moments with stochastic rounding, 8 bytes/param',
};

/**
 * Lines for a training run's log: the precision it trains in, and, when model.policy_dtype names
 * another dtype than the precision gives the policy, that policy_dtype is not what decides.
 */
export function precisionNotices(config: Pick<RunConfig, 'precision' | 'model'>, device: string): string[] {
  const precision = resolvePrecision(config.precision, device);
  const how = config.precision === 'auto' ? `auto on ${device}: ` : '';
  const out = [`precision: ${precision} (${how}${PRECISION_WHAT[precision]})`];
  const dtype = precisionDtype(precision);
  if (config.model.policy_dtype !== dtype) {
    out.push(
      `model.policy_dtype=${config.model.policy_dtype} is not used for training: precision=${config.precision}` +
        `${config.precision === 'auto' ? ` (${precision} on ${device})` : ''} trains the policy in ${dtype}; ` +
        (config.model.policy_dtype === 'float32' ? 'precision=fp32 keeps fp32 weights' : 'precision=bf16-mixed, bf16-pure or bf16-sr trains bf16 weights'),
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Keys accepted without effect, and keys that are merely known

/** Marks a seed key whose value varies by model or loss file: never a notice. */
const ANY = Symbol('any');

interface IgnoredKey {
  key: string;
  /** rpo's default; a different value gets a notice. */
  default: ConfigValue | typeof ANY;
  why: string;
}

const FSDP = 'rpo trains on one device';
const HALOS_ONLY = 'a HALOs option rpo does not implement';

/** Seed keys rpo accepts and ignores. Those in RunConfig are kept there; the rest are dropped. */
const IGNORED: readonly IgnoredKey[] = [
  { key: 'use_fsdp', default: false, why: FSDP },
  { key: 'fsdp_port', default: null, why: FSDP },
  { key: 'wandb.enabled', default: false, why: 'rpo does not log to Weights & Biases; metrics go to the run directory' },
  { key: 'wandb.entity', default: null, why: 'no wandb logging' },
  { key: 'wandb.project', default: 'rpo', why: 'no wandb logging' },
  { key: 'trainer', default: 'BasicTrainer', why: 'the loss name picks the training step' },
  { key: 'minimum_log_interval_secs', default: 1.0, why: 'it throttled wandb logging' },
  { key: 'model.block_name', default: ANY, why: FSDP },
  { key: 'model.fsdp_policy_mp', default: null, why: FSDP },
  { key: 'model.use_flash_attention', default: ANY, why: "the engine picks LibTorch's attention kernel" },
  { key: 'model.v_head_max_grad_norm', default: 0.1, why: 'no value head (PPO) in rpo' },
  { key: 'loss.trainer', default: ANY, why: 'the loss name picks the training step' },
  { key: 'loss.dataloader', default: ANY, why: 'the loss name picks the data layout' },
  // Not in RunConfig: HALOs keys of other versions, accepted so their configs load.
  { key: 'frac_unique_desirable', default: 1.0, why: HALOS_ONLY },
  { key: 'frac_unique_undesirable', default: 1.0, why: HALOS_ONLY },
  { key: 'load_reference_logprobs', default: null, why: HALOS_ONLY },
  { key: 'humanline', default: false, why: HALOS_ONLY },
  { key: 'humanline_alpha', default: ANY, why: HALOS_ONLY },
  { key: 'sync_reference', default: false, why: HALOS_ONLY },
  { key: 'model.from_checkpoint', default: null, why: 'use resume=<checkpoint dir>' },
  { key: 'model.archive', default: null, why: 'rpo loads HF model directories (use model.load_from), not policy.pt' },
  { key: 'model.microbatch_size', default: null, why: 'use model.gradient_accumulation_steps' },
  { key: 'model.eval_microbatch_size', default: null, why: HALOS_ONLY },
  { key: 'model.attn_implementation', default: ANY, why: "the engine picks LibTorch's attention kernel" },
  { key: 'model.use_peft', default: ANY, why: 'mapped onto lora.enabled' },
  { key: 'model.load_lora_from', default: ANY, why: 'mapped onto lora.from' },
  { key: 'model.peft', default: ANY, why: 'mapped onto lora.* when model.use_peft is true' },
  { key: 'model.reward_model', default: ANY, why: HALOS_ONLY },
  { key: 'model.policy_online', default: ANY, why: HALOS_ONLY },
  { key: 'model.policy_online_update_steps', default: ANY, why: HALOS_ONLY },
  { key: 'loss.label_smoothing', default: 0, why: 'use loss=cdpo with loss.epsilon' },
  { key: 'loss.reference_free', default: false, why: HALOS_ONLY },
  { key: 'loss.sync_reference', default: false, why: HALOS_ONLY },
];

const ALIASES = ['cache_reference_logprobs', 'loss.lambda_coef', 'loss.tau', 'loss.gamma_beta_ratio'] as const;

/** Keys whose whole subtree is known (opaque to key checking): lists and free-form maps. */
const OPAQUE = ['datasets', 'model.peft', 'model.reward_model', 'lora.target_modules'];

const RUN_KEYS = [
  'seed', 'exp_name', 'datasets', 'mode', 'debug', 'cache_dir', 'local_run_dir', 'lr', 'n_epochs', 'n_examples',
  'optimizer', 'warmup_steps', 'lr_scheduler_type', 'warmup_ratio', 'eval_every', 'do_first_eval', 'intermediate_checkpoints',
  'sample_during_eval', 'n_eval_model_samples',
  'n_samples', 'samples_dir', 'n_eval_examples', 'saved_policy', 'top_p', 'human_prefix', 'human_suffix',
  'assistant_prefix', 'assistant_suffix', 'template', 'truncation_mode', 'drop_last', 'precompute_reference', 'threads', 'device',
  'precision', 'resume', 'overwrite', 'chunk_tokens', 'wandb', 'model', 'loss',
  'model.name_or_path', 'model.tokenizer_name_or_path', 'model.load_from', 'model.policy_dtype', 'model.reference_dtype',
  'model.max_grad_norm', 'model.max_length', 'model.max_prompt_length', 'model.activation_checkpointing',
  'model.batch_size', 'model.gradient_accumulation_steps', 'model.eval_batch_size',
  'loss.name', 'loss.beta', 'loss.gamma', 'loss.epsilon', 'loss.lambda', 'loss.margin', 'loss.rationale_form',
  'loss.rationale', 'loss.desirable_weight', 'loss.undesirable_weight', 'loss.chosen_control_token', 'loss.rejected_control_token',
  'loss.use_reference_model', 'loss.ppo_epochs', 'loss.cliprange', 'loss.lam', 'loss.critic_coef', 'loss.KL_coef', ...LORA_KEYS,
];

/** Every key rpo knows: its own, the seed's ignored ones and the seed aliases. */
export const KNOWN_KEYS: readonly string[] = [...RUN_KEYS, ...IGNORED.map((k) => k.key), ...ALIASES];
const KNOWN = new Set(KNOWN_KEYS);

/** Is `key` (dotted) a key rpo knows, or inside a section whose contents it does not check? */
export function isKnownKey(key: string): boolean {
  if (KNOWN.has(key)) return true;
  return OPAQUE.some((p) => key.startsWith(`${p}.`));
}

/** The known key `key` probably meant (for "did you mean"; never `key` itself). */
export function closestKnownKey(key: string): string | undefined {
  return suggestKey(key, KNOWN_KEYS);
}

// ---------------------------------------------------------------------------------------------
// Reading typed fields

/** Reads fields of one section, collecting errors instead of stopping at the first. */
class Section {
  constructor(
    private readonly map: ConfigMap,
    private readonly prefix: string,
    private readonly errors: string[],
  ) {}

  private name(key: string): string {
    return this.prefix === '' ? key : `${this.prefix}.${key}`;
  }
  private bad(key: string, want: string, got: ConfigValue | undefined): void {
    this.errors.push(`${this.name(key)}: expected ${want}, got ${got === undefined ? 'nothing (the key is missing)' : JSON.stringify(got)}`);
  }
  has(key: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.map, key);
  }
  raw(key: string): ConfigValue | undefined {
    return this.has(key) ? this.map[key] : undefined;
  }
  section(key: string): Section {
    const v = this.raw(key);
    if (!isMap(v)) {
      this.bad(key, 'a section (mapping)', v);
      return new Section({}, this.name(key), []);
    }
    return new Section(v, this.name(key), this.errors);
  }

  str(key: string, fallback?: string): string {
    const v = this.raw(key) ?? fallback;
    if (typeof v === 'string') return v;
    // YAML reads `7b` as a string but `7` as a number; a path or name made of digits is still a name.
    if (typeof v === 'number' && fallback === undefined) return String(v);
    this.bad(key, 'a string', v);
    return '';
  }
  nonEmpty(key: string): string {
    const s = this.str(key);
    if (s === '' && this.has(key)) this.errors.push(`${this.name(key)}: must not be empty`);
    return s;
  }
  strOrNull(key: string): string | null {
    const v = this.raw(key);
    if (v === undefined || v === null) return null;
    if (typeof v === 'string') return v;
    if (typeof v === 'number') return String(v);
    this.bad(key, 'a string or null', v);
    return null;
  }
  bool(key: string, fallback?: boolean): boolean {
    const v = this.raw(key) ?? fallback;
    if (typeof v === 'boolean') return v;
    this.bad(key, 'true or false', v);
    return false;
  }
  num(key: string, opts: NumOpts = {}): number {
    const v = this.raw(key) ?? opts.fallback;
    if (typeof v !== 'number' || Number.isNaN(v)) {
      this.bad(key, opts.int ? 'an integer' : 'a number', v);
      return 0;
    }
    this.range(key, v, opts);
    return v;
  }
  numOrNull(key: string, opts: NumOpts = {}): number | null {
    const v = this.raw(key);
    if (v === undefined || v === null) return opts.fallback ?? null;
    return this.num(key, opts);
  }
  oneOf<T extends string>(key: string, values: readonly T[], fallback?: T): T {
    const v = this.raw(key) ?? fallback;
    if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
    const near = typeof v === 'string' ? closest(v, values) : undefined;
    this.errors.push(
      `${this.name(key)}: expected one of ${values.join(', ')}, got ${v === undefined ? 'nothing' : JSON.stringify(v)}` +
        (near === undefined ? '' : ` (did you mean '${near}'?)`),
    );
    return values[0] as T;
  }

  private range(key: string, v: number, o: NumOpts): void {
    const n = this.name(key);
    if (o.int && !Number.isInteger(v)) this.errors.push(`${n}: expected an integer, got ${v}`);
    else if (!Number.isFinite(v)) this.errors.push(`${n}: must be finite, got ${v}`);
    else if (o.min !== undefined && v < o.min) this.errors.push(`${n}: must be ≥ ${o.min}, got ${v}`);
    else if (o.above !== undefined && v <= o.above) this.errors.push(`${n}: must be > ${o.above}, got ${v}`);
    else if (o.max !== undefined && v > o.max) this.errors.push(`${n}: must be ≤ ${o.max}, got ${v}`);
  }
}

interface NumOpts {
  int?: boolean;
  min?: number;
  /** Exclusive lower bound. */
  above?: number;
  max?: number;
  fallback?: number;
}

// ---------------------------------------------------------------------------------------------
// Validation

/**
 * Validates a resolved config (no `${...}` or `???` left) and returns the typed config with
 * the notices. Throws one ConfigError listing every problem.
 */
export function validateConfig(raw: unknown): Validated {
  if (!isMap(raw as ConfigValue)) throw new ConfigError('invalid config: the top level must be a mapping');
  const root = raw as ConfigMap;
  const errors: string[] = [];
  const notices: string[] = [];
  const top = new Section(root, '', errors);

  const model = readModel(top.section('model'), errors);
  const loss = readLoss(top.section('loss'), root, errors, notices);
  const config = readTop(top, root, model, loss, errors, notices);

  if (errors.length > 0) throw new ConfigError(`invalid config:\n  - ${errors.join('\n  - ')}`);
  notices.push(...ignoredNotices(root), ...unknownNotices(root));
  return { config, notices };
}

/** The rows of a loss-evaluation batch: eval_batch_size, or for 'auto' the training micro-batch. */
export function lossEvalBatchSize(m: Pick<ModelSection, 'eval_batch_size' | 'batch_size' | 'gradient_accumulation_steps'>): number {
  return m.eval_batch_size === 'auto' ? Math.max(1, Math.floor(m.batch_size / m.gradient_accumulation_steps)) : m.eval_batch_size;
}

function readModel(m: Section, errors: string[]): ModelSection {
  const model: ModelSection = {
    name_or_path: m.nonEmpty('name_or_path'),
    tokenizer_name_or_path: m.strOrNull('tokenizer_name_or_path'),
    load_from: m.strOrNull('load_from'),
    policy_dtype: m.oneOf('policy_dtype', DTYPES, 'bfloat16'),
    reference_dtype: m.oneOf('reference_dtype', DTYPES, 'bfloat16'),
    max_grad_norm: m.numOrNull('max_grad_norm', { min: 0 }),
    max_length: m.num('max_length', { int: true, min: 2 }),
    max_prompt_length: m.num('max_prompt_length', { int: true, min: 1 }),
    activation_checkpointing: m.bool('activation_checkpointing', false),
    batch_size: m.num('batch_size', { int: true, min: 1 }),
    gradient_accumulation_steps: m.num('gradient_accumulation_steps', { int: true, min: 1, fallback: 1 }),
    eval_batch_size: m.raw('eval_batch_size') === 'auto' ? 'auto' : m.num('eval_batch_size', { int: true, min: 1 }),
    block_name: m.strOrNull('block_name'),
    fsdp_policy_mp: m.strOrNull('fsdp_policy_mp'),
    v_head_max_grad_norm: m.numOrNull('v_head_max_grad_norm'),
    use_flash_attention: m.bool('use_flash_attention', false),
  };
  if (model.max_prompt_length >= model.max_length) {
    errors.push(`model.max_prompt_length (${model.max_prompt_length}) must be < model.max_length (${model.max_length}): the response needs room`);
  }
  if (model.gradient_accumulation_steps >= 1 && model.batch_size % model.gradient_accumulation_steps !== 0) {
    errors.push(
      `model.batch_size (${model.batch_size}) must be divisible by model.gradient_accumulation_steps (${model.gradient_accumulation_steps})`,
    );
  }
  return model;
}

function readLoss(l: Section, root: ConfigMap, errors: string[], notices: string[]): LossSection {
  const name = l.oneOf('name', LOSS_NAMES);
  const decl = lossDecl(name);
  const rationale = l.oneOf('rationale', RATIONALE_TERMS, 'none');
  const rationaleForm = l.oneOf('rationale_form', RATIONALE_FORMS, 'code');
  if (decl.rationale === 'never' && rationale !== 'none') {
    errors.push(`loss.rationale=${rationale}: loss '${name}' takes no rationale term (the paired losses dpo, cdpo, ipo, slic, simpo and orpo do)`);
  } else if (decl.rationale !== '' && rationale !== 'none' && rationale !== lossRationale({ name, rationale_form: rationaleForm })) {
    errors.push(`loss.rationale=${rationale}: loss '${name}' fixes its rationale term (${lossRationale({ name, rationale_form: rationaleForm })})`);
  }
  const params = lossParams({ name, rationale, rationale_form: rationaleForm });
  const needs = (p: string): boolean => (params as readonly string[]).includes(p);

  let beta = l.numOrNull('beta', needs('beta') ? { above: 0 } : {});
  if (l.has('tau')) {
    beta = l.num('tau', { above: 0 });
    notices.push(`loss.tau=${beta} → loss.beta (the seed's name for IPO's β)`);
  }
  let lambda = l.numOrNull('lambda', { min: 0 });
  if (l.has('lambda_coef')) {
    lambda = l.num('lambda_coef', { min: 0 });
    notices.push(`loss.lambda_coef=${lambda} → loss.lambda (the seed's name)`);
  }
  // ppo's gamma is its GAE discount (the seed's ppo.yaml: 0.99).
  let gamma = l.numOrNull('gamma', needs('gamma') ? { min: 0 } : {}) ?? (name === 'ppo' ? 0.99 : null);
  let margin = l.numOrNull('margin');
  // simpo's gamma is HALOs' name for its margin, unless a rationale term makes gamma its weight.
  if (name === 'simpo' && gamma !== null && rationale === 'none') {
    margin = gamma;
    gamma = null;
    notices.push(`loss.gamma=${margin} → loss.margin (HALOs' name for SimPO's target margin)`);
  }
  if (name === 'simpo' && l.has('gamma_beta_ratio')) {
    const ratio = l.num('gamma_beta_ratio');
    margin = ratio * (beta ?? 0);
    notices.push(`loss.gamma_beta_ratio=${ratio} → loss.margin=${margin} (ratio × beta)`);
  }
  const epsilon = l.numOrNull('epsilon', { min: 0, max: 1 });
  // The seed's kto.yaml defaults (1.0 each) when kto reads them.
  const desirableWeight = l.numOrNull('desirable_weight', { min: 0 }) ?? (needs('desirable_weight') ? 1 : null);
  const undesirableWeight = l.numOrNull('undesirable_weight', { min: 0 }) ?? (needs('undesirable_weight') ? 1 : null);
  // The seed's ppo.yaml defaults when ppo reads them.
  const ppoKey = (key: 'ppo_epochs' | 'cliprange' | 'lam' | 'critic_coef' | 'KL_coef', fallback: number, opts: NumOpts): number | null =>
    l.numOrNull(key, opts) ?? (needs(key) ? fallback : null);
  const ppo = {
    ppo_epochs: ppoKey('ppo_epochs', 1, { int: true, min: 1 }),
    cliprange: ppoKey('cliprange', 0.5, { above: 0, max: 1 }),
    lam: ppoKey('lam', 0.95, { min: 0 }),
    critic_coef: ppoKey('critic_coef', 0.01, { min: 0 }),
    KL_coef: ppoKey('KL_coef', 0.1, { min: 0 }),
  };
  const values = { beta, gamma, epsilon, lambda, margin, desirable_weight: desirableWeight, undesirable_weight: undesirableWeight, ...ppo };
  for (const p of params) {
    if (values[p] === null) errors.push(`loss.${p}: loss '${name}' needs it (it is missing or null)`);
  }
  for (const [p, v] of Object.entries(values)) {
    if (v !== null && !needs(p) && !(p === 'beta' && name === 'sft')) notices.push(`loss.${p}=${v} has no effect with loss=${name}`);
  }
  if (l.has('rationale_form') && name !== 'rdpo' && rationaleForm !== 'code') {
    notices.push(`loss.rationale_form=${rationaleForm} has no effect with loss=${name} (only rdpo has two forms)`);
  }
  const controlToken = (key: 'chosen_control_token' | 'rejected_control_token'): string | null => {
    const v = l.strOrNull(key);
    if (name === 'csft' && (v === null || v === '')) errors.push(`loss.${key}: loss 'csft' needs it (the seed's "<|${key.startsWith('chosen') ? 'good' : 'bad'}|>")`);
    return v;
  };
  const useReference = decl.needsReference;
  const asked = l.raw('use_reference_model');
  if (asked !== undefined && asked !== null && asked !== useReference) {
    notices.push(`loss.use_reference_model=${String(asked)} ignored: loss=${name} ${useReference ? 'needs' : 'has no'} reference model`);
  }
  if (root.cache_reference_logprobs === true && !useReference) {
    notices.push(`cache_reference_logprobs=true has no effect with loss=${name} (no reference model)`);
  }
  return {
    name,
    beta: beta ?? 0.1,
    gamma,
    epsilon,
    lambda,
    margin,
    rationale_form: rationaleForm,
    rationale,
    chosen_control_token: controlToken('chosen_control_token'),
    rejected_control_token: controlToken('rejected_control_token'),
    desirable_weight: desirableWeight,
    undesirable_weight: undesirableWeight,
    ...ppo,
    use_reference_model: useReference,
    trainer: l.strOrNull('trainer'),
    dataloader: l.strOrNull('dataloader'),
  };
}

function readDatasets(t: Section, errors: string[]): DatasetRef[] {
  const v = t.raw('datasets');
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length === 0) {
    errors.push(`datasets: expected a non-empty list (e.g. datasets=[orcaratspec]), got ${JSON.stringify(v ?? null)}`);
    return [];
  }
  return list.flatMap((d, i): DatasetRef[] => {
    if (typeof d === 'string' && d !== '') return [d];
    if (isMap(d)) return [d];
    errors.push(`datasets.${i}: expected a dataset name, a path or a mapping, got ${JSON.stringify(d)}`);
    return [];
  });
}

function readTop(
  t: Section,
  root: ConfigMap,
  model: ModelSection,
  loss: LossSection,
  errors: string[],
  notices: string[],
): RunConfig {
  const w = t.has('wandb') ? t.section('wandb') : new Section({}, 'wandb', errors);
  const device = t.str('device', 'auto');
  if (!/^(auto|cpu|cuda(:\d+)?)$/.test(device)) errors.push(`device: expected auto, cpu, cuda or cuda:N, got ${JSON.stringify(device)}`);

  let precompute = t.bool('precompute_reference', false);
  if (root.cache_reference_logprobs === true && !precompute) {
    precompute = true;
    notices.push('cache_reference_logprobs=true → precompute_reference=true (the seed\'s name)');
  }
  if (precompute && !loss.use_reference_model) notices.push(`precompute_reference=true has no effect with loss=${loss.name} (no reference model)`);

  const nEpochs = t.numOrNull('n_epochs', { int: true, min: 1 });
  const nExamples = t.numOrNull('n_examples', { int: true, min: 1 });
  if (nEpochs === null && nExamples === null) errors.push('n_epochs and n_examples are both null: set one of them');

  let evalEvery = t.num('eval_every', { int: true, min: 1 });
  if (model.batch_size >= 1 && evalEvery % model.batch_size !== 0 && evalEvery >= 1) {
    const adjusted = Math.max(model.batch_size, evalEvery - (evalEvery % model.batch_size));
    notices.push(`eval_every=${evalEvery} is not a multiple of model.batch_size=${model.batch_size}; using ${adjusted} (as the seed did)`);
    evalEvery = adjusted;
  }
  const debug = t.bool('debug', false);
  if (debug) notices.push('debug=true: no checkpoints and no final model will be written');

  return {
    seed: t.num('seed', { int: true }),
    exp_name: expName(t.nonEmpty('exp_name'), errors),
    datasets: readDatasets(t, errors),
    mode: t.oneOf('mode', MODES),
    debug,
    cache_dir: t.nonEmpty('cache_dir'),
    local_run_dir: t.nonEmpty('local_run_dir'),
    lr: t.num('lr', { min: 0 }),
    n_epochs: nEpochs,
    n_examples: nExamples,
    optimizer: t.oneOf('optimizer', OPTIMIZERS),
    warmup_steps: t.num('warmup_steps', { int: true, min: 0 }),
    lr_scheduler_type: t.raw('lr_scheduler_type') === null || t.raw('lr_scheduler_type') === undefined ? null : t.oneOf('lr_scheduler_type', LR_SCHEDULER_TYPES),
    warmup_ratio: t.numOrNull('warmup_ratio', { min: 0, max: 1 }),
    eval_every: evalEvery,
    do_first_eval: t.bool('do_first_eval', true),
    intermediate_checkpoints: t.bool('intermediate_checkpoints', false),
    sample_during_eval: t.bool('sample_during_eval', false),
    n_eval_model_samples: t.num('n_eval_model_samples', { int: true, min: 0, fallback: 16 }),
    n_samples: t.num('n_samples', { int: true, min: 0 }),
    samples_dir: t.nonEmpty('samples_dir'),
    n_eval_examples: t.numOrNull('n_eval_examples', { int: true, min: 0 }),
    saved_policy: t.strOrNull('saved_policy'),
    top_p: t.num('top_p', { above: 0, max: 1 }),
    human_prefix: t.str('human_prefix'),
    human_suffix: t.str('human_suffix'),
    assistant_prefix: t.str('assistant_prefix'),
    assistant_suffix: t.str('assistant_suffix'),
    template: t.oneOf('template', TEMPLATES, 'prefixes'),
    truncation_mode: t.raw('truncation_mode') === null || t.raw('truncation_mode') === undefined ? null : t.oneOf('truncation_mode', TRUNCATION_MODES),
    drop_last: t.bool('drop_last', true),
    precompute_reference: precompute,
    threads: t.numOrNull('threads', { int: true, min: 1 }),
    device,
    precision: t.oneOf('precision', PRECISIONS, 'auto'),
    resume: t.strOrNull('resume'),
    overwrite: t.bool('overwrite', false),
    chunk_tokens: t.num('chunk_tokens', { int: true, min: 1, fallback: 1024 }),
    use_fsdp: t.bool('use_fsdp', false),
    fsdp_port: t.numOrNull('fsdp_port', { int: true }),
    wandb: { enabled: w.bool('enabled', false), entity: w.strOrNull('entity'), project: w.strOrNull('project') },
    trainer: t.strOrNull('trainer'),
    minimum_log_interval_secs: t.num('minimum_log_interval_secs', { min: 0, fallback: 1.0 }),
    model,
    loss,
    lora: readLora(root, errors, notices),
  };
}

/**
 * exp_name names the run directory `${cache_dir}/${exp_name}` and the sample files: it must be
 * one path segment, or a run could write outside cache_dir (`../x`, `/abs`) or onto cache_dir
 * itself (`.`), where an overwrite would delete other runs.
 */
export function expNameProblem(name: string): string | null {
  if (name === '') return null; // reported as empty by nonEmpty
  if (name === '.' || name === '..') return `exp_name=${JSON.stringify(name)}: must name a directory inside cache_dir, not cache_dir or its parent`;
  if (/[/\\]/.test(name)) return `exp_name=${JSON.stringify(name)}: must be a single path segment (no '/' or '\\'); the run directory is cache_dir/exp_name`;
  if (name.includes('\0')) return 'exp_name: must not contain a NUL character';
  return null;
}

function expName(name: string, errors: string[]): string {
  const problem = expNameProblem(name);
  if (problem) errors.push(problem);
  return name;
}

/** One line per ignored seed key whose value differs from rpo's default. */
function ignoredNotices(root: ConfigMap): string[] {
  const out: string[] = [];
  for (const k of IGNORED) {
    if (k.default === ANY) continue;
    const v = lookup(root, k.key);
    if (v === undefined || JSON.stringify(v) === JSON.stringify(k.default)) continue;
    out.push(`ignored: ${k.key}=${JSON.stringify(v)} (${k.why})`);
  }
  return out;
}

/** One line per key rpo does not know (the loader turns those from overrides into errors). */
function unknownNotices(root: ConfigMap): string[] {
  const out: string[] = [];
  for (const p of allPaths(root)) {
    if (isKnownKey(p)) continue;
    // Report the outermost unknown key only (not each of its children).
    const parent = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '';
    if (parent !== '' && !isKnownKey(parent)) continue;
    const near = closestKnownKey(p);
    out.push(`unknown key ignored: ${p}${near === undefined ? '' : ` (did you mean '${near}'?)`}`);
  }
  return out;
}

function lookup(root: ConfigMap, key: string): ConfigValue | undefined {
  let node: ConfigValue | undefined = root;
  for (const seg of key.split('.')) {
    if (!isMap(node) || !Object.prototype.hasOwnProperty.call(node, seg)) return undefined;
    node = node[seg];
  }
  return node;
}

/** The plain-data form of a RunConfig (what saveConfig writes), in the config files' key order. */
export function toRaw(config: RunConfig): ConfigMap {
  return JSON.parse(JSON.stringify(config)) as ConfigMap;
}
