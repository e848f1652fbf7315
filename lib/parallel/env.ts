// The torchrun environment every rank reads (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT): set by `rpo launch`, torchrun, or a SLURM / Kubernetes wrapper.

import { MAX_ZERO_STAGE, ZERO_STAGES, type ZeroStage } from './zero_stages.js';

/** The ZeRO stages `rpo launch --zero` and RPO_ZERO take: declared once, in zero_stages.ts. */
export type { ZeroStage };

export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  /** RPO_DIST_TIMEOUT_S (default 300): rendezvous and collectives give up after it. */
  timeoutMs: number;
  /** RPO_ZERO (a stage of ZERO_STAGES, default 0): 1 shards the optimizer state over the ranks (ZeRO stage 1), 2 the gradients too, 3 the parameters too. */
  zero: ZeroStage;
}

function intVar(env: NodeJS.ProcessEnv, name: string, min: number, max: number, fallback?: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') {
    if (fallback !== undefined) return fallback;
    throw new Error(`distributed: ${name} is not set (WORLD_SIZE is, so RANK, MASTER_ADDR and MASTER_PORT must be too)`);
  }
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`distributed: ${name}=${raw} is not a whole number in [${min}, ${max}]`);
  return n;
}

/** The job this process is a rank of, or null (WORLD_SIZE unset or 1: one process, no group). */
export function distEnv(env: NodeJS.ProcessEnv = process.env): DistEnv | null {
  if (env.WORLD_SIZE === undefined || env.WORLD_SIZE.trim() === '') return null;
  const worldSize = intVar(env, 'WORLD_SIZE', 1, 1 << 20);
  if (worldSize === 1) return null;
  const rank = intVar(env, 'RANK', 0, worldSize - 1);
  const localWorldSize = intVar(env, 'LOCAL_WORLD_SIZE', 1, worldSize, worldSize);
  const localRank = intVar(env, 'LOCAL_RANK', 0, localWorldSize - 1, rank % localWorldSize);
  const masterAddr = env.MASTER_ADDR?.trim();
  if (!masterAddr) throw new Error('distributed: MASTER_ADDR is not set (the address of the machine running rank 0)');
  const masterPort = intVar(env, 'MASTER_PORT', 1, 65535);
  const timeoutS = env.RPO_DIST_TIMEOUT_S?.trim() ? Number(env.RPO_DIST_TIMEOUT_S) : 300;
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw new Error(`distributed: RPO_DIST_TIMEOUT_S=${env.RPO_DIST_TIMEOUT_S} is not a positive number of seconds`);
  const zero = env.RPO_ZERO?.trim() ? intVar(env, 'RPO_ZERO', ZERO_STAGES[0], MAX_ZERO_STAGE) : 0;
  return { rank, worldSize, localRank, localWorldSize, masterAddr, masterPort, timeoutMs: Math.round(timeoutS * 1000), zero: zero as ZeroStage };
}
