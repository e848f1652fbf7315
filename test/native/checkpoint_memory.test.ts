// Activation checkpointing must lower peak memory, not just keep gradients equal (that is
// trainer.test.ts). Each variant runs in a fresh process so its peak RSS is its own.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'peak_step.ts');

function peak(mode: 'on' | 'off'): number {
  const out = execFileSync(process.execPath, ['--import', 'tsx', script, mode], { encoding: 'utf8' });
  return (JSON.parse(out.trim().split('\n').pop()!) as { peakRssBytes: number }).peakRssBytes;
}

describe.skipIf(process.platform !== 'linux')('activation checkpointing memory', () => {
  it('lowers the peak RSS of a train step on an activation-heavy model', () => {
    const off = peak('off');
    const on = peak('on');
    // ~70 MB of activations per layer x 8 layers without it; one layer's worth with it
    expect(off - on).toBeGreaterThan(200 * 2 ** 20);
  });
});
