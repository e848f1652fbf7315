// Composing a run config the way Hydra composes the seed's: a primary config with a defaults
// list, config groups, and command-line overrides.
//
// Supported (Hydra ≥ 1.1 semantics):
// - Primary config `<configDir>/<configName>.yaml`. Its `defaults:` list holds, in order:
//     _self_              where the file's own keys are merged (absent: after every entry,
//                         so the file's keys win, as in Hydra ≥ 1.1)
//     {group: option}     merges <dir>/<group>/<option>.yaml under the key `group`;
//                         option ??? must be chosen on the command line; null skips the group
//     name                merges <dir>/name.yaml at the same place (in a group file, `- base_model`
//                         names <group>/base_model.yaml: names are relative to the file's group)
//     optional group: x   as {group: x}, but a missing option file is skipped
//   Group files may have their own defaults lists, composed the same way (recursively).
//   Merging: mappings merge key by key, anything else (lists included) is replaced; a `???`
//   never replaces a value that is set.
// - Group overrides (the key names a directory of the config dir): `loss=rdpo` changes an
//   entry of the primary's defaults list (it must be there), `+group=x` appends one (it must not
//   be there), `++group=x` does either, `~group` / `~group=x` removes it.
// - Value overrides (see overrides.ts for the grammar), applied in order after composition:
//   `key=v` only for keys that exist (a typo is an error with the closest key), `+key=v` only for
//   keys that do not, `++key=v` for either, `~key` / `~key=v` delete. Replacing a whole section
//   (a mapping) with a scalar is an error; a mapping value merges into a mapping.
// - `--config-path DIR --config-name NAME` (splitHydraArgv): DIR/NAME.yaml is the primary
//   config, e.g. a run's saved, already-composed config.yaml (no defaults list); a relative DIR
//   is taken from the current directory (the seed's eval.py sat in the repository root, so
//   `--config-path=data/<run>` meant the same thing there).
// Not supported, each an error saying so: `override` entries and `group@package` in defaults
// lists, multiple options per group, sweeps / --multirun, `--config-dir`.
// Interpolations stay as written here; interpolate.ts resolves them afterwards.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

import { ConfigError, didYouMean, didYouMeanKey } from './errors.js';
import { MISSING, allPaths } from './interpolate.js';
import { parseOverride, type Override } from './overrides.js';
import { isMap, parseYaml, type ConfigMap, type ConfigValue } from './yaml.js';

// ---------------------------------------------------------------------------------------------
// Files and defaults lists

export type DefaultsEntry =
  | { kind: 'self' }
  | { kind: 'config'; name: string }
  | { kind: 'group'; group: string; option: string | null; optional: boolean };

