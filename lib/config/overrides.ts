// Parsing command-line overrides: the subset of Hydra's override grammar that rpo supports.
//
//   key=value      change a key that exists (or select a config group option: loss=rdpo)
//   +key=value     add a key that does not exist yet (or append a group: +group=option)
//   ++key=value    add or change, whichever applies
//   ~key           delete a key (or drop a group from the defaults list)
//   ~key=value     delete it only if its current value equals value
//
// key: dotted path of segments [A-Za-z0-9_-]+ ("model.eval_batch_size", "datasets.0").
// value, as Hydra parses it (not YAML: `yes` stays a string, `1_000` is an int):
//   null | true | false (any case) | int (1, -3, 1_000) | float (5e-7, 1., .5, 1e3, inf, nan)
//   | 'quoted' | "quoted" (backslash escapes the quote and backslash)
//   | [a, b, ...] | {k: v, ...} (nested freely) | anything else: a string, trimmed.
//   `${...}` may appear anywhere in a string and is resolved after composition; an empty
//   value (`key=`) is the empty string. In unquoted text a backslash escapes the next
//   character (`\,` is a literal comma).
// Not supported (each is an error saying so): sweeps (`a=1,2`, range(), choice(), glob()),
// `key@package=`, and Hydra's function-call syntax.
import { ConfigError } from './errors.js';
import type { ConfigMap, ConfigValue } from './yaml.js';

export type OverrideKind = 'set' | 'add' | 'force' | 'delete';

export interface Override {
  kind: OverrideKind;
  /** Dotted key path, as written. */
  key: string;
  /** For 'delete': present only in the `~key=value` form. */
  value?: ConfigValue;
  /** The override as the user wrote it (for error messages). */
  text: string;
}

const KEY = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;

/**
 * The deepest nesting of lists and dicts (and of dotted key segments) an override may have. Real
 * configs are a few levels deep; the parser and every later walk (composition, interpolation,
 * printing) recurse once per level, so a hostile 5000-deep value would overflow the stack.
 */
export const MAX_OVERRIDE_DEPTH = 64;

