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
import { readFields, tableFields, tableKeys, type NumOpts } from './fields.js';
import { tokenBudgetRules } from './token_budget.js';
import { allPaths } from './interpolate.js';
import { MODEL_KEYS, TOP_KEYS, type Dtype, type ModelSection, type Precision, type TopKeys } from './run_keys.js';
import { isMap, type ConfigMap, type ConfigValue } from './yaml.js';
import {
  LOSS_NAMES,
  LOSS_PARAM_NAMES,
  LOSS_PARAMS,
  RATIONALE_TERMS,
  lossParamFallback,
  lossParams,
  lossRationale,
  lossReadsRationaleForm,
  lossRow,
  lossTakesRationaleTerm,
  lossUsesControlTokens,
  type LossParam,
  type RationaleTerm,
} from '../loss/table.js';
import { RATIONALE_FORMS, type RationaleForm } from '../gen/options.js';

export type { LossName } from '../native.js';

// The losses and what each reads: lib/loss/table.ts (one table, declared in boundary/losses.mjs).
export { LOSS_NAMES, RATIONALE_TERMS, lossUsesReference, type RationaleTerm } from '../loss/table.js';
export { RATIONALE_FORMS, type RationaleForm } from '../gen/options.js';
// The run's keys and their value sets: lib/config/run_keys.ts (one table).
export {
  MODES,
  OPTIMIZERS,
  DTYPES,
  TEMPLATES,
  TRUNCATION_MODES,
  PRECISIONS,
  LR_SCHEDULER_TYPES,
  CPU_GEMMS,
  expNameProblem,
  type Mode,
  type Optimizer,
  type Dtype,
  type Template,
  type TruncationMode,
  type Precision,
  type LrSchedulerType,
  type CpuGemm,
  type DatasetRef,
  type ModelSection,
  type WandbSection,
} from './run_keys.js';
export type { TrainPrecision } from '../native.js';
export type { LoraSection } from './lora.js';

/**
 * The loss's numeric keys (boundary/losses.mjs's LOSS_PARAMS: β, γ, ε, λ, margin, kto's weights,
 * ppo's keys): each a number where the loss reads it, else null.
 */
export type LossParamValues = { [P in LossParam]: number | null };

export interface LossSection extends LossParamValues {
  name: LossName;
  /** β; unused by sft. */
  beta: number;
  /** rdpo's rationale term: 'code' −log σ(γ·π_r) (the seed's code), 'paper' −γ·π_r. */
  rationale_form: RationaleForm;
  /** The rationale term of dpo, cdpo, ipo, slic, simpo or orpo: none, logsigmoid −log σ(γ·π_r), linear −γ·π_r. */
  rationale: RationaleTerm;
  /** csft: the control tokens put after the prompt of a chosen / rejected response. */
  chosen_control_token: string | null;
  rejected_control_token: string | null;
  /** Derived from the loss (docs/design.md's table); a differing user value is a notice. */
  use_reference_model: boolean;
  // Seed keys with no effect (the loss name picks the step and the data layout):
  trainer: string | null;
  dataloader: string | null;
}

/** A resolved run config: the keys of lib/config/run_keys.ts, the loss section and LoRA's. */
export interface RunConfig extends TopKeys {
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
  if (lossReadsRationaleForm(loss.name)) out.rationale_form = loss.rationale_form;
  if (lossTakesRationaleTerm(loss.name) && loss.rationale !== 'none') out.rationale = loss.rationale;
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

const HALOS_ONLY = 'a HALOs option rpo does not implement';

/** The ignored keys a table declares (`ignored: why`). */
function ignoredIn(table: Parameters<typeof tableFields>[0], prefix = ''): IgnoredKey[] {
  return tableFields(table, prefix).flatMap(([key, f]) => (f.ignored === undefined ? [] : [{ key, default: f.quiet ? ANY : (f.default ?? null), why: f.ignored }]));
}

/** Seed keys rpo accepts and ignores. Those in RunConfig are kept there; the rest are dropped. */
const IGNORED: readonly IgnoredKey[] = [
  ...ignoredIn(TOP_KEYS),
  ...ignoredIn(MODEL_KEYS, 'model.'),
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
  ...tableKeys(TOP_KEYS), 'model', 'loss', ...tableKeys(MODEL_KEYS, 'model.'),
  'loss.name', 'loss.rationale_form', 'loss.rationale', 'loss.chosen_control_token', 'loss.rejected_control_token',
  'loss.use_reference_model', ...LOSS_PARAM_NAMES.map((p) => `loss.${p}`), ...LORA_KEYS,
];

/** Every key rpo knows: its own, the seed's ignored ones and the seed aliases. */
export const KNOWN_KEYS: readonly string[] = [...new Set([...RUN_KEYS, ...IGNORED.map((k) => k.key), ...ALIASES])];
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

