// YAML text the way Hydra's `--cfg job` prints it: OmegaConf.to_yaml, which is PyYAML's
// yaml.dump(default_flow_style=False, allow_unicode=True, sort_keys=False) with OmegaConf's
// string representer. Its choices are reproduced here so `rpo train ... --cfg job` prints what
// `python train.py ... --cfg job` printed, byte for byte:
// - mappings in block style, keys in order, 2-space indent; lists as "- item" at the parent
//   key's indent (PyYAML's indentless sequences); an empty mapping or list as {} / [].
// - floats as Python's repr (5e-07, 0.0001, 1e+16), lower-cased, with ".0" put before an
//   exponent that has no dot (5.0e-07); .inf / -.inf / .nan. Integers as written.
// - strings plain when PyYAML may (no indicator, no leading/trailing space, one line, nothing
//   that reads back as null/bool/int/float/timestamp), else single-quoted; with control
//   characters double-quoted with escapes. Plain and quoted text folds at spaces past
//   column 80, as PyYAML's emitter does.
// One thing a JavaScript number cannot carry is whether YAML wrote it as a float: `1.0` and `1`
// are the same number. Keys that rpo reads as real numbers (FLOAT_KEYS) print as floats, so the
// shipped configs print exactly; an integral value typed as `lr=1` prints `1.0` where Hydra
// prints `1` (docs/departures.md).
import { tableFields, type FieldTable } from './fields.js';
import { MISSING } from './interpolate.js';
import { MODEL_KEYS, TOP_KEYS } from './run_keys.js';
import { isMap, type ConfigValue } from './yaml.js';

/** Paths whose values rpo reads as real numbers: an integral value prints as a float. */
export const FLOAT_KEYS: ReadonlySet<string> = new Set([
  ...floatKeys(TOP_KEYS),
  ...floatKeys(MODEL_KEYS, 'model.'),
  'loss.beta',
  'loss.gamma',
  'loss.epsilon',
  'loss.lambda',
  'loss.margin',
  'loss.tau',
  'loss.lambda_coef',
  'loss.gamma_beta_ratio',
  'loss.label_smoothing',
]);

function floatKeys(table: FieldTable, prefix = ''): string[] {
  return tableFields(table, prefix).flatMap(([key, f]) => (f.float ? [key] : []));
}

const WIDTH = 80;
const INDENT = 2;

/** OmegaConf.to_yaml's text for a config value (a mapping at the top level). */
export function hydraYaml(value: ConfigValue, floatKeys: ReadonlySet<string> = FLOAT_KEYS): string {
  const e = new Emitter(floatKeys);
  if (isMap(value) && Object.keys(value).length > 0) e.mapping(value, 0, '');
  else if (Array.isArray(value) && value.length > 0) e.sequence(value, 0, '');
  else e.out += `${e.scalar(value, '', 0, false)}\n`;
  return e.out;
}

class Emitter {
  out = '';
  constructor(private readonly floatKeys: ReadonlySet<string>) {}

  private column(): number {
    return this.out.length - (this.out.lastIndexOf('\n') + 1);
  }

  mapping(map: Readonly<Record<string, ConfigValue>>, indent: number, path: string): void {
    for (const [k, v] of Object.entries(map)) {
      const child = path === '' ? k : `${path}.${k}`;
      this.out += ' '.repeat(indent) + this.scalar(k, '', indent, true) + ':';
      this.value(v, indent, child, true);
    }
  }

  sequence(list: readonly ConfigValue[], indent: number, path: string): void {
    list.forEach((v, i) => {
      this.out += `${' '.repeat(indent)}-`;
      this.value(v, indent, `${path}.${i}`, false);
    });
  }