/** An override as quoted in an error: cut at 200 characters (a hostile one may be megabytes). */
function shown(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/** Parses one override string; throws a ConfigError quoting it when it does not parse. */
export function parseOverride(text: string): Override {
  let rest = text;
  let kind: OverrideKind = 'set';
  if (rest.startsWith('~')) {
    kind = 'delete';
    rest = rest.slice(1);
  } else if (rest.startsWith('++')) {
    kind = 'force';
    rest = rest.slice(2);
  } else if (rest.startsWith('+')) {
    kind = 'add';
    rest = rest.slice(1);
  }
  const eq = rest.indexOf('=');
  const key = (eq === -1 ? rest : rest.slice(0, eq)).trim();
  if (eq === -1 && kind !== 'delete') {
    throw new ConfigError(`cannot parse override '${text}': expected key=value (or ~key to delete)`);
  }
  if (key.includes('@')) {
    throw new ConfigError(`cannot parse override '${text}': package overrides (key@package) are not supported`);
  }
  if (!KEY.test(key)) {
    throw new ConfigError(`cannot parse override '${text}': '${key}' is not a key (letters, digits, _ and -, dot-separated)`);
  }
  if (key.split('.').length > MAX_OVERRIDE_DEPTH) {
    throw new ConfigError(`cannot parse override '${shown(text)}': the key is nested deeper than ${MAX_OVERRIDE_DEPTH} levels`);
  }
  if (eq === -1) return { kind, key, text };
  return { kind, key, value: parseOverrideValue(rest.slice(eq + 1), text), text };
}

/**
 * A string as an override value that parseOverrideValue reads back verbatim: bare when plainly
 * safe, else double-quoted with only `"` and `\\` escaped (newlines and spaces stay as they are).
 */
export function hydraQuote(value: string): string {
  if (/^[A-Za-z0-9_./:+-]+$/.test(value) && !/^(null|true|false|nan|inf)$/i.test(value)) return value;
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** Parses the value part of an override (everything after the first '='). */
export function parseOverrideValue(src: string, text = src): ConfigValue {
  if (src.trim() === '') return '';
  const p = new ValueParser(src, text);
  const v = p.element(true);
  p.skipSpace();
  if (!p.done()) p.fail(`unexpected '${p.peek()}'`);
  return v;
}

class ValueParser {
  private i = 0;
  /** Lists and dicts open at the current position. */
  private depth = 0;
  constructor(
    private readonly src: string,
    private readonly text: string,
  ) {}

  done(): boolean {
    return this.i >= this.src.length;
  }
  peek(): string {
    return this.src[this.i] ?? '';
  }
  skipSpace(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.i++;
  }
  fail(why: string): never {
    throw new ConfigError(`cannot parse override '${shown(this.text)}': ${why} at position ${this.i} of the value`);
  }

  /** One element; `top` marks the whole value, where a bare comma means a sweep. */
  element(top: boolean): ConfigValue {
    this.skipSpace();
    const c = this.peek();
    let v: ConfigValue;
    if ((c === '[' || c === '{') && ++this.depth > MAX_OVERRIDE_DEPTH) this.fail(`lists and dicts nested deeper than ${MAX_OVERRIDE_DEPTH} levels`);
    if (c === '[') v = this.list();
    else if (c === '{') v = this.dict();
    else if (c === "'" || c === '"') v = this.quoted();
    else v = this.primitive();
    if (c === '[' || c === '{') this.depth--;
    this.skipSpace();
    if (top && this.peek() === ',') {
      throw new ConfigError(
        `cannot parse override '${this.text}': a comma-separated value is a Hydra sweep, which rpo does not run; ` +
          `quote the value ('a,b') or write a list ([a,b])`,
      );
    }
    return v;
  }

  private list(): ConfigValue[] {
    this.i++; // [
    const out: ConfigValue[] = [];
    this.skipSpace();
    if (this.peek() === ']') {
      this.i++;
      return out;
    }
    for (;;) {
      out.push(this.element(false));
      const c = this.peek();
      this.i++;
      if (c === ']') return out;
      if (c !== ',') this.fail(c === '' ? "missing ']'" : `expected ',' or ']' but found '${c}'`);
    }
  }

  private dict(): ConfigMap {
    this.i++; // {
    const out: ConfigMap = {};
    this.skipSpace();
    if (this.peek() === '}') {
      this.i++;
      return out;
    }
    for (;;) {
      this.skipSpace();
      const m = /^[A-Za-z0-9_.-]+/.exec(this.src.slice(this.i));
      if (!m) this.fail('expected a key in {...}');
      this.i += m[0].length;
      this.skipSpace();
      if (this.peek() !== ':') this.fail(`expected ':' after '${m[0]}'`);
      this.i++;
      out[m[0]] = this.element(false);
      const c = this.peek();
      this.i++;
      if (c === '}') return out;
      if (c !== ',') this.fail(c === '' ? "missing '}'" : `expected ',' or '}' but found '${c}'`);
    }
  }

  private quoted(): string {
    const q = this.peek();
    this.i++;
    let out = '';
    for (;;) {
      const c = this.peek();
      if (c === '') this.fail(`unterminated ${q === "'" ? 'single' : 'double'}-quoted string`);
      this.i++;
      if (c === q) return out;
      if (c === '\\' && (this.peek() === q || this.peek() === '\\')) {
        out += this.peek();
        this.i++;
      } else out += c;
    }
  }

  /** Unquoted text up to a structural character; `${...}` is kept whole, escapes honoured. */
  private primitive(): ConfigValue {
    let out = '';
    let escaped = false;
    let interpolated = false;
    for (;;) {
      const c = this.peek();
      if (c === '' || c === ',' || c === ']' || c === '}') break;
      if (c === '[' || c === '{') this.fail(`unexpected '${c}' inside an unquoted string (quote the value)`);
      if (c === '\\' && this.i + 1 < this.src.length) {
        out += this.src[this.i + 1];
        this.i += 2;
        escaped = true;
        continue;
      }
      if (c === '$' && this.src[this.i + 1] === '{') {
        out += this.interpolation();
        interpolated = true;
        continue;
      }
      if (c === "'" || c === '"') this.fail('a quote inside an unquoted string (quote the whole value)');
      out += c;
      this.i++;
    }
    const trimmed = out.trim();
    if (trimmed === '' && !escaped) this.fail('empty element');
    return escaped || interpolated ? trimmed : typePrimitive(trimmed);
  }

  /** `${...}` with nesting, copied verbatim for the resolver. */
  private interpolation(): string {
    const start = this.i;
    let depth = 0;
    while (this.i < this.src.length) {
      const c = this.src[this.i];
      if (c === '$' && this.src[this.i + 1] === '{') {
        depth++;
        this.i += 2;
        continue;
      }
      this.i++;
      if (c === '}' && --depth === 0) return this.src.slice(start, this.i);
    }
    return this.fail("unterminated '${'");
  }
}

const INT = /^[+-]?(?:0|[1-9](?:_?[0-9])*)$/;
const DIGITS = '[0-9](?:_?[0-9])*';
const POINT_FLOAT = `(?:(?:${DIGITS})?\\.${DIGITS}|${DIGITS}\\.)`;
const FLOAT = new RegExp(`^[+-]?(?:${POINT_FLOAT}|(?:${DIGITS}|${POINT_FLOAT})[eE][+-]?${DIGITS})$`);

/** Hydra's typing of an unquoted primitive. */
export function typePrimitive(s: string): ConfigValue {
  const lower = s.toLowerCase();
  if (lower === 'null') return null;
  if (lower === 'true') return true;
  if (lower === 'false') return false;
  if (INT.test(s) || FLOAT.test(s)) return Number(s.replace(/_/g, ''));
  if (/^[+-]?inf$/.test(lower)) return lower.startsWith('-') ? -Infinity : Infinity;
  if (/^[+-]?nan$/.test(lower)) return NaN;
  return s;
}
