// The run's keys, each declared once (as nanoGPT's train.py declares its settings): the top
// level, wandb and model sections. RunConfig's type, the known-key list, the reader, the
// ignored-key notices and --cfg job's float keys are derived from these tables
// (lib/config/schema.ts); configs/config.yaml and configs/model/base_model.yaml are held to
// their defaults by test/unit/run_keys.test.ts. The loss section is the loss table's
// (lib/loss/table.ts), the lora section lib/config/lora.ts's.
//
// A new key: one line here, its line in the config file, and the code that uses it.
import {
  bool,
  custom,
  nonEmpty,
  num,
  numOrNull,
  oneOf,
  oneOfOrNull,
  section,
  text,
  textOrNull,
  type FieldReader,
  type FieldValues,
} from './fields.js';
import { isMap } from './yaml.js';
import { DEFAULT_MAX_SHARD_BYTES } from '../model/safetensors.js';

export const MODES = ['train', 'eval', 'sample', 'alpacaeval'] as const;
export const OPTIMIZERS = ['AdamW', 'RMSprop', 'Adam'] as const;
export const DTYPES = ['float32', 'bfloat16', 'float16'] as const;
export const TEMPLATES = ['prefixes', 'chat'] as const;
export const TRUNCATION_MODES = ['keep_end', 'keep_start'] as const;
/** How the policy trains (docs/precision.md); auto: bf16-mixed on CUDA, fp32 on the CPU. */
export const PRECISIONS = ['auto', 'fp32', 'bf16-pure', 'bf16-mixed', 'bf16-sr'] as const;
/** transformers' get_scheduler names rpo implements (null: the seed's warmup-then-constant). */
export const LR_SCHEDULER_TYPES = ['linear', 'cosine', 'constant_with_warmup'] as const;
/** What fp32 CPU matrix products use (native/model/gemm.cpp); auto: RPO_CPU_GEMM, else oneDNN where it is usable. */
export const CPU_GEMMS = ['auto', 'onednn', 'aten'] as const;

export type Mode = (typeof MODES)[number];
export type Optimizer = (typeof OPTIMIZERS)[number];
export type Dtype = (typeof DTYPES)[number];
export type Template = (typeof TEMPLATES)[number];
export type TruncationMode = (typeof TRUNCATION_MODES)[number];
export type Precision = (typeof PRECISIONS)[number];
export type LrSchedulerType = (typeof LR_SCHEDULER_TYPES)[number];
export type CpuGemm = (typeof CPU_GEMMS)[number];

/** A dataset: a name (orcaratspec), a path, or a mapping the data layer validates (path + columns). */
export type DatasetRef = string | Readonly<Record<string, unknown>>;

/** Why the seed's FSDP keys do nothing here. */
export const FSDP = 'no FSDP: rpo launch shards by data parallelism and ZeRO-1/2';
const NO_WANDB = 'no wandb logging';
const LOSS_PICKS_STEP = 'the loss name picks the training step';
const ATTENTION = "the engine picks LibTorch's attention kernel";

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

function readDatasets(r: FieldReader, key: string): DatasetRef[] {
  const v = r.raw(key);
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length === 0) {
    r.error(`${key}: expected a non-empty list (e.g. datasets=[orcaratspec]), got ${JSON.stringify(v ?? null)}`);
    return [];
  }
  return list.flatMap((d, i): DatasetRef[] => {
    if (typeof d === 'string' && d !== '') return [d];
    if (isMap(d)) return [d];
    r.error(`${key}.${i}: expected a dataset name, a path or a mapping, got ${JSON.stringify(d)}`);
    return [];
  });
}

export const WANDB_KEYS = {
  enabled: bool({ doc: 'log to Weights & Biases', default: false, optional: true, ignored: 'rpo does not log to Weights & Biases; metrics go to the run directory' }),
  entity: textOrNull({ doc: 'the wandb entity', default: null, ignored: NO_WANDB }),
  project: textOrNull({ doc: 'the wandb project', default: 'rpo', ignored: NO_WANDB }),
};

