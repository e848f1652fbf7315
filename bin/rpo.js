#!/usr/bin/env node
// The `rpo` command: the compiled CLI (npm's prepare script builds dist/).
import { main } from '../dist/lib/cli.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`rpo: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
