// The table of losses, asked: what a loss reads (its keys and their ranges, a reference, a value
// head, control tokens, the row groups of its batches, its rationale term). The rows are declared
// once in boundary/losses.mjs and generated into lib/gen/loss_table.ts (and the engine's
// native/gen/loss_table.inc); the config schema, the train loop, eval, `rpo plan`, `rpo train
// --help` and the README's table all ask here. This is the only module that compares a loss's
// name (test/unit/loss_names.test.ts holds the rest of lib/ and native/ to that).
import { LOSS_PARAM_NAMES, LOSS_PARAMS, LOSS_ROWS, type LossLayout, type LossParam, type LossParamSpec, type LossRow } from '../gen/loss_table.js';
import { LOSS_NAMES, RATIONALE_TERMS, type LossName, type RationaleForm, type RationaleTerm } from '../gen/options.js';

export { LOSS_NAMES, LOSS_PARAM_NAMES, LOSS_PARAMS, LOSS_ROWS, RATIONALE_TERMS };
export type { LossLayout, LossName, LossParam, LossParamSpec, LossRow, RationaleTerm };

/** Row groups per example: 1 (sft; one-row unpaired losses), 2 (pairs; kto's target and KL), 3 (pairs + rationale). */
export type RowGroups = 1 | 2 | 3;

const BY_NAME = new Map<string, LossRow>(LOSS_ROWS.map((l) => [l.name, l]));

/** A loss's row; an unknown name is an error naming the known ones. */
export function lossRow(name: string): LossRow {
  const d = BY_NAME.get(name);
  if (!d) throw new Error(`unknown loss '${name}' (known: ${LOSS_NAMES.join(', ')})`);
  return d;
}

export function lossUsesReference(name: LossName): boolean {
  return lossRow(name).reference;
}

/** Trains a value head on the policy (ppo): its own step, pre-pass, state and checkpoint file. */
export function lossHasValueHead(name: LossName): boolean {
  return lossRow(name).valueHead;
}

/** Conditions on control tokens after the prompt (csft: loss.chosen_control_token, ...). */
export function lossUsesControlTokens(name: LossName): boolean {
  return lossRow(name).controlTokens;
}

/** Each batch is half desirable, half undesirable examples (kto-simple). */
export function lossBalancesKinds(name: LossName): boolean {
  return lossRow(name).balancedKinds;
}

/** Whether the loss trains on unpaired examples (kto, kto-simple, kto-zero, ppo). */
export function lossIsUnpaired(name: LossName): boolean {
  const l = lossRow(name).layout;
  return l === 'unpaired' || l === 'unpaired-kl';
}

/** Whether loss.rationale_form chooses the loss's rationale term (rdpo). */
export function lossReadsRationaleForm(name: LossName): boolean {
  return lossRow(name).rationale === 'rationale_form';
}

/** Whether loss.rationale may add a rationale term (dpo, cdpo, ipo, slic, simpo, orpo). */
export function lossTakesRationaleTerm(name: LossName): boolean {
  return lossRow(name).rationale === '';
}

/** The loss fields the table's functions read (a LossSection has them all). */
export interface LossChoice {
  name: LossName;
  rationale?: RationaleTerm;
  rationale_form?: RationaleForm;
}

/** The rationale term a loss section adds ('none' when it adds none). */
export function lossRationale(loss: LossChoice): RationaleTerm {
  const d = lossRow(loss.name);
  if (d.rationale === '') return loss.rationale ?? 'none';
  if (d.rationale === 'never') return 'none';
  if (d.rationale === 'rationale_form') return loss.rationale_form === 'paper' ? 'linear' : 'logsigmoid';
  return d.rationale;
}

/**
 * Row groups per example the loss reads: 1 (sft; kto-simple and kto-zero, one row per
 * example), 2 (chosen and rejected; kto: target and KL), 3 (pairs + rationale).
 */
export function lossGroups(loss: LossChoice | LossName): RowGroups {
  const choice = typeof loss === 'string' ? { name: loss } : loss;
  const d = lossRow(choice.name);
  if (d.layout === 'sft' || d.layout === 'unpaired') return 1;
  if (d.layout === 'unpaired-kl') return 2;
  return lossRationale(choice) === 'none' ? 2 : 3;
}

/** The numeric keys a loss section reads: its own, and gamma when it has a rationale term. */
export function lossParams(loss: LossChoice): readonly LossParam[] {
  const own = lossRow(loss.name).params.map((p) => p.key);
  if (lossRationale(loss) === 'none' || own.includes('gamma')) return own;
  return [...own, 'gamma'];
}

/** The loss's own value of a key it reads (configs/loss/<name>.yaml's); null when it does not read it. */
export function lossParamValue(name: LossName, param: LossParam): number | null {
  return lossRow(name).params.find((p) => p.key === param)?.value ?? null;
}

/** The value standing in for a key the config left out: the loss's own for a key it may omit, else null (an error if read). */
export function lossParamFallback(name: LossName, param: LossParam): number | null {
  const p = lossRow(name).params.find((q) => q.key === param);
  return p?.optional ? p.value : null;
}

/** Every `loss.*` key a loss reads, as `rpo train --help` and the README list them. */
export function lossKeys(name: LossName): string[] {
  const l = lossRow(name);
  return [
    ...l.params.map((p) => p.key),
    ...(l.rationale === '' ? ['rationale', 'gamma'] : l.rationale === 'rationale_form' ? ['rationale_form'] : []),
    ...(l.controlTokens ? ['chosen_control_token', 'rejected_control_token'] : []),
  ];
}

/** `rpo train --help`'s loss lines: name, formula, keys. */
export function lossHelpLines(): string[] {
  const width = Math.max(...LOSS_ROWS.map((l) => l.name.length));
  return LOSS_ROWS.map((l) => {
    const keys = lossKeys(l.name);
    const ref = l.reference ? ' [reference]' : '';
    return `${l.name.padEnd(width)}  ${l.formula}${ref}${keys.length ? `  (loss.${keys.join(', loss.')})` : ''}`;
  });
}
