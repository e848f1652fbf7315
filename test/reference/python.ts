// The pinned Python reference (HF transformers, TRL, ...) for vitest tests: where its
// interpreter is, how to run test/reference/*.py, how to read what they write.
//
// The reference is required: a missing venv or a missing / mismatched package is an error
// that names the fix, never a skip (in CI a missing reference is a failure).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** test/reference/ (this file's directory). */
export const REFERENCE_DIR: string = path.dirname(fileURLToPath(import.meta.url));
/** The repository root. */
export const REPO_ROOT: string = path.resolve(REFERENCE_DIR, '..', '..');
/** The requirements file the venv is installed from. */
export const REQUIREMENTS: string = path.join(REFERENCE_DIR, 'requirements.txt');

/** Import name → distribution name of the packages the reference scripts use. */
const REFERENCE_PACKAGES: ReadonlyArray<readonly [string, string]> = [
  ['torch', 'torch'],
  ['transformers', 'transformers'],
  ['tokenizers', 'tokenizers'],
  ['safetensors', 'safetensors'],
  ['trl', 'trl'],
  ['accelerate', 'accelerate'],
  ['datasets', 'datasets'],
  ['pyarrow', 'pyarrow'],
  ['numpy', 'numpy'],
  ['hydra', 'hydra-core'],
  ['omegaconf', 'omegaconf'],
  ['tensorboard', 'tensorboard'],
  ['peft', 'peft'],
];

const INSTALL_HINT =
  `create it with: python3.11 -m venv .venv && .venv/bin/pip install -r test/reference/requirements.txt ` +
  `(in ${REPO_ROOT}), or point RPO_REFERENCE_PYTHON at a python that has those pins`;

/** The exact pins of requirements.txt, by lower-cased distribution name. */
function pins(): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of readFileSync(REQUIREMENTS, 'utf8').split('\n')) {
    const m = /^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;#]+)/.exec(raw);
    if (m) out.set(m[1]!.toLowerCase().replace(/_/g, '-'), m[2]!);
  }
  return out;
}

// Finds each package without importing it (an import of trl alone takes seconds) and
// prints {"import name": "version" | null}.
const PROBE = `
import importlib.util, importlib.metadata, json, sys
out = {}
for mod, dist in json.loads(sys.argv[1]):
    if importlib.util.find_spec(mod) is None:
        out[mod] = None
        continue
    try:
        out[mod] = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        out[mod] = "unknown"
print(json.dumps(out))
`;

let checked: string | undefined;

/**
 * The reference interpreter: `RPO_REFERENCE_PYTHON`, else `<repo>/.venv/bin/python`.
 * Throws, naming the fix, if it is missing, lacks a reference package, or has a version other
 * than requirements.txt pins (set RPO_REFERENCE_ALLOW_MISMATCH=1 to accept other versions).
 * The check runs once per process.
 */
