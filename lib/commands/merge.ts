// `rpo merge <adapter dir> --out DIR`: lib/model/merge.ts, with the CLI's messages.
import { EXIT } from '../exit.js';
import { mergeAdapter, type MergeOptions } from '../model/merge.js';

export async function runMergeCommand(adapterDir: string, o: MergeOptions): Promise<number> {
  const out = await mergeAdapter(adapterDir, { ...o, onMessage: (m) => console.error(`rpo: ${m}`) });
  console.log(`rpo: wrote ${out}`);
  return EXIT.ok;
}