  /** A value after "key:" or "-": nested collections on the next lines, scalars after a space. */
  private value(v: ConfigValue, indent: number, path: string, inMapping: boolean): void {
    if (isMap(v) && Object.keys(v).length > 0) {
      if (inMapping) {
        this.out += '\n';
        this.mapping(v, indent + INDENT, path);
      } else {
        // "- key: v" then the other keys under the first one.
        this.out += ' ';
        const [[k0, v0], ...rest] = Object.entries(v) as [[string, ConfigValue], ...[string, ConfigValue][]];
        this.out += this.scalar(k0, '', indent + INDENT, true) + ':';
        this.value(v0, indent + INDENT, `${path}.${k0}`, true);
        this.mapping(Object.fromEntries(rest), indent + INDENT, path);
      }
      return;
    }
    if (Array.isArray(v) && v.length > 0) {
      if (inMapping) {
        this.out += '\n';
        this.sequence(v, indent, path);
      } else {
        this.out += ' ';
        // "- - a" : the nested list's first item on this line.
        const [first, ...rest] = v as [ConfigValue, ...ConfigValue[]];
        this.out += '-';
        this.value(first, indent + INDENT, `${path}.0`, false);
        rest.forEach((x, i) => {
          this.out += `${' '.repeat(indent + INDENT)}-`;
          this.value(x, indent + INDENT, `${path}.${i + 1}`, false);
        });
      }
      return;
    }
    this.out += ' ';
    this.out += this.scalar(v, path, inMapping ? indent + INDENT : indent + INDENT, false);
    this.out += '\n';
  }

  /** One scalar's text; `indent` is where continuation lines of a folded string start. */
  scalar(v: ConfigValue, path: string, indent: number, simpleKey: boolean): string {
    if (v === null) return 'null';
    if (v === true) return 'true';
    if (v === false) return 'false';
    if (typeof v === 'number') return formatNumber(v, this.floatKeys.has(path.replace(/\.\d+(?=\.|$)/g, '')));
    if (Array.isArray(v)) return '[]';
    if (isMap(v)) return '{}';
    return this.string(v, indent, simpleKey);
  }

  private string(s: string, indent: number, simpleKey: boolean): string {
    const a = analyze(s);
    const forcedQuotes = omegaconfQuotes(s) || resolvesAsOther(s);
    if (!forcedQuotes && !a.empty && !a.multiline && a.allowBlockPlain) return this.plain(s, indent, simpleKey);
    if (a.allowSingleQuoted && !(simpleKey && a.multiline)) return this.singleQuoted(s, indent, simpleKey);
    return this.doubleQuoted(s, indent, simpleKey);
  }

  /** PyYAML write_plain: breaks at a single space once the column passes the width. */
  private plain(s: string, indent: number, simpleKey: boolean): string {
    if (simpleKey) return s;
    let col = this.column(); // the space after ":" or "-" is already written
    let text = '';
    let i = 0;
    while (i < s.length) {
      let j = i;
      if (s[i] === ' ') {
        while (j < s.length && s[j] === ' ') j++;
        if (j === i + 1 && col > WIDTH) {
          text += `\n${' '.repeat(indent)}`;
          col = indent;
        } else {
          text += s.slice(i, j);
          col += j - i;
        }
      } else {
        while (j < s.length && s[j] !== ' ') j++;
        text += s.slice(i, j);
        col += j - i;
      }
      i = j;
    }
    return text;
  }

  /** PyYAML write_single_quoted: '' for a quote, a line break doubled, folding at spaces. */
  private singleQuoted(s: string, indent: number, simpleKey: boolean): string {
    let col = this.column() + 1; // the opening quote
    let text = "'";
    const split = !simpleKey;
    let start = 0;
    let end = 0;
    let spaces = false;
    let breaks = false;
    const isBreak = (c: string | undefined): boolean => c !== undefined && BREAKS.includes(c);
    while (end <= s.length) {
      const ch = end < s.length ? s[end] : undefined;
      if (spaces) {
        if (ch === undefined || ch !== ' ') {
          if (start + 1 === end && col > WIDTH && split && start !== 0 && end !== s.length) {
            text += `\n${' '.repeat(indent)}`;
            col = indent;
          } else {
            text += s.slice(start, end);
            col += end - start;
          }
          start = end;
        }
      } else if (breaks) {
        if (ch === undefined || !isBreak(ch)) {
          if (s[start] === '\n') text += '\n';
          text += s.slice(start, end); // each break as itself ('\n' after the extra one above)
          text += ' '.repeat(indent);
          col = indent;
          start = end;
        }
      } else if (ch === undefined || ch === ' ' || isBreak(ch) || ch === "'") {
        if (start < end) {
          text += s.slice(start, end);
          col += end - start;
          start = end;
        }
      }
      if (ch === "'") {
        text += "''";
        col += 2;
        start = end + 1;
      }
      if (ch !== undefined) {
        spaces = ch === ' ';
        breaks = isBreak(ch);
      }
      end++;
    }
    return `${text}'`;
  }

