// Finds a LibTorch to build against, in the order docs/design.md gives:
//   1. LIBTORCH            an unpacked prebuilt libtorch (include/, lib/, share/cmake/Torch)
//   2. Torch_DIR, then each CMAKE_PREFIX_PATH entry   (a TorchConfig.cmake that points at a root)
//   3. a Python installation's torch (RPO_PYTHON, the project's .venv, python3, python)
//
// We never let TorchConfig.cmake configure the build: pip's torch is a CUDA build even on
// machines without a GPU, and its CMake config refuses to run without a CUDA toolkit. Every
// source is reduced to the same facts (include dirs, lib dir, C++ ABI, CUDA or not), the way
// torch.utils.cpp_extension does, so one build works on CPU and GPU machines alike.
import { existsSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Reads `#define TORCH_VERSION_{MAJOR,MINOR,PATCH}` from the headers of a LibTorch root. */
function headerVersion(root) {
  const candidates = [
    'include/torch/headeronly/version.h',
    'include/torch/csrc/api/include/torch/version.h',
  ];
  for (const rel of candidates) {
    const file = path.join(root, rel);
    if (!existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    const part = (name) => text.match(new RegExp(`#define TORCH_VERSION_${name} (\\d+)`))?.[1];
    const [major, minor, patch] = [part('MAJOR'), part('MINOR'), part('PATCH')];
    if (major !== undefined && minor !== undefined) return `${major}.${minor}.${patch ?? 0}`;
  }
  return null;
}

/** The C++ ABI a prebuilt LibTorch was compiled with: stated in TorchConfig.cmake on older
 *  releases; every release since 2.7 uses the new ABI only. */
function configuredAbi(root) {
  const config = path.join(root, 'share/cmake/Torch/TorchConfig.cmake');
  if (existsSync(config)) {
    const m = readFileSync(config, 'utf8').match(/_GLIBCXX_USE_CXX11_ABI=(\d)/);
    if (m) return Number(m[1]);
  }
  return 1;
}

/** Describes the LibTorch at `root`, or explains why it is not one. */
function describeRoot(root, source, abi) {
  const include = path.join(root, 'include');
  const lib = path.join(root, 'lib');
  const hasLib = (name) => existsSync(path.join(lib, `lib${name}.so`)) || existsSync(path.join(lib, `lib${name}.dylib`));
  if (!existsSync(path.join(include, 'ATen', 'ATen.h'))) return { error: `${root}: no include/ATen/ATen.h` };
  if (!hasLib('torch_cpu') || !hasLib('c10')) return { error: `${root}: no lib/libtorch_cpu and lib/libc10` };
  const version = headerVersion(root);
  if (!version) return { error: `${root}: cannot read the LibTorch version from its headers` };
  const [major, minor] = version.split('.').map(Number);
  if (major < 2 || (major === 2 && minor < 4)) return { error: `${root}: LibTorch ${version} is older than 2.4` };
  return {
    source,
    root,
    version,
    includeDirs: [include, path.join(include, 'torch/csrc/api/include')],
    libDir: lib,
    cxx11Abi: abi ?? configuredAbi(root),
    cuda: hasLib('torch_cuda'),
  };
}

/** TorchConfig.cmake lives at <root>/share/cmake/Torch; a prefix may name any level of that. */
function rootFromCmakeDir(dir) {
  for (const rel of ['.', 'Torch', 'share/cmake/Torch']) {
    const cfg = path.resolve(dir, rel, 'TorchConfig.cmake');
    if (existsSync(cfg)) return path.resolve(path.dirname(cfg), '../../..');
  }
  return null;
}

function pythonCandidates(env) {
  const list = [];
  if (env.RPO_PYTHON) list.push(env.RPO_PYTHON);
  const venvPython = path.join(projectRoot, '.venv', 'bin', 'python');
  if (existsSync(venvPython)) list.push(venvPython);
  list.push('python3', 'python');
  return [...new Set(list)];
}

const PY_PROBE = [
  'import os, torch',
  'print(os.path.dirname(torch.__file__))',
  'print(int(torch._C._GLIBCXX_USE_CXX11_ABI))',
].join('; ');

/**
 * Returns `{ found: {...}, tried: [...] }`; `found` is null when nothing usable was found,
 * and `tried` then says what each place held.
 */
export function findLibtorch(env = process.env) {
  const tried = [];
  const accept = (desc, what) => {
    if (desc.error) {
      tried.push(`${what}: ${desc.error}`);
      return null;
    }
    return desc;
  };

  if (env.LIBTORCH) {
    const found = accept(describeRoot(path.resolve(env.LIBTORCH), 'LIBTORCH'), `LIBTORCH=${env.LIBTORCH}`);
    if (found) return { found, tried };
  } else {
    tried.push('LIBTORCH: not set');
  }

  const cmakeDirs = [];
  if (env.Torch_DIR) cmakeDirs.push(['Torch_DIR', env.Torch_DIR]);
  else tried.push('Torch_DIR: not set');
  if (env.CMAKE_PREFIX_PATH) {
    for (const entry of env.CMAKE_PREFIX_PATH.split(path.delimiter).filter(Boolean)) cmakeDirs.push(['CMAKE_PREFIX_PATH', entry]);
  } else {
    tried.push('CMAKE_PREFIX_PATH: not set');
  }
  for (const [name, dir] of cmakeDirs) {
    const root = rootFromCmakeDir(dir);
    if (!root) {
      tried.push(`${name} entry ${dir}: no TorchConfig.cmake`);
      continue;
    }
    const found = accept(describeRoot(root, name), `${name} entry ${dir}`);
    if (found) return { found, tried };
  }

  for (const python of pythonCandidates(env)) {
    let out;
    try {
      out = execFileSync(python, ['-c', PY_PROBE], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
    } catch (err) {
      const why = err.code === 'ENOENT' ? 'not found' : 'has no importable torch';
      tried.push(`Python ${python}: ${why}`);
      continue;
    }
    const [torchDir, abi] = out.trim().split('\n');
    const found = accept(describeRoot(torchDir, `python:${python}`, Number(abi)), `Python ${python} (torch at ${torchDir})`);
    if (found) return { found, tried };
  }
  return { found: null, tried };
}

export const HOW_TO_FIX = [
  'Fix it in one of these ways:',
  '  - run `npm run setup`: it installs pip torch into this project\'s .venv, then builds',
  '  - set LIBTORCH=/path/to/libtorch (an unpacked prebuilt LibTorch >= 2.4)',
  '  - set Torch_DIR or CMAKE_PREFIX_PATH to a directory holding TorchConfig.cmake',
  '  - set RPO_PYTHON to a Python whose `import torch` works',
].join('\n');

if (import.meta.url === `file://${process.argv[1]}`) {
  const { found, tried } = findLibtorch();
  console.log(JSON.stringify({ found, tried }, null, 2));
  process.exit(found ? 0 : 1);
}
