// The kinds of field a config section declares (lib/config/run_keys.ts): each field is one
// object with its type, default, range and doc line, and it reads itself. A table of them is
// a section's whole declaration: its TypeScript type (FieldValues), its key list and its reader
// (readFields) all come from the table, so a key is added in one place.
//
// A field's `default` is the value rpo's config files give it (configs/config.yaml,
// configs/model/base_model.yaml; a test holds the files to it). What a config *without* the key
// reads as is the field's kind's rule:
//   - nullable fields: null (null is their "not set");
//   - `optional` fields: the default (keys rpo added after the seed: a config saved by the
//     seed, or by an older rpo, lacks them), or `absent` where the seed's meaning differs;
//   - the rest: an error (every config composed from rpo's files has them).
import type { ConfigValue } from './yaml.js';

/** Range of a number field (the messages say ≥, >, ≤, <). */
export interface NumRange {
  int?: boolean;
  min?: number;
  /** Exclusive lower bound. */
  above?: number;
  max?: number;
  /** Exclusive upper bound. */
  below?: number;
}

export interface NumOpts extends NumRange {
  fallback?: number;
}

/** What a field reads its section with (lib/config/schema.ts's Section): errors are collected, not thrown. */
export interface FieldReader {
  has(key: string): boolean;
  raw(key: string): ConfigValue | undefined;
  str(key: string, fallback?: string): string;
  nonEmpty(key: string): string;
  strOrNull(key: string): string | null;
  bool(key: string, fallback?: boolean): boolean;
  num(key: string, opts?: NumOpts): number;
  numOrNull(key: string, opts?: NumOpts): number | null;
  oneOf<T extends string>(key: string, values: readonly T[], fallback?: T): T;
  /** The section under `key`; a missing one reads as empty (its fields' fallbacks). */
  sectionOrEmpty(key: string): FieldReader;
  /** Reports a problem with the section (one line of the ConfigError). */
  error(message: string): void;
  /** The dotted name of `key` in this section, for messages. */
  name(key: string): string;
}

export interface Field<T> {
  /** One line: what the key does (its config file's comment says it at length). */
  readonly doc: string;
  /** The value rpo's config file gives (undefined: none, `???` or an interpolation). */
  readonly default?: ConfigValue;
  /** A seed key rpo accepts and does not use: why (a value other than the default is a notice). */
  readonly ignored?: string;
  /** With `ignored`: never a notice (the seed's model or loss files set it, each its own way). */
  readonly quiet?: boolean;
  /** A real number (printed as a float by `--cfg job`, as Hydra prints the shipped files). */
  readonly float?: boolean;
  /** What a config without the key reads as, when that is not an error or null (`optional` fields). */
  readonly absent?: ConfigValue;
  /** A nested section's table (wandb). */
  readonly keys?: FieldTable;
  read(r: FieldReader, key: string): T;
}

export type FieldTable = Readonly<Record<string, Field<unknown>>>;

/** The typed values of a table: the section's TypeScript type. */
export type FieldValues<T extends FieldTable> = { -readonly [K in keyof T]: T[K] extends Field<infer V> ? V : never };

/** Reads every field of a table, in the table's order (the order a saved config is written in). */
export function readFields<T extends FieldTable>(r: FieldReader, table: T): FieldValues<T> {
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(table)) out[key] = field.read(r, key);
  return out as FieldValues<T>;
}

/** Every dotted key of a table (a nested section: its own key and its fields'). */
export function tableKeys(table: FieldTable, prefix = ''): string[] {
  return Object.entries(table).flatMap(([k, f]) => [`${prefix}${k}`, ...(f.keys ? tableKeys(f.keys, `${prefix}${k}.`) : [])]);
}

/** The fields of a table (dotted, nested ones included), for the checks that look at each. */
export function tableFields(table: FieldTable, prefix = ''): [string, Field<unknown>][] {
  return Object.entries(table).flatMap(([k, f]): [string, Field<unknown>][] => [[`${prefix}${k}`, f], ...(f.keys ? tableFields(f.keys, `${prefix}${k}.`) : [])]);
}

