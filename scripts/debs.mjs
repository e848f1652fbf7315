// Debian/Ubuntu packages unpacked into the project, without root: what the setup uses for what
// pip and npm don't ship (gloo's headers; a headless Chromium for the report checks).
//
// `apt-get download` + `dpkg -x` need no root. apt's package lists may be empty (a fresh
// container) and a non-root user cannot update the system's, so when the system lists don't know
// a package, the lists are fetched into a private directory beside the unpacked tree and used
// from there.
// Only node's own modules are used here: this runs on a bare clone, before `npm install`.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Whether this system has apt-get and dpkg (Debian, Ubuntu and their derivatives). */
export function hasApt() {
  return ['apt-get', 'dpkg'].every((cmd) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0);
}

function privateOptions(privateApt) {
  return [
    '-o', `Dir::State::Lists=${path.join(privateApt, 'lists')}`,
    '-o', `Dir::Cache=${path.join(privateApt, 'cache')}`,
    '-o', 'Debug::NoLocking=1',
  ];
}

function apt(args, opts = {}) {
  return spawnSync('apt-get', ['-q', ...args], { encoding: 'utf8', ...opts });
}

/** The packages `apt-get install --no-install-recommends` would add for `names` (none when all are installed). */
function simulate(names, options) {
  const r = apt([...options, '-s', 'install', '--no-install-recommends', ...names]);
  if (r.status !== 0) return null;
  return r.stdout.split('\n').filter((l) => l.startsWith('Inst ')).map((l) => l.split(' ')[1]);
}

/** Fills the private package lists (<privateApt>/lists) from the system's apt sources. */
function updatePrivateLists(privateApt, say) {
  const lists = path.join(privateApt, 'lists');
  for (const d of [path.join(lists, 'partial'), path.join(privateApt, 'cache', 'archives', 'partial')]) mkdirSync(d, { recursive: true });
  say(`apt's package lists don't have what is needed: fetching them into ${path.relative(root, lists)} (no root needed)`);
  const r = apt([...privateOptions(privateApt), 'update']);
  if (r.status !== 0) return `apt-get update into ${lists} failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' / ')}`;
  return null;
}

/**
 * Downloads `names` (and, with `dependencies`, every package they need that the system lacks) and
 * unpacks them all into `dest` (a tree like /: dest/usr/include, dest/usr/lib, ...). Returns
 * `{ packages }` or `{ error }` saying what failed.
 * @param {string[]} names @param {string} dest @param {(m: string) => void} say
 * @param {{ dependencies?: boolean }} [opts]
 */
export function unpackDebs(names, dest, say, opts = {}) {
  // Beside dest: the downloaded .debs and, when needed, apt's private lists; both removed after.
  const debs = path.join(path.dirname(dest), 'debs');
  const privateApt = path.join(path.dirname(dest), 'apt');
  let options = [];
  let packages = simulate(names, options);
  if (packages === null) {
    const err = updatePrivateLists(privateApt, say);
    if (err) return { error: err };
    options = privateOptions(privateApt);
    packages = simulate(names, options);
    if (packages === null) return { error: `apt knows no package ${names.join(', ')} (even after updating its lists)` };
  }
  // The named packages are wanted even when the system has them installed (their files may be
  // what is missing, e.g. headers under another prefix): simulate lists them only when absent.
  if (!opts.dependencies) packages = [];
  for (const n of names) if (!packages.includes(n)) packages.push(n);
  rmSync(debs, { recursive: true, force: true });
  mkdirSync(debs, { recursive: true });
  say(`apt-get download ${packages.join(' ')}`);
  const dl = apt([...options, 'download', ...packages], { cwd: debs });
  if (dl.status !== 0) return { error: `apt-get download failed: ${(dl.stderr || dl.stdout).trim().split('\n').slice(-3).join(' / ')}` };
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dest, { recursive: true });
  for (const f of readdirSync(debs).filter((f) => f.endsWith('.deb'))) {
    const x = spawnSync('dpkg', ['-x', path.join(debs, f), dest], { encoding: 'utf8' });
    if (x.status !== 0) return { error: `dpkg -x ${f} failed: ${x.stderr.trim()}` };
  }
  rmSync(debs, { recursive: true, force: true });
  rmSync(privateApt, { recursive: true, force: true }); // 26 MB of lists, fetched again when needed
  return { packages };
}

