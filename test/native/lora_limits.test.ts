// LoRA ranks and adapter shapes are checked before any adapter is allocated (D4): an
// adapter_config.json whose r the model cannot use (a 40 KB file saying r = 3,000,000 once asked
// for terabytes and the process was killed with no message), adapter tensors whose rank is not
// the config's r, and a run's lora.r. Each is an error naming the file or key, and the model
// holds no adapters after it (nothing was allocated). The ranks used here keep even an
// unchecked allocation small (r = 100,000 on hidden 32: ~50 MB), so a regression fails the test
// instead of exhausting the machine; the hostile r runs only once those pass.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ConfigError } from '../../lib/config/index.js';
import { saveModel } from '../../lib/model/io.js';
import { loadAdapter, saveAdapter } from '../../lib/model/lora.js';
import { Model } from '../../lib/native.js';
import { loadLoraPolicy } from '../../lib/train/lora.js';
import { tinyConfig } from './helpers.js';

const config = tinyConfig(); // hidden 32
let dir: string;
let adapter: string;
beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'rpo-lora-limits-'));
  // A real adapter, r = 2 on q_proj, as rpo saves it.
  const m = await Model.create(config, { seed: 1 });
  try {
    await m.addLora({ r: 2, alpha: 4, targetModules: ['q_proj'], seed: 1 });
    adapter = path.join(dir, 'adapter');
    await saveAdapter(m, adapter, { lora: { r: 2, alpha: 4, dropout: 0, rslora: false }, baseModel: 'base' });
  } finally {
    m.dispose();
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `adapter`'s files with adapter_config.json's r replaced. */
function withR(r: number): string {
  const d = path.join(dir, `r${r}`);
  mkdirSync(d, { recursive: true });
  writeFileSync(path.join(d, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r, lora_alpha: 4, target_modules: ['q_proj'] }));
  writeFileSync(path.join(d, 'adapter_model.safetensors'), readFileSync(path.join(adapter, 'adapter_model.safetensors')));
  return d;
}

async function refused(d: string, message: string | RegExp): Promise<void> {
  const m = await Model.create(config, { seed: 2 });
  try {
    await expect(loadAdapter(m, d)).rejects.toThrow(message);
    expect(m.adapterParams()).toEqual([]); // refused before the adapters were allocated
  } finally {
    m.dispose();
  }
}

describe('LoRA ranks are checked before allocation (D4)', () => {
  it('the saved adapter loads (the fixture is sound)', async () => {
    const m = await Model.create(config, { seed: 2 });
    try {
      await loadAdapter(m, adapter);
      expect(m.adapterParams().map((p) => p.shape)).toEqual([[2, 32], [32, 2], [2, 32], [32, 2]]);
    } finally {
      m.dispose();
    }
  });

  it('an adapter_config.json r above the hidden size is refused naming the file and key', async () => {
    for (const r of [33, 100_000, 3_000_000]) {
      const d = withR(r);
      await refused(d, `${path.join(d, 'adapter_config.json')}: "r": r=${r} is larger than the model's hidden size 32, the most rank an adapter of it can have`);
    }
  });

  it('adapter tensors whose rank is not the config\'s r are refused naming the tensor', async () => {
    const d = withR(4);
    await refused(d, `${path.join(d, 'adapter_model.safetensors')}: tensor "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" has shape [2, 32]; adapter_config.json's r=4 makes it [4, in]`);
  });

  it('a run\'s lora.r above the hidden size is a config error naming lora.r', async () => {
    const modelDir = path.join(dir, 'base');
    const m = await Model.create(config, { seed: 3 });
    await saveModel(m, modelDir);
    m.dispose();
    const lora = { enabled: true, r: 100_000, alpha: 16, dropout: 0, target_modules: ['all-linear'], init: 'kaiming' as const, rslora: false, from: null };
    const err = await loadLoraPolicy({ lora, seed: 1 }, modelDir, null, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe('lora.r: r=100000 is larger than the model\'s hidden size 32, the most rank an adapter of it can have');
    const ok = await loadLoraPolicy({ lora: { ...lora, r: 32 }, seed: 1 }, modelDir, null, {});
    expect(ok.policy.adapterParams()[0]!.shape).toEqual([32, 32]);
    ok.policy.dispose();
  });
});