interface Common<T> {
  doc: string;
  default?: T;
  ignored?: string;
  quiet?: boolean;
  /** A value a single-field rule rejects: the message, or null. */
  check?: (value: T) => string | null;
}

interface Optional<T> extends Common<T> {
  /** A config without the key reads as `absent` when given, else as the default. */
  optional?: boolean;
  absent?: T;
}

function field<T>(spec: Common<T>, read: (r: FieldReader, key: string) => T, extra: Partial<Field<T>> = {}): Field<T> {
  const { doc, ignored, quiet, check } = spec;
  return {
    doc,
    ...(spec.default !== undefined ? { default: spec.default as ConfigValue } : {}),
    ...(ignored !== undefined ? { ignored } : {}),
    ...(quiet ? { quiet } : {}),
    ...extra,
    read: check
      ? (r, key) => {
          const v = read(r, key);
          const problem = check(v);
          if (problem !== null) r.error(problem);
          return v;
        }
      : read,
  };
}

/** What a missing optional key reads as (undefined: the key is required). */
function whenMissing<T>(spec: Optional<T>): T | undefined {
  return spec.optional ? (spec.absent ?? spec.default) : undefined;
}

function absent<T>(spec: Optional<T>): Partial<Field<T>> {
  const v = whenMissing(spec);
  return v === undefined ? {} : { absent: v as ConfigValue };
}

export function bool(spec: Optional<boolean>): Field<boolean> {
  return field(spec, (r, k) => r.bool(k, whenMissing(spec)), absent(spec));
}

export function text(spec: Optional<string>): Field<string> {
  return field(spec, (r, k) => r.str(k, whenMissing(spec)), absent(spec));
}

/** A string that must not be empty (required). */
export function nonEmpty(spec: Common<string>): Field<string> {
  return field(spec, (r, k) => r.nonEmpty(k));
}

export function textOrNull(spec: Common<string | null>): Field<string | null> {
  return field(spec, (r, k) => r.strOrNull(k));
}

export function num(spec: Optional<number> & NumRange): Field<number> {
  return field(spec, (r, k) => r.num(k, { ...range(spec), fallback: whenMissing(spec) }), { ...absent(spec), ...(spec.int ? {} : { float: true }) });
}

export function numOrNull(spec: Common<number | null> & NumRange): Field<number | null> {
  return field(spec, (r, k) => r.numOrNull(k, range(spec)), spec.int ? {} : { float: true });
}

export function oneOf<T extends string>(values: readonly T[], spec: Optional<T>): Field<T> {
  return field(spec, (r, k) => r.oneOf(k, values, whenMissing(spec)), absent(spec));
}

export function oneOfOrNull<T extends string>(values: readonly T[], spec: Common<T | null>): Field<T | null> {
  return field(spec, (r, k) => (r.raw(k) === null || r.raw(k) === undefined ? null : r.oneOf(k, values)));
}

/** A nested section declared by its own table; a missing one reads as empty. */
export function section<T extends FieldTable>(keys: T, spec: { doc: string }): Field<FieldValues<T>> {
  return { doc: spec.doc, keys, read: (r, k) => readFields(r.sectionOrEmpty(k), keys) };
}

/** A field with its own reader (a list, a mapping). */
export function custom<T>(spec: Common<T> & { read: (r: FieldReader, key: string) => T }): Field<T> {
  return field(spec, spec.read);
}

function range(spec: NumRange): NumRange {
  return { ...(spec.int ? { int: true } : {}), ...(spec.min !== undefined ? { min: spec.min } : {}), ...(spec.above !== undefined ? { above: spec.above } : {}), ...(spec.max !== undefined ? { max: spec.max } : {}), ...(spec.below !== undefined ? { below: spec.below } : {}) };
}
