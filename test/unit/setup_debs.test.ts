// The setup's own copies of what pip and npm don't ship (issue 22): Debian packages fetched with
// `apt-get download` and unpacked with `dpkg -x`, no root (scripts/debs.mjs). Real apt, real
// packages: gloo's headers unpacked when apt's package lists are empty (a fresh container), the
// private lists fetched beside the copy and removed after.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

// @ts-expect-error: a plain .mjs script, no type declarations
import { hasApt, unpackDebs } from '../../scripts/debs.mjs';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'rpo-debs-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const apt = hasApt() as boolean;
if (!apt) console.warn('setup_debs.test.ts: skipping: no apt-get and dpkg on this machine (the setup then names the one step to take)');

describe.skipIf(!apt)('unpackDebs', () => {
  it("unpacks libgloo-dev's headers with empty apt package lists, fetching the lists privately and removing them after", () => {
    // Empty system lists, as on a fresh container: APT_CONFIG points apt at an empty directory.
    const empty = path.join(tmp, 'empty-lists');
    mkdirSync(path.join(empty, 'partial'), { recursive: true });
    const conf = path.join(tmp, 'apt.conf');
    writeFileSync(conf, `Dir::State::Lists "${empty}";\n`);
    const before = spawnSync('apt-get', ['-q', '-s', 'install', 'libgloo-dev'], { encoding: 'utf8', env: { ...process.env, APT_CONFIG: conf } });
    expect(before.status, 'apt with the empty lists knows no libgloo-dev').not.toBe(0);

    const said: string[] = [];
    const dest = path.join(tmp, 'gloo', 'root');
    const saved = process.env.APT_CONFIG;
    process.env.APT_CONFIG = conf;
    let r: { packages?: string[]; error?: string };
    try {
      r = unpackDebs(['libgloo-dev'], dest, (m: string) => said.push(m)) as typeof r;
    } finally {
      if (saved === undefined) delete process.env.APT_CONFIG;
      else process.env.APT_CONFIG = saved;
    }
    expect(r.error).toBeUndefined();
    expect(r.packages).toEqual(['libgloo-dev']);
    expect(said.some((m) => m.includes("apt's package lists don't have what is needed"))).toBe(true);
    expect(existsSync(path.join(dest, 'usr', 'include', 'gloo', 'context.h'))).toBe(true);
    expect(existsSync(path.join(dest, 'usr', 'include', 'gloo', 'transport', 'tcp', 'device.h'))).toBe(true);
    // only the unpacked tree is left: no .debs, no private lists
    expect(readdirSync(path.join(tmp, 'gloo'))).toEqual(['root']);
  }, 120_000);
});
