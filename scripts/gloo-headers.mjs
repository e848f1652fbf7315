// gloo's headers, which data parallelism (native/parallel, `rpo launch`) is compiled against:
// pip's torch carries gloo's code inside libtorch_cpu but not the headers ProcessGroupGloo.hpp
// includes. Found in this order (RPO_GLOO_INCLUDE=none: none at all): $RPO_GLOO_INCLUDE, the system (/usr/include, /usr/local/include),
// the project's own copy (.cache/gloo, unpacked from Debian's libgloo-dev without root by
// ensureGlooHeaders). Only node's own modules are used here: this runs on a bare clone.
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { hasApt, root, unpackDebs } from './debs.mjs';

const HEADER = path.join('gloo', 'context.h');
const projectCopy = path.join(root, '.cache', 'gloo', 'root');
export const projectGlooInclude = path.join(projectCopy, 'usr', 'include');

/** The one step to take where the setup cannot fetch them itself. */
export const GLOO_HOW_TO = 'install gloo\'s headers (Debian/Ubuntu: `apt-get install libgloo-dev`; elsewhere build gloo ' +
  '(github.com/pytorch/gloo) and set RPO_GLOO_INCLUDE=<its include dir>), then `npm run build:native`';

/** RPO_GLOO_INCLUDE=none: build without data parallelism, whatever the system has. */
export const glooOff = () => process.env.RPO_GLOO_INCLUDE === 'none';

/** The include directory holding gloo/context.h, or null. */
export function findGlooInclude() {
  if (glooOff()) return null;
  const candidates = [process.env.RPO_GLOO_INCLUDE, '/usr/include', '/usr/local/include', projectGlooInclude];
  return candidates.find((d) => d && existsSync(path.join(d, HEADER))) ?? null;
}

/**
 * The gloo include directory, fetched into the project when the system has none and apt is
 * there (Debian's libgloo-dev, unpacked with `dpkg -x`: no root). Null, with a message naming the
 * one step to take, where neither works: the addon then builds without data parallelism.
 * @param {(m: string) => void} say
 */
export function ensureGlooHeaders(say) {
  const found = findGlooInclude();
  if (found || glooOff()) return found;
  if (!hasApt()) {
    say(`no gloo headers: the addon builds without data parallelism (no \`rpo launch\`). To have it: ${GLOO_HOW_TO}`);
    return null;
  }
  say('no gloo headers on this system: unpacking Debian\'s libgloo-dev into .cache/gloo (no root needed)');
  const started = Date.now();
  const r = unpackDebs(['libgloo-dev'], projectCopy, say);
  if ('error' in r || !existsSync(path.join(projectGlooInclude, HEADER))) {
    say(`could not fetch gloo's headers (${'error' in r ? r.error : `no ${HEADER} in libgloo-dev`}): the addon builds without data parallelism. To have it: ${GLOO_HOW_TO}`);
    return null;
  }
  writeFileSync(path.join(projectCopy, '..', 'packages.txt'), r.packages.join('\n') + '\n');
  say(`gloo headers in ${path.relative(root, projectGlooInclude)} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  return projectGlooInclude;
}
