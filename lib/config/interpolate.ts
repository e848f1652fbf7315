// `${...}` interpolation, resolved once, after composition and overrides (as OmegaConf does
// when the seed calls OmegaConf.resolve before saving its config).
//
// Supported:
//   ${a.b}  ${a.0} / ${a[0]}     an absolute key; a whole-string reference keeps the value's type
//   ${.b}  ${..b}                relative: . is the containing node, each further . one level up
//   text ${a} text               string interpolation (booleans print as True/False and null
//                                as None, as Python's str() would)
//   ${a.${b}}                    nested: the inner one is resolved first and spliced into the key
//   ${oc.env:VAR} ${oc.env:VAR,default}   an environment variable (default null → null); the value
//                                of a *TOKEN* / *KEY* / *SECRET* variable is masked in every output
//   ${oc.select:key,default}     a key, or the default when the key does not exist
//   \${                          a literal "${"
// Errors: a cycle (naming every key in it), a reference to a key that does not exist (with the
// closest existing key), a reference to a `???` value, an unknown resolver.
import { ConfigError, didYouMeanKey } from './errors.js';
import { typePrimitive } from './overrides.js';
import { isMap, type ConfigMap, type ConfigValue } from './yaml.js';
import { isSecretName, registerSecret } from '../util/redact.js';

export const MISSING = '???';

export type Env = Readonly<Record<string, string | undefined>>;

export interface ResolveOptions {
  /** Environment for ${oc.env:...}; default process.env. */
  env?: Env;
}

type Path = readonly (string | number)[];

export function pathText(path: Path): string {
  return path.map(String).join('.');
}

/** The value at `path`, or undefined when some segment does not exist. */
export function getPath(root: ConfigValue, path: Path): ConfigValue | undefined {
  let node: ConfigValue | undefined = root;
  for (const seg of path) {
    if (Array.isArray(node)) {
      const i = Number(seg);
      node = Number.isInteger(i) && i >= 0 && i < node.length ? node[i] : undefined;
    } else if (isMap(node)) {
      node = Object.prototype.hasOwnProperty.call(node, seg) ? node[String(seg)] : undefined;
    } else return undefined;
    if (node === undefined) return undefined;
  }
  return node;
}

/** Every leaf and node path in `root`, dotted, depth first (for "did you mean"). */
export function allPaths(root: ConfigValue, prefix = ''): string[] {
  const out: string[] = [];
  const entries: [string, ConfigValue][] = Array.isArray(root)
    ? root.map((v, i) => [String(i), v])
    : isMap(root)
      ? Object.entries(root)
      : [];
  for (const [k, v] of entries) {
    const p = prefix === '' ? k : `${prefix}.${k}`;
    out.push(p);
    out.push(...allPaths(v, p));
  }
  return out;
}

