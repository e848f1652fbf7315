// `rpo launch [--nproc-per-node N] [--nnodes M --node-rank K --master-addr A --master-port P] -- train ...`
import { EXIT } from '../exit.js';
import { loadConfigFromArgv } from '../config/index.js';
import { distInfo } from '../parallel/native.js';
import { launch, parseLaunchArgs, LaunchUsageError } from '../parallel/launch.js';
import { refuseUnsupportedZero3 } from '../parallel/support.js';

export async function runLaunchCommand(args: readonly string[]): Promise<number> {
  let options;
  try {
    options = parseLaunchArgs(args);
  } catch (err) {
    if (err instanceof LaunchUsageError) {
      console.error(err.message);
      return EXIT.usage;
    }
    throw err;
  }
  // The ranks' config, read once here: a config error is reported once, before any rank starts
  // (a ConfigError reaches the CLI's handler: exit 2).
  const train = options.command.slice(1);
  const { config } = loadConfigFromArgv(train.some((a) => /^\+{0,2}mode=/.test(a)) ? train : [...train, '++mode=train']);
  refuseUnsupportedZero3(config, options.zero);
  const info = distInfo();
  if (!info.available) {
    console.error(`rpo launch: ${info.reason}`);
    return EXIT.failure;
  }
  return launch(options);
}
