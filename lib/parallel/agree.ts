// The ranks of a job check that they run the same job before they train together. Two machines
// typing different commands otherwise either abort inside Gloo (a batch size, loss or ZeRO stage
// that changes the collectives' sizes: SIGABRT, no message, rank 0's lock left behind) or, worse,
// train to the end with weights that diverge (a different lr or dataset: same sizes, no error).
//
// Each rank hashes named parts (config keys, the data, the model's shape) and the ranks compare
// the hash in one fixed-size collective, so a mismatch can never become a size mismatch. Only
// when the hashes differ do the ranks swap their per-part hashes (through the rendezvous store,
// which takes any size) to name the first part that differs and which ranks hold which value.
import { createHash } from 'node:crypto';

import { ConfigError } from '../config/errors.js';
import type { RunConfig } from '../config/index.js';
import type { Parallel } from './context.js';

/** Named parts in a fixed order; the first that differs is the one reported. */
export type Fingerprint = ReadonlyArray<readonly [name: string, value: string]>;

/**
 * Keys that may differ between ranks: where each machine keeps its files and how many threads
 * it has, and what only rank 0 acts on (it owns the run directory and the logging).
 */
const PER_MACHINE_KEYS = new Set(['threads', 'cache_dir', 'local_run_dir', 'samples_dir', 'resume', 'overwrite', 'wandb']);

function flatten(value: unknown, prefix: string, out: [string, string][]): void {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.push([prefix, JSON.stringify(value) ?? 'undefined']);
  }
}

/** The resolved config's keys (leaves, dotted) that decide what the ranks compute, and the ZeRO stage. */
export function configFingerprint(config: RunConfig, zeroStage: number): Fingerprint {
  const out: [string, string][] = [];
  for (const [k, v] of Object.entries(config)) if (!PER_MACHINE_KEYS.has(k)) flatten(v, k, out);
  out.push(['zero stage (RPO_ZERO / --zero)', String(zeroStage)]);
  return out;
}

/** Named parts of any object (a model's config.json fields, say) under a prefix. */
export function objectFingerprint(prefix: string, value: object): Fingerprint {
  const out: [string, string][] = [];
  flatten(value, prefix, out);
  return out;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The whole fingerprint's hash as four 32-bit integers (exact in float64, what allReduce carries). */
function hashWords(parts: Fingerprint): number[] {
  const h = createHash('sha256');
  for (const [name, value] of parts) h.update(`${name}\0${value}\0`);
  const digest = h.digest();
  return [0, 4, 8, 12].map((o) => digest.readUInt32BE(o));
}

/** What a rank publishes on a mismatch: each part's hash, and a short form of its value to show. */
interface Published {
  names: string[];
  hashes: string[];
  shown: string[];
}

function shortValue(value: string): string {
  return value.length <= 80 ? value : `${value.slice(0, 77)}...`;
}

/** "0, 2-5, 7" */
function rankList(ranks: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < ranks.length; i++) {
    let j = i;
    while (j + 1 < ranks.length && ranks[j + 1] === ranks[j]! + 1) j++;
    out.push(j > i + 1 ? `${ranks[i]}-${ranks[j]}` : j === i + 1 ? `${ranks[i]}, ${ranks[j]}` : String(ranks[i]));
    i = j;
  }
  return out.join(', ');
}

/** The first part (in rank 0's order, then any part rank 0 lacks) on which the ranks differ, described. */
export function describeMismatch(what: string, all: readonly Published[]): string {
  const names = [...all[0]!.names];
  for (const p of all) for (const n of p.names) if (!names.includes(n)) names.push(n);
  for (const name of names) {
    const groups = new Map<string, { shown: string; ranks: number[] }>();
    all.forEach((p, rank) => {
      const i = p.names.indexOf(name);
      const hash = i < 0 ? '' : p.hashes[i]!;
      const g = groups.get(hash) ?? { shown: i < 0 ? '(absent)' : p.shown[i]!, ranks: [] };
      g.ranks.push(rank);
      groups.set(hash, g);
    });
    if (groups.size < 2) continue;
    const held = [...groups.values()].map((g) => `rank${g.ranks.length > 1 ? 's' : ''} ${rankList(g.ranks)}: ${g.shown}`).join('; ');
    return `the ranks of this job disagree on ${what}: ${name} differs (${held}); every rank must run the same command on the same data and model`;
  }
  // Same parts, different hashes: only a hash collision of the parts' names could do this.
  return `the ranks of this job disagree on ${what}`;
}

/**
 * Every rank calls this with its fingerprint of `what` (the same `stage` name on each); it returns
 * when all agree, and otherwise throws a ConfigError (exit 2) on every rank naming the first part
 * that differs and which ranks hold each value. It is the job's first collective of its stage.
 */
export async function agree(par: Parallel, stage: string, what: string, parts: Fingerprint, show: (name: string, value: string) => string = (_n, v) => shortValue(v)): Promise<void> {
  if (!par.group) return;
  const words = hashWords(parts);
  // max of (h, -h) gives every word's maximum and minimum in one fixed-size collective.
  const reduced = await par.group.allReduce([...words, ...words.map((w) => -w)], 'max');
  const same = words.every((_, i) => reduced[i] === -reduced[i + words.length]!);
  if (same) return;
  const mine: Published = { names: parts.map(([n]) => n), hashes: parts.map(([, v]) => sha256(v)), shown: parts.map(([n, v]) => show(n, v)) };
  await par.group.storeSet(`agree/${stage}/${par.rank}`, JSON.stringify(mine));
  const all: Published[] = [];
  for (let r = 0; r < par.worldSize; r++) all.push(r === par.rank ? mine : (JSON.parse(await par.group.storeGet(`agree/${stage}/${r}`)) as Published));
  throw new ConfigError(describeMismatch(what, all));
}
