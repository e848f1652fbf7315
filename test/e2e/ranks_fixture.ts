// What the rpo launch e2e files share: the environment that makes a rank's arithmetic the same as
// one process's, the data-parallel availability check (a failure in CI, a loud skip elsewhere),
// and the tiny-model run overrides the ranks-vs-one-process comparisons train with.
import path from 'node:path';

import { distInfo } from '../../lib/parallel/native.js';
import { REPO } from './cli.js';

/** One thread per process: each micro-step's arithmetic is then the same in every run. */
export const RANK_ENV = { RPO_NUM_THREADS: '1', RPO_DIST_TIMEOUT_S: '60' };

/** The preference pairs fixture every comparison trains on. */
export const PAIRS = path.join(REPO, 'test', 'fixtures', 'data', 'pairs');

/** Whether the addon has data parallelism; without it CI fails here and elsewhere `file` says it skips. */
export function dataParallelAvailable(file: string): boolean {
  const available = distInfo().available;
  if (!available && process.env.CI) throw new Error(`data parallelism is not built: ${distInfo().reason}`);
  if (!available) console.warn(`${file}: skipping the data-parallel tests: ${distInfo().reason}`);
  return available;
}

/** `rpo train` overrides for the tiny model in `modelDir` on the pairs, run `exp` under `work`; `extra` last. */
export function tinyRunArgs(work: string, modelDir: string, exp: string, extra: string[] = []): string[] {
  return [
    'model=tiny',
    `model.name_or_path=${modelDir}`,
    `datasets=[${PAIRS}]`,
    `exp_name=${exp}`,
    `cache_dir=${work}`,
    `samples_dir=${path.join(work, 'samples')}`,
    'model.batch_size=4',
    'model.eval_batch_size=1',
    'warmup_steps=2',
    'lr=1e-3',
    ...extra,
  ];
}
