// One rank of test/gpu/nccl.test.ts: connects with the torchrun environment on RPO_TEST_BACKEND
// (nccl: this rank's GPU, LOCAL_RANK; gloo: the CPU), runs ProcessGroup.collectives on each input
// the test names, and prints one JSON line of the results.
import { distEnv } from '../../lib/parallel/env.js';
import { ProcessGroup } from '../../lib/parallel/native.js';
import { COLLECTIVE_INPUTS } from './nccl_inputs.js';

const env = distEnv();
const rank = env?.rank ?? 0;
const worldSize = env?.worldSize ?? 1;
const backend = process.env.RPO_TEST_BACKEND === 'nccl' ? 'nccl' : 'gloo';
const pg = await ProcessGroup.connect({
  rank,
  worldSize,
  masterAddr: process.env.MASTER_ADDR ?? '127.0.0.1',
  masterPort: Number(process.env.MASTER_PORT),
  timeoutMs: env?.timeoutMs ?? 60_000,
  backend,
  deviceIndex: env?.localRank ?? 0,
});
const out: Record<string, unknown> = {};
for (const [name, { values, dtype }] of Object.entries(COLLECTIVE_INPUTS)) {
  const r = await pg.collectives(values, dtype);
  out[name] = { device: r.device, allReduce: Array.from(r.allReduce), reduceScatter: Array.from(r.reduceScatter), allGather: Array.from(r.allGather), broadcast: Array.from(r.broadcast) };
}
pg.dispose();
console.log(JSON.stringify(out));