export function referencePython(): string {
  const fromEnv = process.env['RPO_REFERENCE_PYTHON'];
  const python = fromEnv && fromEnv.length > 0 ? fromEnv : path.join(REPO_ROOT, '.venv', 'bin', 'python');
  if (checked === python) return python;
  if (!fromEnv && !existsSync(python)) {
    throw new Error(`The Python reference is missing: no ${python}; ${INSTALL_HINT}.`);
  }
  let versions: Record<string, string | null>;
  try {
    const stdout = execFileSync(python, ['-c', PROBE, JSON.stringify(REFERENCE_PACKAGES)], {
      encoding: 'utf8',
      timeout: 60_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    versions = JSON.parse(stdout) as Record<string, string | null>;
  } catch (err) {
    throw new Error(`The Python reference ${python} does not run (${describe(err)}); ${INSTALL_HINT}.`);
  }
  const missing = REFERENCE_PACKAGES.filter(([mod]) => versions[mod] === null || versions[mod] === undefined).map(([mod]) => mod);
  if (missing.length > 0) {
    throw new Error(`The Python reference ${python} lacks ${missing.join(', ')}; ${INSTALL_HINT}.`);
  }
  if (process.env['RPO_REFERENCE_ALLOW_MISMATCH'] !== '1') {
    const want = pins();
    const wrong: string[] = [];
    for (const [mod, dist] of REFERENCE_PACKAGES) {
      const pin = want.get(dist.toLowerCase());
      const have = (versions[mod] ?? '').split('+')[0]; // torch reports e.g. 2.11.0+cu130
      if (pin !== undefined && have !== pin) wrong.push(`${dist} ${versions[mod]} (pinned ${pin})`);
    }
    if (wrong.length > 0) {
      throw new Error(
        `The Python reference ${python} has other versions than test/reference/requirements.txt: ` +
          `${wrong.join(', ')}; reinstall: ${python} -m pip install -r test/reference/requirements.txt ` +
          `(or set RPO_REFERENCE_ALLOW_MISMATCH=1).`,
      );
    }
  }
  checked = python;
  return python;
}

/**
 * Runs a reference script with the reference interpreter and returns its stdout; throws with
 * its stderr when it fails. `script` is a file name in test/reference/ or a path.
 * `runPython(script, args, stdin?)`, or `runPython(script, stdin)` for a script that takes no
 * arguments.
 */
export function runPython(script: string, args?: readonly string[] | string, stdin?: string): string {
  const python = referencePython();
  const file = path.isAbsolute(script) ? script : path.join(REFERENCE_DIR, script);
  if (!existsSync(file)) throw new Error(`No reference script ${file}`);
  let argv: readonly string[] = [];
  let input = stdin;
  if (typeof args === 'string') input = args;
  else if (args !== undefined) argv = args;
  try {
    return execFileSync(python, [file, ...argv], {
      encoding: 'utf8',
      input: input ?? '',
      timeout: 600_000, // generous: imports alone take ~8 s on a loaded 2-core machine
      maxBuffer: 256 * 1024 * 1024,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        ...process.env,
        PYTHONUNBUFFERED: '1',
        PYTHONDONTWRITEBYTECODE: '1',
        HF_HUB_OFFLINE: '1',
        HF_HUB_DISABLE_TELEMETRY: '1',
        TOKENIZERS_PARALLELISM: 'false',
      },
    });
  } catch (err) {
    const shown = [path.basename(file), ...argv].join(' ');
    throw new Error(`Python reference \`${shown}\` failed: ${describe(err)}`);
  }
}

/** One run of a reference script in runReferenceJobs: a file name in test/reference/ and its arguments. */
export interface ReferenceJob {
  script: string;
  args: string[];
}

/**
 * Runs the jobs in one Python process (run_jobs.py: each Python start costs seconds of imports)
 * and returns each job's last stdout line, parsed, in order.
 */
export function runReferenceJobs(jobs: readonly ReferenceJob[]): unknown[] {
  const stdout = runPython('run_jobs.py', [], JSON.stringify(jobs));
  const results = JSON.parse(stdout.trim().split('\n').at(-1) ?? '[]') as unknown[];
  if (results.length !== jobs.length) throw new Error(`run_jobs.py returned ${results.length} results for ${jobs.length} jobs`);
  return results;
}

/** A file of raw little-endian float32 values (as hf_logits.py writes). */
export function readFloat32(file: string): Float32Array {
  const buf = readFileSync(file);
  if (buf.byteLength % 4 !== 0) {
    throw new Error(`${file}: ${buf.byteLength} bytes is not a whole number of float32 values`);
  }
  const n = buf.byteLength / 4;
  const out = new Float32Array(n);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
}

function describe(err: unknown): string {
  if (err === null || typeof err !== 'object') return String(err);
  const e = err as { status?: number | null; signal?: string | null; stderr?: unknown; message?: string };
  const stderr = typeof e.stderr === 'string' ? e.stderr : Buffer.isBuffer(e.stderr) ? e.stderr.toString('utf8') : '';
  const how = e.signal ? `killed by ${e.signal}` : e.status !== undefined && e.status !== null ? `exit ${e.status}` : (e.message ?? 'error');
  const tail = stderr.trim().split('\n').slice(-40).join('\n');
  return tail.length > 0 ? `${how}\n${tail}` : how;
}
