// Trainer.loadState checks the file against the model before anything changes: a state from
// another model (other shapes, another parameter count) is an error naming the file and the
// first parameter that differs, and one saved under another precision (another dtype) names
// both precisions, not a failure at the first optimizer step.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Model, Trainer, type ModelConfig, type ParamInfo } from '../../lib/native.js';
import { randomBatch, tinyConfig } from './helpers.js';

const base = tinyConfig();
let dir: string;
let file: string;
let saved: ParamInfo[];

async function trainerFor(config: ModelConfig, dtype: 'float32' | 'bfloat16' = 'float32') {
  const model = await Model.create(config, { seed: 41, dtype });
  return { model, trainer: new Trainer(model, null, { loss: { name: 'sft' } }) };
}

async function oneStep(trainer: Trainer, config: ModelConfig): Promise<void> {
  await trainer.microStep(randomBatch(41, { rows: 2, seqLen: 8, vocab: config.vocab_size }), { nPairs: 2 });
  await trainer.optimizerStep({ lr: 1e-3 });
}

const fmt = (shape: number[]) => `[${shape.join(', ')}]`;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'rpo-optstate-'));
  file = path.join(dir, 'optimizer.pt');
  const { model, trainer } = await trainerFor(base);
  await oneStep(trainer, base);
  await trainer.saveState(file);
  saved = model.params();
  trainer.dispose();
  model.dispose();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('Trainer.loadState validates the state against the parameters', () => {
  it('other shapes: names the file, the first differing parameter, expected and found shapes; the trainer still works', async () => {
    const other = tinyConfig({ intermediate_size: 48 });
    const { model, trainer } = await trainerFor(other);
    const params = model.params();
    expect(params.length).toBe(saved.length); // same count: only the shapes tell them apart
    const i = params.findIndex((p, k) => fmt(p.shape) !== fmt(saved[k]!.shape));
    const p = params[i]!;
    await expect(trainer.loadState(file)).rejects.toThrow(
      `${file}: optimizer state does not match the model: parameter "${p.name}" (${i + 1} of ${params.length}): ` +
        `exp_avg: expected shape ${fmt(p.shape)} but found ${fmt(saved[i]!.shape)}`,
    );
    // the live optimizer was not touched: training goes on
    await expect(oneStep(trainer, other)).resolves.toBeUndefined();
    trainer.dispose();
    model.dispose();
  });

  it('another parameter count', async () => {
    const other = tinyConfig({ num_hidden_layers: 1 });
    const { model, trainer } = await trainerFor(other);
    await expect(trainer.loadState(file)).rejects.toThrow(
      `${file}: optimizer state does not match the model: it holds state for ${saved.length} parameters, the model has ${model.params().length}`,
    );
    trainer.dispose();
    model.dispose();
  });

  it('another dtype: the state of an fp32 run does not load into a bf16 one (its precision is named)', async () => {
    const { model, trainer } = await trainerFor(base, 'bfloat16');
    await expect(trainer.loadState(file)).rejects.toThrow(
      `${file}: the optimizer state was saved under precision fp32, this trainer trains in bf16-pure: resume with the precision the run was saved under (precision=fp32)`,
    );
    await expect(oneStep(trainer, base)).resolves.toBeUndefined();
    trainer.dispose();
    model.dispose();
  });

  it('the matching model loads it, and a non-state file is still refused by name', async () => {
    const { model, trainer } = await trainerFor(base);
    await expect(trainer.loadState(file)).resolves.toEqual([]);
    await expect(oneStep(trainer, base)).resolves.toBeUndefined();
    await expect(trainer.loadState(path.join(dir, 'absent.pt'))).rejects.toThrow(`${path.join(dir, 'absent.pt')}: not an optimizer state`);
    trainer.dispose();
    model.dispose();
  });
});
