// rpo's config composition against Hydra's own (hydra-core and omegaconf pinned in
// test/reference/requirements.txt), on a table of cases: for each, the composed config (values
// and types), what `--cfg job` prints (byte for byte), and the resolved config — or both refuse.
// A second table checks the `--cfg job` printer against OmegaConf.to_yaml on awkward strings
// and floats (quoting, folding at column 80, Python's float repr).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { composeRun, DEFAULT_CONFIG_DIR, formatJobConfig, loadConfig, saveConfig } from '../../lib/config/index.js';
import { hydraYaml } from '../../lib/config/hydra_yaml.js';
import { resolveConfig } from '../../lib/config/interpolate.js';
import type { ConfigMap, ConfigValue } from '../../lib/config/yaml.js';
import { runPython } from '../reference/python.js';
import { rpo } from '../e2e/cli.js';

interface Case {
  name: string;
  /** 'shipped' (the package's configs/), 'app' (the fixture below) or 'saved' (a saved run config). */
  dir: 'shipped' | 'app' | 'saved';
  configName?: string;
  overrides: string[];
  env?: Record<string, string>;
  /** Both Hydra and rpo refuse the composition. */
  refused?: boolean;
  /** Hydra refuses and rpo composes: a recorded departure (docs/departures.md), this is why. */
  departure?: string;
}

interface HydraResult {
  error?: string;
  value?: ConfigMap;
  yaml?: string;
  resolved?: ConfigMap | null;
  resolved_yaml?: string | null;
  resolve_error?: string | null;
}

const TINY = ['loss=dpo', 'model=tiny'];

