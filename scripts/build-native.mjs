// Builds the native addon (build/Release/rpo.node) with cmake-js against the LibTorch that
// find-libtorch.mjs finds, with data parallelism when gloo's headers are found or can be fetched
// (gloo-headers.mjs). Runs as the package's `install` script, so `npm install` builds it.
//
// CMake is configured again whenever what was found differs from the last configure (another
// LibTorch, gloo's headers appeared or went), and always with --force (`npm run build:native`):
// cmake-js alone configures only an empty build directory, so a remedy such as "install
// libgloo-dev, then `npm run build:native`" would otherwise change nothing.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, utimesSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { findLibtorch, HOW_TO_FIX } from './find-libtorch.mjs';
import { ensureGlooHeaders } from './gloo-headers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { found, tried } = findLibtorch();
if (!found) {
  console.error('rpo: no LibTorch found. Looked in:');
  for (const line of tried) console.error(`  - ${line}`);
  console.error(HOW_TO_FIX);
  process.exit(1);
}
console.log(`rpo: building against LibTorch ${found.version} (${found.cuda ? 'CUDA' : 'CPU'}) from ${found.source}: ${found.root}`);

const require = createRequire(import.meta.url);
const cmakeJs = path.join(path.dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
const defines = {
  RPO_TORCH_ROOT: found.root,
  RPO_TORCH_INCLUDE_DIRS: found.includeDirs.join(';'),
  RPO_TORCH_LIB_DIR: found.libDir,
  RPO_TORCH_CXX11_ABI: String(found.cxx11Abi),
  RPO_TORCH_CUDA: found.cuda ? 'ON' : 'OFF',
  CMAKE_BUILD_TYPE: 'Release',
};
// RPO_BUILD_DIR builds elsewhere than build/ (lib/native.ts loads the addon from the same place).
const buildDir = process.env.RPO_BUILD_DIR || 'build';
const gloo = ensureGlooHeaders((m) => console.log(`rpo: ${m}`));
// CMakeLists.txt looks for gloo/context.h under $RPO_GLOO_INCLUDE first, then the system's.
const env = gloo ? { ...process.env, RPO_GLOO_INCLUDE: gloo } : process.env;
const cmakeArgs = ['--out', buildDir, '-G', 'Ninja'];
for (const [k, v] of Object.entries(defines)) cmakeArgs.push(`--CD${k}=${v}`);

const stampFile = path.resolve(root, buildDir, 'rpo-configure.json');
const inputs = JSON.stringify({ defines, gloo }, null, 2) + '\n';
const configured = existsSync(path.resolve(root, buildDir, 'CMakeCache.txt')) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === inputs;
function runCmakeJs(command) {
  const res = spawnSync(process.execPath, [cmakeJs, command, ...cmakeArgs], { cwd: root, stdio: 'inherit', env });
  if (res.status !== 0) {
    console.error(`rpo: the native ${command === 'configure' ? 'configure' : 'build'} failed (see above).`);
    process.exit(res.status ?? 1);
  }
}
if (process.argv.includes('--force') || !configured) {
  runCmakeJs('configure');
  mkdirSync(path.dirname(stampFile), { recursive: true });
  writeFileSync(stampFile, inputs);
}
// --configure-only: what CMake finds, without compiling (test/native/build_configure.test.ts).
if (process.argv.includes('--configure-only')) process.exit(0);
runCmakeJs('build');
// The addon is now current for every source, even when ninja had nothing to relink (a source's
// mtime changed, not its effect): ensure.mjs compares mtimes and would build again each time.
const addon = path.resolve(root, buildDir, 'Release', 'rpo.node');
if (existsSync(addon)) utimesSync(addon, new Date(), new Date());
// Record what the addon was built against, for `rpo info` and error messages at load time.
mkdirSync(path.resolve(root, buildDir), { recursive: true });
writeFileSync(path.resolve(root, buildDir, 'libtorch.json'), JSON.stringify(found, null, 2) + '\n');
