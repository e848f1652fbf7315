// The Python reference itself (test/reference/): TRL's DPO loss against the formula written
// here, and HF transformers' logits for a tiny model built by hf_make_model.py.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readFloat32, referencePython, runPython } from '../reference/python.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'rpo-reference-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** −log σ(x), computed stably. */
function negLogSigmoid(x: number): number {
  return x >= 0 ? Math.log1p(Math.exp(-x)) : -x + Math.log1p(Math.exp(x));
}

interface TrlAnswer {
  losses: number[];
  chosen_rewards: number[];
  rejected_rewards: number[];
  trl: { version: string; function: string };
}

describe('Python reference', () => {
  it('the reference interpreter exists and has the pinned packages', () => {
    expect(referencePython()).toMatch(/python/);
  }, 120_000);

  it('trl_losses.py dpo equals −log σ(β((πw−πl)−(rw−rl))) per pair', () => {
    const beta = 0.3;
    // Pair 0 favours chosen, pair 1 favours rejected, pair 2 has a large margin (σ saturates).
    const pc = [-12.5, -40.25, -3.0];
    const pr = [-15.0, -38.0, -60.0];
    const rc = [-13.0, -39.0, -5.0];
    const rr = [-14.0, -39.5, -7.5];
    const out = JSON.parse(
      runPython('trl_losses.py', [], JSON.stringify({ loss: 'dpo', beta, policy_chosen: pc, policy_rejected: pr, ref_chosen: rc, ref_rejected: rr })),
    ) as TrlAnswer;
    expect(out.trl.function).toMatch(/DPOTrainer/);
    expect(out.losses).toHaveLength(3);
    const want = pc.map((_, i) => negLogSigmoid(beta * (pc[i]! - pr[i]! - (rc[i]! - rr[i]!))));
    // Hand values: pair 0 Δ = 2.5 − 1 = 1.5; pair 1 Δ = −2.25 − 0.5 = −2.75; pair 2 Δ = 57 − 2.5 = 54.5.
    expect(want[0]).toBeCloseTo(Math.log1p(Math.exp(-0.45)), 12);
    out.losses.forEach((x, i) => expect(x).toBeCloseTo(want[i]!, 12));
    expect(out.losses[1]!).toBeGreaterThan(Math.LN2); // rejected favoured: loss above log 2
    out.chosen_rewards.forEach((x, i) => expect(x).toBeCloseTo(beta * (pc[i]! - rc[i]!), 12));
    out.rejected_rewards.forEach((x, i) => expect(x).toBeCloseTo(beta * (pr[i]! - rr[i]!), 12));
  }, 180_000);

  it('hf_make_model.py + hf_logits.py give finite [rows, T, vocab] logits for a tiny llama', () => {
    const dir = path.join(tmp, 'llama');
    const made = JSON.parse(runPython('hf_make_model.py', ['--arch', 'llama', '--out', dir, '--seed', '7'])) as {
      config: { vocab_size: number; model_type: string };
    };
    expect(made.config.model_type).toBe('llama');
    const vocab = made.config.vocab_size;
    expect(vocab).toBe(256);

    const T = 12;
    const rowA = Array.from({ length: T }, (_, t) => (t * 37 + 5) % vocab);
    const rowB = [...rowA.slice(0, 7).reverse(), 0, 0, 0, 0, 0]; // right-padded to T
    const input = path.join(tmp, 'in.json');
    const outFile = path.join(tmp, 'logits.bin');
    writeFileSync(
      input,
      JSON.stringify({ input_ids: [rowA, rowB], attention_mask: [Array(T).fill(1), [...Array(7).fill(1), ...Array(5).fill(0)]] }),
    );
    const meta = JSON.parse(runPython('hf_logits.py', ['--model', dir, '--input', input, '--out', outFile])) as { shape: number[] };
    expect(meta.shape).toEqual([2, T, vocab]);
    const logits = readFloat32(outFile);
    expect(logits.length).toBe(2 * T * vocab);
    expect(logits.every(Number.isFinite)).toBe(true);
    // Random weights give non-degenerate logits: not all equal, and the two rows differ.
    let min = Infinity;
    let max = -Infinity;
    for (const x of logits) {
      min = Math.min(min, x);
      max = Math.max(max, x);
    }
    expect(max - min).toBeGreaterThan(0.5);
    expect(logits[0]).not.toBe(logits[T * vocab]);
  }, 300_000);

  it('a failing script throws with its stderr', () => {
    expect(() => runPython('trl_losses.py', [], JSON.stringify({ loss: 'kto', beta: 1, policy_chosen: [], policy_rejected: [] }))).toThrow(
      /unknown loss 'kto'/,
    );
  }, 180_000);
});
