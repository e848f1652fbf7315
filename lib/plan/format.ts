// Text and JSON forms of a plan (`rpo plan`).
import { GiB, type MicroStepEstimate, type Plan } from './estimate.js';

export interface PlanContext {
  loss: string;
  modelSource: string;
  architecture: string;
  /** Where the precision came from: "--precision", "config", "auto: CUDA" ... */
  precisionSource: string;
  device: 'cuda' | 'cpu';
  /** The largest micro-batch that fits (null: none fits, or no device size). */
  fitting: { pairs: number; gradientAccumulationSteps: number; required: number } | null;
}

export function gib(bytes: number): string {
  return (bytes / GiB).toFixed(2);
}

function billions(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${n}`;
}

const DTYPE_NAME: Record<number, string> = { 2: 'bf16', 4: 'fp32' };

/** A count as printed: whole, or to two decimals (a token budget's fractional pairs, lib/plan/estimate.ts's budgetPairs). */
const count = (n: number): string => (Number.isInteger(n) ? `${n}` : n.toFixed(2));
const plural = (n: number, word: string): string => `${count(n)} ${word}${n === 1 ? '' : 's'}`;

function rowsLine(step: MicroStepEstimate, groups: number): string {
  const [a, b] = step.forwards;
  const T = a!.seqLen;
  if (!b) return `${plural(a!.rows, 'row')} (${groups === 1 ? 'chosen' : 'chosen + rejected'}) × ${T} tokens`;
  return `${plural(a!.rows, 'response row')} + ${plural(b.rows, 'rationale row')} (a second forward) × ${T} tokens`;
}

/** The human-readable budget. */
export function formatPlan(p: Plan, ctx: PlanContext): string {
  const x = p.inputs;
  const s = x.shape;
  const bpp = p.bytesPerParam;
  const W = x.worldSize;
  // GiB, or MiB for a budget under 1 GiB (the tiny test models).
  const unit = p.required >= GiB ? { name: 'GiB', size: GiB } : { name: 'MiB', size: 2 ** 20 };
  const num = (b: number): string => (b / unit.size).toFixed(2);
  const lines: string[] = [];
  const row = (label: string, bytes: number | null, note = ''): void => {
    lines.push(`  ${label.padEnd(76)}${bytes === null ? '' : num(bytes).padStart(10)}${note}`.trimEnd());
  };
  const rule = p.zero.rule;
  const shard = (sharded: boolean): string => (sharded ? ` / ${W} ranks` : '');
  lines.push(`rpo plan: ${ctx.loss} on ${ctx.modelSource}`);
  lines.push(
    `  model      ${billions(p.parameters.total)} parameters (${ctx.architecture}: ${s.layers} layers, hidden ${s.hidden}, MLP ${s.intermediate}, ` +
      `${s.heads} heads / ${s.kvHeads} KV × ${s.headDim}, vocab ${s.vocab}${s.tied ? ', tied embeddings' : ''})`,
  );
  lines.push(
    `  precision  ${x.precision} (${ctx.precisionSource}), ${x.optimizer}, world size ${W}` +
      (W > 1 ? ` (ZeRO-${x.zeroStage}: ${rule.summary})` : ''),
  );
  const budget = x.tokensPerMicroBatch ?? null;
  lines.push(
    budget === null
      ? `  batch      ${x.batchSize} pairs per optimizer step = ${x.gradientAccumulationSteps} micro-step(s) × ${plural(W, 'device')} × ${plural(p.microPairs, 'pair')}; ` +
          `a micro-step runs ${rowsLine(p.step, x.groups)}`
      : `  batch      ${x.batchSize} pairs per optimizer step over ${plural(W, 'device')}, in micro-batches of ≤ ${budget} real tokens (model.tokens_per_micro_batch; ` +
          `a longer pair alone): a micro-step planned as ${Math.max(budget, x.groups * x.seqLen)} tokens in full rows, ${rowsLine(p.step, x.groups)} (padded rows of mixed lengths compute their padding on top)`,
  );
  lines.push(
    `  device     ${ctx.device === 'cuda' ? 'CUDA' : 'CPU'}${x.deviceBytes === null ? '' : `, ${gib(x.deviceBytes)} GiB`}; log-prob head chunk ${x.chunkTokens} tokens ` +
      `(${x.headPath === 'cuda-kernel' ? 'CUDA kernels' : 'chunked LibTorch path'})`,
  );
  lines.push('');
  row('per device', null, unit.name.padStart(10));
  row(`weights (${DTYPE_NAME[bpp.weights]}, ${bpp.weights} B/param${shard(rule.weights)})`, p.weights);
  row(`gradients (${DTYPE_NAME[bpp.grads]}, ${bpp.grads} B/param${shard(rule.gradients)})`, p.gradients);
  row(bpp.master > 0 ? `master weights (fp32, ${bpp.master} B/param${shard(rule.masterWeights)})` : 'master weights (none)', p.master);
  row(`optimizer state (${x.optimizer}: ${x.optimizer === 'RMSprop' ? '1 moment' : '2 moments'}, ${bpp.moments} B/param${shard(rule.optimizerState)})`, p.optimizerState);
  row(x.referenceBytes !== null ? `reference model (live, ${x.referenceBytes} B/param${shard(rule.weights)})` : 'reference model (none: not used by the loss, or precomputed)', p.reference);
  if (p.valueHead) {
    const v = p.valueHead;
    row(`value head (ppo: ${billions(v.parameters)} parameters, fp32 in every precision)`, null);
    row('  weights (4 B/param) + gradients (4 B/param)', v.weights + v.gradients);
    row(`  optimizer state (${x.optimizer}, ${v.optimizerState / v.parameters} B/param)`, v.optimizerState);
  }
  const pk = p.step.peak;
  if (rule.weights) row('gathered whole (ZeRO-3: 2 layers, one prefetched; embedding, norm, head)', p.zero.gathered);
  if (rule.gradients) row(`gradients awaiting their reduce (ZeRO-${rule.weights ? '3: 2 units, whole' : '2: 2 buckets'})`, p.zero.gradientsInFlight);
  row(`micro-step peak, activation checkpointing ${x.checkpointing ? 'on' : 'off'}`, pk.total);
  row(`  at: ${pk.name}`, null);
  row('  activations saved for backward, alive then', pk.saved);
  row(`  log-prob head (chunk ${x.chunkTokens} × vocab ${s.vocab} logits, weight-grad accumulator)`, pk.head);
  if (s.tied) row('  gradients waiting in autograd (tied embedding)', pk.gradientCopy);
  row('  a layer\'s backward or recomputation, or the reference forward', pk.other);
  if (p.optimizerStepTransient > pk.total) row('optimizer step temporaries (larger than the micro-step)', p.optimizerStepTransient);
  row('total', p.total);
  const h = x.headroom;
  const head = [
    h.context > 0 ? `CUDA context ${h.context / GiB} GiB` : '',
    `${Math.round(h.fragmentation * 100)}% fragmentation`,
    W > 1 && h.communication > 0 ? `NCCL ${h.communication / GiB} GiB` : '',
  ]
    .filter(Boolean)
    .join(' + ');
  row(`headroom (${head})`, p.headroomBytes);
  row('required', p.required);
  lines.push('');
  if (p.fits === null) {
    lines.push('  no --device-memory given: no verdict');
  } else if (p.fits) {
    lines.push(`  fits in ${gib(x.deviceBytes!)} GiB (${gib(x.deviceBytes! - p.required)} GiB to spare)`);
  } else {
    lines.push(`  does NOT fit in ${gib(x.deviceBytes!)} GiB (short by ${gib(p.required - x.deviceBytes!)} GiB)`);
  }
  if (p.fits !== null) {
    if (ctx.fitting) {
      if (ctx.fitting.gradientAccumulationSteps !== x.gradientAccumulationSteps || !p.fits) {
        lines.push(
          `  largest micro-batch that fits: ${ctx.fitting.pairs} pair(s) per device (model.gradient_accumulation_steps=${ctx.fitting.gradientAccumulationSteps}), ` +
            `${gib(ctx.fitting.required)} GiB required`,
        );
      }
    } else {
      lines.push(`  no micro-batch fits, not even 1 pair per device (of which weights, gradients, master weights, optimizer state, reference${p.valueHead ? ' and value head' : ''}: ${gib(p.persistent)} GiB${p.zeroTransient > 0 ? `; held whole during a micro-step: ${gib(p.zeroTransient)} GiB` : ''})`);
    }
  }
  lines.push('');
  row(`detail (part of the micro-step peak where it happens, not added again)`, null, unit.name.padStart(10));
  const on = x.checkpointing ? p.step : p.stepOther;
  const off = x.checkpointing ? p.stepOther : p.step;
  row(`activations saved for backward: ${rowsLine(p.step, x.groups)}`, null);
  row(`  activation checkpointing on${x.checkpointing ? ' (used)' : ''}`, on.savedTotal, `   micro-step peak ${num(on.peak.total)}`);
  row(`  activation checkpointing off${x.checkpointing ? '' : ' (used)'}`, off.savedTotal, `   micro-step peak ${num(off.peak.total)}`);
  row(`log-prob head: forward chunk (${Math.min(x.chunkTokens, p.step.forwards[0]!.labels)} × ${s.vocab} logits)`, p.step.head.forward);
  row('  backward (chunk, weight-gradient accumulator, grad of hidden states)', p.step.head.backward);
  return lines.join('\n');
}

/** The plan as JSON-ready numbers (bytes). */
export function planJson(p: Plan, ctx: PlanContext): Record<string, unknown> {
  const phase = (e: MicroStepEstimate) => ({
    peak: e.peak,
    savedTotal: e.savedTotal,
    forwards: e.forwards,
    phases: e.phases,
  });
  const x = p.inputs;
  return {
    loss: ctx.loss,
    model: { source: ctx.modelSource, architecture: ctx.architecture, shape: x.shape, parameters: p.parameters },
    precision: x.precision,
    precisionSource: ctx.precisionSource,
    optimizer: x.optimizer,
    device: ctx.device,
    worldSize: x.worldSize,
    zeroStage: x.zeroStage,
    batchSize: x.batchSize,
    gradientAccumulationSteps: x.gradientAccumulationSteps,
    tokensPerMicroBatch: x.tokensPerMicroBatch ?? null,
    microPairs: p.microPairs,
    groups: x.groups,
    seqLen: x.seqLen,
    chunkTokens: x.chunkTokens,
    headPath: x.headPath,
    activationCheckpointing: x.checkpointing,
    bytesPerParam: p.bytesPerParam,
    bytes: {
      weights: p.weights,
      gradients: p.gradients,
      master: p.master,
      optimizerState: p.optimizerState,
      reference: p.reference,
      gathered: p.zero.gathered,
      gradientsInFlight: p.zero.gradientsInFlight,
      valueHead: p.valueHead,
      persistent: p.persistent,
      microStepPeak: p.step.peak.total,
      optimizerStepTransient: p.optimizerStepTransient,
      total: p.total,
      headroom: p.headroomBytes,
      required: p.required,
      device: x.deviceBytes,
    },
    headroom: x.headroom,
    microStep: phase(p.step),
    microStepOtherCheckpointing: phase(p.stepOther),
    fits: p.fits,
    largestFittingMicroBatch: ctx.fitting,
  };
}

export interface TableRow {
  precision: string;
  worldSize: number;
  checkpointing: boolean;
  plan: Plan;
  fitting: { pairs: number; gradientAccumulationSteps: number; required: number } | null;
}

/** A markdown table over precisions × world sizes × checkpointing (`rpo plan --table`). */
export function formatTable(rows: TableRow[]): string {
  const out: string[] = [];
  const first = rows[0]!.plan;
  const micro = first.inputs.gradientAccumulationSteps;
  const budget = first.inputs.tokensPerMicroBatch ?? null;
  const at = budget !== null ? `tokens_per_micro_batch=${budget}` : micro === 1 ? 'the full batch' : `gradient_accumulation_steps=${micro}`;
  out.push(
    `| precision | world size | checkpointing | weights + grads + master + optimizer (+ reference, value head${first.inputs.zeroStage >= 2 ? '; + what ZeRO-2/3 hold whole during a micro-step' : ''}) | micro-step peak at ${at} | required | fits | largest micro-batch that fits (pairs per device, accumulation steps) |`,
  );
  out.push('|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const p = r.plan;
    const fit = r.fitting ? `${r.fitting.pairs} (gas ${r.fitting.gradientAccumulationSteps}): ${gib(r.fitting.required)} GiB` : 'none: not even 1 pair';
    out.push(
      `| ${r.precision} | ${r.worldSize} | ${r.checkpointing ? 'on' : 'off'} | ${gib(p.persistent + p.zeroTransient)} | ${gib(p.step.peak.total)} (${count(p.microPairs)} pairs) | ${gib(p.required)} | ${p.fits === null ? '-' : p.fits ? 'yes' : 'no'} | ${fit} |`,
    );
  }
  return out.join('\n');
}
