// The data side of the seed's unpaired and conditional losses (issue 12, item 7): KTO's
// UnpairedPreferenceDataLoader (each pair → a desirable and an undesirable example, the
// frac_unique_* subsets, the in-batch KL pairing, desirable_weight / undesirable_weight),
// kto-simple's SimpleKTODataLoader (interleaved halves) and csft's ConditionalSFTDataLoader
// (control tokens after the prompt). Compared, with shuffling off on both sides, with the port of
// the seed's loaders (test/reference/seed_loaders.py `unpaired`).
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { SEED_PREFIXES, formatExample } from '../../lib/data/format/index.js';
import {
  CSFT_CONTROL_TOKENS,
  UNPAIRED_ROW_KIND,
  conditionalSamplingPrompt,
  conditionalSftBatches,
  conditionalSftExamples,
  exampleWeights,
  layoutUnpaired,
  simpleKtoBatches,
  unpairedBatches,
  unpairedExamples,
  type PairTexts,
  type UnpairedExample,
} from '../../lib/data/batch/unpaired.js';
import type { TokenizeConfig } from '../../lib/data/batch/index.js';
import { loadTokenizer, type Tokenizer } from '../../lib/data/tokenize/index.js';
import { REPO_ROOT, runPython } from '../reference/python.js';

interface PortOut {
  unpaired_flat: Array<{ pair: number; status: string }>;
  unpaired_batches: Array<Array<{ pair: number; status: string; prompt: string; target: string; kl_target: string }>>;
  simple_kto_batches: Array<Array<{ pair: number; status: string }>>;
  conditional_batches: Array<Array<{ pair: number; status: string; prompt: string; target: string }>>;
}

const CFG = { ...SEED_PREFIXES, remove_extra_spaces: true };
// Seven formatted pairs (as the seed's Examples hold them: prompt with prefixes, responses with the suffix).
const PAIRS: PairTexts[] = Array.from({ length: 7 }, (_, i) => {
  const f = formatExample({ id: `d:train:${i}`, prompt: `question ${i}`, chosen: `good answer ${i}`, rejected: `bad answer ${i}` }, CFG);
  return { id: f.id, prompt: f.chosen.prompt, chosen: f.chosen.response, rejected: f.rejected.response };
});
const B = 4;

let port: PortOut;
let portHalf: PortOut;
let tok: Tokenizer;

function runPort(fracD: number, fracU: number): PortOut {
  return JSON.parse(
    runPython(
      'seed_loaders.py',
      ['unpaired'],
      JSON.stringify({
        pairs: PAIRS,
        batch_size: B,
        frac_unique_desirable: fracD,
        frac_unique_undesirable: fracU,
        chosen_control_token: CSFT_CONTROL_TOKENS.chosenControlToken,
        rejected_control_token: CSFT_CONTROL_TOKENS.rejectedControlToken,
      }),
    ),
  ) as PortOut;
}

const pairIndex = (e: UnpairedExample): number => PAIRS.findIndex((p) => p.id === e.pairId);
const status = (e: UnpairedExample): string => (e.desirable ? 'chosen' : 'rejected');

beforeAll(async () => {
  port = runPort(1, 1);
  portHalf = runPort(0.5, 0.25);
  tok = await loadTokenizer(path.join(REPO_ROOT, 'node_modules', '@lenml', 'tokenizer-llama3', 'models'));
}, 120_000);

