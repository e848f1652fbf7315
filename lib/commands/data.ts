// `rpo data`: what the model will see. A few examples formatted and tokenized (prompt and
// response decoded from the token ids, so the mask boundary is visible), then length
// percentiles and truncation / drop counts per split.
import type { RunConfig } from '../config/index.js';
import { decodeSequence, tokenStats, type LengthStats, type TokenizedExample } from '../data/batch/index.js';
import type { Tokenizer } from '../data/tokenize/index.js';
import { buildRunData } from '../train/data.js';
import { lossGroups } from '../train/loop.js';
import { EXIT } from '../cli.js';

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

export async function runDataCommand(config: RunConfig, opts: { examples: number }): Promise<number> {
  const groups = lossGroups(config.loss.name);
  const data = await buildRunData(config, { withRationale: groups === 3, onStage: (m) => console.error(`rpo: ${m}`) });
  const tok = data.model.tokenizer;
  console.log(`model ${data.model.modelDir}\ntokenizer ${data.model.tokenizerDir} (vocab ${tok.vocabSize}, bos ${tok.bosTokenId}, eos ${tok.eosTokenId}, pad ${tok.padTokenId})`);
  console.log(`loss ${config.loss.name}: ${groups} row group(s) per pair; template ${config.template}; max_length ${config.model.max_length}, max_prompt_length ${config.model.max_prompt_length}, ${config.truncation_mode}\n`);
  for (const ex of data.train.slice(0, opts.examples)) console.log(await show(ex, tok, groups));
  for (const [split, examples] of [['train', data.train], ['test', data.test]] as const) {
    const s = tokenStats(examples);
    console.log(`\n${split}: ${data.rowCounts[split]} rows, ${s.examples} tokenized, ${s.truncated} truncated, ${s.dropped} dropped (chosen ${s.droppedByKind.chosen}, rejected ${s.droppedByKind.rejected}, rationale ${s.droppedByKind.rationale})`);
    console.log('token lengths after truncation:');
    console.log(lengths('prompt', s.lengths.prompt));
    console.log(lengths('chosen', s.lengths.chosen));
    console.log(lengths('rejected', s.lengths.rejected));
    if (groups === 3) console.log(lengths('rationale', s.lengths.rationale));
    console.log(lengths('all', s.fullLengths.all).replace('all', 'untrunc.'));
  }
  return EXIT.ok;
}
