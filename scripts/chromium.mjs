// A headless Chromium for the report render checks (scripts/render-report.mjs and the tests that
// screenshot a report): the system's when there is one, else Debian's chromium-headless-shell and
// the libraries it needs that the system lacks, unpacked into .cache/chromium without root
// (debs.mjs). Only node's own modules are used here: `npm test`'s setup runs it before the tests.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

import { hasApt, root, unpackDebs } from './debs.mjs';

const projectCopy = path.join(root, '.cache', 'chromium', 'root');
/** The headless shell inside the project's copy (the package's /usr/bin entry is a link to it). */
export const projectChromium = path.join(projectCopy, 'usr', 'lib', 'chromium', 'chromium-headless-shell');

/** The one step to take where the setup cannot fetch it itself. */
export const CHROMIUM_HOW_TO = 'install Chromium (Debian/Ubuntu: `apt-get install chromium`) or set CHROMIUM=/path/to/chrome';

/** $CHROMIUM, else a system Chromium, else the project's copy; null when there is none. */
export function findChromium() {
  const candidates = [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/chromium-headless-shell', projectChromium];
  return candidates.find((c) => c && existsSync(c)) ?? null;
}

/** Every directory under `dir` holding a shared library (usr/lib/x86_64-linux-gnu, its pulseaudio/, ...). */
function libraryDirs(dir) {
  const out = [];
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop();
    const entries = readdirSync(d, { withFileTypes: true });
    if (entries.some((e) => !e.isDirectory() && /\.so(\.|$)/.test(e.name))) out.push(d);
    for (const e of entries) if (e.isDirectory()) stack.push(path.join(d, e.name));
  }
  return out.sort();
}

/**
 * The environment the project's copy runs in: its own libraries first (LD_LIBRARY_PATH), and its
 * fontconfig configuration where the system has none. The system's Chromium needs nothing.
 * @param {string} chromium
 */
export function chromiumEnv(chromium, env = process.env) {
  if (chromium !== projectChromium) return env;
  const libs = libraryDirs(projectCopy);
  const out = { ...env, LD_LIBRARY_PATH: [...libs, env.LD_LIBRARY_PATH].filter(Boolean).join(':') };
  const fonts = path.join(projectCopy, 'etc', 'fonts');
  if (!existsSync('/etc/fonts/fonts.conf') && existsSync(path.join(fonts, 'fonts.conf'))) out.FONTCONFIG_PATH = fonts;
  return out;
}

/**
 * A Chromium for the render checks: found, or fetched into .cache/chromium (Debian/Ubuntu, no
 * root). Null, with a message naming the one step to take, where neither works.
 * @param {(m: string) => void} say
 */
export function ensureChromium(say) {
  const found = findChromium();
  if (found) return found;
  if (!hasApt()) {
    say(`no Chromium: the report render checks will skip. To run them: ${CHROMIUM_HOW_TO}`);
    return null;
  }
  say('no Chromium on this system: unpacking Debian\'s chromium-headless-shell and the libraries it needs into .cache/chromium (no root needed)');
  const started = Date.now();
  const r = unpackDebs(['chromium-headless-shell'], projectCopy, say, { dependencies: true });
  if ('error' in r || !existsSync(projectChromium)) {
    say(`could not fetch Chromium (${'error' in r ? r.error : `no ${path.relative(projectCopy, projectChromium)} in chromium-headless-shell`}): the report render checks will skip. To run them: ${CHROMIUM_HOW_TO}`);
    return null;
  }
  say(`Chromium in ${path.relative(root, projectChromium)} (${r.packages.length} packages, ${((Date.now() - started) / 1000).toFixed(0)} s)`);
  return projectChromium;
}
