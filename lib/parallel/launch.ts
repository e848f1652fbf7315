// `rpo launch`: starts this machine's ranks of a data-parallel job, one Node process each, with
// the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT), and watches them: Ctrl-C is passed on to every rank once (they agree to stop
// after the current step, rank 0 saves, all exit 130); a rank that dies is named, and the
// others, whose next collective fails, are killed if they have not exited within a grace period.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import os from 'node:os';

import { UsageError } from '../util/usage_error.js';
import type { ZeroStage } from './env.js';
import { MAX_ZERO_STAGE, ZERO_STAGES } from './zero_stages.js';

export interface LaunchOptions {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  /** 0: a free port on this machine (one node only). */
  masterPort: number;
  /** The rpo command each rank runs, e.g. ['train', 'loss=dpo', ...]. */
  command: string[];
  /** Seconds the other ranks get to exit after one failed (default 30). */
  graceSeconds: number;
  /** ZeRO stage: 1 shards the optimizer state over the ranks, 2 the gradients too, 3 the parameters too (RPO_ZERO for each rank). */
  zero: ZeroStage;
}

export class LaunchUsageError extends UsageError {
  override readonly name: string = 'LaunchUsageError';
}

function intFlag(name: string, raw: string | undefined, min: number, max: number): number {
  const n = Number(raw);
  if (raw === undefined || raw.trim() === '' || !Number.isInteger(n) || n < min || n > max)
    throw new LaunchUsageError(`rpo launch: ${name} needs a whole number in [${min}, ${max}], not ${raw === undefined ? 'nothing' : JSON.stringify(raw)}`);
  return n;
}

/** `--nproc-per-node 2 --nnodes 1 ... [--] train overrides...` (flags as --k v or --k=v; underscores allowed). */
export function parseLaunchArgs(args: readonly string[], env: NodeJS.ProcessEnv = process.env): LaunchOptions {
  const o: LaunchOptions = { nprocPerNode: 1, nnodes: 1, nodeRank: 0, masterAddr: env.MASTER_ADDR || '127.0.0.1', masterPort: env.MASTER_PORT ? intFlag('MASTER_PORT', env.MASTER_PORT, 1, 65535) : 0, command: [], graceSeconds: 30, zero: 0 };
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      i += 1;
      break;
    }
    if (!a.startsWith('--')) break;
    const eq = a.indexOf('=');
    const name = (eq < 0 ? a.slice(2) : a.slice(2, eq)).replace(/_/g, '-');
    const value = eq < 0 ? args[++i] : a.slice(eq + 1);
    switch (name) {
      case 'nproc-per-node': o.nprocPerNode = intFlag('--nproc-per-node', value, 1, 1024); break;
      case 'nnodes': o.nnodes = intFlag('--nnodes', value, 1, 1 << 16); break;
      case 'node-rank': o.nodeRank = intFlag('--node-rank', value, 0, (1 << 16) - 1); break;
      case 'master-addr':
        if (!value) throw new LaunchUsageError('rpo launch: --master-addr needs an address');
        o.masterAddr = value;
        break;
      case 'master-port': o.masterPort = intFlag('--master-port', value, 1, 65535); break;
      case 'grace': o.graceSeconds = intFlag('--grace', value, 1, 86400); break;
      case 'zero': o.zero = intFlag('--zero', value, ZERO_STAGES[0], MAX_ZERO_STAGE) as ZeroStage; break;
      default: throw new LaunchUsageError(`rpo launch: unknown option --${name} (options: --nproc-per-node --nnodes --node-rank --master-addr --master-port --grace --zero)`);
    }
  }
  o.command = args.slice(i);
  if (o.command[0] !== 'train') throw new LaunchUsageError('rpo launch: the command to run is `train ...` (e.g. rpo launch --nproc-per-node 2 -- train loss=dpo ...)');
  if (o.nodeRank >= o.nnodes) throw new LaunchUsageError(`rpo launch: --node-rank ${o.nodeRank} is not below --nnodes ${o.nnodes}`);
  if (o.nnodes > 1 && o.masterPort === 0) throw new LaunchUsageError('rpo launch: several machines need --master-port (the same on each), and --master-addr the address of the machine with --node-rank 0');
  return o;
}

