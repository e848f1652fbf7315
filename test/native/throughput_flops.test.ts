// The parameters logged mfu counts (lib/train/throughput.ts's flopModel), on real engine models
// against counts from the shapes by hand: every weight of a full fine-tune trains; with LoRA the
// base is frozen and only the adapters train; ppo's passes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Model } from '../../lib/native.js';
import { flopModel, stepFlops } from '../../lib/train/throughput.js';
import { tinyConfig } from './helpers.js';

// tinyConfig: vocab 97, hidden 32, intermediate 64, 2 layers, 4 heads and 2 KV heads of 8, untied.
// Per layer: q 32·32 + k 32·16 + v 32·16 + o 32·32 + gate, up, down 3·32·64 + 2 norms · 32 = 9280;
// embeddings 97·32 and head 97·32, final norm 32: 2·9280 + 2·3104 + 32 = 24800.
const BASE = 24_800;
// LoRA r = 4 on q_proj (32 → 32) and v_proj (32 → 16): A is r × in, B out × r:
// (4·32 + 32·4) + (4·32 + 16·4) = 448 per layer, 896 in all.
const ADAPTERS = 896;

let full: Model;
let lora: Model;

beforeAll(async () => {
  full = await Model.create(tinyConfig(), { seed: 1 });
  lora = await Model.create(tinyConfig(), { seed: 1 });
  await lora.addLora({ r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'] });
});

afterAll(() => {
  full.dispose();
  lora.dispose();
});

describe('flopModel', () => {
  it('full fine-tuning: every parameter trains (6·N per token)', () => {
    const m = flopModel(full, false, { name: 'dpo', ppo_epochs: null });
    expect(m).toEqual({ params: BASE, trainableParams: BASE, trainedPasses: 1, extraForwards: 0 });
    expect(stepFlops(m, { real: 10, reference: 0 })).toBe(6 * BASE * 10);
  });

  it('LoRA: the frozen base and the adapters run, only the adapters train', () => {
    expect(flopModel(lora, true, { name: 'dpo', ppo_epochs: null })).toEqual({ params: BASE + ADAPTERS, trainableParams: ADAPTERS, trainedPasses: 1, extraForwards: 0 });
  });

  it('ppo: ppo_epochs trained passes after one gradient-free forward', () => {
    expect(flopModel(full, false, { name: 'ppo', ppo_epochs: 3 })).toMatchObject({ trainedPasses: 3, extraForwards: 1 });
  });
});
