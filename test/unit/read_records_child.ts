// Reads a data file in a child process (test/unit/data_limits.test.ts runs it under a memory
// ulimit, so an unbounded read fails there instead of exhausting the machine). Prints
// {"records": n} or {"error": message} on stdout.
import { readRecords } from '../../lib/data/read/index.js';

const file = process.argv[2]!;
let records = 0;
try {
  for await (const _ of readRecords(file)) records++;
  process.stdout.write(JSON.stringify({ records }));
} catch (err) {
  process.stdout.write(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
}
