// The config layer's public face: load (compose + resolve + validate), save, print.
//
//   loadConfig({ overrides: ['loss=rdpo', '++loss.gamma=0.001', 'lr=5e-7', 'model=mistral7bv2',
//                'datasets=[orcaratspec]', 'exp_name=x', 'mode=train'] })
//   loadConfig({ configPath: 'data/x', configName: 'config', overrides: ['++mode=alpacaeval'] })
//
// Keys created by `+key=` / `++key=` overrides must be keys rpo knows: Hydra would accept any
// (the seed's code then never read a misspelt `++loss.gama=0.001`), but in rpo nothing reads an
// unknown key, so a new unknown key on the command line is an error naming the closest known key.
// Unknown keys that come from a config file (an old saved run config) are only notices.
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { packageRoot } from '../util/package.js';

import { composeConfig, splitHydraArgv, type Composition, type HydraArgs } from './compose.js';
import { hydraYaml } from './hydra_yaml.js';
import { ConfigError, suggestKey } from './errors.js';
import { redactError, redactSecrets } from '../util/redact.js';
import { MISSING, allPaths, missingKeys, resolveConfig, type Env } from './interpolate.js';
import { closestKnownKey, isKnownKey, toRaw, validateConfig, type RunConfig } from './schema.js';
import { isMap, stringifyYaml, type ConfigMap, type ConfigValue } from './yaml.js';

export { ConfigError } from './errors.js';
export { composeConfig, splitHydraArgv, applyOverride, type Composition, type HydraArgs } from './compose.js';
export { parseOverride, parseOverrideValue, type Override, type OverrideKind } from './overrides.js';
export { resolveConfig, missingKeys, MISSING, type Env } from './interpolate.js';
export { parseYaml, stringifyYaml, type ConfigMap, type ConfigValue } from './yaml.js';
export { hydraYaml, pythonFloat, FLOAT_KEYS } from './hydra_yaml.js';
export {
  validateConfig,
  engineLossConfig,
  engineOptimizer,
  lossUsesReference,
  lossEvalBatchSize,
  resolvePrecision,
  precisionDtype,
  precisionNotices,
  PRECISIONS,
  LR_SCHEDULER_TYPES,
  isKnownKey,
  KNOWN_KEYS,
  LOSS_NAMES,
  type RunConfig,
  type ModelSection,
  type LossSection,
  type LoraSection,
  type WandbSection,
  type DatasetRef,
  type Validated,
  type Mode,
  type Dtype,
  type Optimizer,
  type Template,
  type TruncationMode,
  type RationaleForm,
  type Precision,
  type LrSchedulerType,
  type TrainPrecision,
} from './schema.js';


/** The package's own configs/ (config.yaml, loss/, model/). */
export const DEFAULT_CONFIG_DIR = path.join(packageRoot(), 'configs');

export interface LoadConfigOptions {
  /** Command-line overrides (Hydra syntax), in order. */
  overrides?: readonly string[];
  /** Directory with config.yaml and the groups; default: the package's configs/. */
  configDir?: string;
  /** --config-path: a directory holding the primary config (relative: from the current directory). */
  configPath?: string;
  /** --config-name: the primary config's name (default "config"). */
  configName?: string;
  /** Environment for ${oc.env:...} (default process.env). */
  env?: Env;
}

export interface LoadedConfig {
  config: RunConfig;
  /** The composed, resolved config before validation (what `--cfg job --resolve` prints). */
  raw: ConfigMap;
  /** Lines for the user: ignored or mapped seed keys, unknown keys from files, adjustments. */
  notices: string[];
  /** The option chosen per config group (e.g. { model: 'mistral7bv2', loss: 'rdpo' }). */
  choices: Record<string, string | null>;
}

/** Composes the config (files + overrides) without resolving it: `--cfg job` prints this. */
export function composeRun(options: LoadConfigOptions = {}): Composition {
  const configDir = options.configPath !== undefined ? path.resolve(options.configPath) : (options.configDir ?? DEFAULT_CONFIG_DIR);
  return composeConfig({ configDir, configName: options.configName, overrides: options.overrides });
}

