// What `npm run demo`, `npm test` and `npm run setup` need before they run, each step done only
// when it is missing or stale, so a second call costs a few seconds:
//   1. a LibTorch (find-libtorch.mjs); none found: pip's torch into the project's own .venv;
//      and gloo's headers for data parallelism (gloo-headers.mjs); none on the system: Debian's
//      libgloo-dev unpacked into .cache/gloo (no root), else a message naming the one step;
//   2. node_modules matching package-lock.json (`npm install`, which also builds the addon and
//      compiles the TypeScript);
//   3. the addon newer than every native source and configured for the gloo headers found now
//      (an incremental ninja build; build-native.mjs configures again when they changed);
//   4. dist/ newer than every TypeScript source (tsc);
//   5. tests only: the pinned Python references (test/reference/requirements.txt) in .venv.
// Only node's own modules are used here: this runs on a bare clone, before `npm install`.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { ensureGlooHeaders } from './gloo-headers.mjs';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const venv = path.join(root, '.venv');
const venvPython = path.join(venv, 'bin', 'python');

function say(message) {
  console.log(`rpo setup: ${message}`);
}

function run(cmd, args, what, env = process.env) {
  say(`${what}: ${cmd} ${args.join(' ')}`);
  const started = Date.now();
  const res = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env });
  if (res.error || res.status !== 0) {
    console.error(`rpo setup: ${what} failed${res.error ? `: ${res.error.message}` : ` (exit ${res.status})`}`);
    process.exit(1);
  }
  say(`${what} took ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

function sha256(file) {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Bytes under a directory (files only, links not followed). */
export function diskUsage(dir) {
  let total = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop();
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) total += lstatSync(p).size;
    }
  }
  return total;
}

function gib(bytes) {
  return bytes >= 1 << 30 ? `${(bytes / (1 << 30)).toFixed(2)} GiB` : `${(bytes / (1 << 20)).toFixed(0)} MiB`;
}

/** The newest modification time among files under `dir` whose names match `re`. */
function newest(dir, re) {
  let t = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop();
    if (!existsSync(d)) continue;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (re.test(e.name)) t = Math.max(t, statSync(p).mtimeMs);
    }
  }
  return t;
}

function mtime(file) {
  return existsSync(file) ? statSync(file).mtimeMs : -1;
}

/** Stamp files record which inputs a step was done for (a hash, so a checkout's mtimes don't matter). */
function stampMatches(stamp, value) {
  return existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === value;
}

function writeStamp(stamp, value) {
  mkdirSync(path.dirname(stamp), { recursive: true });
  writeFileSync(stamp, value + '\n');
}

/** The gloo include directory the addon's last configure used (build-native.mjs's stamp), or undefined. */
function configuredGloo(buildDir) {
  try {
    return JSON.parse(readFileSync(path.join(buildDir, 'rpo-configure.json'), 'utf8')).gloo ?? null;
  } catch {
    return undefined;
  }
}

async function findLibtorchLazily() {
  const { findLibtorch } = await import('./find-libtorch.mjs');
  return findLibtorch();
}

/** Steps 1–4: LibTorch, node_modules, the addon, dist/. Returns what was done. */
export async function ensureEngine() {
  const done = [];
  let { found } = await findLibtorchLazily();
  if (!found) {
    if (!existsSync(venvPython)) run(process.env.RPO_PYTHON ?? 'python3', ['-m', 'venv', venv], 'create the project venv (.venv)');
    run(venvPython, ['-m', 'pip', 'install', '--disable-pip-version-check', '-r', path.join('scripts', 'torch-requirements.txt')], 'install LibTorch (pip torch==2.11.0) into .venv');
    ({ found } = await findLibtorchLazily());
    if (!found) {
      console.error('rpo setup: torch was installed into .venv but still cannot be used as a LibTorch; see the messages above.');
      process.exit(1);
    }
    done.push('LibTorch');
  }
  const gloo = ensureGlooHeaders(say);
  const lock = path.join(root, 'package-lock.json');
  const lockStamp = path.join(root, 'node_modules', '.rpo-package-lock.sha256');
  if (!stampMatches(lockStamp, sha256(lock))) {
    run('npm', ['install', '--no-audit', '--no-fund'], 'npm install (dependencies, the addon build, the TypeScript build)');
    writeStamp(lockStamp, sha256(lock));
    done.push('node_modules');
  }
  const buildDir = path.join(root, process.env.RPO_BUILD_DIR || 'build');
  const addon = path.join(buildDir, 'Release', 'rpo.node');
  const nativeSources = Math.max(newest(path.join(root, 'native'), /\.(cpp|h|cu|cuh)$/), mtime(path.join(root, 'CMakeLists.txt')));
  if (mtime(addon) < nativeSources || configuredGloo(buildDir) !== gloo) {
    run(process.execPath, [path.join('scripts', 'build-native.mjs')], 'build the native addon (incremental)');
    done.push('addon');
  }
  const dist = path.join(root, 'dist', 'lib', 'cli.js');
  if (mtime(dist) < Math.max(newest(path.join(root, 'lib'), /\.ts$/), mtime(path.join(root, 'tsconfig.json')))) {
    run(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], 'compile the TypeScript (dist/)');
    done.push('dist');
  }
  if (done.length > 0) {
    say(`disk: .venv ${existsSync(venv) ? gib(diskUsage(venv)) : '(none: an existing LibTorch is used)'}, node_modules ${gib(diskUsage(path.join(root, 'node_modules')))}, build ${gib(diskUsage(path.join(root, 'build')))}`);
  }
  return { libtorch: found, done };
}

/** Step 5: the pinned Python references the tests compare against, in .venv. */
export function ensureReferences() {
  const requirements = path.join(root, 'test', 'reference', 'requirements.txt');
  const stamp = path.join(venv, '.rpo-reference-requirements.sha256');
  if (stampMatches(stamp, sha256(requirements))) return false;
  if (!existsSync(venvPython)) run(process.env.RPO_PYTHON ?? 'python3', ['-m', 'venv', venv], 'create the project venv (.venv)');
  const before = diskUsage(venv);
  run(venvPython, ['-m', 'pip', 'install', '--disable-pip-version-check', '-q', '-r', requirements], 'install the pinned test references (transformers, tokenizers, trl, peft, datasets, pyarrow, hydra-core, tensorboard) into .venv');
  writeStamp(stamp, sha256(requirements));
  const after = diskUsage(venv);
  say(`disk: the references took ${gib(Math.max(0, after - before))}; .venv is ${gib(after)}`);
  return true;
}
