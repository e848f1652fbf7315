// The config rules of model.tokens_per_micro_batch (token-budget micro-batches,
// lib/data/batch/token_budget.ts): which losses it can cut, and what it replaces.
import { lossHasValueHead, lossIsUnpaired } from '../loss/table.js';
import type { LossName } from '../native.js';
import type { ModelSection } from './run_keys.js';

/**
 * Problems (errors) and notices of a config's token budget. The budget keeps a step's update
 * only for losses whose micro-batch loss is a mean over its pairs of per-pair terms (each
 * micro-step scaled by its pairs / the global batch's): not the unpaired losses (their
 * micro-batches are laid out over the global batch: kto's KL estimate is a mean over the
 * micro-batch, kto-simple balances kinds per micro-batch), not ppo (a mean over the
 * micro-batch's tokens, its advantages whitened per step).
 */
export function tokenBudgetRules(model: Pick<ModelSection, 'tokens_per_micro_batch' | 'gradient_accumulation_steps'>, loss: LossName): { errors: string[]; notices: string[] } {
  const budget = model.tokens_per_micro_batch;
  if (budget === null) return { errors: [], notices: [] };
  const errors: string[] = [];
  if (lossHasValueHead(loss)) errors.push(`model.tokens_per_micro_batch=${budget}: loss=${loss}'s loss is a mean over each micro-batch's tokens, so a token cut would change its update; use model.gradient_accumulation_steps`);
  else if (lossIsUnpaired(loss)) errors.push(`model.tokens_per_micro_batch=${budget}: loss=${loss} lays out its micro-batches over the whole global batch (KL rows, balanced kinds), so a token cut would change its update; use model.gradient_accumulation_steps`);
  const notices = model.gradient_accumulation_steps > 1 ? [`model.gradient_accumulation_steps=${model.gradient_accumulation_steps} ignored: model.tokens_per_micro_batch=${budget} cuts each global batch by tokens`] : [];
  return { errors, notices };
}