/** A TCP port free on this machine now (for a one-machine job). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** The environment of local rank `local`. */
export function rankEnv(options: LaunchOptions, local: number, port: number, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...base,
    RANK: String(options.nodeRank * options.nprocPerNode + local),
    WORLD_SIZE: String(options.nnodes * options.nprocPerNode),
    LOCAL_RANK: String(local),
    LOCAL_WORLD_SIZE: String(options.nprocPerNode),
    GROUP_RANK: String(options.nodeRank),
    MASTER_ADDR: options.masterAddr,
    MASTER_PORT: String(port),
    ...(options.zero ? { RPO_ZERO: String(options.zero) } : {}),
  };
  // CPU ranks share the cores: each gets its share unless the threads were chosen.
  if (!base.RPO_NUM_THREADS && !base.OMP_NUM_THREADS) {
    const cores = Math.max(1, Math.floor(os.availableParallelism() / options.nprocPerNode));
    env.RPO_NUM_THREADS = String(cores);
  }
  return env;
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `was killed by ${signal}` : `exited with code ${code}`;
}

/** The exit code of a rank that refused a usage or config error (lib/exit.ts EXIT.usage). */
const USAGE_EXIT = 2;

/**
 * The launcher's exit code from its ranks' (in the order they exited): 2 when any rank refused a
 * usage or config error (the others then fail on their next collective, in an order that depends
 * on timing: the code must not), else the code of the first rank that failed (1 for a signal),
 * 0 when all succeeded, 130 when all stopped on an interrupt.
 */
export function launchExitCode(exits: readonly { code: number | null; signal: NodeJS.Signals | null }[]): number {
  if (exits.some((e) => e.code === USAGE_EXIT)) return USAGE_EXIT;
  const failed = exits.find((e) => (e.code !== 0 && e.code !== 130) || e.signal);
  if (failed) return failed.code ?? 1;
  return exits.every((e) => e.code === 0) ? 0 : 130;
}

/** Runs the ranks of this machine and returns the launcher's exit code (launchExitCode). */
export async function launch(options: LaunchOptions, log: (line: string) => void = (l) => console.error(l)): Promise<number> {
  const port = options.masterPort || (await freePort());
  const world = options.nnodes * options.nprocPerNode;
  log(`rpo launch: ${options.nprocPerNode} rank(s) on this machine (node ${options.nodeRank} of ${options.nnodes}, world size ${world}), rendezvous at ${options.masterAddr}:${port}`);
  // Each rank runs this same CLI (node, its flags such as --import tsx, the entry script).
  const entry = process.argv[1]!;
  const children: { rank: number; child: ChildProcess; done: boolean; code: number | null; signal: NodeJS.Signals | null }[] = [];
  // In the order the ranks exited.
  const exits: { code: number | null; signal: NodeJS.Signals | null }[] = [];
  let firstFailure: { rank: number } | null = null;
  let killTimer: NodeJS.Timeout | null = null;

  const exited = new Promise<void>((resolveAll) => {
    let remaining = options.nprocPerNode;
    for (let local = 0; local < options.nprocPerNode; local++) {
      const rank = options.nodeRank * options.nprocPerNode + local;
      // Own process group: a terminal's Ctrl-C reaches the launcher only, which passes it on once.
      const child = spawn(process.execPath, [...process.execArgv, entry, ...options.command], { env: rankEnv(options, local, port, process.env), stdio: 'inherit', detached: true });
      const entryRec = { rank, child, done: false, code: null as number | null, signal: null as NodeJS.Signals | null };
      children.push(entryRec);
      child.on('exit', (code, signal) => {
        entryRec.done = true;
        entryRec.code = code;
        entryRec.signal = signal;
        exits.push({ code, signal });
        if ((code !== 0 && code !== 130) || signal) {
          if (!firstFailure) {
            firstFailure = { rank };
            log(`rpo launch: rank ${rank} (pid ${child.pid}) ${describeExit(code, signal)}; the other ranks stop at their next collective (killed after ${options.graceSeconds} s)`);
            killTimer = setTimeout(() => {
              for (const c of children) if (!c.done) {
                log(`rpo launch: rank ${c.rank} (pid ${c.child.pid}) still running ${options.graceSeconds} s after rank ${rank} failed: killing it`);
                c.child.kill('SIGKILL');
              }
            }, options.graceSeconds * 1000);
          }
        }
        remaining -= 1;
        if (remaining === 0) resolveAll();
      });
    }
  });

  log(`rpo launch: ${children.map((c) => `rank ${c.rank} pid ${c.child.pid}`).join(', ')}`);
  const forward = (sig: NodeJS.Signals) => {
    for (const c of children) if (!c.done) c.child.kill(sig);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  try {
    await exited;
  } finally {
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
    if (killTimer) clearTimeout(killTimer);
  }
  return launchExitCode(exits);
}
