// Checkpoints: `<run>/LATEST/` is an HF model directory (config.json, safetensors, tokenizer
// files, generation_config.json) that transformers loads as is, plus the trainer state rpo
// needs to resume exactly (trainer_state.json, optimizer.pt).
//
// A checkpoint is written into a temp directory and renamed into place; the previous LATEST
// is moved aside first and deleted after, so at every instant either LATEST or LATEST.prev
// is a complete checkpoint, and `findCheckpoint` knows to look at both.
import { copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';

import type { Model, Trainer } from '../native.js';
import { TOKENIZER_FILES } from '../model/init.js';
import { saveModel } from '../model/io.js';
import { ADAPTER_CONFIG, saveAdapter } from '../model/lora.js';
import type { AdapterShape } from './lora.js';
import { fileWriteError, writeFileAtomic } from '../util/files.js';

export const LATEST = 'LATEST';
const PREVIOUS = 'LATEST.prev';
export const TRAINER_STATE = 'trainer_state.json';
export const OPTIMIZER_STATE = 'optimizer.pt';
/** loss=ppo: the value head, written by the engine beside the optimizer state (transformers ignores it). */
export { VALUE_HEAD_FILE } from '../model/value_head.js';

/** Where training stands: enough to continue exactly where it stopped. */
export interface TrainerState {
  format: 'rpo-trainer-state-1';
  /** Optimizer steps taken. */
  step: number;
  /** Training examples (pairs) consumed. */
  examples: number;
  /** The epoch being trained and the next batch in it (the data order is a function of seed and epoch). */
  epoch: number;
  batchInEpoch: number;
  /** examples at the last evaluation, so resumed runs evaluate on the same schedule. */
  lastEvalExamples: number;
  /** Fingerprint of the run's data and config; a resume with other data is refused. */
  dataFingerprint: string;
  seed: number;
  wallSeconds: number;
}

/** Files of the model (not the tokenizer) that travel with every checkpoint. */
const MODEL_FILES = ['generation_config.json'];

export interface SaveCheckpointOptions {
  runDir: string;
  model: Model;
  trainer: Trainer;
  state: TrainerState;
  /** The directory the tokenizer came from. */
  tokenizerDir: string;
  /** The directory the starting model came from (its generation_config.json travels along). */
  modelDir: string;
  /** Token ids for config.json. */
  configExtras?: { bos_token_id?: number | null; eos_token_id?: number | number[] | null; pad_token_id?: number | null };
  /** Also keep this checkpoint as `step-<N>/` (intermediate_checkpoints). */
  keepStepCopy?: boolean;
  /** LoRA: the checkpoint is a PEFT adapter directory (adapter_config.json, adapter_model.safetensors). */
  adapter?: { shape: AdapterShape; baseModel: string };
  /** The largest weights file (saveModel's maxShardBytes; transformers' max_shard_size). */
  maxShardBytes?: number;
}

/** A write that failed, said as a user needs it: which file, and "no space left on device" for ENOSPC. */
export function writeFailure(err: unknown, fallbackFile: string): Error {
  const e = err as NodeJS.ErrnoException;
  const file = typeof e.path === 'string' ? (typeof (e as { dest?: unknown }).dest === 'string' ? String((e as { dest?: unknown }).dest) : e.path) : fallbackFile;
  if (e.code === 'ENOSPC') return fileWriteError(err, 'writing', file);
  if (e.code === 'EROFS') return new Error(`read-only file system: cannot write ${file}`);
  return e instanceof Error ? e : new Error(String(err));
}

/**
 * Writes `<runDir>/LATEST/` (and `step-N/`) atomically; returns the LATEST path. On any failure
 * the temp directory is removed and the previous checkpoint is left as it was.
 */
export async function saveCheckpoint(options: SaveCheckpointOptions): Promise<string> {
  mkdirSync(options.runDir, { recursive: true });
  const tmp = path.join(options.runDir, `.checkpoint.tmp-${process.pid}`);
  const stepDir = path.join(options.runDir, `step-${options.state.step}`);
  const stepTmp = `${stepDir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  try {
    mkdirSync(tmp);
    if (options.adapter) await saveAdapter(options.model, tmp, { lora: options.adapter.shape, baseModel: options.adapter.baseModel });
    else await saveModel(options.model, tmp, { configExtras: options.configExtras ?? {}, maxShardBytes: options.maxShardBytes });
    const copy = (dir: string, names: readonly string[]) => {
      for (const name of names) {
        const src = path.join(dir, name);
        if (existsSync(src)) copyFileSync(src, path.join(tmp, name));
      }
    };
    copy(options.tokenizerDir, TOKENIZER_FILES);
    copy(options.modelDir, MODEL_FILES);
    await options.trainer.saveState(path.join(tmp, OPTIMIZER_STATE), options.maxShardBytes);
    writeFileAtomic(path.join(tmp, TRAINER_STATE), [Buffer.from(JSON.stringify(options.state, null, 2) + '\n')]);
    if (options.keepStepCopy) {
      // Hard links: a second directory entry for each file, no second copy of the weights.
      rmSync(stepTmp, { recursive: true, force: true });
      mkdirSync(stepTmp);
      for (const f of readdirSync(tmp)) linkSync(path.join(tmp, f), path.join(stepTmp, f));
      rmSync(stepDir, { recursive: true, force: true });
      renameSync(stepTmp, stepDir);
    }
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    rmSync(stepTmp, { recursive: true, force: true });
    throw writeFailure(err, tmp);
  }
  // Either LATEST or LATEST.prev is complete at every instant. A run killed between the two
  // renames leaves only LATEST.prev: then LATEST.prev is kept until the new LATEST is in place.
  const latest = path.join(options.runDir, LATEST);
  const previous = path.join(options.runDir, PREVIOUS);
  if (existsSync(latest)) {
    rmSync(previous, { recursive: true, force: true });
    renameSync(latest, previous);
  }
  renameSync(tmp, latest);
  rmSync(previous, { recursive: true, force: true });
  return latest;
}

/** A directory that a finished checkpoint write left: trainer state, optimizer state, model (or adapter) config. */
function isComplete(dir: string): boolean {
  return (
    [TRAINER_STATE, OPTIMIZER_STATE].every((f) => existsSync(path.join(dir, f))) &&
    (existsSync(path.join(dir, 'config.json')) || existsSync(path.join(dir, ADAPTER_CONFIG)))
  );
}

/** The optimizer step a checkpoint holds, or -1 when its trainer state cannot be read. */
function checkpointStep(dir: string): number {
  try {
    return readTrainerState(dir).step;
  } catch {
    return -1;
  }
}

/**
 * The newest complete checkpoint of a run directory (or a checkpoint directory itself), or null.
 * Looks at LATEST, LATEST.prev (a run killed between the two renames of a save) and step-N
 * copies (intermediate_checkpoints; also a run killed before its first LATEST existed), and
 * takes the one with the most steps; on a tie, in that order.
 */
export function findCheckpoint(dir: string): string | null {
  if (isComplete(dir)) return dir;
  let best: string | null = null;
  let bestStep = -Infinity;
  for (const c of candidateDirs(dir)) {
    if (!isComplete(c)) continue;
    const step = checkpointStep(c);
    if (step < 0) continue;
    if (step > bestStep) {
      best = c;
      bestStep = step;
    }
  }
  return best;
}

/**
 * Why `dir` has no usable checkpoint: the first complete-looking one's trainer-state error
 * (a corrupt or hand-edited trainer_state.json), or a plain "no checkpoint" message.
 */
export function noCheckpointReason(dir: string): string {
  for (const c of isComplete(dir) ? [dir] : candidateDirs(dir)) {
    if (!isComplete(c)) continue;
    try {
      readTrainerState(c);
    } catch (err) {
      return (err as Error).message;
    }
  }
  return `no checkpoint in ${dir} (looked for LATEST/, LATEST.prev/ and step-N/ with ${TRAINER_STATE} and ${OPTIMIZER_STATE})`;
}

/** Whether a directory holds checkpoint files of a run, readable or not (what a fresh run must not replace). */
export function holdsCheckpoint(dir: string): string | null {
  for (const c of candidateDirs(dir)) if (isComplete(c)) return c;
  return null;
}

/** Where a run directory's checkpoints may be: LATEST, LATEST.prev, then step-N, newest first. */
function candidateDirs(dir: string): string[] {
  const candidates = [path.join(dir, LATEST), path.join(dir, PREVIOUS)];
  if (existsSync(dir)) {
    const steps = readdirSync(dir)
      .map((name) => /^step-(\d+)$/.exec(name))
      .filter((m): m is RegExpExecArray => m !== null)
      .sort((a, b) => Number(b[1]) - Number(a[1]))
      .map((m) => path.join(dir, m[0]));
    candidates.push(...steps);
  }
  return candidates;
}

export function readTrainerState(checkpointDir: string): TrainerState {
  const file = path.join(checkpointDir, TRAINER_STATE);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not a readable trainer state (${(err as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`${file}: not a readable trainer state (expected a JSON object)`);
  const s = parsed as Partial<TrainerState>;
  if (s.format !== 'rpo-trainer-state-1') throw new Error(`${file}: unknown trainer state format ${JSON.stringify(s.format)}`);
  // Counters are non-negative integers; a negative or fractional one would silently skip or
  // repeat data on resume.
  for (const key of ['step', 'examples', 'epoch', 'batchInEpoch', 'lastEvalExamples'] as const) {
    const v = s[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Error(`${file}: "${key}" must be a non-negative integer, got ${JSON.stringify(v)}`);
  }
  if (typeof s.seed !== 'number' || !Number.isSafeInteger(s.seed)) throw new Error(`${file}: "seed" must be an integer, got ${JSON.stringify(s.seed)}`);
  if (typeof s.wallSeconds !== 'number' || !Number.isFinite(s.wallSeconds) || s.wallSeconds < 0) throw new Error(`${file}: "wallSeconds" must be a non-negative number, got ${JSON.stringify(s.wallSeconds)}`);
  if (s.lastEvalExamples! > s.examples!) throw new Error(`${file}: "lastEvalExamples" (${s.lastEvalExamples}) exceeds "examples" (${s.examples})`);
  if (typeof s.dataFingerprint !== 'string') throw new Error(`${file}: "dataFingerprint" must be a string`);
  return s as TrainerState;
}
