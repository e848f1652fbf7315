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

export async function runInitCommand(a: InitArgs): Promise<number> {
  const out = await initModelDir(a.dir, {
    preset: a.config ? undefined : a.preset,
    configJson: a.config,
    tokenizer: a.tokenizer,
    seed: a.seed,
    dtype: a.dtype,
    overwrite: a.overwrite,
  });
  if (out.notice !== null) console.error(`rpo: ${out.notice}`);
  console.log(`rpo: wrote ${out.dir}`);
  return EXIT.ok;
}
