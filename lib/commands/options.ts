// A command's option set is declared once, as the table yargs reads (lib/commands/*_options.ts):
// the handler's typed arguments and the values it passes on are derived from that table. The
// tables live in small files of their own, so the command line can read them without loading the
// commands (which it imports lazily).
import type { InferredOptionType, Options } from 'yargs';

export type OptionTable = Readonly<Record<string, Options>>;

/** 'max-new-tokens' → 'maxNewTokens', 'candidate_key' → 'candidateKey' (yargs-parser's camelCase). */
type Camel<S extends string> = S extends `${infer H}${'-' | '_'}${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;

type Values<T extends OptionTable> = { -readonly [K in keyof T & string as Camel<K>]: InferredOptionType<T[K]> };
type MaybeUndefined<V> = { [K in keyof V]: undefined extends V[K] ? K : never }[keyof V];

/** The typed values of an option table, camel-cased; an option with no default and not demanded may be left out. */
export type OptionValues<T extends OptionTable> = Omit<Values<T>, MaybeUndefined<Values<T>>> & Partial<Pick<Values<T>, MaybeUndefined<Values<T>>>>;

export function camelCase(key: string): string {
  return key.replace(/[-_]([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** The values yargs parsed for a table's options, under their camel-cased names. */
export function optionValues<T extends OptionTable>(table: T, args: Readonly<Record<string, unknown>>): OptionValues<T> {
  return Object.fromEntries(Object.keys(table).map((k) => [camelCase(k), args[k]])) as OptionValues<T>;
}
