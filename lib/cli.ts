// The `rpo` command line. Exit codes: 0 success, 1 a failure while running, 2 a usage or
// config error (nothing was run), 3 a non-finite loss stopped training, 130 interrupted.
//
// train / eval / data take Hydra-style overrides (`loss=rdpo ++loss.gamma=0.001 datasets=[a,b]`,
// `--config-path DIR --config-name NAME`, `--cfg job`): the seed's commands work verbatim.
import yargs, { type Argv } from 'yargs';

import { ConfigError, formatJobConfig, loadConfigFromArgv, splitHydraArgv, type LoadedConfig } from './config/index.js';
import { COMPARE_OPTIONS } from './commands/compare_options.js';
import { optionValues } from './commands/options.js';
import { PLAN_OPTIONS } from './commands/plan_options.js';
import { RATIONALES_OPTIONS } from './commands/rationales_options.js';
import { EXIT } from './exit.js';
import { collectInfo, formatInfo } from './info.js';
import { lossHelpLines } from './loss/table.js';
import { redactError, redactSecrets } from './util/redact.js';
import { UsageError } from './util/usage_error.js';

export { EXIT } from './exit.js';

/** Hydra-style arguments after the subcommand, as typed (yargs would reparse values). */
function hydraArgv(argv: readonly string[], command: string): string[] {
  const at = argv.indexOf(command);
  return at < 0 ? [] : argv.slice(at + 1);
}

function printNotices(loaded: LoadedConfig): void {
  for (const n of loaded.notices) console.error(`rpo: notice: ${n}`);
}

/** Loads the config of a train / eval / data command; `--cfg job` prints it and returns null. */
function loadCommandConfig(argv: readonly string[], command: string, mode?: string): LoadedConfig | null {
  const args = hydraArgv(argv, command);
  const withMode = mode && !args.some((a) => /^\+{0,2}mode=/.test(a)) ? [...args, `++mode=${mode}`] : args;
  const hydra = splitHydraArgv(withMode);
  if (hydra.cfg) {
    // As Hydra: the composed config, `???` and interpolations as written (--resolve resolves).
    process.stdout.write(formatJobConfig({ ...hydra, resolve: hydra.resolve }));
    return null;
  }
  const loaded = loadConfigFromArgv(withMode);
  printNotices(loaded);
  return loaded;
}

function hydraCommand(y: Argv, what: string): Argv {
  return y
    .positional('overrides', { type: 'string', array: true, describe: 'Hydra-style overrides: key=value, +key=value, ++key=value, ~key, group=option' })
    .option('config-path', { type: 'string', describe: 'directory of a saved run config to reload (the seed eval does this)' })
    .option('config-name', { type: 'string', describe: 'config file name in --config-path, without .yaml' })
    .option('cfg', { type: 'string', choices: ['job', 'hydra', 'all'], describe: `print the resolved config and exit instead of ${what}` })
    .strictOptions(false)
    .parserConfiguration({ 'parse-numbers': false, 'parse-positional-numbers': false, 'dot-notation': false, 'boolean-negation': false });
}

