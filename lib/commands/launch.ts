// `rpo launch [--nproc-per-node N] [--nnodes M --node-rank K --master-addr A --master-port P] -- train ...`
import { EXIT } from '../cli.js';
import { distInfo } from '../parallel/native.js';
import { launch, parseLaunchArgs, LaunchUsageError } from '../parallel/launch.js';

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
  const info = distInfo();
  if (!info.available) {
    console.error(`rpo launch: ${info.reason}`);
    return EXIT.failure;
  }
  return launch(options);
}
