// Prints the planner's table of how many 80 GB GPUs the seed's llama30b and llama65b need per
// precision and ZeRO stage (lib/commands/plan_devices.ts), from the compiled dist/ (run
// `npx tsc -p tsconfig.json` first). --write puts it into README.md between its markers;
// --check exits 1 when the README's copy differs (test/unit/plan_devices.test.ts checks the same).
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { README_BEGIN, README_END, readmeDeviceBlock } = await import(path.join(root, 'dist/lib/commands/plan_devices.js'));

const block = readmeDeviceBlock();
const mode = process.argv[2] ?? '';
if (mode === '') {
  console.log(block);
  process.exit(0);
}
if (mode !== '--write' && mode !== '--check') {
  console.error('usage: node scripts/plan-devices.mjs [--write | --check]');
  process.exit(2);
}
const readmePath = path.join(root, 'README.md');
const readme = readFileSync(readmePath, 'utf8');
const a = readme.indexOf(README_BEGIN);
const b = readme.indexOf(README_END);
if (a < 0 || b < a) {
  console.error(`plan-devices: README.md has no ${README_BEGIN} … ${README_END} block`);
  process.exit(1);
}
const updated = readme.slice(0, a) + block + readme.slice(b + README_END.length);
if (mode === '--check') {
  if (updated !== readme) {
    console.error('plan-devices: README.md\'s table differs from the planner\'s: run `node scripts/plan-devices.mjs --write`');
    process.exit(1);
  }
  process.exit(0);
}
writeFileSync(`${readmePath}.tmp`, updated);
renameSync(`${readmePath}.tmp`, readmePath);
console.log('plan-devices: README.md updated');
