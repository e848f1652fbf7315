// The table of losses on the TS side: what each loss reads (its keys, a reference, the row
// groups of its batches, its rationale term) in one place, for the config schema, the train
// loop, `rpo train --help` and the README. It mirrors the engine's table (native/loss/table.cpp:
// the formulas are computed there); test/native/loss_table.test.ts checks the two agree.
import type { Groups } from '../data/batch/index.js';
import type { LossName } from '../native.js';

/** How a loss's examples become rows: see native/loss/loss_spec.h's LossLayout. */
export type LossLayout = 'sft' | 'paired' | 'unpaired-kl' | 'unpaired';

/** The numeric keys of `loss.*` a loss can read. */
export type LossParam =
  | 'beta' | 'gamma' | 'epsilon' | 'lambda' | 'margin' | 'desirable_weight' | 'undesirable_weight'
  | 'ppo_epochs' | 'cliprange' | 'lam' | 'critic_coef' | 'KL_coef';

/** loss.rationale: the rationale term added to a paired loss. */
export const RATIONALE_TERMS = ['none', 'logsigmoid', 'linear'] as const;
export type RationaleTerm = (typeof RATIONALE_TERMS)[number];

export interface LossDecl {
  name: LossName;
  /** One line, for `rpo train --help` and the README (the engine's table says the same). */
  formula: string;
  layout: LossLayout;
  needsReference: boolean;
  /** Reads length-normalized (mean per token) policy log-probs; the rationale term then uses the rationale's mean too. */
  policyMean: boolean;
  referenceMean: boolean;
  /**
   * '' : loss.rationale chooses the term; 'never': none allowed; 'logsigmoid' / 'linear': the
   * term the name fixes; 'rationale_form': rdpo's, by loss.rationale_form (code → logsigmoid).
   */
  rationale: '' | 'never' | 'logsigmoid' | 'linear' | 'rationale_form';
  /** The numeric keys it reads (gamma also when a rationale term is on). */
  params: readonly LossParam[];
}

export const LOSSES: readonly LossDecl[] = [
  { name: 'sft', formula: '-logp(y_w)', layout: 'sft', needsReference: false, policyMean: false, referenceMean: false, rationale: 'never', params: [] },
  { name: 'csft', formula: '-logp(y | x, control token): chosen after <|good|>, rejected after <|bad|>', layout: 'sft', needsReference: false, policyMean: false, referenceMean: false, rationale: 'never', params: [] },
  { name: 'dpo', formula: '-log s(beta((pi_w - pi_l) - (ref_w - ref_l)))', layout: 'paired', needsReference: true, policyMean: false, referenceMean: false, rationale: '', params: ['beta'] },
  { name: 'cdpo', formula: '(1-eps) dpo(x) + eps dpo(-x)', layout: 'paired', needsReference: true, policyMean: false, referenceMean: false, rationale: '', params: ['beta', 'epsilon'] },
  { name: 'ipo', formula: '((pi_w - pi_l) - (ref_w - ref_l) - 1/(2 beta))^2 on means', layout: 'paired', needsReference: true, policyMean: true, referenceMean: true, rationale: '', params: ['beta'] },
  { name: 'slic', formula: 'max(0, beta - pi_w + pi_l) - lambda pi_w', layout: 'paired', needsReference: false, policyMean: false, referenceMean: false, rationale: '', params: ['beta', 'lambda'] },
  { name: 'simpo', formula: '-log s(beta mean_w - beta mean_l - margin)', layout: 'paired', needsReference: false, policyMean: true, referenceMean: false, rationale: '', params: ['beta', 'margin'] },
  { name: 'orpo', formula: 'NLL_w - beta log s(log odds(mean_w) - log odds(mean_l))', layout: 'paired', needsReference: false, policyMean: true, referenceMean: false, rationale: '', params: ['beta'] },
  { name: 'rdpo', formula: 'dpo - log s(gamma pi_r) (rationale_form=code) or dpo - gamma pi_r (paper)', layout: 'paired', needsReference: true, policyMean: false, referenceMean: false, rationale: 'rationale_form', params: ['beta', 'gamma'] },
  { name: 'rorpo', formula: 'orpo - log s(gamma mean_r)', layout: 'paired', needsReference: false, policyMean: true, referenceMean: false, rationale: 'logsigmoid', params: ['beta', 'gamma'] },
  { name: 'rorpo-simple', formula: 'orpo - gamma mean_r', layout: 'paired', needsReference: false, policyMean: true, referenceMean: false, rationale: 'linear', params: ['beta', 'gamma'] },
  { name: 'kto', formula: 'w_d (1 - s(beta(r - KL))) | w_u (1 - s(beta(KL - r))), r = pi - ref, KL from mismatched pairs', layout: 'unpaired-kl', needsReference: true, policyMean: false, referenceMean: false, rationale: 'never', params: ['beta', 'desirable_weight', 'undesirable_weight'] },
  { name: 'kto-simple', formula: '1 - s(beta(r - KL_u)) | 1 - s(beta(KL_d - r)), KL_* = mean r of the other kind', layout: 'unpaired', needsReference: true, policyMean: false, referenceMean: false, rationale: 'never', params: ['beta'] },
  { name: 'kto-zero', formula: '1 - s(beta r) | 1 - s(-beta r)', layout: 'unpaired', needsReference: true, policyMean: false, referenceMean: false, rationale: 'never', params: ['beta'] },
  { name: 'ppo', formula: 'offline PPO: clipped ratio pi/ref with GAE advantages of +-1 at the last token + critic_coef critic + KL_coef KL', layout: 'unpaired', needsReference: true, policyMean: false, referenceMean: false, rationale: 'never', params: ['ppo_epochs', 'cliprange', 'lam', 'gamma', 'critic_coef', 'KL_coef'] },
];

