// Config composition: the override grammar, defaults lists and _self_, config groups,
// interpolation, ??? and unknown keys, the seed README's two commands, save → reload.
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { applyOverride, composeConfig, splitHydraArgv } from '../../lib/config/compose.js';
import { ConfigError, closest, editDistance, suggestKey } from '../../lib/config/errors.js';
import {
  DEFAULT_CONFIG_DIR,
  composeRun,
  formatConfig,
  loadConfig,
  loadConfigFromArgv,
  saveConfig,
} from '../../lib/config/index.js';
import { missingKeys, resolveConfig } from '../../lib/config/interpolate.js';
import { parseOverride, parseOverrideValue } from '../../lib/config/overrides.js';
import { LOSS_NAMES } from '../../lib/config/schema.js';
import { rpo } from '../e2e/cli.js';
import { parseYaml, stringifyYaml, type ConfigMap } from '../../lib/config/yaml.js';

/** The seed README's commands, split as a shell splits them, after `train.py` / `eval.py`. */
const SEED_TRAIN_ARGV = [
  'loss=rdpo',
  '++loss.gamma=0.001',
  'lr=5e-7',
  'model=mistral7bv2',
  'datasets=[orcaratspec]',
  'exp_name=rdpo_g0-001_lr5e-7_orcaratspec_mistral7b2',
  'mode=train',
];
const SEED_EVAL_ARGV = (runDir: string): string[] => [
  `--config-path=${runDir}`,
  '--config-name=config',
  '++mode=alpacaeval',
  '++n_samples=805',
  '++model.eval_batch_size=35',
  '++samples_dir=folder_for_alpaca_samples',
  '++exp_name=your_exp_name',
];

