// `npm test [-- vitest args]`: sets up what is missing (the engine, the pinned Python references
// the tests compare against, and a Chromium for the report render checks; see ensure.mjs), then
// the unit and native suites. In CI a missing reference is a failure, never a skip: this
// installs them before the tests look. The run ends with a loud line for every test file that
// skipped part of itself, and why (skip-reporter.mjs).
import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { ensureChromium } from './chromium.mjs';
import { ensureEngine, ensureReferences, root } from './ensure.mjs';

const say = (m) => console.log(`rpo setup: ${m}`);
const started = Date.now();
await ensureEngine();
ensureReferences();
ensureChromium(say);
say(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
const args = process.argv.slice(2);
// Reporters given on the command line replace vitest's default one; the skip list comes on top.
const reporters = args.some((a) => a.startsWith('--reporter')) ? [] : ['--reporter=default'];
reporters.push(`--reporter=${path.join(root, 'scripts', 'skip-reporter.mjs')}`);
const vitest = path.join(root, 'node_modules', 'vitest', 'vitest.mjs');
const res = spawnSync(process.execPath, [vitest, 'run', '--project', 'unit', '--project', 'native', ...reporters, ...args], { cwd: root, stdio: 'inherit' });
process.exit(res.status ?? 1);
