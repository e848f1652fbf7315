// `npm run demo [-- --dpo ...]`: sets up what is missing (ensure.mjs), then `rpo demo` with the
// arguments given. The main job on a built-in tiny default, from a bare clone in one command.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { ensureEngine, root } from './ensure.mjs';

const started = Date.now();
await ensureEngine();
console.log(`rpo setup: ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
const res = spawnSync(process.execPath, [path.join(root, 'bin', 'rpo.js'), 'demo', ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
process.exit(res.status ?? 1);
