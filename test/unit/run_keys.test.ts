// The run keys' one declaration (lib/config/run_keys.ts) against rpo's config files and against
// the reader derived from it: the files carry every declared key at its declared default, and a
// config without a key reads as the declaration says (an error, null, or `absent`).
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { loadYamlFile } from '../../lib/config/compose.js';
import { ConfigError } from '../../lib/config/errors.js';
import { DEFAULT_CONFIG_DIR, loadConfig } from '../../lib/config/index.js';
import { tableKeys, type FieldTable } from '../../lib/config/fields.js';
import { LORA_DEFAULTS, LORA_KEYS, readLora } from '../../lib/config/lora.js';
import { MODEL_KEYS, TOP_KEYS } from '../../lib/config/run_keys.js';
import { KNOWN_KEYS, validateConfig } from '../../lib/config/schema.js';
import { isMap, type ConfigMap, type ConfigValue } from '../../lib/config/yaml.js';

const CONFIG = loadYamlFile(path.join(DEFAULT_CONFIG_DIR, 'config.yaml'));
const BASE_MODEL = loadYamlFile(path.join(DEFAULT_CONFIG_DIR, 'model', 'base_model.yaml'));

/** Keys of config.yaml that another declaration owns: Hydra's defaults list, and lora.ts's section. */
const NOT_RUN_KEYS = ['defaults', 'lora'];

/** A value the file leaves for the user or for interpolation: no default to compare. */
function unset(v: ConfigValue): boolean {
  return v === '???' || (typeof v === 'string' && v.includes('${'));
}

/** Every dotted key of a YAML mapping (a mapping's own key and its children's). */
function fileKeys(m: ConfigMap, prefix = ''): string[] {
  return Object.entries(m).flatMap(([k, v]) => [`${prefix}${k}`, ...(isMap(v) ? fileKeys(v, `${prefix}${k}.`) : [])]);
}

/** [key, file value, declared default] for each leaf field of a table. */
function defaultsOf(table: FieldTable, file: ConfigMap): [string, ConfigValue | undefined, ConfigValue | undefined][] {
  return Object.entries(table).flatMap(([k, f]) => {
    const v = file[k];
    if (f.keys) return defaultsOf(f.keys, isMap(v) ? v : {}).map(([sub, fv, d]): [string, ConfigValue | undefined, ConfigValue | undefined] => [`${k}.${sub}`, fv, d]);
    return [[k, v, f.default]];
  });
}

describe('configs/config.yaml and configs/model/base_model.yaml against the declaration', () => {
  it('config.yaml has every top-level key declared, and declares nothing the file lacks', () => {
    const inFile = fileKeys(CONFIG).filter((k) => !NOT_RUN_KEYS.some((n) => k === n || k.startsWith(`${n}.`)));
    expect(inFile.sort()).toEqual(tableKeys(TOP_KEYS).sort());
  });

  it('base_model.yaml has every model key declared, and declares nothing the file lacks', () => {
    expect(fileKeys(BASE_MODEL).sort()).toEqual(tableKeys(MODEL_KEYS).sort());
  });

  it.each([
    ['config.yaml', TOP_KEYS, CONFIG],
    ['base_model.yaml', MODEL_KEYS, BASE_MODEL],
  ] as const)('%s gives each key its declared default (none where the file has ??? or ${...})', (_, table, file) => {
    for (const [key, inFile, declared] of defaultsOf(table, file)) {
      if (inFile === undefined || unset(inFile)) expect(declared, key).toBeUndefined();
      else expect(declared, key).toEqual(inFile);
    }
  });

  it("config.yaml's lora section is lora.ts's keys at their defaults", () => {
    const section = CONFIG.lora;
    expect(isMap(section)).toBe(true);
    expect(fileKeys(section as ConfigMap, 'lora.').sort()).toEqual(LORA_KEYS.filter((k) => k !== 'lora').sort());
    const errors: string[] = [];
    expect(readLora({ lora: section as ConfigValue }, errors, [])).toEqual(LORA_DEFAULTS);
    expect(errors).toEqual([]);
  });

  it('every declared key is a known key', () => {
    for (const k of [...tableKeys(TOP_KEYS), ...tableKeys(MODEL_KEYS, 'model.')]) expect(KNOWN_KEYS, k).toContain(k);
  });
});

describe('the reader derived from the declaration', () => {
  const composed = loadConfig({ overrides: ['loss=dpo', 'model=tiny', 'datasets=[orcaratspec]', 'exp_name=e'], env: {} }).raw;

  /** What validating `composed` without `key` (in `section`) gives: the key's value, or the error text. */
  function withoutKey(section: 'top' | 'model', key: string): { value: unknown } | { error: string } {
    const r = structuredClone(composed);
    delete (section === 'top' ? r : (r.model as ConfigMap))[key];
    try {
      const { config } = validateConfig(r);
      return { value: section === 'top' ? (config as unknown as Record<string, unknown>)[key] : (config.model as unknown as Record<string, unknown>)[key] };
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      return { error: e.message };
    }
  }

  it.each([
    ['top', TOP_KEYS],
    ['model', MODEL_KEYS],
  ] as const)('a %s key left out reads as its `absent` value, null, or an error naming it', (section, table) => {
    const seen = { absent: 0, null: 0, error: 0 };
    for (const [key, f] of Object.entries(table)) {
      if (f.keys) continue; // a section: its fields' own rules
      const name = section === 'top' ? key : `model.${key}`;
      const got = withoutKey(section, key);
      if (f.absent !== undefined) {
        expect(got, name).toEqual({ value: f.absent });
        seen.absent += 1;
      } else if ('value' in got) {
        expect(got.value, name).toBeNull();
        seen.null += 1;
      } else {
        // "the key is missing", "got nothing", or (n_epochs) the rule that one of two is set.
        expect(got.error, name).toMatch(new RegExp(`- ${name.replace('.', '\\.')}(: expected .*(the key is missing|got nothing|non-empty list)| and )`));
        seen.error += 1;
      }
    }
    // Each rule is exercised.
    expect(seen.absent).toBeGreaterThan(0);
    expect(seen.null).toBeGreaterThan(0);
    expect(seen.error).toBeGreaterThan(0);
  });

  it("activation_checkpointing: the file's default is on, a config without the key is off", () => {
    expect(MODEL_KEYS.activation_checkpointing.default).toBe(true);
    expect(withoutKey('model', 'activation_checkpointing')).toEqual({ value: false });
  });
});
