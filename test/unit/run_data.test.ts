// A run's data (lib/train/data.ts): a loss that trains on rationales refuses rows without one,
// naming the datasets and rows, before any model is resolved (issue 9, item 9). Real JSON-lines
// fixtures in test/fixtures/data/rationales/.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import { ConfigError, loadConfig } from '../../lib/config/index.js';
import { loadPreferenceSplit } from '../../lib/data/sources/index.js';
import { buildRunData, loadDatasetRows, rationaleGaps } from '../../lib/train/data.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'data', 'rationales');
const WITH = path.join(FIXTURES, 'with');
const WITHOUT = path.join(FIXTURES, 'without.jsonl');
const PARTIAL = path.join(FIXTURES, 'partial');
// No model is needed: the check comes before the model is resolved. A model that does not exist
// shows that (its error is the one a dataset that passes the check runs into).
const NO_MODEL = path.join(FIXTURES, 'no-such-model');

function config(datasets: string[], loss = 'rdpo') {
  return loadConfig({
    overrides: [`loss=${loss}`, 'model=tiny', `model.name_or_path=${NO_MODEL}`, `datasets=[${datasets.join(',')}]`, 'exp_name=x'],
    env: {},
  }).config;
}

async function failure(datasets: string[], loss = 'rdpo'): Promise<Error> {
  try {
    await buildRunData(config(datasets, loss), { withRationale: true });
  } catch (err) {
    return err as Error;
  }
  throw new Error('buildRunData did not fail');
}

describe('rows without a rationale, for a loss that trains on rationales', () => {
  it('a dataset without the column: an error naming the file and the column, not a silent drop', async () => {
    const trainRows = (await loadPreferenceSplit(WITHOUT, 'train')).length;
    const e = await failure([WITHOUT]);
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toContain(`loss=rdpo trains on a rationale for every pair, and the train split of dataset "${WITHOUT}" has rows without one:`);
    expect(e.message).toContain(`${WITHOUT}: ${trainRows} of ${trainRows} rows: it has no "rationale" column`);
    expect(e.message).toContain(`rpo rationales ${WITHOUT} --out DIR`);
    expect(e.message).not.toMatch(/truncated/);
  });

  it('a mix of two datasets, one without rationales: the count per dataset that lacks them', async () => {
    const trainRows = (await loadPreferenceSplit(WITHOUT, 'train')).length;
    const e = await failure([WITH, WITHOUT]);
    expect(e.message).toContain('loss=rdpo trains on a rationale for every pair, and 1 of the 2 datasets has train rows without one:');
    expect(e.message).toContain(`\n  ${WITHOUT}: ${trainRows} of ${trainRows} rows: it has no "rationale" column`);
    expect(e.message).not.toContain(`${WITH}:`); // the dataset with rationales is not listed
    // rorpo-simple reads rationales too.
    expect((await failure([WITHOUT, WITH], 'rorpo-simple')).message).toContain('loss=rorpo-simple trains on a rationale');
  });

  it('some rows without a value, or with an empty one: an error naming the rows and counts', async () => {
    const e = await failure([PARTIAL]);
    const id = (i: number): string => `${PARTIAL}:train:${i}`;
    expect(e.message).toContain(
      `${PARTIAL}: 4 of 8 rows: 2 without a "rationale" value (${id(2)}, ${id(4)}); 2 with an empty one (${id(5)}, ${id(6)})`,
    );
    expect(e.message).toContain('fill in or remove those rows');
  });

  it('datasets with a rationale on every row pass the check; a loss without rationales never checks', async () => {
    await expect(buildRunData(config([WITH]), { withRationale: true })).rejects.toThrow(/no model directory/);
    await expect(buildRunData(config([WITHOUT], 'dpo'), { withRationale: false })).rejects.toThrow(/no model directory/);
    expect(rationaleGaps(await loadDatasetRows(config([WITH]), 'test'))).toEqual([]);
  });
});
