// The losses, declared once: each loss's row and the parameters the rows read.
// scripts/gen-boundary.mjs derives from this file the engine's LossConfig fields (native/gen/
// options.h), their N-API reader, the engine's table rows (native/gen/loss_table.inc) and the
// TypeScript rows and types (lib/gen/loss_table.ts). The formulas are computed in native/loss/
// (one function per loss, named by `compute`); the config schema, `rpo train --help`, `rpo plan`
// and the loop ask lib/loss/table.ts, which reads lib/gen/loss_table.ts.

/**
 * Every numeric `loss.*` key a loss can read. `type`: number (double) or int (int64_t).
 * `default`: the engine's value when a caller leaves the key out (a row's own value, below, is
 * what `configs/loss/<name>.yaml` and the config schema use). Range: `min`/`max` inclusive,
 * `above`/`below` exclusive; the config schema, the binding (integers) and the engine's
 * check all read it. `doc`: one line for the C++ struct, the TS type and the docs.
 */
export const LOSS_PARAMS = {
  beta: { type: 'number', default: 0.1, above: 0, doc: 'β: the temperature (how far the policy may move from the reference)' },
  gamma: { type: 'number', default: 0.1, min: 0, doc: 'γ: the rationale term\'s weight; ppo: the GAE discount' },
  epsilon: { type: 'number', default: 0.0, min: 0, below: 1, doc: 'ε: cdpo\'s rate of flipped labels' },
  lambda: { type: 'number', default: 0.1, min: 0, doc: 'λ: slic\'s NLL weight (the seed\'s lambda_coef)' },
  margin: { type: 'number', default: 0.0, doc: 'simpo\'s target margin (HALOs\' gamma)' },
  desirable_weight: { type: 'number', default: 1.0, min: 0, doc: 'kto: the weight of desirable examples\' losses' },
  undesirable_weight: { type: 'number', default: 1.0, min: 0, doc: 'kto: the weight of undesirable examples\' losses' },
  ppo_epochs: { type: 'int', default: 1, min: 1, doc: 'ppo: passes over the same batch' },
  cliprange: { type: 'number', default: 0.5, above: 0, max: 1, doc: 'ppo: the ratio is clipped to [cliprange, 1/cliprange]' },
  lam: { type: 'number', default: 0.95, min: 0, doc: 'ppo: the GAE lambda' },
  critic_coef: { type: 'number', default: 0.01, min: 0, doc: 'ppo: the weight of the critic loss' },
  KL_coef: { type: 'number', default: 0.1, min: 0, doc: 'ppo: the weight of the KL penalty against the reference' },
};

/**
 * One row per loss.
 * - formula: one line, for `rpo train --help` and the engine's table.
 * - compute: the engine's function (native/loss/*.cpp); null for a loss the trainer computes
 *   elsewhere (ppo: token-level, in train/ppo_step.cpp, with its value head).
 * - layout: how examples become rows: sft [chosen]; paired [chosen, rejected] (+ [rationale]
 *   with a rationale term); unpaired-kl [target, KL]; unpaired [target].
 * - reference: needs a reference model (or precomputed reference log-probs).
 * - policyMean / referenceMean: reads length-normalized log-probs (else sums).
 * - rationale: '' (loss.rationale chooses) | never | logsigmoid | linear | rationale_form (rdpo).
 * - params: the keys it reads, each with this loss's value (the seed's configs/loss/<name>.yaml).
 * - optional: keys of params a config may leave out, the loss's value then standing in (the
 *   seed's trainer read them with a default); a config must give the others.
 * - valueHead: trains a value head on the policy (its own step, state and checkpoint file).
 * - controlTokens: conditions on control tokens (loss.chosen_control_token, ...).
 * - balancedKinds: each batch is half desirable, half undesirable examples.
 */
