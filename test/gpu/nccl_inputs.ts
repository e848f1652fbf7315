// The inputs of test/gpu/nccl.test.ts, shared with its rank processes (nccl_worker.ts): small
// dyadic numbers and integers, so that every sum the collectives make is exact in float32 and
// bfloat16 and the results can be compared for equality.
export const COLLECTIVE_INPUTS = {
  'float32 small': { values: [1, -2, 0.5, 3.25, -7, 0.125, 12, -0.75], dtype: 'float32' },
  'bfloat16 small': { values: [1, -2, 0.5, 3.25, -7, 0.125, 12, -0.75], dtype: 'bfloat16' },
  /** 2^18 integers in [-48, 48]: large enough that NCCL splits it into several chunks. */
  'float32 2^18': { values: Array.from({ length: 1 << 18 }, (_, i) => (i % 97) - 48), dtype: 'float32' },
} as const satisfies Record<string, { values: readonly number[]; dtype: 'float32' | 'bfloat16' }>;