  name(key: string): string {
    return this.prefix === '' ? key : `${this.prefix}.${key}`;
  }
  error(message: string): void {
    this.errors.push(message);
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
  sectionOrEmpty(key: string): Section {
    return this.has(key) ? this.section(key) : new Section({}, this.name(key), this.errors);
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
    else if (o.below !== undefined && v >= o.below) this.errors.push(`${n}: must be < ${o.below}, got ${v}`);
  }
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
  const model = readFields(m, MODEL_KEYS);
  if (model.max_prompt_length >= model.max_length) {
    errors.push(`model.max_prompt_length (${model.max_prompt_length}) must be < model.max_length (${model.max_length}): the response needs room`);
  }
  // A token budget replaces gradient_accumulation_steps (lib/config/token_budget.ts).
  if (model.tokens_per_micro_batch === null && model.gradient_accumulation_steps >= 1 && model.batch_size % model.gradient_accumulation_steps !== 0) {
    errors.push(
      `model.batch_size (${model.batch_size}) must be divisible by model.gradient_accumulation_steps (${model.gradient_accumulation_steps})`,
    );
  }
  return model;
}

/** A loss parameter's declared range (boundary/losses.mjs), as the schema's number options. */
function paramRange(p: LossParam): NumOpts {
  const { type, min, above, max, below } = LOSS_PARAMS[p];
  return { int: type === 'int', min, above, max, below };
}

function readLoss(l: Section, root: ConfigMap, errors: string[], notices: string[]): LossSection {
  const name = l.oneOf('name', LOSS_NAMES);
  const decl = lossRow(name);
  const rationale = l.oneOf('rationale', RATIONALE_TERMS, 'none');
  const rationaleForm = l.oneOf('rationale_form', RATIONALE_FORMS, 'code');
  if (decl.rationale === 'never' && rationale !== 'none') {
    errors.push(`loss.rationale=${rationale}: loss '${name}' takes no rationale term (the paired losses ${LOSS_NAMES.filter(lossTakesRationaleTerm).join(', ')} do)`);
  } else if (decl.rationale !== '' && rationale !== 'none' && rationale !== lossRationale({ name, rationale_form: rationaleForm })) {
    errors.push(`loss.rationale=${rationale}: loss '${name}' fixes its rationale term (${lossRationale({ name, rationale_form: rationaleForm })})`);
  }
  const params = lossParams({ name, rationale, rationale_form: rationaleForm });
  const needs = (p: string): boolean => (params as readonly string[]).includes(p);
  // A key the loss reads: its declared range (and, for a key the loss lets a config omit, the
  // loss's own value when absent). A key it does not read is any number (a notice says so).
  const param = (p: LossParam): number | null => l.numOrNull(p, needs(p) ? paramRange(p) : {}) ?? (needs(p) ? lossParamFallback(name, p) : null);

  let beta = param('beta');
  if (l.has('tau')) {
    beta = l.num('tau', paramRange('beta'));
    notices.push(`loss.tau=${beta} → loss.beta (the seed's name for IPO's β)`);
  }
  let lambda = param('lambda');
  if (l.has('lambda_coef')) {
    lambda = l.num('lambda_coef', paramRange('lambda'));
    notices.push(`loss.lambda_coef=${lambda} → loss.lambda (the seed's name)`);
  }
  let gamma = param('gamma');
  let margin = param('margin');
  // A loss with a margin (simpo) takes gamma as HALOs' name for it, unless a rationale term makes
  // gamma its weight.
  if (needs('margin') && l.has('gamma') && gamma !== null && rationale === 'none') {
    margin = gamma;
    gamma = null;
    notices.push(`loss.gamma=${margin} → loss.margin (HALOs' name for SimPO's target margin)`);
  }
  if (needs('margin') && l.has('gamma_beta_ratio')) {
    const ratio = l.num('gamma_beta_ratio');
    margin = ratio * (beta ?? 0);
    notices.push(`loss.gamma_beta_ratio=${ratio} → loss.margin=${margin} (ratio × beta)`);
  }
  const aliased: Partial<LossParamValues> = { beta, gamma, lambda, margin };
  const values = Object.fromEntries(LOSS_PARAM_NAMES.map((p) => [p, p in aliased ? aliased[p] : param(p)])) as LossParamValues;
  for (const p of params) {
    if (values[p] === null) errors.push(`loss.${p}: loss '${name}' needs it (it is missing or null)`);
  }
  // beta is in every seed loss config; a loss that reads no parameter (sft) takes it silently.
  for (const [p, v] of Object.entries(values)) {
    if (v !== null && !needs(p) && !(p === 'beta' && decl.params.length === 0)) notices.push(`loss.${p}=${v} has no effect with loss=${name}`);
  }
  if (l.has('rationale_form') && !lossReadsRationaleForm(name) && rationaleForm !== 'code') {
    notices.push(`loss.rationale_form=${rationaleForm} has no effect with loss=${name} (only ${LOSS_NAMES.filter(lossReadsRationaleForm).join(', ')} has two forms)`);
  }
  const controlToken = (key: 'chosen_control_token' | 'rejected_control_token'): string | null => {
    const v = l.strOrNull(key);
    if (lossUsesControlTokens(name) && (v === null || v === '')) errors.push(`loss.${key}: loss '${name}' needs it (the seed's "<|${key.startsWith('chosen') ? 'good' : 'bad'}|>")`);
    return v;
  };
  const useReference = decl.reference;
  const asked = l.raw('use_reference_model');
  if (asked !== undefined && asked !== null && asked !== useReference) {
    notices.push(`loss.use_reference_model=${String(asked)} ignored: loss=${name} ${useReference ? 'needs' : 'has no'} reference model`);
  }
  if (root.cache_reference_logprobs === true && !useReference) {
    notices.push(`cache_reference_logprobs=true has no effect with loss=${name} (no reference model)`);
  }
  return {
    name,
    ...values,
    beta: beta ?? LOSS_PARAMS.beta.default,
    rationale_form: rationaleForm,
    rationale,
    chosen_control_token: controlToken('chosen_control_token'),
    rejected_control_token: controlToken('rejected_control_token'),
    use_reference_model: useReference,
    trainer: l.strOrNull('trainer'),
    dataloader: l.strOrNull('dataloader'),
  };
}

/** The top level's keys, and the rules that read several of them (or the model and loss). */
function readTop(
  t: Section,
  root: ConfigMap,
  model: ModelSection,
  loss: LossSection,
  errors: string[],
  notices: string[],
): RunConfig {
  const top = readFields(t, TOP_KEYS);
  if (root.cache_reference_logprobs === true && !top.precompute_reference) {
    top.precompute_reference = true;
    notices.push('cache_reference_logprobs=true → precompute_reference=true (the seed\'s name)');
  }
  if (top.precompute_reference && !loss.use_reference_model) notices.push(`precompute_reference=true has no effect with loss=${loss.name} (no reference model)`);

  if (top.n_epochs === null && top.n_examples === null) errors.push('n_epochs and n_examples are both null: set one of them');

  const evalEvery = top.eval_every;
  if (model.batch_size >= 1 && evalEvery % model.batch_size !== 0 && evalEvery >= 1) {
    const adjusted = Math.max(model.batch_size, evalEvery - (evalEvery % model.batch_size));
    notices.push(`eval_every=${evalEvery} is not a multiple of model.batch_size=${model.batch_size}; using ${adjusted} (as the seed did)`);
    top.eval_every = adjusted;
  }
  if (top.debug) notices.push('debug=true: no checkpoints and no final model will be written');
  const budget = tokenBudgetRules(model, loss.name);
  errors.push(...budget.errors);
  notices.push(...budget.notices);

  return { ...top, model, loss, lora: readLora(root, errors, notices) };
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