export const LOSSES = [
  { name: 'sft', formula: '-logp(y_w)', compute: 'sft_terms', layout: 'sft', reference: false, policyMean: false, referenceMean: false, rationale: 'never', params: {} },
  { name: 'csft', formula: '-logp(y | x, control token): chosen after <|good|>, rejected after <|bad|>', compute: 'sft_terms', layout: 'sft', reference: false, policyMean: false, referenceMean: false, rationale: 'never', params: {}, controlTokens: true },
  { name: 'dpo', formula: '-log s(beta((pi_w - pi_l) - (ref_w - ref_l)))', compute: 'dpo_terms', layout: 'paired', reference: true, policyMean: false, referenceMean: false, rationale: '', params: { beta: 0.1 } },
  { name: 'cdpo', formula: '(1-eps) dpo(x) + eps dpo(-x)', compute: 'cdpo_terms', layout: 'paired', reference: true, policyMean: false, referenceMean: false, rationale: '', params: { beta: 0.1, epsilon: 0.2 } },
  { name: 'ipo', formula: '((pi_w - pi_l) - (ref_w - ref_l) - 1/(2 beta))^2 on means', compute: 'ipo_terms', layout: 'paired', reference: true, policyMean: true, referenceMean: true, rationale: '', params: { beta: 0.1 } },
  { name: 'slic', formula: 'max(0, beta - pi_w + pi_l) - lambda pi_w', compute: 'slic_terms', layout: 'paired', reference: false, policyMean: false, referenceMean: false, rationale: '', params: { beta: 1.0, lambda: 0.1 } },
  { name: 'simpo', formula: '-log s(beta mean_w - beta mean_l - margin)', compute: 'simpo_terms', layout: 'paired', reference: false, policyMean: true, referenceMean: false, rationale: '', params: { beta: 2.0, margin: 0.5 } },
  { name: 'orpo', formula: 'NLL_w - beta log s(log odds(mean_w) - log odds(mean_l))', compute: 'orpo_terms', layout: 'paired', reference: false, policyMean: true, referenceMean: false, rationale: '', params: { beta: 0.1 } },
  { name: 'rdpo', formula: 'dpo - log s(gamma pi_r) (rationale_form=code) or dpo - gamma pi_r (paper)', compute: 'dpo_terms', layout: 'paired', reference: true, policyMean: false, referenceMean: false, rationale: 'rationale_form', params: { beta: 0.1, gamma: 0.1 } },
  { name: 'rorpo', formula: 'orpo - log s(gamma mean_r)', compute: 'orpo_terms', layout: 'paired', reference: false, policyMean: true, referenceMean: false, rationale: 'logsigmoid', params: { beta: 0.1, gamma: 1.0 } },
  { name: 'rorpo-simple', formula: 'orpo - gamma mean_r', compute: 'orpo_terms', layout: 'paired', reference: false, policyMean: true, referenceMean: false, rationale: 'linear', params: { beta: 0.1, gamma: 1.0 } },
  { name: 'kto', formula: 'w_d (1 - s(beta(r - KL))) | w_u (1 - s(beta(KL - r))), r = pi - ref, KL from mismatched pairs', compute: 'kto_terms', layout: 'unpaired-kl', reference: true, policyMean: false, referenceMean: false, rationale: 'never', params: { beta: 0.1, desirable_weight: 1.0, undesirable_weight: 1.0 }, optional: ['desirable_weight', 'undesirable_weight'] },
  { name: 'kto-simple', formula: '1 - s(beta(r - KL_u)) | 1 - s(beta(KL_d - r)), KL_* = mean r of the other kind', compute: 'kto_simple_terms', layout: 'unpaired', reference: true, policyMean: false, referenceMean: false, rationale: 'never', params: { beta: 0.1 }, balancedKinds: true },
  { name: 'kto-zero', formula: '1 - s(beta r) | 1 - s(-beta r)', compute: 'kto_zero_terms', layout: 'unpaired', reference: true, policyMean: false, referenceMean: false, rationale: 'never', params: { beta: 0.1 } },
  { name: 'ppo', formula: 'offline PPO: clipped ratio pi/ref with GAE advantages of +-1 at the last token + critic_coef critic + KL_coef KL', compute: null, layout: 'unpaired', reference: true, policyMean: false, referenceMean: false, rationale: 'never', params: { ppo_epochs: 1, cliprange: 0.5, lam: 0.95, gamma: 0.99, critic_coef: 0.01, KL_coef: 0.1 }, optional: ['ppo_epochs', 'cliprange', 'lam', 'gamma', 'critic_coef', 'KL_coef'], valueHead: true },
];
