// `npm run setup`: everything a fresh machine with Node and Python needs.
//   1. find a LibTorch (see find-libtorch.mjs); if there is none, pip-install torch into the
//      project's own .venv (nothing global is touched);
//   2. `npm install`, whose install script builds the addon and whose prepare script compiles TS.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findLibtorch } from './find-libtorch.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function run(cmd, args, what) {
  console.log(`rpo setup: ${what}: ${cmd} ${args.join(' ')}`);
  const started = Date.now();
  const res = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (res.error || res.status !== 0) {
    console.error(`rpo setup: ${what} failed${res.error ? `: ${res.error.message}` : ` (exit ${res.status})`}`);
    process.exit(1);
  }
  console.log(`rpo setup: ${what} took ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

let { found } = findLibtorch();
if (found) {
  console.log(`rpo setup: using LibTorch ${found.version} from ${found.source} (${found.root})`);
} else {
  const venv = path.join(root, '.venv');
  const python = path.join(venv, 'bin', 'python');
  if (!existsSync(python)) {
    const system = process.env.RPO_PYTHON ?? 'python3';
    run(system, ['-m', 'venv', venv], 'create the project venv');
  }
  run(python, ['-m', 'pip', 'install', '--disable-pip-version-check', '-r', path.join('scripts', 'torch-requirements.txt')], 'install LibTorch (pip torch) into .venv');
  ({ found } = findLibtorch());
  if (!found) {
    console.error('rpo setup: torch was installed into .venv but still cannot be used as a LibTorch; see the messages above.');
    process.exit(1);
  }
}
run('npm', ['install', '--no-audit', '--no-fund'], 'npm install (builds the addon)');
console.log('rpo setup: done. Try `npx rpo info`.');