const NO_ENV = {};

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'rpo-config-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** Writes a config directory from {relative path: YAML text} and returns it. */
function configDir(name: string, files: Record<string, string>): string {
  const dir = path.join(tmp, name);
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

describe('override grammar', () => {
  it('parses the four prefixes', () => {
    expect(parseOverride('lr=5e-7')).toEqual({ kind: 'set', key: 'lr', value: 5e-7, text: 'lr=5e-7' });
    expect(parseOverride('+foo.bar=1')).toMatchObject({ kind: 'add', key: 'foo.bar', value: 1 });
    expect(parseOverride('++loss.gamma=0.001')).toMatchObject({ kind: 'force', key: 'loss.gamma', value: 0.001 });
    expect(parseOverride('~wandb')).toEqual({ kind: 'delete', key: 'wandb', text: '~wandb' });
    expect(parseOverride('~seed=1')).toMatchObject({ kind: 'delete', key: 'seed', value: 1 });
  });

  it('types values as Hydra does', () => {
    expect(parseOverrideValue('5e-7')).toBe(5e-7);
    expect(parseOverrideValue('1e-3')).toBe(0.001);
    expect(parseOverrideValue('-2.5')).toBe(-2.5);
    expect(parseOverrideValue('1.')).toBe(1);
    expect(parseOverrideValue('.5')).toBe(0.5);
    expect(parseOverrideValue('20_000')).toBe(20000);
    expect(parseOverrideValue('805')).toBe(805);
    expect(parseOverrideValue('inf')).toBe(Infinity);
    expect(parseOverrideValue('null')).toBeNull();
    expect(parseOverrideValue('NULL')).toBeNull();
    expect(parseOverrideValue('true')).toBe(true);
    expect(parseOverrideValue('False')).toBe(false);
    // Hydra's grammar, not YAML 1.1: yes/on stay strings.
    expect(parseOverrideValue('yes')).toBe('yes');
    expect(parseOverrideValue('mistral7bv2')).toBe('mistral7bv2');
    expect(parseOverrideValue('qwen2.5')).toBe('qwen2.5');
    expect(parseOverrideValue('rdpo_g0-001_lr5e-7_orcaratspec_mistral7b2')).toBe('rdpo_g0-001_lr5e-7_orcaratspec_mistral7b2');
    expect(parseOverrideValue('data/run one ')).toBe('data/run one');
    expect(parseOverrideValue('')).toBe('');
  });

  it('parses quoted strings, lists, dicts and escapes', () => {
    expect(parseOverrideValue("'5e-7'")).toBe('5e-7');
    expect(parseOverrideValue('"a,b"')).toBe('a,b');
    expect(parseOverrideValue("'it\\'s'")).toBe("it's");
    expect(parseOverrideValue('[orcaratspec]')).toEqual(['orcaratspec']);
    expect(parseOverrideValue('[a, b,c]')).toEqual(['a', 'b', 'c']);
    expect(parseOverrideValue('[]')).toEqual([]);
    expect(parseOverrideValue('[1, 2.5, null, [x, "y z"]]')).toEqual([1, 2.5, null, ['x', 'y z']]);
    expect(parseOverrideValue('{path: d.jsonl, columns: {prompt: q}}')).toEqual({ path: 'd.jsonl', columns: { prompt: 'q' } });
    expect(parseOverrideValue('a\\,b')).toBe('a,b');
    expect(parseOverrideValue('a\\ ')).toBe('a');
  });

  it('keeps ${...} for later resolution, commas inside included', () => {
    expect(parseOverrideValue('${cache_dir}/x')).toBe('${cache_dir}/x');
    expect(parseOverrideValue('${oc.env:HOME,/tmp}')).toBe('${oc.env:HOME,/tmp}');
    expect(parseOverrideValue('[${a}, b]')).toEqual(['${a}', 'b']);
  });

  it('rejects what it does not support, quoting the override', () => {
    expect(errorOf(() => parseOverride('lr')).message).toMatch(/cannot parse override 'lr': expected key=value/);
    expect(errorOf(() => parseOverride('=3')).message).toMatch(/is not a key/);
    expect(errorOf(() => parseOverride('a b=3')).message).toMatch(/is not a key/);
    expect(errorOf(() => parseOverride('lr=1e-3,1e-4')).message).toMatch(/sweep/);
    expect(errorOf(() => parseOverride("x='abc")).message).toMatch(/unterminated single-quoted/);
    expect(errorOf(() => parseOverride('x=[a,b')).message).toMatch(/missing '\]'/);
    expect(errorOf(() => parseOverride('x={a 1}')).message).toMatch(/expected ':'/);
    expect(errorOf(() => parseOverride('model@pkg=x')).message).toMatch(/package overrides/);
    expect(errorOf(() => parseOverride('x=${a')).message).toMatch(/unterminated/);
  });

  it('refuses values and keys nested past 64 levels as a config error, quoting a short prefix (D10)', () => {
    const deepList = (n: number) => '['.repeat(n) + ']'.repeat(n);
    const deepDict = (n: number) => '{a:'.repeat(n) + '1' + '}'.repeat(n);
    // 64 levels parse into 64 levels.
    let v = parseOverrideValue(deepList(64));
    let levels = 0;
    while (Array.isArray(v)) {
      levels++;
      v = v[0] as never;
    }
    expect(levels).toBe(64);
    for (const text of [`++a=${deepList(5000)}`, `++a=${deepDict(5000)}`, `++${Array(5000).fill('a').join('.')}=1`, `x=${deepList(65)}`]) {
      const e = errorOf(() => parseOverride(text));
      expect(e).toBeInstanceOf(ConfigError);
      expect(e.message).toMatch(/nested deeper than 64 levels/);
      expect(e.message.length).toBeLessThan(400);
    }
  });

  it('a 5000-deep override through the CLI is a usage error (exit 2), not a stack overflow', () => {
    const r = rpo(['plan', 'model=llama7b', 'loss=dpo', `++a=${'['.repeat(5000)}${']'.repeat(5000)}`], { timeoutMs: 60_000 });
    expect(r.stderr).toMatch(/config error: cannot parse override .*nested deeper than 64 levels/);
    expect(r.code).toBe(2);
  }, 90_000);
});

describe('Hydra command-line flags', () => {
  it('splits --config-path / --config-name / --cfg in both spellings', () => {
    expect(splitHydraArgv(SEED_EVAL_ARGV('data/run'))).toEqual({
      configPath: 'data/run',
      configName: 'config',
      resolve: false,
      overrides: SEED_EVAL_ARGV('data/run').slice(2),
    });
    expect(splitHydraArgv(['-cp', 'd', '-cn', 'c', '--cfg', 'job', '--resolve', 'a=1'])).toEqual({
      configPath: 'd',
      configName: 'c',
      cfg: 'job',
      resolve: true,
      overrides: ['a=1'],
    });
  });

  it('rejects unknown flags, multirun and missing values', () => {
    expect(errorOf(() => splitHydraArgv(['--foo'])).message).toMatch(/unknown option '--foo'/);
    expect(errorOf(() => splitHydraArgv(['-m', 'lr=1,2'])).message).toMatch(/multirun/);
    expect(errorOf(() => splitHydraArgv(['--config-path'])).message).toMatch(/needs a value/);
    expect(errorOf(() => splitHydraArgv(['--cfg=yaml'])).message).toMatch(/job, hydra or all/);
  });
});

describe('YAML scalars as OmegaConf reads them', () => {
  it('5e-7 and 20_000 are numbers; yes is a boolean; dates stay strings', () => {
    expect(parseYaml('lr: 5e-7\nb: 5.0e-7\nc: 20_000\nd: yes\ne: 2024-01-01\nf: "5e-7"\ng: y\nh: ~\n', 'x.yaml')).toEqual({
      lr: 5e-7,
      b: 5e-7,
      c: 20000,
      d: true,
      e: '2024-01-01',
      f: '5e-7',
      g: 'y',
      h: null,
    });
  });

  it('stringify quotes whatever would read back as something else', () => {
    const v: ConfigMap = { a: 'yes', b: '5e-7', c: '20_000', d: '\n<|user|>\n', e: 'null', f: '', g: 5e-7, h: 'on', i: '1:30' };
    expect(parseYaml(stringifyYaml(v), 'y.yaml')).toEqual(v);
  });

  it('reports invalid YAML and duplicate keys with the file name', () => {
    expect(errorOf(() => parseYaml('a: [1,\n', 'bad.yaml')).message).toMatch(/^bad\.yaml: invalid YAML/);
    expect(errorOf(() => parseYaml('a: 1\na: 2\n', 'dup.yaml')).message).toMatch(/dup\.yaml/);
  });
});

describe('defaults lists', () => {
  const groups = {
    'model/base.yaml': 'size: 1\nname: base\nlr: 0.5\n',
    'model/big.yaml': 'defaults:\n  - base\nsize: 100\n',
    'model/base_first.yaml': 'defaults:\n  - _self_\n  - base\nsize: 100\n',
    'loss/a.yaml': 'name: a\nbeta: 0.1\n',
    'loss/b.yaml': 'name: b\nbeta: 0.2\n',
  };

  it('_self_ first: group files override the primary; a group file without _self_ wins over its own defaults', () => {
    const dir = configDir('self-first', {
      ...groups,
      'config.yaml': 'defaults:\n  - _self_\n  - model: big\n  - loss: a\nmodel:\n  size: 7\n  extra: 1\nx: 1\n',
    });
    const { config, choices, files } = composeConfig({ configDir: dir });
    expect(config).toEqual({ x: 1, model: { size: 100, extra: 1, name: 'base', lr: 0.5 }, loss: { name: 'a', beta: 0.1 } });
    expect(choices).toEqual({ model: 'big', loss: 'a' });
    expect(files.map((f) => path.relative(dir, f))).toEqual(['config.yaml', 'model/base.yaml', 'model/big.yaml', 'loss/a.yaml']);
  });

  it('_self_ last (or absent): the primary overrides its groups', () => {
    for (const [name, defaults] of [
      ['self-last', 'defaults:\n  - model: big\n  - _self_\n'],
      ['self-absent', 'defaults:\n  - model: big\n'],
    ] as const) {
      const dir = configDir(name, { ...groups, 'config.yaml': `${defaults}model:\n  size: 7\n` });
      expect(composeConfig({ configDir: dir }).config).toEqual({ model: { size: 7, name: 'base', lr: 0.5 } });
    }
  });

  it('_self_ first in a group file: its own defaults override it', () => {
    const dir = configDir('group-self-first', { ...groups, 'config.yaml': 'defaults:\n  - model: base_first\n' });
    expect(composeConfig({ configDir: dir }).config).toEqual({ model: { size: 1, name: 'base', lr: 0.5 } });
  });

  it('group=option changes the selection; +group appends; ++group does either; ~group removes', () => {
    const dir = configDir('groups', { ...groups, 'config.yaml': 'defaults:\n  - _self_\n  - loss: a\nx: 1\n' });
    expect(composeConfig({ configDir: dir, overrides: ['loss=b'] }).config.loss).toEqual({ name: 'b', beta: 0.2 });
    const added = composeConfig({ configDir: dir, overrides: ['+model=big'] });
    expect(added.config.model).toEqual({ size: 100, name: 'base', lr: 0.5 });
    expect(added.choices).toEqual({ loss: 'a', model: 'big' });
    expect(composeConfig({ configDir: dir, overrides: ['++loss=b', '++model=base'] }).choices).toEqual({ loss: 'b', model: 'base' });
    expect(composeConfig({ configDir: dir, overrides: ['~loss'] }).config).toEqual({ x: 1 });
    expect(composeConfig({ configDir: dir, overrides: ['~loss=a'] }).config).toEqual({ x: 1 });
  });

  it('group override errors say what to do', () => {
    const dir = configDir('group-errors', { ...groups, 'config.yaml': 'defaults:\n  - loss: a\n' });
    expect(errorOf(() => composeConfig({ configDir: dir, overrides: ['model=big'] })).message).toMatch(
      /group 'model' is not in the defaults list \(to append it use \+model=big\)/,
    );
    expect(errorOf(() => composeConfig({ configDir: dir, overrides: ['+loss=b'] })).message).toMatch(/already in the defaults list/);
    expect(errorOf(() => composeConfig({ configDir: dir, overrides: ['~model'] })).message).toMatch(/not in the defaults list/);
    expect(errorOf(() => composeConfig({ configDir: dir, overrides: ['~loss=b'] })).message).toMatch(/set to 'a'/);
    const e = errorOf(() => composeConfig({ configDir: dir, overrides: ['loss=aa'] }));
    expect(e.message).toMatch(/no option 'aa' in config group 'loss' \(did you mean 'a'\?\); available: a, b/);
  });

  it('a group left at ??? is an error listing the options', () => {
    const dir = configDir('group-missing', { ...groups, 'config.yaml': 'defaults:\n  - _self_\n  - model: ???\n  - loss: a\n' });
    expect(errorOf(() => composeConfig({ configDir: dir })).message).toMatch(
      /you must choose a 'model', e\.g\. model=base; available: base, base_first, big/,
    );
  });

  it('a missing nested default names the file that asked for it', () => {
    const dir = configDir('nested-missing', {
      'model/x.yaml': 'defaults:\n  - base_modle\n',
      'model/base_model.yaml': 'a: 1\n',
      'config.yaml': 'defaults:\n  - model: x\n',
    });
    const e = errorOf(() => composeConfig({ configDir: dir }));
    expect(e.message).toMatch(/x\.yaml: config 'base_modle' not found/);
    expect(e.message).toMatch(/did you mean 'base_model'/);
  });

  it('unsupported defaults entries are errors, optional ones may be absent', () => {
    const dir = configDir('unsupported', {
      ...groups,
      'config.yaml': 'defaults:\n  - override loss: b\n',
      'opt.yaml': 'defaults:\n  - optional loss: zzz\nx: 1\n',
      'pkg.yaml': 'defaults:\n  - loss@foo: a\n',
    });
    expect(errorOf(() => composeConfig({ configDir: dir })).message).toMatch(/'override loss' in a defaults list is not supported/);
    expect(composeConfig({ configDir: dir, configName: 'opt' }).config).toEqual({ x: 1 });
    expect(errorOf(() => composeConfig({ configDir: dir, configName: 'pkg' })).message).toMatch(/packages \(@\)/);
    expect(errorOf(() => composeConfig({ configDir: dir, configName: 'nope' })).message).toMatch(/no config 'nope'/);
  });
});

describe('value overrides', () => {
  const base: ConfigMap = { lr: 1, model: { batch_size: 32, eval_batch_size: 16 }, datasets: ['a', 'b'], wandb: { enabled: true } };
  const apply = (text: string): ConfigMap => applyOverride(base, parseOverride(text)).config;

  it('key=value changes an existing key and leaves the input alone', () => {
    expect(apply('model.batch_size=8')).toEqual({ ...base, model: { batch_size: 8, eval_batch_size: 16 } });
    expect(apply('datasets.1=c').datasets).toEqual(['a', 'c']);
    expect(apply('datasets=[x]').datasets).toEqual(['x']);
    expect(apply('model={batch_size: 4}').model).toEqual({ batch_size: 4, eval_batch_size: 16 });
    expect(base.model).toEqual({ batch_size: 32, eval_batch_size: 16 });
  });

  it('key=value on a missing key is an error with the closest key and the + hint', () => {
    const e = errorOf(() => apply('model.eval_batchsize=35'));
    expect(e.message).toMatch(/no key 'model\.eval_batchsize' \(did you mean 'model\.eval_batch_size'\?\); to add a new key use \+model\.eval_batchsize=35/);
    expect(errorOf(() => apply('nothing.at.all=1')).message).toMatch(/no key 'nothing\.at\.all'/);
  });

  it('+key=value adds only new keys, creating sections', () => {
    const r = applyOverride(base, parseOverride('+foo.bar=1'));
    expect(r.added).toBe(true);
    expect(r.config.foo).toEqual({ bar: 1 });
    expect(errorOf(() => apply('+lr=2')).message).toMatch(/'lr' already exists \(change it with lr=2, or use \+\+lr=2\)/);
    expect(errorOf(() => apply('+lr.x=2')).message).toMatch(/'lr' is a value, not a section/);
  });

  it('++key=value adds or changes', () => {
    expect(apply('++lr=2').lr).toBe(2);
    const r = applyOverride(base, parseOverride('++model.new_key=3'));
    expect(r.added).toBe(true);
    expect((r.config.model as ConfigMap).new_key).toBe(3);
  });

  it('~key deletes; ~key=value only when equal', () => {
    expect(apply('~wandb')).not.toHaveProperty('wandb');
    expect(apply('~model.batch_size=32').model).toEqual({ eval_batch_size: 16 });
    expect(apply('~datasets.0').datasets).toEqual(['b']);
    expect(errorOf(() => apply('~model.batch_size=31')).message).toMatch(/is 32, not 31/);
    expect(errorOf(() => apply('~lrr')).message).toMatch(/no key 'lrr' \(did you mean 'lr'\?\)/);
  });

  it('a section cannot be replaced by a value', () => {
    expect(errorOf(() => apply('model=mistral')).message).toMatch(/'model' is a section, not a value/);
    expect(errorOf(() => apply('++wandb=false')).message).toMatch(/'wandb' is a section/);
  });

  it('list indexes must exist', () => {
    expect(errorOf(() => apply('datasets.5=x')).message).toMatch(/no key 'datasets\.5'/);
    expect(errorOf(() => apply('++datasets.5=x')).message).toMatch(/no item 5 in the list/);
  });
});

describe('interpolation', () => {
  const resolve = (cfg: ConfigMap, env: Record<string, string> = {}): ConfigMap => resolveConfig(cfg, { env });

  it('resolves absolute, typed, string, list-index and relative references', () => {
    expect(
      resolve({
        cache_dir: 'data',
        exp_name: 'run',
        local_run_dir: '${cache_dir}/${exp_name}',
        n: 3,
        same_n: '${n}',
        text_n: 'n=${n} ${flag} ${nothing}',
        flag: true,
        nothing: null,
        model: { a: 1, b: '${.a}', c: { d: '${..a}' } },
        copy: '${model}',
        list: ['x', '${list.0}', '${list[0]}'],
      }),
    ).toEqual({
      cache_dir: 'data',
      exp_name: 'run',
      local_run_dir: 'data/run',
      n: 3,
      same_n: 3,
      text_n: 'n=3 True None',
      flag: true,
      nothing: null,
      model: { a: 1, b: 1, c: { d: 1 } },
      copy: { a: 1, b: 1, c: { d: 1 } },
      list: ['x', 'x', 'x'],
    });
  });

  it('nested interpolations build the key first; chains resolve transitively', () => {
    expect(resolve({ which: 'b', vals: { a: 1, b: 2 }, v: '${vals.${which}}', x: '${y}', y: '${z}', z: 'end' })).toMatchObject({
      v: 2,
      x: 'end',
      y: 'end',
    });
  });

  it('cycles are errors naming every key in the cycle', () => {
    expect(errorOf(() => resolve({ a: '${b}', b: '${c}', c: '${a}' })).message).toBe('interpolation cycle: a -> b -> c -> a');
    expect(errorOf(() => resolve({ a: 'x${a}' })).message).toBe('interpolation cycle: a -> a');
    expect(errorOf(() => resolve({ m: { x: '${m}' } })).message).toMatch(/interpolation cycle: m\.x -> m\.x/);
  });

  it('a reference to a missing key names it and the closest key', () => {
    expect(errorOf(() => resolve({ cache_dir: 'd', run: '${cache_dri}/x' })).message).toBe(
      "run: interpolation ${cache_dri} refers to a key that does not exist (did you mean 'cache_dir'?)",
    );
  });

  it('a reference to ??? is a missing-value error naming the key', () => {
    expect(errorOf(() => resolve({ exp_name: '???', local_run_dir: 'data/${exp_name}' })).message).toMatch(
      /missing mandatory value: exp_name \(needed by local_run_dir/,
    );
  });

  it('oc.env and oc.select, with defaults; \\${ is literal', () => {
    expect(resolve({ a: '${oc.env:RPO_X}', b: '${oc.env:RPO_Y,/tmp}/c', c: '${oc.env:RPO_Y,null}' }, { RPO_X: 'x' })).toEqual({
      a: 'x',
      b: '/tmp/c',
      c: null,
    });
    expect(errorOf(() => resolve({ a: '${oc.env:RPO_UNSET}' })).message).toMatch(/environment variable RPO_UNSET is not set/);
    expect(resolve({ a: 1, b: '${oc.select:a,2}', c: '${oc.select:zz,2}' })).toEqual({ a: 1, b: 1, c: 2 });
    expect(resolve({ a: 'cost \\${x}' })).toEqual({ a: 'cost ${x}' });
    expect(errorOf(() => resolve({ a: '${oc.decode:1}' })).message).toMatch(/unknown resolver 'oc\.decode'/);
  });

  it('missingKeys lists every ??? left', () => {
    expect(missingKeys({ a: '???', b: { c: '???' }, d: ['???'], e: 1 })).toEqual(['a', 'b.c', 'd.0']);
  });
});

describe('loading rpo configs', () => {
  it('??? left after overrides is an error naming the key', () => {
    const e = errorOf(() => loadConfig({ overrides: ['loss=dpo', 'model=tiny', 'datasets=[x]'], env: NO_ENV }));
    expect(e.message).toMatch(/missing mandatory value: exp_name/);
    expect(errorOf(() => loadConfig({ overrides: ['loss=dpo', 'model=tiny'], env: NO_ENV })).message).toMatch(/missing mandatory values: exp_name, datasets \(set on the command line: exp_name=... datasets=...\)/);
  });

  it('model and loss must be chosen', () => {
    expect(errorOf(() => loadConfig({ overrides: ['loss=dpo'], env: NO_ENV })).message).toMatch(/you must choose a 'model'.*mistral7bv2/);
    expect(errorOf(() => loadConfig({ overrides: ['model=tiny'], env: NO_ENV })).message).toMatch(/you must choose a 'loss'.*rdpo/);
  });

  it('a new unknown key from the command line is an error with the closest known key', () => {
    const base = ['loss=rdpo', 'model=tiny', 'datasets=[x]', 'exp_name=e'];
    expect(errorOf(() => loadConfig({ overrides: [...base, '++loss.gama=0.001'], env: NO_ENV })).message).toBe(
      "unknown key 'loss.gama': rpo does not read it (did you mean 'loss.gamma'?)",
    );
    expect(errorOf(() => loadConfig({ overrides: [...base, 'lrr=1'], env: NO_ENV })).message).toMatch(/did you mean 'lr'/);
    // A seed key rpo ignores may be added: it is a notice, not an error.
    const r = loadConfig({ overrides: [...base, '++loss.label_smoothing=0.1'], env: NO_ENV });
    expect(r.notices.some((n) => n.startsWith('ignored: loss.label_smoothing=0.1'))).toBe(true);
  });

  it('every loss composes and validates with every model', () => {
    const models = ['mistral7bv2', 'mistral7b', 'mistral7b_instruct', 'mistral7b_sft_beta', 'zephyr7beta', 'llama3-8bin', 'llama7b', 'llama13b', 'llama30b', 'llama65b', 'pythia1-4b', 'pythia2-8b', 'pythia6-9b', 'pythia12-0b', 'qwen2.5', 'tiny'];
    for (const loss of LOSS_NAMES) {
      for (const model of models) {
        const r = loadConfig({ overrides: [`loss=${loss}`, `model=${model}`, 'datasets=[x]', 'exp_name=e'], env: NO_ENV });
        expect(r.config.loss.name).toBe(loss);
        expect(r.choices).toEqual({ model, loss });
        expect(r.notices).toEqual([]);
      }
    }
  });

  it('the tiny model is small, fp32 and its directory comes from RPO_TINY_MODEL when set', () => {
    const args = ['loss=dpo', 'model=tiny', 'datasets=[x]', 'exp_name=e'];
    const r = loadConfig({ overrides: args, env: NO_ENV });
    expect(r.config.model).toMatchObject({ name_or_path: '.cache/tiny', policy_dtype: 'float32', reference_dtype: 'float32', batch_size: 4, max_length: 128 });
    expect(loadConfig({ overrides: args, env: { RPO_TINY_MODEL: '/m/tiny' } }).config.model.name_or_path).toBe('/m/tiny');
  });

  it('--cfg job prints the composed config with interpolations unresolved', () => {
    const text = formatConfig(composeRun({ overrides: ['loss=rdpo', 'model=tiny'] }).config);
    expect(text).toMatch(/^local_run_dir: \$\{cache_dir\}\/\$\{exp_name\}$/m);
    expect(text).toMatch(/^exp_name: \?\?\?$/m);
    expect(text).not.toMatch(/^defaults:/m);
  });
});

describe("the seed README's commands", () => {
  it('train: python train.py <argv> → rpo train <argv>', () => {
    expect(splitHydraArgv(SEED_TRAIN_ARGV)).toEqual({ overrides: SEED_TRAIN_ARGV, resolve: false });
    const { config, choices, notices } = loadConfigFromArgv(SEED_TRAIN_ARGV, { env: NO_ENV });
    expect(choices).toEqual({ model: 'mistral7bv2', loss: 'rdpo' });
    expect(config.lr).toBe(5e-7);
    expect(typeof config.lr).toBe('number');
    expect(config.loss).toMatchObject({ name: 'rdpo', beta: 0.1, gamma: 0.001, rationale_form: 'code', use_reference_model: true });
    expect(config.model.name_or_path).toBe('mistralai/Mistral-7B-Instruct-v0.2');
    expect(config.model).toMatchObject({ max_length: 2048, max_prompt_length: 1024, batch_size: 32, max_grad_norm: 10, policy_dtype: 'bfloat16' });
    expect(config.datasets).toEqual(['orcaratspec']);
    expect(config.exp_name).toBe('rdpo_g0-001_lr5e-7_orcaratspec_mistral7b2');
    expect(config.mode).toBe('train');
    expect(config.local_run_dir).toBe('data/rdpo_g0-001_lr5e-7_orcaratspec_mistral7b2');
    expect(config).toMatchObject({ seed: 1, n_epochs: 1, optimizer: 'AdamW', warmup_steps: 150, eval_every: 20000, top_p: 0.95 });
    // the seed's active formatting (issue 12), not HALOs' commented-out one
    expect(config.human_prefix).toBe('<|start_header_id|>user<|end_header_id|>');
    expect(config.assistant_prefix).toBe('<|start_header_id|>assistant<|end_header_id|>');
    expect(config.human_suffix).toBe('<|eot_id|>');
    expect(config.assistant_suffix).toBe('<|eot_id|>');
    expect(notices).toEqual([]);
  });

  it('eval: python eval.py <argv> → rpo eval <argv>, reloading the saved run config', () => {
    const trained = loadConfigFromArgv(SEED_TRAIN_ARGV, { env: NO_ENV });
    // The seed's layout: data/<exp_name>/config.yaml, addressed relative to the current directory.
    const cwd = path.join(tmp, 'seed-cwd');
    const runDir = path.join(cwd, trained.config.local_run_dir);
    saveConfig(trained.config, path.join(runDir, 'config.yaml'));
    const previous = process.cwd();
    process.chdir(cwd);
    try {
      const argv = SEED_EVAL_ARGV('data/rdpo_g0-001_lr5e-7_orcaratspec_mistral7b2');
      const { config, args } = loadConfigFromArgv(argv, { env: NO_ENV });
      expect(args).toMatchObject({ configPath: 'data/rdpo_g0-001_lr5e-7_orcaratspec_mistral7b2', configName: 'config' });
      expect(config.mode).toBe('alpacaeval');
      expect(config.n_samples).toBe(805);
      expect(config.model.eval_batch_size).toBe(35);
      expect(config.samples_dir).toBe('folder_for_alpaca_samples');
      expect(config.exp_name).toBe('your_exp_name');
      // The saved config is resolved (as the seed saved it), so the run directory stays the trained one.
      expect(config.local_run_dir).toBe('data/rdpo_g0-001_lr5e-7_orcaratspec_mistral7b2');
      expect(config.loss.gamma).toBe(0.001);
      expect(config.model.name_or_path).toBe('mistralai/Mistral-7B-Instruct-v0.2');
      // Everything not overridden is what training used.
      expect({ ...config, mode: 'train', n_samples: 128, samples_dir: 'samples/', exp_name: trained.config.exp_name, model: { ...config.model, eval_batch_size: 16 } }).toEqual(
        trained.config,
      );
    } finally {
      process.chdir(previous);
    }
  });
});

describe('save → reload', () => {
  it('reloads to the same RunConfig, tricky strings included', () => {
    const { config } = loadConfig({
      overrides: [
        'loss=slic',
        'model=tiny',
        'datasets=[orca, {path: /d/x.jsonl, columns: {prompt: q}}]',
        'exp_name=yes',
        // Escaped: a literal ${ in a string must survive save → reload without being interpolated.
        "++human_prefix='\\${not_interpolated} 5e-7'",
        'assistant_suffix=null_or_not',
        'samples_dir=20_000',
        'cache_dir=/tmp/c',
        'optimizer=RMSprop',
      ],
      env: NO_ENV,
    });
    expect(config.human_prefix).toBe('${not_interpolated} 5e-7');
    const dir = path.join(tmp, 'roundtrip');
    saveConfig(config, path.join(dir, 'config.yaml'));
    const again = loadConfig({ configPath: dir, configName: 'config', env: NO_ENV });
    expect(again.config).toEqual(config);
    expect(again.notices).toEqual([]);
    // Saving again gives the same file: the format is stable.
    saveConfig(again.config, path.join(dir, 'config2.yaml'));
    const strip = (f: string): string => readFileSync(path.join(dir, f), 'utf8').split('\n').slice(2).join('\n');
    expect(strip('config2.yaml')).toBe(strip('config.yaml'));
  });

  it('writes atomically: no temporary file is left, and an unwritable target leaves nothing', () => {
    const { config } = loadConfig({ overrides: ['loss=dpo', 'model=tiny', 'datasets=[x]', 'exp_name=e'], env: NO_ENV });
    const dir = path.join(tmp, 'atomic');
    saveConfig(config, path.join(dir, 'config.yaml'));
    saveConfig(config, path.join(dir, 'config.yaml'));
    expect(readFileSync(path.join(dir, 'config.yaml'), 'utf8')).toMatch(/^# rpo run config/);
    mkdirSync(path.join(dir, 'isdir.yaml'));
    expect(() => saveConfig(config, path.join(dir, 'isdir.yaml'))).toThrow();
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('a saved config reloaded with --config-path knows no groups: model=x is a value override error', () => {
    const { config } = loadConfig({ overrides: ['loss=dpo', 'model=tiny', 'datasets=[x]', 'exp_name=e'], env: NO_ENV });
    const dir = path.join(tmp, 'nogroups');
    saveConfig(config, path.join(dir, 'config.yaml'));
    expect(errorOf(() => loadConfig({ configPath: dir, overrides: ['model=mistral7bv2'] })).message).toMatch(/'model' is a section/);
    expect(loadConfig({ configPath: dir, overrides: ['loss.beta=0.5'] }).config.loss.beta).toBe(0.5);
  });
});

describe('suggestions', () => {
  it('edit distance and closest', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    expect(closest('gama', ['beta', 'gamma', 'name'])).toBe('gamma');
    expect(closest('zzzzzzzz', ['beta', 'gamma'])).toBeUndefined();
  });

  it('suggestKey never suggests the key itself, and names the full path of a key in another section', () => {
    expect(suggestKey('precision', ['precision', 'seed', 'lr'])).toBeUndefined();
    expect(suggestKey('max_length', ['max_length', 'model.max_length', 'model.max_prompt_length'])).toBe('model.max_length');
    expect(suggestKey('model.beta', ['model.peft', 'loss.beta'])).toBe('loss.beta');
    expect(suggestKey('max_lenght', ['lr', 'model.max_length'])).toBe('model.max_length');
    expect(suggestKey('loss.gama', ['loss.gama', 'loss.gamma', 'loss.name'])).toBe('loss.gamma');
  });

  it('an unknown key added on the command line is never its own suggestion', () => {
    const base = ['loss=dpo', 'model=tiny', 'datasets=[x]', 'exp_name=e'];
    const message = (o: string): string => errorOf(() => loadConfig({ overrides: [...base, o], env: NO_ENV })).message;
    for (const o of ['++mixed_precision=bf16', '+mixed_precision=bf16', '++model.mixed_precision=bf16']) {
      const key = o.replace(/^\++/, '').split('=')[0]!;
      expect(message(o)).toMatch(new RegExp(`^unknown key '${key.replace('.', '\\.')}': rpo does not read it`));
      expect(message(o)).not.toContain(`did you mean '${key}'`);
    }
    // The right name in the wrong place: the full path where the key exists.
    expect(message('+max_length=512')).toBe("unknown key 'max_length': rpo does not read it (did you mean 'model.max_length'?)");
    expect(message('+gamma=0.1')).toBe("unknown key 'gamma': rpo does not read it (did you mean 'loss.gamma'?)");
    expect(message('++model.beta=0.1')).toBe("unknown key 'model.beta': rpo does not read it (did you mean 'loss.beta'?)");
    // key=value on a key that exists only elsewhere.
    expect(message('max_length=512')).toMatch(/there is no key 'max_length' \(did you mean 'model\.max_length'\?\)/);
  });

  it('DEFAULT_CONFIG_DIR is the package configs/', () => {
    expect(path.basename(DEFAULT_CONFIG_DIR)).toBe('configs');
    expect(readFileSync(path.join(DEFAULT_CONFIG_DIR, 'config.yaml'), 'utf8')).toMatch(/local_run_dir: \$\{cache_dir\}\/\$\{exp_name\}/);
  });
});
