// YAML in and out, with the scalar rules OmegaConf (and so Hydra, and so the seed) uses.
//
// OmegaConf loads YAML with PyYAML's SafeLoader (YAML 1.1) plus two changes: a float
// resolver that accepts `5e-7` (plain YAML 1.1 wants a dot: `5.0e-7`), and no timestamps.
// So `lr: 5e-7` is a number, `eval_every: 20_000` is 20000, `yes`/`on` are booleans and
// `2024-01-01` stays a string. YAML 1.2's core schema differs on the last three, which is
// why this file configures the `yaml` package's 1.1 schema instead of using its default.
import { parseDocument, stringify, type Tags, type ScalarTag } from 'yaml';

import { ConfigError } from './errors.js';

/** A config value, as YAML and the override grammar produce it. */
export type ConfigValue = null | boolean | number | string | ConfigValue[] | ConfigMap;
export interface ConfigMap {
  [key: string]: ConfigValue;
}

export function isMap(v: unknown): v is ConfigMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const FLOAT = 'tag:yaml.org,2002:float';
const BOOL = 'tag:yaml.org,2002:bool';
const TIMESTAMP = 'tag:yaml.org,2002:timestamp';

/** OmegaConf's float resolver (omegaconf/_utils.py get_yaml_loader), finite numbers only. */
const OMEGACONF_FLOAT =
  /^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*(?:[eE][-+]?[0-9]+)|\.[0-9_]+(?:[eE][-+][0-9]+)?)$/;
/** PyYAML's booleans: YAML 1.1 without the single letters y/n, which PyYAML leaves as strings. */
const PY_TRUE = /^(?:[Yy]es|YES|[Tt]rue|TRUE|[Oo]n|ON)$/;
const PY_FALSE = /^(?:[Nn]o|NO|[Ff]alse|FALSE|[Oo]ff|OFF)$/;

/** The yaml-1.1 tag list, adjusted to OmegaConf's resolvers (see the header). */
function omegaconfTags(tags: Tags): Tags {
  const out: Tags = [];
  for (const t of tags) {
    if (typeof t !== 'object' || !('tag' in t)) {
      out.push(t);
      continue;
    }
    if (t.tag === TIMESTAMP) continue;
    const scalar = t as ScalarTag;
    if (t.tag === BOOL && scalar.test) {
      const value = scalar.identify?.(true) === true;
      out.push({ ...scalar, test: value ? PY_TRUE : PY_FALSE });
      continue;
    }
    if (t.tag === FLOAT && scalar.test) {
      // Keep .inf/.nan (its test already matches OmegaConf's); replace the two finite-float
      // tags with one that uses OmegaConf's regex. The sexagesimal "TIME" float stays.
      if (scalar.format === 'EXP') continue;
      if (scalar.format === undefined && !scalar.test.test('.inf')) {
        out.push({
          ...scalar,
          test: OMEGACONF_FLOAT,
          resolve: (src: string) => parseFloat(src.replace(/_/g, '')),
        });
        continue;
      }
    }
    out.push(t);
  }
  return out;
}

const YAML_OPTIONS = { version: '1.1', customTags: omegaconfTags } as const;

/**
 * Parses one YAML document into plain values. Duplicate keys, anchors used as merge keys
 * and non-string keys are errors naming `file` (YAML allows them; a config has no use for
 * them and they hide mistakes).
 */
export function parseYaml(text: string, file: string): ConfigValue {
  const doc = parseDocument(text, { ...YAML_OPTIONS, uniqueKeys: true, prettyErrors: true });
  const first = doc.errors[0];
  if (first) throw new ConfigError(`${file}: invalid YAML: ${first.message}`);
  return toPlain(doc.toJS({ maxAliasCount: 100 }) as unknown, file, '');
}

/** Checks that a parsed value holds only config values (no Dates, Maps, binary, ...). */
function toPlain(v: unknown, file: string, where: string): ConfigValue {
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return v;
  if (Array.isArray(v)) return v.map((x, i) => toPlain(x, file, `${where}[${i}]`));
  if (Object.getPrototypeOf(v) === Object.prototype) {
    const out: ConfigMap = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      out[k] = toPlain(x, file, where === '' ? k : `${where}.${k}`);
    }
    return out;
  }
  throw new ConfigError(`${file}: ${where || 'the document'}: unsupported YAML value (${Object.prototype.toString.call(v)})`);
}

/**
 * YAML text for a config: block style, strings with newlines double-quoted (as the seed
 * writes its prefixes), and every string that would read back as something else quoted.
 */
export function stringifyYaml(value: ConfigValue): string {
  return stringify(value, {
    ...YAML_OPTIONS,
    blockQuote: false,
    lineWidth: 0,
    nullStr: 'null',
    trueStr: 'true',
    falseStr: 'false',
  });
}
