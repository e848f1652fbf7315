// The `rpo` command line. Subcommands arrive with the issues that build them; every one
// returns an exit code: 0 success, 1 failure, 2 usage error.
import yargs from 'yargs';

import { collectInfo, formatInfo } from './info.js';

export async function main(argv: string[]): Promise<number> {
  let code = 0;
  await yargs(argv)
    .scriptName('rpo')
    .command(
      'info',
      'rpo and LibTorch versions, CUDA devices, where the addon lives',
      (y) => y.option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
      (args) => {
        const info = collectInfo();
        console.log(args.json ? JSON.stringify(info, null, 2) : formatInfo(info));
      },
    )
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .fail((msg, err) => {
      if (err) throw err;
      console.error(`rpo: ${msg}\nRun \`rpo --help\` for usage.`);
      code = 2;
    })
    .help()
    .parseAsync();
  return code;
}