const CASES: Case[] = [
  {
    name: "the seed README's train command",
    dir: 'shipped',
    overrides: ['loss=rdpo', '++loss.gamma=0.001', 'lr=5e-7', 'model=mistral7bv2', 'datasets=[orcaratspec]', 'exp_name=rdpo_g0-001_lr5e-7_orcaratspec_mistral7b2', 'mode=train'],
  },
  { name: '??? values printed by --cfg job (exp_name, datasets)', dir: 'shipped', overrides: [...TINY] },
  { name: 'number formats: 1e-06, .5, 1_000, +3, 1., 1e3', dir: 'shipped', overrides: [...TINY, 'lr=1e-06', '++loss.beta=.5', 'seed=1_000', 'n_epochs=+3', 'top_p=1.', '++loss.label_smoothing=1e3'] },
  { name: 'number formats: 1e-6 and 5E-7 (last one wins), 0x10 stays a string', dir: 'shipped', overrides: [...TINY, 'lr=1e-6', 'lr=5E-7', 'samples_dir=0x10'] },
  { name: "strings that read as numbers or booleans stay strings: '1e-06', 'yes', '007'", dir: 'shipped', overrides: [...TINY, "exp_name='1e-06'", "samples_dir='yes'", 'cache_dir="007"'] },
  { name: '+ adds new keys (nested, a list)', dir: 'shipped', overrides: [...TINY, '+wandb.tags=[a,b]', '+extra.deep.key=1'] },
  { name: '++ sets an existing key or adds a new one', dir: 'shipped', overrides: [...TINY, '++model.batch_size=8', '++newkey=x'] },
  { name: '~ deletes keys (~key, ~key=value, nested)', dir: 'shipped', overrides: [...TINY, '~wandb', '~seed=1', '~model.block_name'] },
  {
    name: '~ on a key whose value is null (~model.load_from)',
    dir: 'shipped',
    overrides: [...TINY, '~model.load_from'],
    departure: "Hydra 1.3 looks the key up with OmegaConf.select and takes null for absent: 'does not exist'; rpo deletes it",
  },
  {
    name: 'interpolation: whole-value (typed), in text, oc.env, oc.select, relative',
    dir: 'shipped',
    overrides: [...TINY, 'exp_name=run1', '+a=${lr}', '+b=${cache_dir}-x', '++loss.beta=${lr}', '+c=${oc.select:nope,7}', '+d=${.a}'],
    env: { RPO_TINY_MODEL: '/m/tiny' },
  },
  { name: 'lists: flow lists, nested lists and dicts, empty ones', dir: 'shipped', overrides: [...TINY, 'datasets=[a, b]', '+x=[1,[2,3],{a: 1, b: [x]}]', '+y=[]', '+z={}'] },
  { name: 'a list item by index (datasets.1=hh)', dir: 'shipped', overrides: [...TINY, 'datasets=[a,b]', 'datasets.1=hh'] },
  {
    name: 'strings: newlines, quotes, colons, leading spaces, long text folded at column 80',
    dir: 'shipped',
    overrides: [
      ...TINY,
      "human_prefix='\n<|user|>\n'",
      `assistant_suffix="it's"`,
      "exp_name='a b: c'",
      "human_suffix='  lead'",
      `assistant_prefix='${'You are a helpful assistant. '.repeat(5).trim()}'`,
    ],
  },
  { name: 'null, booleans in any case, an empty value', dir: 'shipped', overrides: [...TINY, 'model.load_from=null', 'debug=TRUE', 'drop_last=False', 'n_epochs=null', 'exp_name='] },
  { name: 'a list of mappings (datasets with columns)', dir: 'shipped', overrides: [...TINY, 'datasets=[{path: a.jsonl, columns: {prompt: q, chosen: c}}, hh]'] },
  { name: "quotes: escaped quote, unicode, a comma inside quotes", dir: 'shipped', overrides: [...TINY, "exp_name='it\\'s'", 'human_prefix="héllo ✓"', "assistant_prefix='a,b'"] },
  {
    name: 'interpolation: relative ${..x}, oc.env with a default',
    dir: 'shipped',
    overrides: [...TINY, '+wandb.x=${..seed}', '+e=${oc.env:RPO_NOPE,fallback}'],
  },
  {
    name: 'a nested interpolation ${${k}.batch_size} in an override',
    dir: 'shipped',
    overrides: [...TINY, '+k=model', '+m=${${k}.batch_size}'],
    departure: "Hydra 1.3's override grammar does not parse a nested interpolation (it does in a config file); rpo does",
  },
  { name: 'refused at resolution: oc.env without a default for an unset variable', dir: 'shipped', overrides: [...TINY, '+e=${oc.env:RPO_SURELY_UNSET_VAR}'] },
  { name: 'numbers: negative, exponent without a dot, big integers', dir: 'shipped', overrides: [...TINY, 'seed=-7', 'lr=2E+2', 'n_samples=12345678901'] },
  { name: 'group option changed and a group removed (~loss)', dir: 'shipped', overrides: ['loss=rdpo', 'model=tiny', '~loss'] },
  {
    name: "--config-path/--config-name: a saved run config with the seed README's eval overrides",
    dir: 'saved',
    overrides: ['++mode=alpacaeval', '++n_samples=805', '++model.eval_batch_size=35', '++samples_dir=folder_for_alpaca_samples', '++exp_name=your_exp_name'],
  },
  { name: 'defaults: nested group defaults, _self_ after a group, optional missing option', dir: 'app', overrides: ['server=nginx'] },
  { name: 'defaults: _self_ first', dir: 'app', configName: 'self_first', overrides: [] },
  { name: 'defaults: no _self_ (implicitly last)', dir: 'app', configName: 'no_self', overrides: [] },
  { name: '+group=option appends a group', dir: 'app', overrides: ['server=nginx', '+cache=redis'] },
  {
    name: '++group=option on a group',
    dir: 'app',
    overrides: ['server=nginx', '++db=postgres'],
    departure: "Hydra 1.3: 'force-add of config groups is not supported'; rpo changes or appends the group",
  },
  { name: '~group drops a group (an interpolation into it then fails)', dir: 'app', overrides: ['server=nginx', '~db'] },
  { name: 'a list item in a config file by index', dir: 'app', overrides: ['server=apache', 'items.2=3'] },
  { name: 'refused: a group left ??? ', dir: 'app', overrides: [], refused: true },
  { name: 'refused: a key that does not exist', dir: 'shipped', overrides: [...TINY, 'lrr=1'], refused: true },
  { name: 'refused: + on a key that exists', dir: 'shipped', overrides: [...TINY, '+seed=2'], refused: true },
  { name: 'refused: an option a group does not have', dir: 'shipped', overrides: ['loss=nope', 'model=tiny'], refused: true },
  { name: 'refused: a sweep (seed=1,2)', dir: 'shipped', overrides: [...TINY, 'seed=1,2'], refused: true },
  { name: 'refused: a list index past the end', dir: 'shipped', overrides: [...TINY, 'datasets=[a]', 'datasets.3=x'], refused: true },
];

