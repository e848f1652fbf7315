// `npm test [-- vitest args]`: sets up what is missing (the engine and the pinned Python
// references the tests compare against; see ensure.mjs), then the unit and native suites. In CI
// a missing reference is a failure, never a skip: this installs them before the tests look.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { ensureEngine, ensureReferences, root } from './ensure.mjs';

const started = Date.now();
await ensureEngine();
ensureReferences();
console.log(`rpo setup: ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
const vitest = path.join(root, 'node_modules', 'vitest', 'vitest.mjs');
const res = spawnSync(process.execPath, [vitest, 'run', '--project', 'unit', '--project', 'native', ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
process.exit(res.status ?? 1);
