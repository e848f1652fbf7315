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
import { saveModel } from '../model/io.js';
import { writeFileAtomic } from '../model/safetensors.js';

export const LATEST = 'LATEST';
const PREVIOUS = 'LATEST.prev';
export const TRAINER_STATE = 'trainer_state.json';
export const OPTIMIZER_STATE = 'optimizer.pt';

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

/** Files of the tokenizer that travel with every checkpoint (those present in the source). */
const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.model',
  'chat_template.jinja',
  'generation_config.json',
];

export interface SaveCheckpointOptions {
  runDir: string;
  model: Model;
  trainer: Trainer;
  state: TrainerState;
  /** The directory the tokenizer (and generation config) came from. */
  tokenizerDir: string;
  /** Token ids for config.json. */
  configExtras?: { bos_token_id?: number | null; eos_token_id?: number | number[] | null; pad_token_id?: number | null };
  /** Also keep this checkpoint as `step-<N>/` (intermediate_checkpoints). */
  keepStepCopy?: boolean;
}

/** Writes `<runDir>/LATEST/` (and `step-N/`) atomically; returns the LATEST path. */
export async function saveCheckpoint(o: SaveCheckpointOptions): Promise<string> {
  mkdirSync(o.runDir, { recursive: true });
  const tmp = path.join(o.runDir, `.checkpoint.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    await saveModel(o.model, tmp, { configExtras: o.configExtras ?? {} });
    for (const name of TOKENIZER_FILES) {
      const src = path.join(o.tokenizerDir, name);
      if (existsSync(src)) copyFileSync(src, path.join(tmp, name));
    }
    await o.trainer.saveState(path.join(tmp, OPTIMIZER_STATE));
    writeFileAtomic(path.join(tmp, TRAINER_STATE), [Buffer.from(JSON.stringify(o.state, null, 2) + '\n')]);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  if (o.keepStepCopy) {
    // Hard links: a second directory entry for each file, no second copy of the weights.
    const stepDir = path.join(o.runDir, `step-${o.state.step}`);
    const stepTmp = `${stepDir}.tmp-${process.pid}`;
    rmSync(stepTmp, { recursive: true, force: true });
    mkdirSync(stepTmp);
    for (const f of readdirSync(tmp)) linkSync(path.join(tmp, f), path.join(stepTmp, f));
    rmSync(stepDir, { recursive: true, force: true });
    renameSync(stepTmp, stepDir);
  }
  const latest = path.join(o.runDir, LATEST);
  const previous = path.join(o.runDir, PREVIOUS);
  rmSync(previous, { recursive: true, force: true });
  if (existsSync(latest)) renameSync(latest, previous);
  renameSync(tmp, latest);
  rmSync(previous, { recursive: true, force: true });
  return latest;
}

/** The newest complete checkpoint of a run directory (or a checkpoint directory itself), or null. */
export function findCheckpoint(dir: string): string | null {
  for (const candidate of [dir, path.join(dir, LATEST), path.join(dir, PREVIOUS)]) {
    if (existsSync(path.join(candidate, TRAINER_STATE)) && existsSync(path.join(candidate, OPTIMIZER_STATE))) return candidate;
  }
  return null;
}

export function readTrainerState(checkpointDir: string): TrainerState {
  const file = path.join(checkpointDir, TRAINER_STATE);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not a readable trainer state (${(err as Error).message})`);
  }
  const s = parsed as Partial<TrainerState>;
  if (s.format !== 'rpo-trainer-state-1') throw new Error(`${file}: unknown trainer state format ${JSON.stringify(s.format)}`);
  for (const key of ['step', 'examples', 'epoch', 'batchInEpoch', 'lastEvalExamples', 'seed', 'wallSeconds'] as const) {
    if (typeof s[key] !== 'number' || !Number.isFinite(s[key])) throw new Error(`${file}: "${key}" must be a number`);
  }
  if (typeof s.dataFingerprint !== 'string') throw new Error(`${file}: "dataFingerprint" must be a string`);
  return s as TrainerState;
}