  /** PyYAML write_double_quoted: escapes for control characters, folding with a backslash. */
  private doubleQuoted(s: string, indent: number, simpleKey: boolean): string {
    const text = Array.from(s); // Python indexes code points
    let col = this.column() + 1; // the opening quote
    let out = '"';
    const split = !simpleKey;
    let start = 0;
    let end = 0;
    while (end <= text.length) {
      const ch = end < text.length ? text[end]! : undefined;
      if (ch === undefined || '"\\\x85\u2028\u2029\uFEFF'.includes(ch) || !((ch >= '\x20' && ch <= '\x7E') || isBmpPrintable(ch))) {
        if (start < end) {
          out += text.slice(start, end).join('');
          col += end - start;
          start = end;
        }
        if (ch !== undefined) {
          const esc = escapeChar(ch);
          out += esc;
          col += esc.length;
          start = end + 1;
        }
      }
      if (end > 0 && end < text.length - 1 && (ch === ' ' || start >= end) && col + (end - start) > WIDTH && split) {
        const data = `${text.slice(start, end).join('')}\\`;
        if (start < end) start = end;
        out += `${data}\n${' '.repeat(indent)}`;
        col = indent;
        if (text[start] === ' ') {
          out += '\\';
          col += 1;
        }
      }
      end++;
    }
    return `${out}"`;
  }
}

function isBmpPrintable(ch: string): boolean {
  return (ch >= '\xA0' && ch <= '\uD7FF') || (ch >= '\uE000' && ch <= '\uFFFD');
}

function isPrintableUnicode(ch: string): boolean {
  return (ch >= '\xA0' && ch <= '\uD7FF') || (ch >= '\uE000' && ch <= '\uFFFD' && ch !== '\uFEFF') || ch.codePointAt(0)! > 0xffff;
}

const ESCAPES: Record<string, string> = {
  '\0': '0', '\x07': 'a', '\x08': 'b', '\x09': 't', '\x0A': 'n', '\x0B': 'v', '\x0C': 'f', '\x0D': 'r',
  '\x1B': 'e', '"': '"', '\\': '\\', '\x85': 'N', '\xA0': '_', '\u2028': 'L', '\u2029': 'P',
};

function escapeChar(ch: string): string {
  const named = ESCAPES[ch];
  if (named !== undefined) return `\\${named}`;
  const code = ch.codePointAt(0)!;
  if (code <= 0xff) return `\\x${code.toString(16).toUpperCase().padStart(2, '0')}`;
  if (code <= 0xffff) return `\\u${code.toString(16).toUpperCase().padStart(4, '0')}`;
  return `\\U${code.toString(16).toUpperCase().padStart(8, '0')}`;
}

