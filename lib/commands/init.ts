// `rpo init DIR`: a random-weight HF model directory with a tokenizer.
import { initModelDir } from '../model/init.js';
import type { Dtype } from '../native.js';
import { EXIT } from '../exit.js';

export interface InitArgs {
  dir: string;
  preset: string;
  config?: string;
  tokenizer: string;
  seed: number;
  dtype: Dtype;
  overwrite: boolean;
}

export async function runInitCommand(args: InitArgs): Promise<number> {
  const out = await initModelDir(args.dir, {
    preset: args.config ? undefined : args.preset,
    configJson: args.config,
    tokenizer: args.tokenizer,
    seed: args.seed,
    dtype: args.dtype,
    overwrite: args.overwrite,
  });
  if (out.notice !== null) console.error(`rpo: ${out.notice}`);
  console.log(`rpo: wrote ${out.dir}`);
  return EXIT.ok;
}