/** Reads a YAML config file whose top level is a mapping (an empty file is {}). */
export function loadYamlFile(file: string): ConfigMap {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${file}: ${(e as Error).message}`);
  }
  const v = parseYaml(text, file);
  if (v === null) return {};
  if (!isMap(v)) throw new ConfigError(`${file}: a config file must be a mapping at the top level`);
  return v;
}

/** Parses a `defaults:` list; `file` is for error messages. */
export function parseDefaults(raw: ConfigValue | undefined, file: string): DefaultsEntry[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new ConfigError(`${file}: 'defaults' must be a list`);
  return raw.map((item) => parseDefaultsEntry(item, file));
}

function parseDefaultsEntry(item: ConfigValue, file: string): DefaultsEntry {
  if (item === '_self_') return { kind: 'self' };
  if (typeof item === 'string') {
    if (item.includes('@')) throw new ConfigError(`${file}: defaults entry '${item}': packages (@) are not supported`);
    return { kind: 'config', name: item };
  }
  const entries = isMap(item) ? Object.entries(item) : [];
  const [entry] = entries;
  if (entries.length !== 1 || entry === undefined) {
    throw new ConfigError(`${file}: a defaults entry is _self_, a config name or {group: option}; got ${JSON.stringify(item)}`);
  }
  let [key, option] = entry;
  let optional = false;
  if (key.startsWith('optional ')) {
    optional = true;
    key = key.slice('optional '.length).trim();
  }
  if (key.startsWith('override ')) {
    throw new ConfigError(`${file}: 'override ${key.slice(9).trim()}' in a defaults list is not supported; override groups on the command line (group=option)`);
  }
  if (key.includes('@')) throw new ConfigError(`${file}: defaults entry '${key}': packages (@) are not supported`);
  if (Array.isArray(option)) throw new ConfigError(`${file}: defaults entry '${key}': several options per group are not supported`);
  if (option !== null && typeof option !== 'string') {
    throw new ConfigError(`${file}: defaults entry '${key}': the option must be a config name, ??? or null`);
  }
  return { kind: 'group', group: key, option, optional };
}

/** The options of a config group: the .yaml files in `<configDir>/<group>/`, sorted. */
export function groupOptions(configDir: string, group: string): string[] {
  const dir = path.join(configDir, group);
  if (!isDirectory(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .map((f) => f.replace(/\.ya?ml$/, ''))
    .sort();
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** `<dir>/<name>.yaml` (or .yml), or undefined. */
function configFile(dir: string, name: string): string | undefined {
  for (const ext of ['.yaml', '.yml']) {
    const f = path.join(dir, name + ext);
    if (existsSync(f)) return f;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Merging and paths

function clone<T extends ConfigValue>(v: T): T {
  return structuredClone(v);
}

/** OmegaConf.merge for two values: mappings merge, `???` never replaces a set value, else replace. */
export function mergeValues(dest: ConfigValue | undefined, src: ConfigValue): ConfigValue {
  if (isMap(dest) && isMap(src)) {
    const out: ConfigMap = { ...dest };
    for (const [k, v] of Object.entries(src)) out[k] = mergeValues(dest[k], v);
    return out;
  }
  if (src === MISSING && dest !== undefined && dest !== MISSING) return dest;
  return clone(src);
}

/** `value` merged into `root` at the mapping path `pkg` (intermediate mappings are created). */
function mergeAt(root: ConfigMap, pkg: readonly string[], value: ConfigMap): ConfigMap {
  if (pkg.length === 0) return mergeValues(root, value) as ConfigMap;
  const [head, ...rest] = pkg as [string, ...string[]];
  const child = root[head];
  return { ...root, [head]: mergeAt(isMap(child) ? child : {}, rest, value) };
}

/** Splits a dotted key into segments. */
export function splitKey(key: string): string[] {
  return key.split('.');
}

// ---------------------------------------------------------------------------------------------
// Composition

export interface ComposeOptions {
  /** Directory holding the primary config and the config groups. */
  configDir: string;
  /** Primary config name, without .yaml (default "config"). */
  configName?: string;
  /** Command-line overrides, as written. */
  overrides?: readonly string[];
}

export interface Composition {
  /** The composed config with the value overrides applied; interpolations not yet resolved. */
  config: ConfigMap;
  /** The option chosen for each group of the primary's defaults list (Hydra's runtime.choices). */
  choices: Record<string, string | null>;
  /** Keys that `+key=` / `++key=` overrides created (they were not in the composed config). */
  addedKeys: string[];
  /** Every file read, in merge order. */
  files: string[];
}

/** Composes the primary config, its defaults and the overrides (see the header). */
export function composeConfig(options: ComposeOptions): Composition {
  const configDir = path.resolve(options.configDir);
  const configName = (options.configName ?? 'config').replace(/\.ya?ml$/, '');
  const primaryFile = configFile(configDir, configName);
  if (primaryFile === undefined) {
    const near = existsSync(configDir) ? didYouMean(configName, listConfigs(configDir)) : '';
    throw new ConfigError(`no config '${configName}' in ${configDir} (looked for ${configName}.yaml)${near}`);
  }
  const parsed = (options.overrides ?? []).map(parseOverride);
  const isGroup = (o: Override): boolean => !o.key.includes('.') && isDirectory(path.join(configDir, o.key));
  const groupOverrides = parsed.filter(isGroup);
  const valueOverrides = parsed.filter((o) => !isGroup(o));

  const primary = loadYamlFile(primaryFile);
  const defaults = applyGroupOverrides(parseDefaults(primary.defaults, primaryFile), groupOverrides, configDir);
  requireChoices(defaults, configDir);

  const files: string[] = [];
  const composed = composeEntries(primary, primaryFile, defaults, { configDir, group: [], pkg: [], files });
  const choices: Record<string, string | null> = {};
  for (const e of defaults) if (e.kind === 'group') choices[e.group] = e.option;

  let config = composed;
  const addedKeys: string[] = [];
  for (const o of valueOverrides) {
    const r = applyOverride(config, o);
    config = r.config;
    if (r.added) addedKeys.push(o.key);
  }
  return { config, choices, addedKeys, files };
}

function listConfigs(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .map((f) => f.replace(/\.ya?ml$/, ''));
}

interface Place {
  configDir: string;
  /** Group directory of the file being composed, relative to configDir. */
  group: readonly string[];
  /** Key path its keys go under. */
  pkg: readonly string[];
  files: string[];
}

/** Merges a file's defaults entries and its own keys (_self_) in defaults-list order. */
function composeEntries(body: ConfigMap, file: string, entries: readonly DefaultsEntry[], at: Place): ConfigMap {
  const { defaults: _ignored, ...own } = body;
  const order = entries.some((e) => e.kind === 'self') ? entries : [...entries, { kind: 'self' } as const];
  let out: ConfigMap = {};
  for (const e of order) {
    if (e.kind === 'self') {
      at.files.push(file);
      out = mergeAt(out, at.pkg, own);
    } else if (e.kind === 'config') {
      const f = requireFile(path.join(at.configDir, ...at.group), e.name, file, `config '${e.name}'`);
      out = mergeValues(out, composeFile(f, at)) as ConfigMap;
    } else {
      if (e.option === null || e.option === MISSING) continue;
      const absolute = e.group.startsWith('/');
      const group = [...(absolute ? [] : at.group), ...e.group.replace(/^\//, '').split('/')];
      const pkg = [...(absolute ? [] : at.pkg), ...e.group.replace(/^\//, '').split('/')];
      const dir = path.join(at.configDir, ...group);
      const f = configFile(dir, e.option);
      if (f === undefined) {
        if (e.optional) continue;
        requireFile(dir, e.option, file, `option '${e.option}' of group '${group.join('/')}'`);
        continue;
      }
      out = mergeValues(out, composeFile(f, { ...at, group, pkg })) as ConfigMap;
    }
  }
  return out;
}

function composeFile(file: string, at: Place): ConfigMap {
  const body = loadYamlFile(file);
  return composeEntries(body, file, parseDefaults(body.defaults, file), at);
}

function requireFile(dir: string, name: string, from: string, what: string): string {
  const f = configFile(dir, name);
  if (f !== undefined) return f;
  const options = isDirectory(dir) ? listConfigs(dir) : [];
  throw new ConfigError(
    `${from}: ${what} not found (no ${path.join(dir, name)}.yaml)${didYouMean(name, options)}` +
      (options.length > 0 ? `; available: ${options.sort().join(', ')}` : ''),
  );
}

/** Applies group overrides (loss=rdpo, +g=x, ++g=x, ~g) to the primary's defaults list. */
export function applyGroupOverrides(
  entries: readonly DefaultsEntry[],
  overrides: readonly Override[],
  configDir: string,
): DefaultsEntry[] {
  let out = [...entries];
  for (const o of overrides) {
    const at = out.findIndex((e) => e.kind === 'group' && e.group === o.key);
    const current = out[at];
    if (o.kind === 'delete') {
      if (current === undefined || current.kind !== 'group') {
        throw new ConfigError(`cannot delete '${o.text}': group '${o.key}' is not in the defaults list`);
      }
      if (o.value !== undefined && o.value !== current.option) {
        throw new ConfigError(`cannot delete '${o.text}': group '${o.key}' is set to '${String(current.option)}'`);
      }
      out = out.filter((_, i) => i !== at);
      continue;
    }
    const option = o.value;
    if (option !== null && typeof option !== 'string' && typeof option !== 'number') {
      throw new ConfigError(`'${o.text}': '${o.key}' is a config group; its value must be an option name`);
    }
    const name = option === null ? null : String(option);
    if (name !== null) checkOption(configDir, o.key, name, o.text);
    const entry: DefaultsEntry = { kind: 'group', group: o.key, option: name, optional: false };
    if (current !== undefined) {
      if (o.kind === 'add') {
        throw new ConfigError(`cannot append '${o.text}': group '${o.key}' is already in the defaults list (use ${o.key}=${String(name)})`);
      }
      out[at] = entry;
    } else {
      if (o.kind === 'set') {
        throw new ConfigError(`cannot override '${o.text}': group '${o.key}' is not in the defaults list (to append it use +${o.text})`);
      }
      out.push(entry);
    }
  }
  return out;
}

function checkOption(configDir: string, group: string, option: string, text: string): void {
  if (configFile(path.join(configDir, group), option) !== undefined) return;
  const options = groupOptions(configDir, group);
  throw new ConfigError(
    `'${text}': no option '${option}' in config group '${group}'${didYouMean(option, options)}; available: ${options.join(', ')}`,
  );
}

/** Every group of the primary's defaults list must have an option (Hydra: "You must specify"). */
function requireChoices(entries: readonly DefaultsEntry[], configDir: string): void {
  for (const e of entries) {
    if (e.kind === 'group' && e.option === MISSING) {
      const options = groupOptions(configDir, e.group);
      throw new ConfigError(
        `you must choose a '${e.group}', e.g. ${e.group}=${options[0] ?? '<option>'}; available: ${options.join(', ')}`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Value overrides

export interface OverrideResult {
  config: ConfigMap;
  /** true when the override created a key that did not exist. */
  added: boolean;
}

/** Applies one value override to a config, returning a new config (the input is not changed). */
export function applyOverride(config: ConfigMap, o: Override): OverrideResult {
  const root = clone(config);
  const segs = splitKey(o.key);
  const last = segs[segs.length - 1] ?? '';
  const parent = walkParent(root, segs, o);
  const exists = parent !== undefined && hasChild(parent, last);
  const suggestion = (): string => didYouMeanKey(o.key, allPaths(config));

  if (o.kind === 'delete') {
    if (parent === undefined || !exists) throw new ConfigError(`cannot delete '${o.text}': there is no key '${o.key}'${suggestion()}`);
    const current = getChild(parent, last);
    if (o.value !== undefined && !deepEqual(current, o.value)) {
      throw new ConfigError(`cannot delete '${o.text}': '${o.key}' is ${JSON.stringify(current)}, not ${JSON.stringify(o.value)}`);
    }
    deleteChild(parent, last, o);
    return { config: root, added: false };
  }
  const value = o.value ?? null;
  if (o.kind === 'set' && !exists) {
    throw new ConfigError(`cannot override '${o.text}': there is no key '${o.key}'${suggestion()}; to add a new key use +${o.text}`);
  }
  if (o.kind === 'add' && exists) {
    const plain = o.text.replace(/^\+/, '');
    throw new ConfigError(`cannot append '${o.text}': '${o.key}' already exists (change it with ${plain}, or use +${o.text})`);
  }
  const target = parent ?? createParents(root, segs, o);
  if (exists) {
    const current = getChild(target, last);
    if (isMap(current) && !isMap(value)) {
      throw new ConfigError(`cannot override '${o.text}': '${o.key}' is a section, not a value; set its keys (${o.key}.<key>=...)`);
    }
    setChild(target, last, isMap(current) && isMap(value) ? mergeValues(current, value) : value, o);
    return { config: root, added: false };
  }
  setChild(target, last, value, o);
  return { config: root, added: true };
}

type Container = ConfigMap | ConfigValue[];

/** The container holding the key's last segment, or undefined when some parent is missing. */
function walkParent(root: ConfigMap, segs: readonly string[], o: Override): Container | undefined {
  let node: ConfigValue = root;
  for (const seg of segs.slice(0, -1)) {
    if (!isMap(node) && !Array.isArray(node)) return undefined;
    if (!hasChild(node, seg)) return undefined;
    node = getChild(node, seg) ?? null;
  }
  if (isMap(node) || Array.isArray(node)) return node;
  if (segs.length > 1 && o.kind !== 'set' && o.kind !== 'delete') {
    throw new ConfigError(`cannot apply '${o.text}': '${segs.slice(0, -1).join('.')}' is a value, not a section`);
  }
  return undefined;
}

/** Creates the missing mappings above a new key (+key / ++key). */
function createParents(root: ConfigMap, segs: readonly string[], o: Override): Container {
  let node: Container = root;
  for (const seg of segs.slice(0, -1)) {
    if (!hasChild(node, seg)) {
      if (Array.isArray(node)) throw new ConfigError(`cannot apply '${o.text}': no item ${seg} in the list`);
      node[seg] = {};
    }
    const next: ConfigValue | undefined = getChild(node, seg);
    if (!isMap(next) && !Array.isArray(next)) {
      throw new ConfigError(`cannot apply '${o.text}': '${seg}' is a value, not a section`);
    }
    node = next;
  }
  return node;
}

function listIndex(list: readonly ConfigValue[], seg: string): number {
  const i = /^\d+$/.test(seg) ? Number(seg) : -1;
  return i < list.length ? i : -1;
}

function hasChild(node: Container, seg: string): boolean {
  return Array.isArray(node) ? listIndex(node, seg) >= 0 : Object.prototype.hasOwnProperty.call(node, seg);
}

function getChild(node: Container, seg: string): ConfigValue | undefined {
  if (Array.isArray(node)) {
    const i = listIndex(node, seg);
    return i >= 0 ? node[i] : undefined;
  }
  return hasChild(node, seg) ? node[seg] : undefined;
}

function setChild(node: Container, seg: string, value: ConfigValue, o: Override): void {
  if (Array.isArray(node)) {
    const i = listIndex(node, seg);
    if (i < 0) throw new ConfigError(`cannot apply '${o.text}': no item ${seg} in the list (it has ${node.length})`);
    node[i] = value;
  } else node[seg] = value;
}

function deleteChild(node: Container, seg: string, o: Override): void {
  if (Array.isArray(node)) {
    const i = listIndex(node, seg);
    if (i < 0) throw new ConfigError(`cannot delete '${o.text}': no item ${seg} in the list`);
    node.splice(i, 1);
  } else delete node[seg];
}

function deepEqual(a: ConfigValue | undefined, b: ConfigValue | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

// ---------------------------------------------------------------------------------------------
// Hydra's command line

export interface HydraArgs {
  /** Overrides, in order. */
  overrides: string[];
  /** --config-path / -cp */
  configPath?: string;
  /** --config-name / -cn */
  configName?: string;
  /** --cfg / -c: print the config instead of running (rpo prints the job config for all three). */
  cfg?: 'job' | 'hydra' | 'all';
  /** --resolve: with --cfg, print it resolved. */
  resolve: boolean;
}

const VALUE_FLAGS: Record<string, 'configPath' | 'configName' | 'cfg'> = {
  '--config-path': 'configPath',
  '-cp': 'configPath',
  '--config-name': 'configName',
  '-cn': 'configName',
  '--cfg': 'cfg',
  '-c': 'cfg',
};

/**
 * Splits the arguments a seed command gave `train.py` / `eval.py` into Hydra's flags and the
 * overrides, e.g. ['--config-path=data/run', '--config-name=config', '++mode=alpacaeval'].
 */
export function splitHydraArgv(argv: readonly string[]): HydraArgs {
  const out: HydraArgs = { overrides: [], resolve: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('-')) {
      out.overrides.push(arg);
      continue;
    }
    if (arg === '--resolve') {
      out.resolve = true;
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const field = VALUE_FLAGS[flag];
    if (field === undefined) {
      if (flag === '--multirun' || flag === '-m') throw new ConfigError(`${flag}: Hydra multirun (sweeps) is not supported; run one command per setting`);
      if (flag === '--config-dir' || flag === '-cd') throw new ConfigError(`${flag} is not supported; use --config-path`);
      throw new ConfigError(`unknown option '${arg}'`);
    }
    let value: string | undefined;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      i++;
    }
    if (value === undefined || value === '') throw new ConfigError(`${flag} needs a value`);
    if (field === 'cfg') {
      if (value !== 'job' && value !== 'hydra' && value !== 'all') throw new ConfigError(`${flag} takes job, hydra or all; got '${value}'`);
      out.cfg = value;
    } else out[field] = value;
  }
  return out;
}
