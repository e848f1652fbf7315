// The typed RunConfig: types and ranges, seed keys accepted (mapped or noticed), engine options.
import { describe, expect, it } from 'vitest';

import { ConfigError } from '../../lib/config/errors.js';
import { loadConfig } from '../../lib/config/index.js';
import {
  KNOWN_KEYS,
  engineLossConfig,
  engineOptimizer,
  isKnownKey,
  lossEvalBatchSize,
  lossUsesReference,
  validateConfig,
  type RunConfig,
} from '../../lib/config/schema.js';
import type { ConfigMap, ConfigValue } from '../../lib/config/yaml.js';

/** A valid resolved raw config from rpo's own files. */
function raw(loss = 'rdpo', model = 'tiny'): ConfigMap {
  return loadConfig({ overrides: [`loss=${loss}`, `model=${model}`, 'datasets=[orcaratspec]', 'exp_name=e'], env: {} }).raw;
}

/** `base` with `key` (dotted) set to `value`, or deleted when value is undefined. */
function withKey(base: ConfigMap, key: string, value: ConfigValue | undefined): ConfigMap {
  const out = structuredClone(base);
  const segs = key.split('.');
  let node = out;
  for (const s of segs.slice(0, -1)) {
    node[s] ??= {};
    node = node[s] as ConfigMap;
  }
  const last = segs[segs.length - 1] ?? '';
  if (value === undefined) delete node[last];
  else node[last] = value;
  return out;
}

