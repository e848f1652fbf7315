// `rpo data`: what the model will see. Each dataset's source and how its rows are treated
// (truncation end, text cleaning, rationale question), a few of its examples formatted and
// tokenized (prompt and response decoded from the token ids, so the mask boundary is visible),
// then length percentiles and truncation / drop counts per split.
import { ConfigError, type RunConfig } from '../config/index.js';
import { decodeSequence, tokenStats, type LengthStats, type TokenizedExample } from '../data/batch/index.js';
import type { Tokenizer } from '../data/tokenize/index.js';
import { describeDatasetSource } from '../data/sources/index.js';
import { buildRunData } from '../train/data.js';
import { epochPadding, lossExamples, type EpochPadding } from '../train/batches.js';
import { lossGroups, lossIsUnpaired, lossUsesControlTokens } from '../loss/table.js';
import { EXIT } from '../exit.js';

/**
 * The padding line: the share of the positions `rpo train`'s padded micro-batches would compute
 * that are padding, over the train split's first epoch (one process; batches formed as the
 * train loop forms them).
 */
export function paddingLine(config: RunConfig, train: readonly TokenizedExample[], padTokenId: number): string {
  const groups = lossGroups(config.loss);
  const unpaired = lossIsUnpaired(config.loss.name);
  // csft's control tokens are not in the tokenizer until a run adds them; only their count
  // (one token after each prompt) matters to the lengths, so any id stands in for them.
  const csft = lossUsesControlTokens(config.loss.name) ? { chosenId: padTokenId, rejectedId: padTokenId } : null;
  const { batch_size: B, gradient_accumulation_steps: G, tokens_per_micro_batch: budget } = config.model;
  const where = `model.batch_size ${B}, ${budget === null ? `gradient_accumulation_steps ${G}` : `tokens_per_micro_batch ${budget}`}`;
  let p: EpochPadding;
  try {
    p = epochPadding(config, lossExamples(config, train, { groups, unpaired }, csft), { groups, unpaired, padTokenId });
  } catch (err) {
    return `padding: not computed (${where}): ${(err as Error).message}`;
  }
  if (p.computed === 0) return `padding: no batch to train (${where})`;
  return (
    `padding: ${(100 * p.fraction).toFixed(1)}% of the positions padded batches compute are padding ` +
    `(${p.real} real of ${p.computed}; an epoch of ${p.batches} batches, ${p.microBatches} micro-batches; ${where})`
  );
}

function lengths(name: string, s: LengthStats | null): string {
  if (!s || s.count === 0) return `  ${name.padEnd(10)} -`;
  return `  ${name.padEnd(10)} n=${s.count} mean=${s.mean.toFixed(1)} p50=${s.p50} p90=${s.p90} p99=${s.p99} max=${s.max}`;
}

async function show(ex: TokenizedExample, tok: Tokenizer, groups: number): Promise<string> {
  const parts = [`--- ${ex.id}${ex.truncated ? ' (truncated)' : ''}${ex.dropped ? ' (DROPPED)' : ''}`];
  const kinds = (['chosen', 'rejected', 'rationale'] as const).slice(0, groups);
  for (const kind of kinds) {
    const seq = ex[kind];
    if (!seq) continue;
    const { prompt, response } = await decodeSequence(seq, tok);
    parts.push(`[${kind}] ${seq.ids.length} tokens, ${seq.ids.length - seq.promptLength} labels`);
    parts.push(`  prompt   | ${JSON.stringify(prompt)}`);
    parts.push(`  response | ${JSON.stringify(response)}`);
  }
  return parts.join('\n');
}

/** Examples `rpo data` shows per dataset when -n is not given. */
export const DEFAULT_EXAMPLES = 3;

const EXAMPLES_FLAG = /^--?n(?:=(.*))?$/;

/**
 * Splits `rpo data`'s own option, the number of examples to show, from the Hydra arguments that
 * follow the command: `-n 5`, `-n=5`, `-n5`, `--n 5`, `--n=5` (the last one given wins). Every
 * other argument is passed on as typed, so overrides such as `n_examples=5`, `++n_samples=2` or
 * `exp_name=-n` keep their meaning. Throws ConfigError for a value that is not a whole number.
 */
export function splitDataArgs(args: readonly string[]): { examples: number; hydra: string[] } {
  const hydra: string[] = [];
  let examples = DEFAULT_EXAMPLES;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const flag = EXAMPLES_FLAG.exec(a);
    const glued = /^-n(\d+)$/.exec(a);
    if (!flag && !glued) {
      hydra.push(a);
      continue;
    }
    let value: string | undefined = glued ? glued[1] : flag![1];
    if (value === undefined) {
      value = args[i + 1];
      if (value === undefined) throw new ConfigError(`${a} needs a number of examples (e.g. ${a} 5)`);
      i++;
    }
    if (!/^\d+$/.test(value)) throw new ConfigError(`${a}: expected a whole number of examples, got ${JSON.stringify(value)}`);
    examples = Number(value);
  }
  return { examples, hydra };
}

export async function runDataCommand(config: RunConfig, opts: { examples: number }): Promise<number> {
  const groups = lossGroups(config.loss);
  // A preview tokenizes: the tokenizer files are fetched, never the weights.
  const data = await buildRunData(config, { withRationale: groups === 3, weights: false, onStage: (m) => console.error(`rpo: ${m}`) });
  const tok = data.model.tokenizer;
  console.log(`model ${data.model.modelDir}\ntokenizer ${data.model.tokenizerDir} (vocab ${tok.vocabSize}, bos ${tok.bosTokenId}, eos ${tok.eosTokenId}, pad ${tok.padTokenId})`);
  const modes = [...new Set(data.datasets.map((d) => d.traits.truncation_mode))].join(' / ');
  console.log(
    `loss ${config.loss.name}: ${groups} row group(s) per pair; template ${config.template}; max_length ${config.model.max_length}, ` +
      `max_prompt_length ${config.model.max_prompt_length}, ${modes}; drop_last ${config.drop_last}`,
  );
  let offset = 0;
  for (const d of data.datasets) {
    const t = d.traits;
    console.log(
      `\n=== dataset ${d.spec} (${describeDatasetSource(d.spec)}): ${d.rows.train} train / ${d.rows.test} test rows; ` +
        `truncation ${t.truncation_mode}; ${t.remove_extra_spaces ? 'extra spaces removed' : 'text as written'}` +
        `${groups === 3 ? `; rationale question ${t.rationale_prompt}` : ''}`,
    );
    for (const ex of data.train.slice(offset, offset + Math.min(opts.examples, d.rows.train))) console.log(await show(ex, tok, groups));
    offset += d.rows.train;
  }
  for (const [split, examples] of [['train', data.train], ['test', data.test]] as const) {
    const s = tokenStats(examples);
    console.log(`\n${split}: ${data.rowCounts[split]} rows, ${s.examples} tokenized, ${s.truncated} truncated, ${s.dropped} dropped (chosen ${s.droppedByKind.chosen}, rejected ${s.droppedByKind.rejected}, rationale ${s.droppedByKind.rationale})`);
    console.log('token lengths after truncation:');
    console.log(lengths('prompt', s.lengths.prompt));
    console.log(lengths('chosen', s.lengths.chosen));
    console.log(lengths('rejected', s.lengths.rejected));
    if (groups === 3) console.log(lengths('rationale', s.lengths.rationale));
    console.log(lengths('all', s.fullLengths.all).replace('all', 'untrunc.'));
    if (split === 'train') console.log(paddingLine(config, examples, tok.padTokenId ?? 0));
  }
  return EXIT.ok;
}