export async function main(argv: string[]): Promise<number> {
  let code: number = EXIT.ok;
  const run = async (body: () => Promise<number>) => {
    // yargs still calls the handler after .fail() reported a usage error: run nothing then.
    if (code === EXIT.usage) return;
    try {
      code = await body();
    } catch (err) {
      code = reportError(err);
    }
  };
  await yargs(argv)
    .scriptName('rpo')
    .usage('$0 <command> [options]\n\nPreference optimization with rationales (RDPO, RORPO) and the DPO family.')
    .command(
      'train [overrides..]',
      'train a policy (the seed\'s `python train.py ...`)',
      (y) => hydraCommand(y, 'training').epilog(`Losses (loss=<name>; s = sigmoid, pi = summed log-prob, mean = per token):\n  ${lossHelpLines().join('\n  ')}`),
      () => run(async () => {
        const loaded = loadCommandConfig(argv, 'train', 'train');
        if (!loaded) return EXIT.ok;
        const { runTrainCommand } = await import('./commands/train.js');
        return runTrainCommand(loaded.config);
      }),
    )
    .command(
      'launch [args..]',
      'data-parallel training: start this machine\'s ranks (`rpo launch --nproc-per-node 2 -- train ...`; docs/distributed.md)',
      (y) => y.positional('args', { type: 'string', array: true, describe: '--nproc-per-node N [--nnodes M --node-rank K --master-addr A --master-port P] -- train overrides...' }).strictOptions(false).help(false)
        .parserConfiguration({ 'parse-numbers': false, 'parse-positional-numbers': false, 'dot-notation': false, 'boolean-negation': false, 'unknown-options-as-args': true }),
      () => run(async () => {
        const { runLaunchCommand } = await import('./commands/launch.js');
        return runLaunchCommand(hydraArgv(argv, 'launch'));
      }),
    )
    .command(
      'eval [overrides..]',
      'evaluate or sample a trained policy: ++mode=eval|sample|alpacaeval (the seed\'s `python eval.py ...`)',
      (y) => hydraCommand(y, 'evaluating'),
      () => run(async () => {
        const loaded = loadCommandConfig(argv, 'eval', 'eval');
        if (!loaded) return EXIT.ok;
        const { runEvalCommand } = await import('./commands/eval.js');
        return runEvalCommand(loaded.config);
      }),
    )
    .command(
      'data [overrides..]',
      'preview a run\'s data: formatted, tokenized examples, length percentiles, truncation and drops',
      (y) => hydraCommand(y, 'previewing').option('n', { type: 'number', default: 3, describe: 'examples to show (-n 5, -n=5, --n 5, --n=5)' }),
      () => run(async () => {
        // -n is read from the arguments as typed (yargs' value is not used), and taken out of
        // them before the rest is read as Hydra overrides.
        const { splitDataArgs, runDataCommand } = await import('./commands/data.js');
        const { examples, hydra } = splitDataArgs(hydraArgv(argv, 'data'));
        const loaded = loadCommandConfig(['data', ...hydra], 'data');
        if (!loaded) return EXIT.ok;
        return runDataCommand(loaded.config, { examples });
      }),
    )
    .command(
      'plan [overrides..]',
      'the per-device memory budget of a training run (weights, gradients, optimizer state, activations ...) and whether it fits',
      (y) =>
        hydraCommand(y, 'planning').options(PLAN_OPTIONS),
      () => run(async () => {
        const { runPlanCommand } = await import('./commands/plan.js');
        return runPlanCommand(hydraArgv(argv, 'plan'));
      }),
    )
    .command(
      'init <dir>',
      'write a random-weight HF model directory with a tokenizer',
      (y) =>
        y
          .positional('dir', { type: 'string', demandOption: true, describe: 'directory to create' })
          .option('preset', { type: 'string', default: 'tiny', describe: 'model shape preset' })
          .option('config', { type: 'string', describe: 'an HF config.json to use instead of a preset' })
          .option('tokenizer', { type: 'string', default: 'bytes', describe: '"bytes" (built in) or a directory with tokenizer.json' })
          .option('seed', { type: 'number', default: 0 })
          .option('dtype', { type: 'string', default: 'float32', choices: ['float32', 'bfloat16', 'float16'] })
          .option('overwrite', { type: 'boolean', default: false }),
      (args) => run(async () => {
        const { runInitCommand } = await import('./commands/init.js');
        return runInitCommand({
          dir: String(args.dir),
          preset: args.preset,
          config: args.config,
          tokenizer: args.tokenizer,
          seed: args.seed,
          dtype: args.dtype as 'float32' | 'bfloat16' | 'float16',
          overwrite: args.overwrite,
        });
      }),
    )
    .command(
      'merge <adapter>',
      'merge a LoRA adapter directory (PEFT\'s or an rpo LoRA checkpoint) into its base: an HF model directory',
      (y) =>
        y
          .positional('adapter', { type: 'string', demandOption: true, describe: 'adapter directory (adapter_config.json + adapter_model.safetensors)' })
          .option('out', { type: 'string', demandOption: true, describe: 'directory to write the merged model to' })
          .option('base', { type: 'string', describe: 'base model directory or hub id (default: adapter_config.json\'s base_model_name_or_path)' })
          .option('dtype', { type: 'string', choices: ['float32', 'bfloat16', 'float16'], describe: 'merged weights\' dtype (default: the base\'s)' })
          .option('overwrite', { type: 'boolean', default: false }),
      (args) => run(async () => {
        const { runMergeCommand } = await import('./commands/merge.js');
        return runMergeCommand(String(args.adapter), {
          out: String(args.out),
          base: args.base,
          dtype: args.dtype as 'float32' | 'bfloat16' | 'float16' | undefined,
          overwrite: args.overwrite,
        });
      }),
    )
    .command(
      'demo',
      'the main job on a built-in default: a small model, SFT then RDPO on a bundled synthetic task, a report',
      (y) =>
        y
          .option('out', { type: 'string', default: 'runs/demo', describe: 'output directory' })
          .option('dpo', { type: 'boolean', default: false, describe: 'also train DPO on the same data, for comparison' })
          .option('efficiency', { type: 'boolean', default: false, describe: 'DPO and RDPO on 25%, 50% and 100% of the pairs, from the same SFT model (implies --dpo)' })
          .option('sft-epochs', { type: 'number', describe: 'SFT epochs over the train prompts (default 10)' })
          .option('preset', { type: 'string', default: 'mini', describe: 'model shape preset' })
          .option('pairs', { type: 'number', default: 768, describe: 'preference pairs per preference run' })
          .option('samples', { type: 'number', default: 16, describe: 'AlpacaEval-format samples to export' }),
      (args) => run(async () => {
        const { runDemoCommand } = await import('./commands/demo.js');
        return runDemoCommand({ out: args.out, dpo: args.dpo, efficiency: args.efficiency, preset: args.preset, pairs: args.pairs, sftEpochs: args['sft-epochs'], samples: args.samples });
      }),
    )
    .command(
      'rationales <dataset>',
      'add generated rationales to a preference dataset (local model or OpenAI-compatible server) for loss=rdpo / rorpo',
      (y) =>
        y
          .positional('dataset', { type: 'string', demandOption: true, describe: 'anything datasets=[...] accepts: a name (orca, ultrabin, ...), a hub id, a local file or directory' })
          .options(RATIONALES_OPTIONS)
          .parserConfiguration({ 'duplicate-arguments-array': false })
          .strictOptions(),
      (args) => run(async () => {
        const { runRationalesCommand } = await import('./commands/rationales.js');
        return runRationalesCommand({ dataset: String(args.dataset), ...optionValues(RATIONALES_OPTIONS, args) });
      }),
    )
    .command(
      'compare',
      'win rate of a candidate against a baseline judged by an OpenAI-compatible chat model (the seed\'s compare.py; its flags)',
      (y) =>
        y
          .options(COMPARE_OPTIONS)
          .parserConfiguration({ 'short-option-groups': false, 'duplicate-arguments-array': false })
          .strictOptions(),
      (args) => run(async () => {
        const { runCompareCommand } = await import('./commands/compare.js');
        return runCompareCommand(optionValues(COMPARE_OPTIONS, args));
      }),
    )
    .command(
      'info',
      'rpo and LibTorch versions, CUDA devices, where the addon and caches are',
      (y) => y.option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
      (args) => run(async () => {
        const info = collectInfo();
        console.log(args.json ? JSON.stringify(info, null, 2) : formatInfo(info));
        return EXIT.ok;
      }),
    )
    .demandCommand(1, 'name a command')
    .strictCommands()
    .fail((msg, err) => {
      if (err) throw err;
      if (code !== EXIT.usage) console.error(`rpo: ${msg}\nRun \`rpo --help\` for usage.`);
      code = EXIT.usage;
    })
    .help()
    .version(false)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .parseAsync();
  return code;
}

/** Prints an error the way a user needs it and picks the exit code. */
export function reportError(err: unknown): number {
  const e = err instanceof Error ? err : new Error(String(err));
  // A message may quote a config value: secrets from the environment are masked (lib/util/redact.ts).
  redactError(e, redactSecrets);
  if (e instanceof ConfigError) {
    console.error(`rpo: config error: ${e.message}`);
    return EXIT.usage;
  }
  if (e instanceof UsageError) {
    console.error(`rpo: ${e.message}`);
    return EXIT.usage;
  }
  if (e.name === 'NonFiniteError') {
    console.error(`rpo: training stopped: ${e.message}`);
    return EXIT.nonFinite;
  }
  console.error(`rpo: ${e.message}`);
  if (process.env.RPO_DEBUG && e.stack) console.error(e.stack);
  return EXIT.failure;
}