export const MODEL_KEYS = {
  name_or_path: nonEmpty({ doc: 'hub id or local directory of the policy (and reference) weights' }),
  tokenizer_name_or_path: textOrNull({ doc: 'null: the tokenizer of name_or_path', default: null }),
  load_from: textOrNull({ doc: "a local model directory whose weights replace name_or_path's (e.g. an SFT run's output)", default: null }),
  policy_dtype: oneOf(DTYPES, { doc: "the policy's dtype outside training (precision decides it in training)", default: 'bfloat16', optional: true }),
  reference_dtype: oneOf(DTYPES, { doc: "the reference model's dtype", default: 'bfloat16', optional: true }),
  max_grad_norm: numOrNull({ doc: 'gradient-norm clip; null or 0: no clipping', default: 10.0, min: 0 }),
  max_length: num({ doc: 'prompt + response tokens', default: 2048, int: true, min: 2 }),
  max_prompt_length: num({ doc: 'prompt tokens (an over-long prompt is cut to it)', default: 1024, int: true, min: 1 }),
  // A config without the key has always read as off here, though the file's default (the seed's)
  // is on: kept so such a config trains as it did.
  activation_checkpointing: bool({ doc: 'recompute activations in backward to save memory', default: true, optional: true, absent: false }),
  batch_size: num({ doc: 'global batch (pairs per optimizer step)', default: 32, int: true, min: 1 }),
  gradient_accumulation_steps: num({ doc: 'micro-batches per optimizer step; divides batch_size', default: 1, int: true, min: 1, optional: true }),
  tokens_per_micro_batch: numOrNull({
    doc: "cut each global batch into micro-batches of at most this many real (non-padding) tokens instead of gradient_accumulation_steps equal pair counts (a pair longer than it gets a micro-batch of its own); null: off",
    default: null,
    int: true,
    min: 1,
  }),
  eval_batch_size: custom<number | 'auto'>({
    doc: "rows per evaluation batch; for sampling, the slots decoded at once (continuous batching); 'auto': sampling takes as many slots as fit in memory (lib/plan/generation.ts), loss evaluation the training micro-batch",
    default: 16,
    read: (r, k) => (r.raw(k) === 'auto' ? 'auto' : r.num(k, { int: true, min: 1 })),
  }),
  block_name: textOrNull({ doc: 'the module class FSDP wraps', default: null, ignored: FSDP, quiet: true }),
  fsdp_policy_mp: textOrNull({ doc: "FSDP's mixed-precision dtype", default: null, ignored: FSDP }),
  v_head_max_grad_norm: numOrNull({ doc: "the value head's gradient-norm clip", default: 0.1, ignored: "loss=ppo clips its value head's gradients at the seed's default, 0.1" }),
  use_flash_attention: bool({ doc: 'use flash-attention-2', default: false, optional: true, ignored: ATTENTION, quiet: true }),
};