/** Compose, resolve interpolations, check nothing is `???`, validate. */
export function loadConfig(options: LoadConfigOptions = {}): LoadedConfig {
  const composition = composeRun(options);
  rejectUnknownKeys(composition);
  // Every ??? at once before resolving (resolution would stop at the first one it meets), and
  // again after, for a ??? an interpolation produced.
  requireValues(composition.config);
  const raw = resolveConfig(composition.config, { env: options.env });
  // From here on a secret from ${oc.env:...} is registered: messages that may quote it are masked.
  try {
    requireValues(raw);
    const { config, notices } = validateConfig(raw);
    return { config, raw, notices: notices.map(redactSecrets), choices: composition.choices };
  } catch (err) {
    throw redactError(err, redactSecrets);
  }
}

/**
 * What `--cfg job` prints: the composed config as Hydra prints it (OmegaConf.to_yaml), `???`
 * and interpolations as written; with `resolve` (`--cfg job --resolve`) interpolations resolved,
 * a `???` still printed as `???`.
 */
export function formatJobConfig(options: LoadConfigOptions & { resolve?: boolean }): string {
  const composition = composeRun(options);
  rejectUnknownKeys(composition);
  return options.resolve ? redactSecrets(hydraYaml(resolveConfig(composition.config, { env: options.env }))) : hydraYaml(composition.config);
}

/** A key that a `+key=` / `++key=` override created and that rpo does not read is an error. */
function rejectUnknownKeys(composition: Composition): void {
  const unknown = composition.addedKeys.filter((key) => !isKnownKey(key));
  for (const key of unknown) {
    throw new ConfigError(`unknown key '${key}': rpo does not read it${suggestionFor(key, unknown, composition.config)}`);
  }
}

/**
 * " (did you mean ...)" for an unknown key added from the command line: a known key first, else
 * a key of the composed config. The keys the overrides added are left out of the latter: they
 * are in the config now, and the typed key would otherwise be its own suggestion.
 */
function suggestionFor(key: string, added: readonly string[], config: ConfigMap): string {
  const own = (p: string): boolean => added.some((a) => p === a || p.startsWith(`${a}.`));
  const near = closestKnownKey(key) ?? suggestKey(key, allPaths(config).filter((p) => !own(p)));
  return near === undefined ? '' : ` (did you mean '${near}'?)`;
}

function requireValues(config: ConfigMap): void {
  const missing = missingKeys(config);
  if (missing.length === 0) return;
  const how = missing.map((k) => `${k}=...`).join(' ');
  throw new ConfigError(`missing mandatory value${missing.length > 1 ? 's' : ''}: ${missing.join(', ')} (set on the command line: ${how})`);
}

/** splitHydraArgv + loadConfig: the arguments a seed command gave train.py or eval.py. */
export function loadConfigFromArgv(
  argv: readonly string[],
  options: Pick<LoadConfigOptions, 'configDir' | 'env'> = {},
): LoadedConfig & { args: HydraArgs } {
  const args = splitHydraArgv(argv);
  const loaded = loadConfig({
    ...options,
    overrides: args.overrides,
    configPath: args.configPath,
    configName: args.configName,
  });
  return { ...loaded, args };
}

/** YAML for printing a config (`rpo plan --cfg`); `--cfg job` uses formatJobConfig. */
export function formatConfig(raw: ConfigMap): string {
  return redactSecrets(stringifyYaml(raw));
}

/** Strings are written with `${` escaped, so a reload does not interpolate them again. */
function escapeInterpolations(v: ConfigValue): ConfigValue {
  if (typeof v === 'string') return v === MISSING ? v : v.replace(/\$\{/g, '\\${');
  if (Array.isArray(v)) return v.map(escapeInterpolations);
  if (isMap(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, escapeInterpolations(x)]));
  return v;
}

/**
 * Writes the config as YAML, atomically (a temporary file in the same directory, then a
 * rename), so a crash never leaves half a config. `--config-path <dir> --config-name <name>`
 * reloads it to the same RunConfig.
 */
export function saveConfig(config: RunConfig, file: string): void {
  const text =
    '# rpo run config (composed, resolved, validated). Reload it with\n' +
    `#   rpo eval --config-path ${path.dirname(file)} --config-name ${path.basename(file).replace(/\.ya?ml$/, '')} [overrides]\n` +
    // Hydra's own layout (OmegaConf.to_yaml), so `max_grad_norm: 10.0` stays a float on reload.
    // Secrets from the environment are masked: the file is for reading and reloading, not for keys.
    redactSecrets(hydraYaml(escapeInterpolations(toRaw(config))));
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Date.now().toString(36)}`;
  try {
    writeFileSync(tmp, text, 'utf8');
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