/** Python's repr of a float, as PyYAML's represent_float writes it. */
export function pythonFloat(x: number): string {
  if (Number.isNaN(x)) return '.nan';
  if (x === Infinity) return '.inf';
  if (x === -Infinity) return '-.inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  // Shortest round-trip digits and the decimal exponent, then Python's layout: fixed for
  // 1e-4 <= |x| < 1e16, else d.ddde±XX.
  const [mant, expText] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mant.replace('.', '');
  const exp = Number(expText);
  const sign = x < 0 ? '-' : '';
  let r: string;
  if (exp >= -4 && exp < 16) {
    if (exp < 0) r = `0.${'0'.repeat(-exp - 1)}${digits}`;
    else if (digits.length <= exp + 1) r = `${digits}${'0'.repeat(exp + 1 - digits.length)}.0`;
    else r = `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
  } else {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    r = `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  r = sign + r;
  if (!r.includes('.') && r.includes('e')) r = r.replace('e', '.0e');
  return r;
}

function formatNumber(x: number, isFloat: boolean): string {
  if (Number.isInteger(x) && !isFloat && Math.abs(x) < 2 ** 63) return BigInt(x).toString();
  return pythonFloat(x);
}

// --- what PyYAML's analyze_scalar decides ------------------------------------------------------

interface Analysis {
  empty: boolean;
  multiline: boolean;
  allowBlockPlain: boolean;
  allowSingleQuoted: boolean;
}

const BREAKS = '\n\x85\u2028\u2029';
const SPACE_OR_END = '\0 \t\r\n\x85\u2028\u2029';

function analyze(s: string): Analysis {
  if (s === '') return { empty: true, multiline: false, allowBlockPlain: true, allowSingleQuoted: true };
  let blockIndicators = s.startsWith('---') || s.startsWith('...');
  let lineBreaks = false;
  let special = false;
  let leadingSpace = false;
  let leadingBreak = false;
  let trailingSpace = false;
  let trailingBreak = false;
  let breakSpace = false;
  let spaceBreak = false;
  let previousSpace = false;
  let previousBreak = false;
  let precededByWhitespace = true;
  let followedByWhitespace = s.length === 1 || SPACE_OR_END.includes(s[1]!);
  for (let index = 0; index < s.length; index++) {
    const ch = s[index]!;
    if (index === 0) {
      if ('#,[]{}&*!|>\'"%@`'.includes(ch)) blockIndicators = true;
      if ('?:'.includes(ch) && followedByWhitespace) blockIndicators = true;
      if (ch === '-' && followedByWhitespace) blockIndicators = true;
    } else {
      if (ch === ':' && followedByWhitespace) blockIndicators = true;
      if (ch === '#' && precededByWhitespace) blockIndicators = true;
    }
    if (BREAKS.includes(ch)) lineBreaks = true;
    if (!(ch === '\n' || (ch >= '\x20' && ch <= '\x7E'))) {
      const printable = (ch === '\x85' || isPrintableUnicode(ch) || (ch >= '\uD800' && ch <= '\uDFFF')) && ch !== '\uFEFF';
      if (!printable) special = true;
    }
    if (ch === ' ') {
      if (index === 0) leadingSpace = true;
      if (index === s.length - 1) trailingSpace = true;
      if (previousBreak) breakSpace = true;
      previousSpace = true;
      previousBreak = false;
    } else if (BREAKS.includes(ch)) {
      if (index === 0) leadingBreak = true;
      if (index === s.length - 1) trailingBreak = true;
      if (previousSpace) spaceBreak = true;
      previousSpace = false;
      previousBreak = true;
    } else {
      previousSpace = false;
      previousBreak = false;
    }
    precededByWhitespace = SPACE_OR_END.includes(ch);
    followedByWhitespace = index + 2 >= s.length || SPACE_OR_END.includes(s[index + 2]!);
  }
  let allowBlockPlain = true;
  let allowSingleQuoted = true;
  if (leadingSpace || leadingBreak || trailingSpace || trailingBreak) allowBlockPlain = false;
  if (breakSpace) allowBlockPlain = allowSingleQuoted = false;
  if (spaceBreak || special) allowBlockPlain = allowSingleQuoted = false;
  if (lineBreaks) allowBlockPlain = false;
  if (blockIndicators) allowBlockPlain = false;
  return { empty: false, multiline: lineBreaks, allowBlockPlain, allowSingleQuoted };
}

// --- strings that must be quoted because plain they would read back as something else -----------

/** OmegaConf's str representer: quotes anything bool-, int- or float-like (Python's int()/float()). */
function omegaconfQuotes(s: string): boolean {
  if (/^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/.test(s)) return true;
  const t = s.trim();
  // Python int(): optional sign, digits with single underscores between them.
  if (/^[+-]?\d(?:_?\d)*$/.test(t)) return true;
  // Python float(): decimal forms, inf/infinity/nan in any case.
  if (/^[+-]?(?:(?:\d(?:_?\d)*)?\.?\d(?:_?\d)*|\d(?:_?\d)*\.)(?:[eE][+-]?\d(?:_?\d)*)?$/.test(t) && /\d/.test(t)) return true;
  if (/^[+-]?(?:inf|infinity|nan)$/i.test(t)) return true;
  return false;
}

/** PyYAML's implicit resolvers (YAML 1.1): null, bool, int, float, timestamp, merge, value. */
function resolvesAsOther(s: string): boolean {
  if (s === MISSING) return false;
  return (
    /^(?:~|null|Null|NULL|)$/.test(s) ||
    /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/.test(s) ||
    /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/.test(s) ||
    /^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/.test(s) ||
    /^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$/.test(s) ||
    s === '<<' ||
    s === '='
  );
}