export const TOP_KEYS = {
  seed: num({ doc: 'random seed', default: 1, int: true }),
  exp_name: nonEmpty({ doc: 'the run directory is ${cache_dir}/${exp_name}', check: expNameProblem }),
  datasets: custom({ doc: 'dataset names, paths or mappings (path + columns)', read: readDatasets }),
  mode: oneOf(MODES, { doc: 'what `rpo eval` does (`rpo train` trains)', default: 'train' }),
  debug: bool({ doc: 'no checkpoints and no final model are written', default: false, optional: true }),
  cache_dir: nonEmpty({ doc: 'where runs are saved: ${cache_dir}/${exp_name}', default: 'data' }),
  local_run_dir: nonEmpty({ doc: "where the run's config, checkpoints and metrics go (default ${cache_dir}/${exp_name})" }),
  lr: num({ doc: 'the learning rate', default: 5e-7, min: 0 }),
  n_epochs: numOrNull({ doc: 'epochs to train (null: n_examples)', default: 1, int: true, min: 1 }),
  n_examples: numOrNull({ doc: 'examples to train (null: n_epochs)', default: null, int: true, min: 1 }),
  optimizer: oneOf(OPTIMIZERS, { doc: 'AdamW or RMSprop; Adam = AdamW without weight decay', default: 'AdamW' }),
  warmup_steps: num({ doc: 'linear warmup steps of the learning rate', default: 150, int: true, min: 0 }),
  lr_scheduler_type: oneOfOrNull(LR_SCHEDULER_TYPES, {
    doc: "null: the seed's schedule, lr · min(1, (step + 1) / (warmup_steps + 1)); else transformers'",
    default: null,
  }),
  warmup_ratio: numOrNull({ doc: 'when set, warmup is ceil(warmup_ratio · total steps) instead of warmup_steps', default: null, min: 0, max: 1 }),
  eval_every: num({ doc: 'evaluate every this many training examples (a multiple of model.batch_size)', default: 20_000, int: true, min: 1 }),
  do_first_eval: bool({ doc: 'evaluate before the first step', default: true, optional: true }),
  intermediate_checkpoints: bool({ doc: 'save a checkpoint at every evaluation', default: false, optional: true }),
  max_shard_size: num({
    doc: "a checkpoint's largest weights file in bytes (transformers' max_shard_size): larger models are saved as model-0000k-of-0000n.safetensors + model.safetensors.index.json",
    default: DEFAULT_MAX_SHARD_BYTES,
    int: true,
    min: 1,
    optional: true,
  }),
  sample_during_eval: bool({ doc: 'sample test prompts at each evaluation', default: false, optional: true }),
  n_eval_model_samples: num({ doc: 'test prompts sampled (greedy) at each evaluation when sample_during_eval is true', default: 16, int: true, min: 0, optional: true }),
  n_samples: num({ doc: 'samples `rpo eval ++mode=sample` generates', default: 128, int: true, min: 0 }),
  samples_dir: nonEmpty({ doc: 'where samples are written', default: 'samples/' }),
  n_eval_examples: numOrNull({ doc: 'examples to evaluate on (null: all)', default: 512, int: true, min: 0 }),
  saved_policy: textOrNull({ doc: "the trained policy to sample from (null: the run's final model)", default: null }),
  top_p: num({ doc: 'top-p of sampling', default: 0.95, above: 0, max: 1 }),
  human_prefix: text({ doc: 'put before a human turn', default: '<|start_header_id|>user<|end_header_id|>' }),
  human_suffix: text({ doc: 'put after a human turn', default: '<|eot_id|>' }),
  assistant_prefix: text({ doc: 'put before an assistant turn', default: '<|start_header_id|>assistant<|end_header_id|>' }),
  assistant_suffix: text({ doc: 'put after an assistant turn', default: '<|eot_id|>' }),
  template: oneOf(TEMPLATES, { doc: "'prefixes': the four strings above (the seed); 'chat': the tokenizer's chat template", default: 'prefixes', optional: true }),
  truncation_mode: oneOfOrNull(TRUNCATION_MODES, {
    doc: "which end of an over-long prompt every dataset keeps; null: each dataset's own, as the seed set it",
    default: null,
  }),
  drop_last: bool({ doc: "leave out each epoch's last batch when it is smaller than model.batch_size (as the seed's loaders)", default: true, optional: true }),
  precompute_reference: bool({ doc: 'compute reference log-probs once before training instead of keeping the reference model', default: false, optional: true }),
  threads: numOrNull({ doc: "CPU threads for the engine; null: LibTorch's default", default: null, int: true, min: 1 }),
  device: text({
    doc: "'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N'",
    default: 'auto',
    optional: true,
    check: (d) => (/^(auto|cpu|cuda(:\d+)?)$/.test(d) ? null : `device: expected auto, cpu, cuda or cuda:N, got ${JSON.stringify(d)}`),
  }),
  precision: oneOf(PRECISIONS, {
    doc: "how the policy trains: its weights' dtype and the optimizer's (docs/precision.md); it decides the policy's dtype in training, model.policy_dtype does not",
    default: 'auto',
    optional: true,
  }),
  cpu_gemm: oneOf(CPU_GEMMS, {
    doc: "fp32 CPU matrix products: oneDNN or ATen's (MKL); a run records the backend it resolved 'auto' to in its config.yaml, so that a resume computes as the original did",
    default: 'auto',
    optional: true,
  }),
  bf16_peak_tflops: numOrNull({ doc: "the GPU's bf16 peak in TFLOP/s that logged mfu is over; null: RPO_BF16_PEAK_TFLOPS, else no mfu", default: null, above: 0 }),
  resume: textOrNull({ doc: 'a checkpoint directory to resume from', default: null }),
  overwrite: bool({ doc: 'start a fresh run in a run directory that holds an earlier run, deleting what that run wrote', default: false, optional: true }),
  padding_free: bool({ doc: "pack each micro-batch's rows into one sequence without padding (README \"Packing\"); false: pad each to its longest row", default: true, optional: true }),
  chunk_tokens: num({ doc: 'label positions per chunk of the fused log-prob head', default: 1024, int: true, min: 1, optional: true }),
  use_fsdp: bool({ doc: 'use FSDP', default: false, optional: true, ignored: FSDP }),
  fsdp_port: numOrNull({ doc: "FSDP's port", default: null, int: true, ignored: FSDP }),
  wandb: section(WANDB_KEYS, { doc: 'Weights & Biases logging' }),
  trainer: textOrNull({ doc: 'the seed trainer class', default: 'BasicTrainer', ignored: LOSS_PICKS_STEP }),
  minimum_log_interval_secs: num({ doc: "wandb's logging interval", default: 1.0, min: 0, optional: true, ignored: 'it throttled wandb logging' }),
};

export type WandbSection = FieldValues<typeof WANDB_KEYS>;
export type ModelSection = FieldValues<typeof MODEL_KEYS>;
/** The top level's own keys (RunConfig adds the model, loss and lora sections). */
export type TopKeys = FieldValues<typeof TOP_KEYS>;