function errorsOf(r: ConfigMap): string {
  try {
    validateConfig(r);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('expected validateConfig to throw');
}

function validate(over: Record<string, ConfigValue | undefined>, loss = 'rdpo'): { config: RunConfig; notices: string[] } {
  let r = raw(loss);
  for (const [k, v] of Object.entries(over)) r = withKey(r, k, v);
  return validateConfig(r);
}

function invalid(over: Record<string, ConfigValue | undefined>, loss = 'rdpo'): string {
  let r = raw(loss);
  for (const [k, v] of Object.entries(over)) r = withKey(r, k, v);
  return errorsOf(r);
}

describe('validateConfig: the typed result', () => {
  it('types every field of the default rdpo config', () => {
    const { config, notices } = validateConfig(raw());
    expect(notices).toEqual([]);
    expect(config).toMatchObject({
      seed: 1,
      exp_name: 'e',
      datasets: ['orcaratspec'],
      mode: 'train',
      debug: false,
      cache_dir: 'data',
      local_run_dir: 'data/e',
      lr: 5e-7,
      n_epochs: 1,
      n_examples: null,
      optimizer: 'AdamW',
      warmup_steps: 150,
      eval_every: 20000,
      do_first_eval: true,
      n_samples: 128,
      samples_dir: 'samples/',
      n_eval_examples: 512,
      top_p: 0.95,
      // the seed's formatting (its config/config.yaml), not HALOs' (issue 12)
      human_prefix: '<|start_header_id|>user<|end_header_id|>',
      human_suffix: '<|eot_id|>',
      assistant_prefix: '<|start_header_id|>assistant<|end_header_id|>',
      assistant_suffix: '<|eot_id|>',
      template: 'prefixes',
      truncation_mode: null, // each dataset's own
      drop_last: true,
      precompute_reference: false,
      threads: null,
      device: 'auto',
      resume: null,
      chunk_tokens: 1024,
      padding_free: true,
      wandb: { enabled: false, entity: null, project: 'rpo' },
    });
    expect(config.loss).toEqual({
      name: 'rdpo',
      beta: 0.1,
      gamma: 0.1,
      epsilon: null,
      lambda: null,
      margin: null,
      rationale_form: 'code',
      rationale: 'none',
      chosen_control_token: null,
      rejected_control_token: null,
      desirable_weight: null,
      undesirable_weight: null,
      ppo_epochs: null,
      cliprange: null,
      lam: null,
      critic_coef: null,
      KL_coef: null,
      use_reference_model: true,
      trainer: 'RDPOTrainer',
      dataloader: 'PairedPreferenceRationaleDataLoader',
    });
  });

  it("has the issue's loss defaults", () => {
    expect(validateConfig(raw('rorpo-simple')).config.loss).toMatchObject({ beta: 0.1, gamma: 1.0, use_reference_model: false });
    expect(validateConfig(raw('cdpo')).config.loss).toMatchObject({ beta: 0.1, epsilon: 0.2, use_reference_model: true });
    expect(validateConfig(raw('slic')).config.loss).toMatchObject({ beta: 1.0, lambda: 0.1, use_reference_model: false });
    expect(validateConfig(raw('simpo')).config.loss).toMatchObject({ beta: 2.0, margin: 0.5, use_reference_model: false });
    expect(validateConfig(raw('sft')).config.loss.use_reference_model).toBe(false);
  });

  it('a dataset given as one string becomes a list; mappings pass through', () => {
    expect(validate({ datasets: 'orca' }).config.datasets).toEqual(['orca']);
    expect(validate({ datasets: ['orca', { path: 'x.jsonl' }] }).config.datasets).toEqual(['orca', { path: 'x.jsonl' }]);
  });
});

describe('validateConfig: errors', () => {
  it('types and ranges, each naming the key', () => {
    expect(invalid({ lr: -1 })).toMatch(/lr: must be ≥ 0, got -1/);
    expect(invalid({ lr: 'fast' })).toMatch(/lr: expected a number, got "fast"/);
    expect(invalid({ seed: 1.5 })).toMatch(/seed: expected an integer, got 1\.5/);
    expect(invalid({ top_p: 0 })).toMatch(/top_p: must be > 0/);
    expect(invalid({ top_p: 1.5 })).toMatch(/top_p: must be ≤ 1/);
    expect(invalid({ debug: 'no' })).toMatch(/debug: expected true or false, got "no"/);
    expect(invalid({ warmup_steps: -1 })).toMatch(/warmup_steps: must be ≥ 0/);
    expect(invalid({ 'model.batch_size': 0 })).toMatch(/model\.batch_size: must be ≥ 1/);
    expect(invalid({ threads: 0 })).toMatch(/threads: must be ≥ 1/);
    expect(invalid({ device: 'gpu' })).toMatch(/device: expected auto, cpu, cuda or cuda:N/);
    expect(invalid({ 'model.name_or_path': '' })).toMatch(/model\.name_or_path: must not be empty/);
    expect(invalid({ datasets: [] })).toMatch(/datasets: expected a non-empty list/);
    expect(invalid({ datasets: [1] })).toMatch(/datasets\.0: expected a dataset name/);
    expect(invalid({ model: 'mistral' })).toMatch(/model: expected a section/);
  });

  it('batch_size must be divisible by gradient_accumulation_steps', () => {
    expect(invalid({ 'model.batch_size': 6, 'model.gradient_accumulation_steps': 4 })).toMatch(
      /model\.batch_size \(6\) must be divisible by model\.gradient_accumulation_steps \(4\)/,
    );
    expect(validate({ 'model.batch_size': 8, 'model.gradient_accumulation_steps': 4 }).config.model.gradient_accumulation_steps).toBe(4);
  });

  it("eval_batch_size: a count, or 'auto' (sampling: the slots that fit; loss evaluation: the micro-batch)", () => {
    expect(validate({ 'model.eval_batch_size': 35 }).config.model.eval_batch_size).toBe(35);
    const auto = validate({ 'model.eval_batch_size': 'auto', 'model.batch_size': 32, 'model.gradient_accumulation_steps': 4 }).config;
    expect(auto.model.eval_batch_size).toBe('auto');
    expect(lossEvalBatchSize(auto.model)).toBe(8);
    expect(lossEvalBatchSize({ ...auto.model, eval_batch_size: 5 })).toBe(5);
    expect(invalid({ 'model.eval_batch_size': 'many' })).toMatch(/model\.eval_batch_size: expected an integer, got "many"/);
    expect(invalid({ 'model.eval_batch_size': 0 })).toMatch(/model\.eval_batch_size: must be ≥ 1/);
  });

  it('max_prompt_length must be < max_length', () => {
    expect(invalid({ 'model.max_prompt_length': 128 })).toMatch(/model\.max_prompt_length \(128\) must be < model\.max_length \(128\)/);
  });

  it('enumerations, with the closest valid value', () => {
    expect(invalid({ 'loss.name': 'rdop' })).toMatch(/loss\.name: expected one of sft, csft, dpo, .*rorpo-simple, kto, kto-simple, kto-zero, ppo, got "rdop" \(did you mean 'rdpo'\?\)/);
    expect(invalid({ optimizer: 'adamw' })).toMatch(/optimizer: expected one of AdamW, RMSprop, Adam, got "adamw" \(did you mean 'AdamW'\?\)/);
    expect(invalid({ optimizer: 'SGD' })).toMatch(/optimizer: expected one of/);
    expect(invalid({ template: 'chatml' })).toMatch(/template: expected one of prefixes, chat/);
    expect(invalid({ truncation_mode: 'keep_middle' })).toMatch(/truncation_mode: expected one of keep_end, keep_start/);
    expect(invalid({ 'model.policy_dtype': 'bf16' })).toMatch(/model\.policy_dtype: expected one of float32, bfloat16, float16/);
    expect(invalid({ 'model.reference_dtype': 'fp32' })).toMatch(/model\.reference_dtype: expected one of/);
    expect(invalid({ mode: 'evaluate' })).toMatch(/mode: expected one of train, eval, sample, alpacaeval/);
    expect(invalid({ 'loss.rationale_form': 'both' })).toMatch(/loss\.rationale_form: expected one of code, paper/);
  });

  it("a loss's parameters are required and ranged", () => {
    expect(invalid({ 'loss.gamma': null })).toMatch(/loss\.gamma: loss 'rdpo' needs it/);
    expect(invalid({ 'loss.beta': 0 })).toMatch(/loss\.beta: must be > 0/);
    expect(invalid({ 'loss.epsilon': 1.5 }, 'cdpo')).toMatch(/loss\.epsilon: must be < 1/);
    // cdpo's epsilon is in [0, 1) as the engine has it (at 1 every label is flipped: dpo on swapped pairs).
    expect(invalid({ 'loss.epsilon': 1 }, 'cdpo')).toMatch(/loss\.epsilon: must be < 1, got 1/);
    expect(invalid({ 'loss.lambda': undefined }, 'slic')).toMatch(/loss\.lambda: loss 'slic' needs it/);
    expect(invalid({ 'loss.margin': undefined }, 'simpo')).toMatch(/loss\.margin: loss 'simpo' needs it/);
    // sft reads no parameter: none is required.
    expect(validate({ 'loss.beta': undefined }, 'sft').config.loss.name).toBe('sft');
  });

  it('n_epochs and n_examples cannot both be null', () => {
    expect(invalid({ n_epochs: null })).toMatch(/n_epochs and n_examples are both null/);
    expect(validate({ n_epochs: null, n_examples: 1000 }).config.n_examples).toBe(1000);
  });

  it('reports every problem at once', () => {
    const msg = invalid({ lr: -1, optimizer: 'SGD', 'model.max_prompt_length': 500 });
    expect(msg.split('\n').filter((l) => l.startsWith('  - '))).toHaveLength(3);
    expect(msg.startsWith('invalid config:\n')).toBe(true);
  });
});

describe('seed keys: accepted, mapped or noticed', () => {
  it('ignored keys at their defaults make no notice; changed ones make one line each', () => {
    const { notices } = validate({ use_fsdp: true, fsdp_port: 12355, 'wandb.enabled': true, trainer: 'FSDPTrainer', 'model.fsdp_policy_mp': 'bfloat16' });
    expect(notices).toEqual([
      'ignored: use_fsdp=true (no FSDP: rpo launch shards by data parallelism and ZeRO-1/2)',
      'ignored: fsdp_port=12355 (no FSDP: rpo launch shards by data parallelism and ZeRO-1/2)',
      'ignored: wandb.enabled=true (rpo does not log to Weights & Biases; metrics go to the run directory)',
      'ignored: trainer="FSDPTrainer" (the loss name picks the training step)',
      'ignored: model.fsdp_policy_mp="bfloat16" (no FSDP: rpo launch shards by data parallelism and ZeRO-1/2)',
    ]);
  });

  it('model- and loss-specific seed keys are never noticed', () => {
    expect(validate({ 'model.block_name': 'X', 'model.use_flash_attention': true, 'loss.trainer': 'T', 'loss.dataloader': 'D' }).notices).toEqual([]);
  });

  it('HALOs keys outside RunConfig are accepted and dropped (its PEFT keys mapped onto lora.*)', () => {
    const { config, notices } = validate({ frac_unique_desirable: 0.8, 'model.use_peft': true, 'model.peft.lora_r': 8 });
    expect(notices).toEqual([
      "model.use_peft=true → lora.enabled (the seed's name)",
      "model.peft.lora_r=8 → lora.r (the seed's name)",
      'ignored: frac_unique_desirable=0.8 (a HALOs option rpo does not implement)',
    ]);
    expect(config.lora).toMatchObject({ enabled: true, r: 8 });
    expect(config).not.toHaveProperty('frac_unique_desirable');
    expect(config.model).not.toHaveProperty('use_peft');
  });

  it('lambda_coef → lambda (slic), winning over lambda', () => {
    const { config, notices } = validate({ 'loss.lambda_coef': 0.5 }, 'slic');
    expect(config.loss.lambda).toBe(0.5);
    expect(config.loss).not.toHaveProperty('lambda_coef');
    expect(notices).toEqual(["loss.lambda_coef=0.5 → loss.lambda (the seed's name)"]);
    expect(engineLossConfig(config.loss)).toEqual({ name: 'slic', beta: 1, lambda: 0.5 });
  });

  it("tau → beta (ipo); simpo's gamma and gamma_beta_ratio → margin", () => {
    expect(validate({ 'loss.tau': 0.05 }, 'ipo').config.loss.beta).toBe(0.05);
    const g = validate({ 'loss.gamma': 1.5 }, 'simpo');
    expect(g.config.loss).toMatchObject({ margin: 1.5, gamma: null });
    expect(g.notices).toEqual(["loss.gamma=1.5 → loss.margin (HALOs' name for SimPO's target margin)"]);
    const r = validate({ 'loss.beta': 10, 'loss.gamma_beta_ratio': 0.3 }, 'simpo');
    expect(r.config.loss.margin).toBeCloseTo(3);
    expect(engineLossConfig(r.config.loss)).toEqual({ name: 'simpo', beta: 10, margin: r.config.loss.margin });
  });

  it('cache_reference_logprobs → precompute_reference', () => {
    const { config, notices } = validate({ cache_reference_logprobs: true }, 'dpo');
    expect(config.precompute_reference).toBe(true);
    expect(notices).toEqual(["cache_reference_logprobs=true → precompute_reference=true (the seed's name)"]);
  });

  it('parameters and options with no effect for the chosen loss are noticed', () => {
    expect(validate({ 'loss.gamma': 0.5 }, 'dpo').notices).toEqual(['loss.gamma=0.5 has no effect with loss=dpo']);
    expect(validate({ 'loss.use_reference_model': true }, 'orpo').notices).toEqual([
      'loss.use_reference_model=true ignored: loss=orpo has no reference model',
    ]);
    expect(validate({ 'loss.use_reference_model': false }).notices).toEqual([
      'loss.use_reference_model=false ignored: loss=rdpo needs reference model',
    ]);
    expect(validate({ precompute_reference: true }, 'simpo').notices).toEqual([
      'precompute_reference=true has no effect with loss=simpo (no reference model)',
    ]);
  });

  it('debug and eval_every are mapped, with a notice', () => {
    expect(validate({ debug: true }).notices).toEqual(['debug=true: no checkpoints and no final model will be written']);
    const r = validate({ eval_every: 10, 'model.batch_size': 4, 'model.gradient_accumulation_steps': 1 });
    expect(r.config.eval_every).toBe(8);
    expect(r.notices).toEqual(['eval_every=10 is not a multiple of model.batch_size=4; using 8 (as the seed did)']);
    expect(validate({ eval_every: 2, 'model.batch_size': 4, 'model.gradient_accumulation_steps': 1 }).config.eval_every).toBe(4);
  });

  it('unknown keys from a file are notices with a suggestion (loadConfig makes command-line ones errors)', () => {
    const { notices } = validate({ 'loss.gama': 1, totally_new: { a: 1 } });
    expect(notices).toEqual(["unknown key ignored: loss.gama (did you mean 'loss.gamma'?)", 'unknown key ignored: totally_new']);
  });
});

describe('engine options', () => {
  it('engineLossConfig passes only what the loss reads', () => {
    expect(engineLossConfig(validateConfig(raw('rdpo')).config.loss)).toEqual({ name: 'rdpo', beta: 0.1, gamma: 0.1, rationale_form: 'code' });
    expect(engineLossConfig(validateConfig(raw('cdpo')).config.loss)).toEqual({ name: 'cdpo', beta: 0.1, epsilon: 0.2 });
    expect(engineLossConfig(validateConfig(raw('sft')).config.loss)).toEqual({ name: 'sft' });
    expect(engineLossConfig(validate({ 'loss.rationale_form': 'paper' }).config.loss).rationale_form).toBe('paper');
  });

  it('Adam is AdamW without weight decay; AdamW and RMSprop keep torch defaults', () => {
    expect(engineOptimizer({ optimizer: 'Adam' })).toEqual({ optimizer: 'AdamW', weightDecay: 0 });
    expect(engineOptimizer({ optimizer: 'AdamW' })).toEqual({ optimizer: 'AdamW' });
    expect(engineOptimizer({ optimizer: 'RMSprop' })).toEqual({ optimizer: 'RMSprop' });
  });

  it('reference use per loss follows DESIGN.md', () => {
    expect(['dpo', 'cdpo', 'ipo', 'rdpo'].every((l) => lossUsesReference(l as 'dpo'))).toBe(true);
    expect(['sft', 'slic', 'simpo', 'orpo', 'rorpo-simple'].some((l) => lossUsesReference(l as 'sft'))).toBe(false);
  });

  it('every key of the config files is a known key', () => {
    const paths = (v: ConfigValue, prefix: string): string[] =>
      v !== null && typeof v === 'object' && !Array.isArray(v)
        ? Object.entries(v).flatMap(([k, x]) => [`${prefix}${k}`, ...paths(x, `${prefix}${k}.`)])
        : [];
    for (const loss of ['sft', 'dpo', 'cdpo', 'ipo', 'slic', 'simpo', 'orpo', 'rdpo', 'rorpo-simple']) {
      for (const p of paths(raw(loss, 'mistral7bv2'), '')) {
        if (!p.startsWith('datasets')) expect(isKnownKey(p), p).toBe(true);
      }
    }
    expect(KNOWN_KEYS).toContain('loss.lambda_coef');
  });
});

describe('loss=ppo: the seed ppo.yaml keys', () => {
  const keys = (l: RunConfig['loss']) => [l.ppo_epochs, l.cliprange, l.lam, l.gamma, l.critic_coef, l.KL_coef];
  it('configs/loss/ppo.yaml gives the seed values, and so do the defaults without it', () => {
    const loss = validate({}, 'ppo').config.loss;
    expect(keys(loss)).toEqual([1, 0.5, 0.95, 0.99, 0.01, 0.1]);
    expect(engineLossConfig(loss)).toEqual({ name: 'ppo', ppo_epochs: 1, cliprange: 0.5, lam: 0.95, gamma: 0.99, critic_coef: 0.01, KL_coef: 0.1 });
    const bare = validate({ 'loss.ppo_epochs': undefined, 'loss.cliprange': undefined, 'loss.lam': undefined, 'loss.gamma': undefined, 'loss.critic_coef': undefined, 'loss.KL_coef': undefined }, 'ppo');
    expect(keys(bare.config.loss)).toEqual([1, 0.5, 0.95, 0.99, 0.01, 0.1]);
  });
  it('takes overrides and rejects bad values naming the key', () => {
    const o = validate({ 'loss.ppo_epochs': 3, 'loss.cliprange': 0.2, 'loss.lam': 0.9, 'loss.gamma': 1, 'loss.critic_coef': 0.1, 'loss.KL_coef': 0 }, 'ppo').config.loss;
    expect(keys(o)).toEqual([3, 0.2, 0.9, 1, 0.1, 0]);
    expect(invalid({ 'loss.ppo_epochs': 0 }, 'ppo')).toMatch(/loss\.ppo_epochs/);
    expect(invalid({ 'loss.ppo_epochs': 1.5 }, 'ppo')).toMatch(/loss\.ppo_epochs/);
    expect(invalid({ 'loss.cliprange': 2 }, 'ppo')).toMatch(/loss\.cliprange/);
  });
});
