// The memory budget of a LoRA run (docs/lora.md), from the full fine-tuning plan of the same
// run: the base is frozen (weights only, in the policy's dtype, no gradients, no optimizer state),
// the adapters and their gradients and AdamW moments are fp32 (4 + 4 + 8 bytes per adapter
// parameter), and there is no reference model (the base with the adapters off is one).
//
// Activations: the full fine-tuning micro-step's, without the gradients that wait in autograd for
// the frozen weights (none exist), plus what each adapted linear saves for backward: its input in
// fp32 (a copy when the base is bf16; the same tensor in fp32) and A x (rows × r, fp32). Like the
// full plan's, an upper bound: the log-prob head's weight-gradient accumulator is counted though
// a frozen head needs none.
import type { ModelShape, Plan } from './estimate.js';

export interface LoraPlanInputs {
  r: number;
  /** Module names, or ['all-linear']. */
  targetModules: readonly string[];
}

/** [in, out] of each Llama-family linear by HF name, for one layer. */
export function layerLinears(s: ModelShape): Record<string, [number, number]> {
  const q = s.heads * s.headDim;
  const kv = s.kvHeads * s.headDim;
  return {
    q_proj: [s.hidden, q],
    k_proj: [s.hidden, kv],
    v_proj: [s.hidden, kv],
    o_proj: [q, s.hidden],
    gate_proj: [s.hidden, s.intermediate],
    up_proj: [s.hidden, s.intermediate],
    down_proj: [s.intermediate, s.hidden],
  };
}

function targeted(s: ModelShape, targets: readonly string[]): Array<[number, number]> {
  const all = layerLinears(s);
  const names = targets.length === 1 && targets[0] === 'all-linear' ? Object.keys(all) : targets;
  return names.map((n) => {
    const io = all[n];
    if (!io) throw new RangeError(`lora.target_modules: "${n}" is not a linear of this model (${Object.keys(all).join(', ')}, or all-linear)`);
    return io;
  });
}

/** Adapter parameters: r · (in + out) per adapted linear, over every layer. */
export function loraParameterCount(s: ModelShape, lora: LoraPlanInputs): number {
  return s.layers * targeted(s, lora.targetModules).reduce((n, [i, o]) => n + lora.r * (i + o), 0);
}

export interface LoraPlan {
  adapterParameters: number;
  /** The frozen base's weights. */
  baseWeights: number;
  /** Adapters + their gradients + AdamW's two moments, fp32. */
  adapterState: number;
  /** The micro-step's peak above the persistent buffers. */
  stepPeak: number;
  total: number;
  required: number;
  fits: boolean | null;
}

/**
 * The LoRA budget for the run `full` plans (computed with no live reference). `baseBytes`: bytes
 * per base weight (2 under the bf16 precisions, 4 under fp32).
 */
export function estimateLoraPlan(full: Plan, lora: LoraPlanInputs, baseBytes: number): LoraPlan {
  const x = full.inputs;
  const s = x.shape;
  const L = loraParameterCount(s, lora);
  const baseWeights = full.parameters.total * baseBytes;
  const adapterState = L * (4 + 4 + 8);
  // Per token and adapted linear: the fp32 input and A x. Without checkpointing every layer of
  // every forward keeps them; with it, one layer of the largest forward (its recompute).
  const perToken = targeted(s, lora.targetModules).reduce((n, [i]) => n + 4 * (i + lora.r), 0);
  const tokens = full.step.forwards.map((f) => f.rows * f.seqLen);
  const adapterActivations = x.checkpointing
    ? Math.max(...tokens) * perToken
    : tokens.reduce((a, b) => a + b, 0) * perToken * s.layers;
  const stepPeak = full.step.peak.total - full.step.peak.gradientCopy + adapterActivations;
  const total = baseWeights + adapterState + stepPeak;
  const headroom = x.headroom.context + x.headroom.fragmentation * total;
  const required = total + headroom;
  return {
    adapterParameters: L,
    baseWeights,
    adapterState,
    stepPeak,
    total,
    required,
    fits: x.deviceBytes === null ? null : required <= x.deviceBytes,
  };
}

/** The LoRA lines `rpo plan` prints after the full fine-tuning budget. */
export function formatLoraPlan(p: LoraPlan, full: Plan, lora: LoraPlanInputs, baseDtype: string): string {
  const gib = (b: number) => (b / 2 ** 30).toFixed(2).padStart(10);
  const pct = ((100 * p.adapterParameters) / full.parameters.total).toFixed(2);
  const lines = [
    '',
    `LoRA r=${lora.r} on ${lora.targetModules.join(', ')}: ${p.adapterParameters.toLocaleString('en-US')} adapter parameters (${pct}% of the model); no reference model (the base with the adapters off)`,
    `  frozen base weights (${baseDtype})`.padEnd(78) + gib(p.baseWeights),
    `  adapters, their gradients and AdamW moments (fp32, 16 B/param)`.padEnd(78) + gib(p.adapterState),
    `  micro-step peak (activation checkpointing ${full.inputs.checkpointing ? 'on' : 'off'})`.padEnd(78) + gib(p.stepPeak),
    `  total`.padEnd(78) + gib(p.total),
    `  required with headroom`.padEnd(78) + gib(p.required) + (p.fits === null ? '' : p.fits ? '  fits' : '  does NOT fit'),
  ];
  return lines.join('\n');
}