export const LOSS_NAMES: readonly LossName[] = LOSSES.map((l) => l.name);

const BY_NAME = new Map<string, LossDecl>(LOSSES.map((l) => [l.name, l]));

export function lossDecl(name: string): LossDecl {
  const d = BY_NAME.get(name);
  if (!d) throw new Error(`unknown loss '${name}' (known: ${LOSS_NAMES.join(', ')})`);
  return d;
}

export function lossUsesReference(name: LossName): boolean {
  return lossDecl(name).needsReference;
}

/** The loss fields the table's functions read (a LossSection has them all). */
export interface LossChoice {
  name: LossName;
  rationale?: RationaleTerm;
  rationale_form?: 'code' | 'paper';
}

/** The rationale term a loss section adds ('none' when it adds none). */
export function lossRationale(loss: LossChoice): RationaleTerm {
  const d = lossDecl(loss.name);
  if (d.rationale === '') return loss.rationale ?? 'none';
  if (d.rationale === 'never') return 'none';
  if (d.rationale === 'rationale_form') return loss.rationale_form === 'paper' ? 'linear' : 'logsigmoid';
  return d.rationale;
}

/**
 * Row groups per example the loss reads: 1 (sft; kto-simple and kto-zero, one row per
 * example), 2 (chosen and rejected; kto: target and KL), 3 (pairs + rationale).
 */
export function lossGroups(loss: LossChoice | LossName): Groups {
  const choice = typeof loss === 'string' ? { name: loss } : loss;
  const d = lossDecl(choice.name);
  if (d.layout === 'sft' || d.layout === 'unpaired') return 1;
  if (d.layout === 'unpaired-kl') return 2;
  return lossRationale(choice) === 'none' ? 2 : 3;
}

/** Whether the loss trains on unpaired examples (kto, kto-simple, kto-zero, ppo). */
export function lossIsUnpaired(name: LossName): boolean {
  const l = lossDecl(name).layout;
  return l === 'unpaired' || l === 'unpaired-kl';
}

/** The numeric keys a loss section reads: its own, and gamma when it has a rationale term. */
export function lossParams(loss: LossChoice): readonly LossParam[] {
  const d = lossDecl(loss.name);
  if (lossRationale(loss) === 'none' || d.params.includes('gamma')) return d.params;
  return [...d.params, 'gamma'];
}

/** `rpo train --help`'s and the README's loss lines: name, formula, keys. */
export function lossHelpLines(): string[] {
  const width = Math.max(...LOSSES.map((l) => l.name.length));
  return LOSSES.map((l) => {
    const keys = [
      ...l.params,
      ...(l.rationale === '' ? ['rationale', 'gamma'] : l.rationale === 'rationale_form' ? ['rationale_form'] : []),
      ...(l.name === 'csft' ? ['chosen_control_token', 'rejected_control_token'] : []),
    ];
    const ref = l.needsReference ? ' [reference]' : '';
    return `${l.name.padEnd(width)}  ${l.formula}${ref}${keys.length ? `  (loss.${keys.join(', loss.')})` : ''}`;
  });
}
