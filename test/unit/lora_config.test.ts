// The `lora:` config section and the LoRA memory plan: defaults, PEFT's names, clear errors, the
// seed's (HALOs') keys, and adapter parameter counts against hand-computed values.
import { describe, expect, it } from 'vitest';

import { ConfigError } from '../../lib/config/errors.js';
import { loadConfig } from '../../lib/config/index.js';
import { loraParameterCount } from '../../lib/plan/lora.js';
import type { ModelShape } from '../../lib/plan/estimate.js';

const BASE = ['loss=rdpo', 'model=tiny', 'datasets=[orcaratspec]', 'exp_name=e'];
const load = (...o: string[]) => loadConfig({ overrides: [...BASE, ...o], env: {} });

describe('lora config', () => {
  it('is off by default with PEFT-style defaults', () => {
    expect(load().config.lora).toEqual({
      enabled: false, r: 16, alpha: 32, dropout: 0.05, target_modules: ['all-linear'], init: 'kaiming', rslora: false, from: null,
    });
  });

  it('takes overrides: a list of modules, rslora, gaussian init; lora.from turns it on', () => {
    const c = load('++lora.enabled=true', '++lora.r=8', '++lora.alpha=16', '++lora.target_modules=[q_proj,v_proj]', '++lora.rslora=true', '++lora.init=gaussian').config.lora;
    expect(c).toMatchObject({ enabled: true, r: 8, alpha: 16, target_modules: ['q_proj', 'v_proj'], rslora: true, init: 'gaussian' });
    const f = load('++lora.from=/some/adapter');
    expect(f.config.lora.enabled).toBe(true);
    expect(f.notices.join('\n')).toMatch(/lora\.from=\/some\/adapter → lora\.enabled=true/);
  });

  it('reports every bad key at once, naming it', () => {
    let message = '';
    try {
      load('++lora.r=0', '++lora.alpha=-1', '++lora.dropout=1', '++lora.init=pissa', '++lora.target_modules=[]');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    expect(message).toMatch(/lora\.r: expected a positive integer/);
    expect(message).toMatch(/lora\.alpha: expected a number > 0/);
    expect(message).toMatch(/lora\.dropout: expected a number in \[0, 1\)/);
    expect(message).toMatch(/lora\.init: expected kaiming \(PEFT's default\) or gaussian, got "pissa"/);
    expect(message).toMatch(/lora\.target_modules: expected all-linear or a non-empty list/);
  });

  it('maps the seed\'s model.use_peft and model.peft keys', () => {
    const { config, notices } = load('++model.use_peft=true', '++model.peft.lora_r=64', '++model.peft.lora_alpha=128', '++model.peft.lora_dropout=0', '++model.peft.target_modules=[q_proj]');
    expect(config.lora).toMatchObject({ enabled: true, r: 64, alpha: 128, dropout: 0, target_modules: ['q_proj'] });
    expect(notices.join('\n')).toMatch(/model\.peft\.lora_r=64 → lora\.r/);
  });
});

describe('LoRA parameter counts (rpo plan)', () => {
  // Mistral-7B: hidden 4096, MLP 14336, 32 heads / 8 KV heads × 128, 32 layers.
  const mistral: ModelShape = { vocab: 32000, hidden: 4096, intermediate: 14336, layers: 32, heads: 32, kvHeads: 8, headDim: 128, tied: false, qkvBias: false, oBias: false };
  it('r=16 on all linears: 16 · (in + out) summed over the 7 linears of 32 layers', () => {
    // q 4096+4096, k 4096+1024, v 4096+1024, o 4096+4096, gate/up 4096+14336 each, down 14336+4096
    const perLayer = 16 * (8192 + 5120 + 5120 + 8192 + 3 * 18432);
    expect(perLayer).toBe(1_310_720);
    expect(loraParameterCount(mistral, { r: 16, targetModules: ['all-linear'] })).toBe(41_943_040);
  });
  it('r=16 on q_proj and v_proj', () => {
    expect(loraParameterCount(mistral, { r: 16, targetModules: ['q_proj', 'v_proj'] })).toBe(32 * 16 * (8192 + 5120));
    expect(() => loraParameterCount(mistral, { r: 16, targetModules: ['query_key_value'] })).toThrow(/not a linear of this model/);
  });
});