const APP: Record<string, string> = {
  'config.yaml': [
    'defaults:',
    '  - db: mysql',
    '  - optional extra: absent',
    '  - _self_',
    '  - server: ???',
    'name: app',
    'lr: 1e-06',
    'port: 80',
    'db:',
    '  timeout: 5',
    'path: ${name}/${db.host}',
    'rel: ${.name}',
    'which: db',
    'nested: ${${which}.host}',
    'items: [1, 2.5, "three", null, true]',
    '',
  ].join('\n'),
  'db/mysql.yaml': 'defaults:\n  - base\nhost: mysql.local\nuser: root\n',
  'db/base.yaml': 'host: localhost\nport: 3306\ntimeout: 10\n',
  'db/postgres.yaml': 'host: pg\nport: 5432\n',
  'server/nginx.yaml': 'port: 8080\nworkers: 4\n',
  'server/apache.yaml': 'port: 80\n',
  'cache/redis.yaml': 'ttl: 60\n',
  'self_first.yaml': 'defaults:\n  - _self_\n  - db: postgres\nname: first\ndb:\n  port: 1\n',
  'no_self.yaml': 'defaults:\n  - db: postgres\nname: noself\ndb:\n  port: 1\n',
};

let tmp: string;
const dirs: Record<Case['dir'], string> = { shipped: DEFAULT_CONFIG_DIR, app: '', saved: '' };
let hydra: HydraResult[];

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'rpo-hydra-'));
  dirs.app = path.join(tmp, 'app');
  for (const [rel, text] of Object.entries(APP)) {
    mkdirSync(path.dirname(path.join(dirs.app, rel)), { recursive: true });
    writeFileSync(path.join(dirs.app, rel), text);
  }
  // A run's saved config, as `rpo train` writes it (what the seed's eval reloads).
  dirs.saved = path.join(tmp, 'run');
  const run = loadConfig({ overrides: ['loss=rdpo', 'model=mistral7bv2', 'datasets=[orcaratspec]', 'exp_name=r', "human_prefix='\n<|user|>\n'"], env: {} });
  saveConfig(run.config, path.join(dirs.saved, 'config.yaml'));
  const input = CASES.map((c) => ({ dir: dirs[c.dir], name: c.configName ?? 'config', overrides: c.overrides, env: c.env ?? {} }));
  hydra = JSON.parse(runPython('hydra_compose.py', JSON.stringify(input))) as HydraResult[];
}, 120_000);

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function rpoCompose(c: Case): { value: ConfigMap } | { error: string } {
  try {
    return { value: composeRun({ configPath: dirs[c.dir], configName: c.configName, overrides: c.overrides }).config };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

function rpoResolve(value: ConfigMap, env: Record<string, string>): { resolved: ConfigMap } | { error: string } {
  try {
    return { resolved: resolveConfig(value, { env }) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

describe('rpo composes as Hydra does', () => {
  it.each(CASES.map((c, i) => [c.name, i] as const))('%s', (_name, i) => {
    const c = CASES[i]!;
    const ref = hydra[i]!;
    const mine = rpoCompose(c);
    if (c.refused) {
      expect(ref.error, 'Hydra refuses it').toBeDefined();
      expect('error' in mine ? mine.error : undefined, 'rpo refuses it').toBeDefined();
      return;
    }
    if (c.departure !== undefined) {
      expect(ref.error, 'Hydra refuses it').toBeDefined();
      expect('error' in mine ? mine.error : undefined, 'rpo composes it').toBeUndefined();
      return;
    }
    expect(ref.error, 'Hydra composes it').toBeUndefined();
    if ('error' in mine) throw new Error(`rpo refused what Hydra composed: ${mine.error}`);
    // Values, key order included (JSON keeps insertion order).
    expect(JSON.stringify(mine.value)).toBe(JSON.stringify(ref.value));
    // --cfg job, byte for byte.
    expect(hydraYaml(mine.value)).toBe(ref.yaml);
    const resolved = rpoResolve(mine.value, c.env ?? {});
    if (ref.resolve_error) {
      expect('error' in resolved ? resolved.error : undefined, `Hydra could not resolve: ${ref.resolve_error}`).toBeDefined();
    } else {
      if ('error' in resolved) throw new Error(`rpo could not resolve what Hydra resolved: ${resolved.error}`);
      expect(JSON.stringify(resolved.resolved)).toBe(JSON.stringify(ref.resolved));
      expect(hydraYaml(resolved.resolved)).toBe(ref.resolved_yaml);
    }
  });

  it('`--cfg job` (formatJobConfig) prints what Hydra prints, ??? included', () => {
    const i = CASES.findIndex((c) => c.name.startsWith('??? values'));
    const text = formatJobConfig({ overrides: CASES[i]!.overrides });
    expect(text).toBe(hydra[i]!.yaml);
    expect(text).toMatch(/^exp_name: \?\?\?$/m);
    expect(text).toMatch(/^datasets: \?\?\?$/m);
    expect(text).toMatch(/^lr: 5\.0e-07$/m);
    expect(text).toMatch(/^minimum_log_interval_secs: 1\.0$/m);
  });

  it('`rpo train ... --cfg job` on the command line prints it too, and runs nothing', () => {
    const i = CASES.findIndex((c) => c.name.startsWith('??? values'));
    const r = rpo(['train', ...CASES[i]!.overrides, '--cfg', 'job']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(hydra[i]!.yaml);
  });
});

// ---------------------------------------------------------------------------------------------

const WORDS = 'word '.repeat(30).trim();
const STRINGS = [
  '', ' a', 'a ', '???', 'yes', 'y', 'No', '1', '1.5', '1e-6', '1_000', 'inf', 'nan', '0x1F', '07', '2024-01-01', '~', 'null',
  'a: b', 'a:b', '#x', 'a #b', '- a', '-a', 'a\nb', 'a\n\nb', 'a \nb', "it's", '"q"', 'tab\there', 'é ü', '😀', '[x]', '{x}',
  '*a', '&a', '!a', '%a', '@a', '`a', '|a', '>a', ',a', 'a,b', '${a.b}', '<|start|>', WORDS, `${WORDS}'`, `${WORDS}\n${WORDS}`,
  'x'.repeat(100), `a\tb ${WORDS}`, '=', '<<', '1:20', '.5', '+1', '-.inf', 'True', 'on', 'OFF', '  ', '\u0085x', 'a\u2028b',
  '---', '...x', `key: ${WORDS}`, `"${WORDS}" and 'x'`,
];
const FLOATS = [5e-7, 1e-6, 0.0001, 0.00003, 0.001, 1.5e300, 123456789.123, 0.1, 2.5, -3e-5, 1e22, 1e-320, 0.30000000000000004];

describe('the --cfg job printer matches OmegaConf.to_yaml', () => {
  it('on awkward strings (values, list items, nested) and floats', () => {
    const docs: ConfigValue[] = [
      Object.fromEntries(STRINGS.map((s, i) => [`k${i}`, s])),
      { list: STRINGS, nested: { deeper: { x: WORDS, l: [1, 'a', { m: 2, n: [3, [4, 5]] }, [], {}] } }, empty: {}, el: [] },
      Object.fromEntries(STRINGS.filter((s) => !/[\n\u0085\u2028]/.test(s)).map((s) => [s === '' ? 'e' : s.slice(0, 20), 1])),
      { f: FLOATS, g: { h: FLOATS } },
    ];
    const script = path.join(tmp, 'to_yaml.py');
    // Floats go as their repr through a JSON side channel: JSON has no float/int distinction.
    writeFileSync(
      script,
      'import json, sys\nfrom omegaconf import OmegaConf\n' +
        'def fl(v):\n' +
        '    if isinstance(v, dict): return {k: fl(x) for k, x in v.items()}\n' +
        '    if isinstance(v, list): return [fl(x) for x in v]\n' +
        '    if isinstance(v, int) and not isinstance(v, bool): return float(v) if abs(v) > 2**53 else v\n' +
        '    return v\n' +
        'docs = json.load(sys.stdin)\n' +
        'print(json.dumps([OmegaConf.to_yaml(OmegaConf.create(fl(d))) for d in docs]))\n',
    );
    const ref = JSON.parse(runPython(script, JSON.stringify(docs))) as string[];
    docs.forEach((d, i) => expect(hydraYaml(d), `document ${i}`).toBe(ref[i]));
  });
});