/** Does this string contain an interpolation (not counting escaped ones)? */
export function hasInterpolation(s: string): boolean {
  return /(^|[^\\])\$\{/.test(s);
}

/**
 * A deep copy of `root` with every interpolation resolved. Values equal to `???` are left
 * in place (see missingKeys); only a reference *to* one is an error here.
 */
export function resolveConfig(root: ConfigMap, options: ResolveOptions = {}): ConfigMap {
  const r = new Resolver(root, options.env ?? process.env);
  return r.node([], root) as ConfigMap;
}

/** Paths whose value is `???` (after resolution these are the ones nobody set). */
export function missingKeys(root: ConfigValue, prefix: Path = []): string[] {
  if (root === MISSING) return [pathText(prefix)];
  const out: string[] = [];
  if (Array.isArray(root)) root.forEach((v, i) => out.push(...missingKeys(v, [...prefix, i])));
  else if (isMap(root)) for (const [k, v] of Object.entries(root)) out.push(...missingKeys(v, [...prefix, k]));
  return out;
}

class Resolver {
  private readonly done = new Map<string, ConfigValue>();
  private readonly stack: string[] = [];

  constructor(
    private readonly root: ConfigMap,
    private readonly env: Env,
  ) {}

  /** Resolves a node found at `path` (deep). */
  node(path: Path, value: ConfigValue): ConfigValue {
    if (typeof value === 'string') return this.leaf(path, value);
    if (Array.isArray(value)) return value.map((v, i) => this.node([...path, i], v));
    if (isMap(value)) {
      const out: ConfigMap = {};
      for (const [k, v] of Object.entries(value)) out[k] = this.node([...path, k], v);
      return out;
    }
    return value;
  }

  /** A string leaf: resolved once, memoized, with the resolution stack guarding cycles. */
  private leaf(path: Path, raw: string): ConfigValue {
    if (!raw.includes('${')) return raw;
    const key = pathText(path);
    const cached = this.done.get(key);
    if (cached !== undefined) return cached;
    const at = this.stack.indexOf(key);
    if (at !== -1) {
      const cycle = [...this.stack.slice(at), key].join(' -> ');
      throw new ConfigError(`interpolation cycle: ${cycle}`);
    }
    this.stack.push(key);
    try {
      const v = this.evaluate(raw, path);
      this.done.set(key, v);
      return v;
    } finally {
      this.stack.pop();
    }
  }

  /** A string with interpolations: one whole `${...}` keeps its type; otherwise text. */
  private evaluate(s: string, path: Path): ConfigValue {
    const parts = splitInterpolations(s, pathText(path));
    if (parts.length === 1 && parts[0]?.kind === 'interp') return this.interpolation(parts[0].body, path);
    return parts.map((p) => (p.kind === 'text' ? p.text : toText(this.interpolation(p.body, path)))).join('');
  }

  /** The body of one `${...}`: a resolver call or a key. */
  private interpolation(body: string, path: Path): ConfigValue {
    const call = /^\s*([A-Za-z_][\w.]*)\s*:/.exec(body);
    if (call) return this.call(call[1] ?? '', body.slice(call[0].length), path);
    const key = toText(this.evaluate(body.trim(), path));
    return this.lookup(key, path, false);
  }

  private call(name: string, argText: string, path: Path): ConfigValue {
    const args = splitArgs(argText).map((a) => this.argument(a, path));
    if (name === 'oc.env') {
      const [variable, ...rest] = args;
      if (typeof variable !== 'string' || rest.length > 1) {
        throw new ConfigError(`${pathText(path)}: \${oc.env:VAR[,default]} takes a variable name and an optional default`);
      }
      const v = this.env[variable];
      if (v !== undefined) {
        // A token, key or secret: masked wherever the config is written or printed (lib/util/redact.ts).
        if (isSecretName(variable)) registerSecret(v);
        return v;
      }
      if (rest.length === 1) return rest[0] === null || rest[0] === undefined ? null : toText(rest[0]);
      throw new ConfigError(`${pathText(path)}: environment variable ${variable} is not set (give a default: \${oc.env:${variable},default})`);
    }
    if (name === 'oc.select') {
      const [key, ...rest] = args;
      if (typeof key !== 'string' || rest.length > 1) {
        throw new ConfigError(`${pathText(path)}: \${oc.select:key[,default]} takes a key and an optional default`);
      }
      return this.lookup(key, path, true) ?? rest[0] ?? null;
    }
    throw new ConfigError(`${pathText(path)}: unknown resolver '${name}' (supported: oc.env, oc.select)`);
  }

  /** A resolver argument: quoted → string; with interpolations → resolved; else typed. */
  private argument(a: string, path: Path): ConfigValue {
    const t = a.trim();
    if (t.length >= 2 && (t[0] === "'" || t[0] === '"') && t[t.length - 1] === t[0]) return t.slice(1, -1);
    if (t.includes('${')) return this.evaluate(t, path);
    return typePrimitive(t);
  }

  /** Looks `key` up (absolute or relative to the node holding `from`) and resolves it. */
  private lookup(key: string, from: Path, optional: true): ConfigValue | undefined;
  private lookup(key: string, from: Path, optional: false): ConfigValue;
  private lookup(key: string, from: Path, optional: boolean): ConfigValue | undefined {
    const target = targetPath(key, from);
    const value = target === undefined ? undefined : getPath(this.root, target);
    if (value === undefined || target === undefined) {
      if (optional) return undefined;
      const where = pathText(from);
      throw new ConfigError(`${where}: interpolation \${${key}} refers to a key that does not exist${didYouMeanKey(key, allPaths(this.root))}`);
    }
    if (value === MISSING) {
      if (optional) return undefined;
      throw new ConfigError(`missing mandatory value: ${pathText(target)} (needed by ${pathText(from)}; set it with ${pathText(target)}=...)`);
    }
    return this.node(target, value);
  }
}

/** The absolute path `key` names when written in the node that holds `from`. */
function targetPath(key: string, from: Path): Path | undefined {
  const normalized = key.replace(/\[(\d+)\]/g, '.$1');
  const dots = /^\.*/.exec(normalized)?.[0].length ?? 0;
  const rest = normalized.slice(dots).split('.').filter((s) => s !== '');
  if (dots === 0) return rest;
  // ".x": a sibling of the leaf; each extra dot climbs one level.
  if (from.length - dots < 0) return undefined;
  return [...from.slice(0, from.length - dots), ...rest];
}

type Part = { kind: 'text'; text: string } | { kind: 'interp'; body: string };

/** Splits a string into literal text and the bodies of its top-level `${...}`. */
export function splitInterpolations(s: string, where: string): Part[] {
  const parts: Part[] = [];
  let text = '';
  let i = 0;
  while (i < s.length) {
    if (s[i] === '\\' && s[i + 1] === '$' && s[i + 2] === '{') {
      text += '${';
      i += 3;
      continue;
    }
    if (s[i] === '$' && s[i + 1] === '{') {
      let depth = 1;
      let j = i + 2;
      while (j < s.length && depth > 0) {
        if (s[j] === '$' && s[j + 1] === '{') {
          depth++;
          j += 2;
          continue;
        }
        if (s[j] === '}') depth--;
        j++;
      }
      if (depth !== 0) throw new ConfigError(`${where}: unterminated '\${' in '${s}'`);
      if (text !== '') parts.push({ kind: 'text', text });
      text = '';
      parts.push({ kind: 'interp', body: s.slice(i + 2, j - 1) });
      i = j;
      continue;
    }
    text += s[i];
    i++;
  }
  if (text !== '' || parts.length === 0) parts.push({ kind: 'text', text });
  return parts;
}

/** Splits resolver arguments on commas outside `${...}` and quotes. */
function splitArgs(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote = '';
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i] ?? '';
    if (quote !== '') {
      if (c === quote) quote = '';
    } else if (c === "'" || c === '"') quote = c;
    else if (c === '$' && s[i + 1] === '{') depth++;
    else if (c === '}') depth--;
    else if (c === ',' && depth === 0) {
      out.push(cur);
      cur = '';
      continue;
    }
    cur += c;
  }
  if (cur.trim() !== '' || out.length > 0) out.push(cur);
  return out;
}

/** A value spliced into a string, printed as Python's str() would for the seed's values. */
function toText(v: ConfigValue): string {
  if (v === null) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'number' || typeof v === 'string') return String(v);
  return JSON.stringify(v);
}
