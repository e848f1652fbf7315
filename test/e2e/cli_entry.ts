// Runs the CLI from source (tests spawn this instead of bin/rpo.js, which needs dist/).
import { main } from '../../lib/cli.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`rpo: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
