// A model (and its tokenizer) by local directory or hub id: the directory returned holds
// config.json, the safetensors weights (one file, or shards + model.safetensors.index.json) and
// the tokenizer files, as transformers saves them.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

import { RepoCache } from './cache.js';
import { HubClient, HubError, defaultHubClient, type HubListing } from './client.js';
import { redactError } from '../util/redact.js';
import { expandHome } from '../util/paths.js';

/** Always needed. */
export const MODEL_CONFIG_FILE = 'config.json';
/** The tokenizer: tokenizer.json is required, the rest are read when present. */
export const TOKENIZER_FILES: readonly string[] = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];
export const OPTIONAL_MODEL_FILES: readonly string[] = [
  'generation_config.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'chat_template.jinja',
  'chat_template.json',
];
export const SAFETENSORS_INDEX = 'model.safetensors.index.json';

export interface ResolveModelOptions {
  /** Branch, tag or commit (hub ids only); default 'main'. */
  revision?: string;
  /** Need the weights (default true); false for tokenizer-only uses. */
  weights?: boolean;
  /** Need the tokenizer (default true). */
  tokenizer?: boolean;
  /** A client (default: from the environment); or just a cache directory for the default one. */
  hub?: HubClient;
  cacheDir?: string;
  offline?: boolean;
}

/** A spec that names a local path rather than a hub id. */
export function looksLikePath(spec: string): boolean {
  return (
    spec.startsWith('/') ||
    spec.startsWith('./') ||
    spec.startsWith('../') ||
    spec === '.' ||
    spec === '..' ||
    spec.startsWith('~') ||
    spec.includes('\\') ||
    spec.split('/').length > 2
  );
}

/** The shard file names an index lists (its weight_map values). */
export function shardsOfIndex(indexJson: string, where: string): string[] {
  let doc: unknown;
  try {
    doc = JSON.parse(indexJson);
  } catch (err) {
    throw new Error(`${where}: malformed JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const map = doc !== null && typeof doc === 'object' ? (doc as { weight_map?: unknown }).weight_map : undefined;
  if (map === null || typeof map !== 'object' || Array.isArray(map)) throw new Error(`${where}: no "weight_map" object`);
  const shards = new Set<string>();
  for (const v of Object.values(map as Record<string, unknown>)) {
    if (typeof v !== 'string' || v.includes('..') || v.startsWith('/')) throw new Error(`${where}: bad shard name ${JSON.stringify(v)}`);
    shards.add(v);
  }
  if (shards.size === 0) throw new Error(`${where}: "weight_map" is empty`);
  return [...shards].sort();
}

/** Checks a local model directory; throws naming what is missing. */
export function checkModelDir(dir: string, opts: Pick<ResolveModelOptions, 'weights' | 'tokenizer'> = {}): void {
  const has = (f: string): boolean => existsSync(path.join(dir, f));
  const missing: string[] = [];
  if (!has(MODEL_CONFIG_FILE)) missing.push(MODEL_CONFIG_FILE);
  if (opts.tokenizer !== false && !has('tokenizer.json')) missing.push('tokenizer.json');
  if (opts.weights !== false) {
    if (has(SAFETENSORS_INDEX)) {
      const shards = shardsOfIndex(readFileSync(path.join(dir, SAFETENSORS_INDEX), 'utf8'), path.join(dir, SAFETENSORS_INDEX));
      missing.push(...shards.filter((s) => !has(s)));
    } else if (!readdirSync(dir).some((f) => f.endsWith('.safetensors'))) {
      const bin = readdirSync(dir).some((f) => f.endsWith('.bin') || f.endsWith('.pt'));
      missing.push(bin ? '*.safetensors (only PyTorch .bin weights found: convert them to safetensors)' : '*.safetensors weights');
    }
  }
  if (missing.length > 0) throw new Error(`model directory ${dir} lacks ${missing.join(', ')}`);
}

/** The files of a hub listing a model directory needs, or an error naming what the repository lacks. */
export function modelFilesToFetch(listing: HubListing, opts: Pick<ResolveModelOptions, 'weights' | 'tokenizer'>): string[] {
  const has = new Set(listing.files);
  const want: string[] = [];
  const lacks: string[] = [];
  if (has.has(MODEL_CONFIG_FILE)) want.push(MODEL_CONFIG_FILE);
  else lacks.push(MODEL_CONFIG_FILE);
  for (const f of OPTIONAL_MODEL_FILES) if (has.has(f) && (opts.tokenizer !== false || f === 'generation_config.json')) want.push(f);
  if (opts.tokenizer !== false) {
    if (has.has('tokenizer.json')) want.push('tokenizer.json');
    else lacks.push('tokenizer.json');
  }
  if (opts.weights !== false) {
    const top = listing.files.filter((f) => !f.includes('/') && f.endsWith('.safetensors'));
    if (has.has(SAFETENSORS_INDEX)) want.push(SAFETENSORS_INDEX); // shards come from the index itself
    else if (top.length > 0) want.push(...top);
    else lacks.push(listing.files.some((f) => f.endsWith('.bin')) ? '*.safetensors (it has only .bin weights)' : '*.safetensors weights');
  }
  if (lacks.length > 0) {
    throw new HubError(
      `model repository ${listing.repo} (revision ${listing.revision}${listing.fromCache ? ', cached snapshot' : ''}) lacks ${lacks.join(', ')}`,
      'not-found',
    );
  }
  return [...new Set(want)];
}

/**
 * A model directory: a local directory as is (checked), or the hub snapshot directory of a model id
 * (downloaded into the shared cache as needed). Returns an absolute path.
 */
export async function resolveModelDir(idOrPath: string, opts: ResolveModelOptions = {}): Promise<string> {
  const local = path.resolve(expandHome(idOrPath));
  if (existsSync(local) && statSync(local).isDirectory()) {
    checkModelDir(local, opts);
    return local;
  }
  if (looksLikePath(idOrPath) || existsSync(local)) {
    throw new Error(`no model directory ${local} (${existsSync(local) ? 'it is a file' : 'it does not exist'})`);
  }
  const hub =
    opts.hub ??
    (opts.cacheDir !== undefined || opts.offline !== undefined
      ? new HubClient({ cacheDir: opts.cacheDir, offline: opts.offline })
      : defaultHubClient());
  try {
    const listing = await hub.listFiles(idOrPath, 'model', opts.revision ?? 'main');
    const files = modelFilesToFetch(listing, opts);
    const at = { repo: idOrPath, repoType: 'model' as const, revision: listing.commit };
    for (const filename of files) {
      const p = await hub.resolveFile({ ...at, filename });
      if (filename === SAFETENSORS_INDEX) {
        for (const shard of shardsOfIndex(readFileSync(p, 'utf8'), `${idOrPath}/${SAFETENSORS_INDEX}`)) {
          await hub.resolveFile({ ...at, filename: shard });
        }
      }
    }
    return new RepoCache(hub.cacheDir, idOrPath, 'model').snapshotDir(listing.commit);
  } catch (err) {
    // A downloaded index that is not JSON is quoted in the error (V8 shows a few characters of
    // it): what the hub served is masked like the hub's own messages.
    throw redactError(err, (t) => hub.redact(t));
  }
}