describe('KTO: UnpairedPreferenceDataLoader', () => {
  it('each pair gives a desirable and an undesirable example; frac_unique_* keep the first ⌈n·frac⌉ of each', () => {
    for (const [out, fd, fu] of [[port, 1, 1], [portHalf, 0.5, 0.25]] as const) {
      const got = unpairedExamples(PAIRS, { fracUniqueDesirable: fd, fracUniqueUndesirable: fu });
      expect(got.map((e) => ({ pair: pairIndex(e), status: status(e) }))).toEqual(out.unpaired_flat);
    }
    const half = unpairedExamples(PAIRS, { fracUniqueDesirable: 0.5, fracUniqueUndesirable: 0.25 });
    expect(half.filter((e) => e.desirable)).toHaveLength(4); // 7 · 0.5 = 3.5 → 4
    expect(half.filter((e) => !e.desirable)).toHaveLength(2); // 7 · 0.25 = 1.75 → 2
    expect(() => unpairedExamples(PAIRS, { fracUniqueDesirable: 1.5 })).toThrow(/\[0, 1\]/);
  });

  it('full batches only, each example\'s KL partner the next example\'s response (the last wraps to the first)', () => {
    const examples = unpairedExamples(PAIRS);
    const plans = unpairedBatches(examples, { batchSize: B, seed: 0, shuffle: false, desirableWeight: 1.5, undesirableWeight: 0.5 });
    expect(plans).toHaveLength(Math.floor(14 / B)); // 14 examples: 3 full batches, 2 left out
    expect(
      plans.map((p) =>
        p.examples.map((e, i) => ({ pair: pairIndex(e), status: status(e), prompt: e.prompt, target: e.response, kl_target: p.kl[i]!.response })),
      ),
    ).toEqual(port.unpaired_batches);
    for (const p of plans) {
      p.kl.forEach((k, i) => expect(k.prompt).toBe(p.examples[i]!.prompt));
      expect([...p.desirable]).toEqual(p.examples.map((e) => (e.desirable ? 1 : 0)));
      expect([...p.weights]).toEqual(p.examples.map((e) => (e.desirable ? 1.5 : 0.5)));
    }
  });

  it('shuffled: a permutation per epoch, the same for the same seed, another for another epoch', () => {
    const examples = unpairedExamples(PAIRS);
    const ids = (epoch: number, seed = 3): string[] => unpairedBatches(examples, { batchSize: B, seed, epoch }).flatMap((p) => p.examples.map((e) => e.id));
    expect(ids(0)).toEqual(ids(0));
    expect(ids(0)).not.toEqual(ids(1));
    expect(ids(0)).toHaveLength(12);
    expect(new Set(ids(0)).size).toBe(12);
  });

  it('weights: desirable_weight and undesirable_weight by kind; negative or non-finite weights are refused', () => {
    expect([...exampleWeights([{ desirable: true }, { desirable: false }], { desirableWeight: 2, undesirableWeight: 0.25 })]).toEqual([2, 0.25]);
    expect([...exampleWeights([{ desirable: true }, { desirable: false }])]).toEqual([1, 1]);
    expect(() => exampleWeights([{ desirable: true }], { desirableWeight: -1 })).toThrow(/desirableWeight/);
  });

  it('tokenized: rows [targets…, KL…], the KL row of x_i is x_i with y_(i+1), weights and kinds alongside', async () => {
    const [plan] = unpairedBatches(unpairedExamples(PAIRS), { batchSize: B, seed: 0, shuffle: false, desirableWeight: 2 });
    const cfg: TokenizeConfig = { ...CFG, max_length: 64, max_prompt_length: 32 };
    const batch = await layoutUnpaired(plan!, tok, cfg, { padTokenId: 0 });
    expect(batch.rows).toBe(2 * B);
    expect([...batch.kinds]).toEqual([...Array(B).fill(UNPAIRED_ROW_KIND.target), ...Array(B).fill(UNPAIRED_ROW_KIND.kl)]);
    expect(batch.exampleIds).toEqual(plan!.examples.map((e) => e.id));
    expect([...batch.weights]).toEqual([...plan!.weights]);
    const text = async (r: number): Promise<string> => tok.decode(Array.from(batch.inputIds.subarray(r * batch.seqLen, r * batch.seqLen + batch.lengths[r]!)));
    for (let i = 0; i < B; i++) {
      const next = plan!.examples[(i + 1) % B]!;
      expect(await text(B + i)).toBe(plan!.examples[i]!.prompt + next.response + tok.eosToken);
      expect(await text(i)).toBe(plan!.examples[i]!.prompt + plan!.examples[i]!.response + tok.eosToken);
    }
    expect(batch.dropped).toBe(false);
  });
});

describe('kto-simple: SimpleKTODataLoader', () => {
  it('batches interleave desirable and undesirable, half each, as the seed\'s queues fill', () => {
    const batches = simpleKtoBatches(unpairedExamples(PAIRS), { batchSize: B, seed: 0, shuffle: false });
    expect(batches.map((b) => b.map((e) => ({ pair: pairIndex(e), status: status(e) })))).toEqual(port.simple_kto_batches);
    for (const b of batches) expect(b.map((e) => e.desirable)).toEqual([true, false, true, false]);
  });

  it('shuffled, every batch still half and half; an odd batch size is refused', () => {
    for (const b of simpleKtoBatches(unpairedExamples(PAIRS), { batchSize: B, seed: 5, epoch: 2 })) {
      expect(b.filter((e) => e.desirable)).toHaveLength(B / 2);
      expect(b.map((e) => e.desirable)).toEqual([true, false, true, false]);
    }
    expect(() => simpleKtoBatches(unpairedExamples(PAIRS), { batchSize: 3, seed: 0 })).toThrow(/even batch size/);
  });
});

describe('csft: ConditionalSFTDataLoader', () => {
  it('each pair → chosen after prompt + <|good|>, rejected after prompt + <|bad|>; full batches', () => {
    const examples = conditionalSftExamples(PAIRS);
    const batches = conditionalSftBatches(examples, { batchSize: B, seed: 0, shuffle: false });
    expect(batches.map((b) => b.map((e) => ({ pair: pairIndex(e), status: status(e), prompt: e.prompt, target: e.response })))).toEqual(port.conditional_batches);
    expect(examples[0]!.prompt.endsWith(`${SEED_PREFIXES.assistant_prefix}<|good|>`)).toBe(true);
    expect(examples[1]!.prompt.endsWith(`${SEED_PREFIXES.assistant_prefix}<|bad|>`)).toBe(true);
    expect(conditionalSamplingPrompt(PAIRS[0]!.prompt)).toBe(`${PAIRS[0]!.prompt}<|good|>`);
    expect(() => conditionalSftExamples(PAIRS, { chosenControlToken: '', rejectedControlToken: '<|bad|>' })).toThrow(/chosenControlToken/);
  });
});
