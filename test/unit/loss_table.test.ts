// The TS loss table (lib/loss/table.ts) as the config and the loop read it: row groups,
// rationale terms, keys, and the seed's loss configs (configs/loss/*.yaml) composing.
import { describe, expect, it } from 'vitest';

import { ConfigError } from '../../lib/config/errors.js';
import { loadConfig } from '../../lib/config/index.js';
import { engineLossConfig } from '../../lib/config/schema.js';
import { LOSS_ROWS, lossGroups, lossHelpLines, lossRationale } from '../../lib/loss/table.js';

function load(...overrides: string[]) {
  return loadConfig({ overrides: ['model=tiny', 'datasets=[orcaratspec]', 'exp_name=e', ...overrides], env: {} });
}

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('loss table', () => {
  it('row groups: sft and the one-row unpaired losses 1, kto 2 (target, KL), paired 2, with a rationale term 3', () => {
    expect(lossGroups('sft')).toBe(1);
    expect(lossGroups('kto-simple')).toBe(1);
    expect(lossGroups('kto-zero')).toBe(1);
    expect(lossGroups('kto')).toBe(2);
    expect(lossGroups('dpo')).toBe(2);
    expect(lossGroups({ name: 'dpo', rationale: 'logsigmoid' })).toBe(3);
    expect(lossGroups('rdpo')).toBe(3);
    expect(lossGroups('rorpo')).toBe(3);
    expect(lossGroups('rorpo-simple')).toBe(3);
  });

  it('rdpo, rorpo and rorpo-simple fix their rationale terms; rdpo by rationale_form', () => {
    expect(lossRationale({ name: 'rdpo' })).toBe('logsigmoid');
    expect(lossRationale({ name: 'rdpo', rationale_form: 'paper' })).toBe('linear');
    expect(lossRationale({ name: 'rorpo' })).toBe('logsigmoid');
    expect(lossRationale({ name: 'rorpo-simple' })).toBe('linear');
    expect(lossRationale({ name: 'simpo', rationale: 'linear' })).toBe('linear');
    expect(lossRationale({ name: 'kto', rationale: 'linear' })).toBe('none');
  });

  it('every loss composes from configs/loss with the seed keys and no notice', () => {
    for (const l of LOSS_ROWS) {
      const r = load(`loss=${l.name}`);
      expect(r.notices, l.name).toEqual([]);
      expect(r.config.loss.use_reference_model).toBe(l.reference);
    }
    const kto = load('loss=kto').config.loss;
    expect([kto.beta, kto.desirable_weight, kto.undesirable_weight]).toEqual([0.1, 1, 1]);
    expect(engineLossConfig(kto)).toEqual({ name: 'kto', beta: 0.1, desirable_weight: 1, undesirable_weight: 1 });
    expect(engineLossConfig(load('loss=kto', 'loss.undesirable_weight=1.5').config.loss).undesirable_weight).toBe(1.5);
    expect(engineLossConfig(load('loss=rorpo').config.loss)).toEqual({ name: 'rorpo', beta: 0.1, gamma: 1 });
  });

  it('loss.rationale on a paired loss needs gamma and reaches the engine', () => {
    expect(errorOf(() => load('loss=dpo', 'loss.rationale=logsigmoid'))).toMatch(/loss\.gamma: loss 'dpo' needs it/);
    const r = load('loss=dpo', 'loss.rationale=logsigmoid', '+loss.gamma=0.1');
    expect(engineLossConfig(r.config.loss)).toEqual({ name: 'dpo', beta: 0.1, gamma: 0.1, rationale: 'logsigmoid' });
    expect(lossGroups(r.config.loss)).toBe(3);
    // simpo: gamma is HALOs' margin without a rationale term, the term's weight with one.
    expect(load('loss=simpo', '+loss.gamma=0.3').config.loss.margin).toBe(0.3);
    const rs = load('loss=simpo', 'loss.rationale=linear', '+loss.gamma=0.3').config.loss;
    expect([rs.margin, rs.gamma]).toEqual([0.5, 0.3]);
  });

  it('a rationale term where the loss takes none, or against the one its name fixes, is an error', () => {
    expect(errorOf(() => load('loss=sft', '+loss.rationale=linear', '+loss.gamma=1'))).toMatch(/loss 'sft' takes no rationale term/);
    expect(errorOf(() => load('loss=kto', '+loss.rationale=linear', '+loss.gamma=1'))).toMatch(/loss 'kto' takes no rationale term/);
    expect(errorOf(() => load('loss=rdpo', '+loss.rationale=linear'))).toMatch(/fixes its rationale term \(logsigmoid\)/);
    expect(errorOf(() => load('loss=dpo', 'loss.rationale=cubic'))).toMatch(/loss\.rationale: expected one of none, logsigmoid, linear/);
    expect(errorOf(() => load('loss=kto', 'loss.desirable_weight=-1'))).toMatch(/desirable_weight/);
  });

  it('csft: the seed\'s control tokens, required', () => {
    const c = load('loss=csft').config.loss;
    expect([c.chosen_control_token, c.rejected_control_token]).toEqual(['<|good|>', '<|bad|>']);
    expect(lossGroups('csft')).toBe(1);
    expect(errorOf(() => load('loss=csft', '~loss.rejected_control_token'))).toMatch(/loss\.rejected_control_token: loss 'csft' needs it/);
  });

  it('help lines name every loss with its formula and keys', () => {
    const lines = lossHelpLines();
    expect(lines).toHaveLength(LOSS_ROWS.length);
    expect(lines.find((l) => l.startsWith('kto '))).toMatch(/loss\.beta, loss\.desirable_weight, loss\.undesirable_weight/);
    expect(lines.find((l) => l.startsWith('dpo '))).toMatch(/\[reference\].*loss\.rationale, loss\.gamma/);
  });
});
