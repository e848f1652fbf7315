// Finds an nvcc to compile native/kernels/*.cu with, for a LibTorch that has CUDA. In order:
//   1. CUDACXX, then CMAKE_CUDA_COMPILER (the variables CMake itself reads)
//   2. `nvcc` on PATH, then $CUDA_HOME / $CUDA_PATH, then /usr/local/cuda
//   3. pip's nvidia-cuda-nvcc wheel beside the torch being built against, or in this project's
//      .venv (site-packages/nvidia/cu13/bin/nvcc for CUDA 13, nvidia/cuda_nvcc/bin/nvcc for 12);
//      `.venv/bin/pip install -r scripts/cuda-build-requirements.txt` installs it.
// An nvcc is taken only if it runs, its CUDA major version is the torch build's (a kernel linked
// against another major's runtime would not load beside LibTorch's), and cuda_runtime.h and
// nv/target (CCCL) are found beside it. None found is not an error: the addon is then built
// without the kernels and the chunked LibTorch head serves on GPUs.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** "13.0" from a LibTorch root: torch/version.py (pip) or build-version (prebuilt zip: 2.x+cu130). */
export function torchCudaVersion(torchRoot) {
  if (!torchRoot) return null;
  const py = path.join(torchRoot, 'version.py');
  if (existsSync(py)) {
    const m = readFileSync(py, 'utf8').match(/^cuda[^=]*=\s*['"]([\d.]+)['"]/m);
    if (m) return m[1];
  }
  const bv = path.join(torchRoot, 'build-version');
  if (existsSync(bv)) {
    const m = readFileSync(bv, 'utf8').match(/\+cu(\d+)(\d)\b/);
    if (m) return `${m[1]}.${m[2]}`;
  }
  return null;
}

function nvccVersion(nvcc) {
  try {
    const out = execFileSync(nvcc, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
    return out.match(/release (\d+\.\d+)/)?.[1] ?? null;
  } catch {
    return null;
  }
}

/** The include directories nvcc would search beside itself (toolkit or pip layout). */
function hasHeaders(nvcc) {
  const top = path.resolve(path.dirname(nvcc), '..');
  const incs = [path.join(top, 'include'), path.join(top, 'targets', 'x86_64-linux', 'include'), path.join(top, 'targets', 'sbsa-linux', 'include')];
  const runtime = incs.some((d) => existsSync(path.join(d, 'cuda_runtime.h')));
  const cccl = incs.some((d) => existsSync(path.join(d, 'nv', 'target')) || existsSync(path.join(d, 'cccl', 'nv', 'target')));
  return { runtime, cccl };
}

/** site-packages/nvidia/<cuXX|cuda_nvcc>/bin/nvcc under a site-packages directory. */
function pipNvccs(sitePackages) {
  const nv = path.join(sitePackages, 'nvidia');
  if (!existsSync(nv)) return [];
  const out = [];
  for (const entry of readdirSync(nv).sort().reverse()) {
    const nvcc = path.join(nv, entry, 'bin', 'nvcc');
    if (existsSync(nvcc)) out.push(nvcc);
  }
  return out;
}

function projectSitePackages() {
  const lib = path.join(projectRoot, '.venv', 'lib');
  if (!existsSync(lib)) return [];
  return readdirSync(lib).filter((d) => d.startsWith('python')).map((d) => path.join(lib, d, 'site-packages'));
}

function onPath(name, env) {
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const f = path.join(dir, name);
    if (existsSync(f)) return f;
  }
  return null;
}

/**
 * `{ found: { nvcc, version, source } | null, tried: [...] }`. `torch` is find-libtorch's
 * result (its root locates pip's wheels beside torch and gives the CUDA version to match).
 */
export function findNvcc(torch, env = process.env) {
  const tried = [];
  const want = torchCudaVersion(torch?.root);
  const candidates = [];
  const add = (source, nvcc) => nvcc && candidates.push([source, nvcc]);
  add('CUDACXX', env.CUDACXX);
  add('CMAKE_CUDA_COMPILER', env.CMAKE_CUDA_COMPILER);
  add('PATH', onPath('nvcc', env));
  if (env.CUDA_HOME) add('CUDA_HOME', path.join(env.CUDA_HOME, 'bin', 'nvcc'));
  if (env.CUDA_PATH) add('CUDA_PATH', path.join(env.CUDA_PATH, 'bin', 'nvcc'));
  add('/usr/local/cuda', '/usr/local/cuda/bin/nvcc');
  if (torch?.root) for (const n of pipNvccs(path.dirname(torch.root))) add('pip wheel beside torch', n);
  for (const sp of projectSitePackages()) for (const n of pipNvccs(sp)) add('pip wheel in .venv', n);

  const seen = new Set();
  for (const [source, raw] of candidates) {
    const nvcc = path.resolve(raw);
    if (seen.has(nvcc)) continue;
    seen.add(nvcc);
    if (!existsSync(nvcc)) {
      tried.push(`${source}: ${nvcc} does not exist`);
      continue;
    }
    const version = nvccVersion(nvcc);
    if (!version) {
      tried.push(`${source}: ${nvcc} does not run`);
      continue;
    }
    if (want && want.split('.')[0] !== version.split('.')[0]) {
      tried.push(`${source}: ${nvcc} is CUDA ${version}, torch was built with CUDA ${want}`);
      continue;
    }
    const h = hasHeaders(nvcc);
    if (!h.runtime || !h.cccl) {
      tried.push(`${source}: ${nvcc} (CUDA ${version}) lacks ${!h.runtime ? 'cuda_runtime.h' : 'CCCL (nv/target)'} beside it`);
      continue;
    }
    return { found: { nvcc, version, source, torchCuda: want }, tried };
  }
  if (candidates.length === 0) tried.push('no nvcc anywhere (CUDACXX, PATH, CUDA_HOME, /usr/local/cuda, pip wheels)');
  return { found: null, tried };
}

// `node scripts/find-nvcc.mjs`: the search as JSON. `node scripts/find-nvcc.mjs --print TORCH_ROOT`
// (CMakeLists.txt): the nvcc path alone on stdout (nothing when none), where it looked on stderr.
if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv[2] === '--print') {
    const root = process.argv[3];
    const result = findNvcc(root ? { root } : null);
    if (result.found) process.stdout.write(result.found.nvcc);
    else process.stderr.write(result.tried.map((t) => `  - ${t}`).join('\n') + '\n');
    process.exit(0);
  }
  const { findLibtorch } = await import('./find-libtorch.mjs');
  const torch = findLibtorch().found;
  const result = findNvcc(torch);
  console.log(JSON.stringify({ torchCuda: torchCudaVersion(torch?.root), ...result }, null, 2));
  process.exit(result.found ? 0 : 1);
}
