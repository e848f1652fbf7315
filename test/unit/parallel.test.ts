// Data parallelism's pure parts: the torchrun environment, `rpo launch`'s arguments and rank
// environments, and how a global batch is cut across ranks (the same micro-batches, in the same
// order, as one process with world × accumulation steps).
import { describe, expect, it } from 'vitest';

import { Parallel } from '../../lib/parallel/context.js';
import { distEnv } from '../../lib/parallel/env.js';
import { describeMismatch } from '../../lib/parallel/agree.js';
import { launchExitCode, parseLaunchArgs, rankEnv } from '../../lib/parallel/launch.js';

const torchrun = { RANK: '1', WORLD_SIZE: '4', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29500' };

describe('distEnv', () => {
  it('is null for one process', () => {
    expect(distEnv({})).toBeNull();
    expect(distEnv({ WORLD_SIZE: '1', RANK: '0' })).toBeNull();
  });
  it('reads the torchrun variables', () => {
    expect(distEnv(torchrun)).toEqual({ rank: 1, worldSize: 4, localRank: 1, localWorldSize: 2, masterAddr: '10.0.0.1', masterPort: 29500, timeoutMs: 300_000, zero: 0 });
    expect(distEnv({ ...torchrun, RPO_DIST_TIMEOUT_S: '2.5' })!.timeoutMs).toBe(2500);
    expect(distEnv({ ...torchrun, RPO_ZERO: '1' })!.zero).toBe(1);
    expect(distEnv({ ...torchrun, RPO_ZERO: '2' })!.zero).toBe(2);
    expect(distEnv({ ...torchrun, RPO_ZERO: '3' })!.zero).toBe(3);
    expect(() => distEnv({ ...torchrun, RPO_ZERO: '4' })).toThrow(/RPO_ZERO=4/);
  });
  it('defaults LOCAL_* to one machine', () => {
    const d = distEnv({ RANK: '3', WORLD_SIZE: '4', MASTER_ADDR: 'h', MASTER_PORT: '1' })!;
    expect([d.localRank, d.localWorldSize]).toEqual([3, 4]);
  });
  it('names a missing or bad variable', () => {
    expect(() => distEnv({ WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '1' })).toThrow(/RANK is not set/);
    expect(() => distEnv({ ...torchrun, RANK: '4' })).toThrow(/RANK=4 is not a whole number in \[0, 3\]/);
    expect(() => distEnv({ ...torchrun, MASTER_PORT: '70000' })).toThrow(/MASTER_PORT=70000/);
    expect(() => distEnv({ ...torchrun, MASTER_ADDR: '' })).toThrow(/MASTER_ADDR is not set/);
    expect(() => distEnv({ ...torchrun, RPO_DIST_TIMEOUT_S: '0' })).toThrow(/RPO_DIST_TIMEOUT_S/);
  });
});

describe('rpo launch arguments', () => {
  it('reads torchrun-style flags and the command after --', () => {
    const o = parseLaunchArgs(['--nproc-per-node', '2', '--nnodes=2', '--node_rank', '1', '--master-addr', 'h0', '--master-port=29511', '--zero', '1', '--', 'train', 'loss=dpo'], {});
    expect(o).toMatchObject({ nprocPerNode: 2, nnodes: 2, nodeRank: 1, masterAddr: 'h0', masterPort: 29511, zero: 1, command: ['train', 'loss=dpo'] });
    expect(rankEnv(o, 0, 29511, {}).RPO_ZERO).toBe('1');
    expect(rankEnv(parseLaunchArgs(['--zero', '2', '--', 'train'], {}), 0, 29511, {}).RPO_ZERO).toBe('2');
    expect(rankEnv(parseLaunchArgs(['--zero', '3', '--', 'train'], {}), 0, 29511, {}).RPO_ZERO).toBe('3');
    expect(() => parseLaunchArgs(['--zero', '4', '--', 'train'], {})).toThrow(/--zero/);
    expect(parseLaunchArgs(['--nproc-per-node=3', 'train'], {}).command).toEqual(['train']);
  });
  it('refuses what cannot run', () => {
    expect(() => parseLaunchArgs(['--nproc-per-node', '0', 'train'], {})).toThrow(/--nproc-per-node needs a whole number/);
    expect(() => parseLaunchArgs(['--nproc-per-node', '2', '--', 'eval'], {})).toThrow(/train/);
    expect(() => parseLaunchArgs(['--nnodes', '2', '--node-rank', '2', 'train'], {})).toThrow(/--node-rank 2 is not below --nnodes 2/);
    expect(() => parseLaunchArgs(['--nnodes', '2', 'train'], {})).toThrow(/--master-port/);
    expect(() => parseLaunchArgs(['--bogus', '1', 'train'], {})).toThrow(/unknown option --bogus/);
  });
  it('gives each local rank its global rank and shares the cores', () => {
    const o = parseLaunchArgs(['--nproc-per-node', '2', '--nnodes', '3', '--node-rank', '2', '--master-port', '5', 'train'], {});
    const e = rankEnv(o, 1, 5, { PATH: '/bin' });
    expect(e).toMatchObject({ RANK: '5', WORLD_SIZE: '6', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '5', PATH: '/bin' });
    expect(Number(e.RPO_NUM_THREADS)).toBeGreaterThanOrEqual(1);
    expect(rankEnv(o, 0, 5, { RPO_NUM_THREADS: '7' }).RPO_NUM_THREADS).toBe('7');
  });
});

describe("rpo launch's exit code", () => {
  const ok = { code: 0, signal: null };
  const failed = { code: 1, signal: null };
  const usage = { code: 2, signal: null };
  it('is 2 when any rank refused a usage error, whichever rank exited first (D15)', () => {
    expect(launchExitCode([failed, usage])).toBe(2);
    expect(launchExitCode([usage, failed])).toBe(2);
    expect(launchExitCode([{ code: null, signal: 'SIGKILL' }, usage])).toBe(2);
  });
  it('is otherwise the first failure (1 for a signal), 0 when all succeed, 130 when all were interrupted', () => {
    expect(launchExitCode([{ code: 3, signal: null }, failed])).toBe(3);
    expect(launchExitCode([{ code: null, signal: 'SIGKILL' }, failed])).toBe(1);
    expect(launchExitCode([ok, ok])).toBe(0);
    expect(launchExitCode([{ code: 130, signal: null }, ok])).toBe(130);
  });
});

describe('naming what the ranks disagree on', () => {
  const rank = (values: Record<string, string>) => ({ names: Object.keys(values), hashes: Object.values(values), shown: Object.values(values) });
  it('the first differing part in rank 0\'s order, with the ranks grouped by value', () => {
    const same = { lr: '0.001', 'model.batch_size': '4' };
    const msg = describeMismatch('the config', [rank(same), rank({ ...same, 'model.batch_size': '8' }), rank(same), rank(same), rank({ ...same, 'model.batch_size': '8' })]);
    expect(msg).toBe('the ranks of this job disagree on the config: model.batch_size differs (ranks 0, 2, 3: 4; ranks 1, 4: 8); every rank must run the same command on the same data and model');
    const first = describeMismatch('the config', [rank({ a: '1', b: '1' }), rank({ a: '2', b: '2' })]);
    expect(first).toMatch(/: a differs \(rank 0: 1; rank 1: 2\)/);
  });
  it('a part one rank lacks', () => {
    expect(describeMismatch('the config', [rank({ a: '1' }), rank({ a: '1', b: '2' })])).toMatch(/: b differs \(rank 0: \(absent\); rank 1: 2\)/);
  });
});

describe('sharding a global batch', () => {
  // Parallel.microShards of a rank without connecting: the env is all it reads.
  const rankOf = (rank: number, world: number) =>
    Reflect.construct(Parallel as unknown as new (...a: unknown[]) => Parallel, [{ rank, worldSize: world, localRank: rank, localWorldSize: world, masterAddr: 'x', masterPort: 1, timeoutMs: 1 }, null]);

  it('one process: the accumulation micro-batches, near-equal, in order', () => {
    expect(Parallel.single().microShards([1, 2, 3, 4, 5], 2)).toEqual([[1, 2, 3], [4, 5]]);
  });
  it('ranks take consecutive pieces of the cut one process with world x accumulation steps makes', () => {
    const batch = Array.from({ length: 11 }, (_, i) => i);
    for (const [world, acc] of [[2, 1], [2, 2], [3, 2], [4, 1]] as const) {
      const whole = Parallel.single().microShards(batch, world * acc);
      const joined = Array.from({ length: world }, (_, r) => rankOf(r, world).microShards(batch, acc)).flat();
      expect(joined).toEqual(whole);
      for (let r = 0; r < world; r++) expect(rankOf(r, world).microShards(batch, acc).length).toBe(acc);
    }
  });
  it('a batch smaller than the ranks leaves some ranks without a micro-batch', () => {
    expect([0, 1, 2].map((r) => rankOf(r, 3).microShards(['a', 'b'], 1))).toEqual([[['a']], [['b']], []]);
  });
});
