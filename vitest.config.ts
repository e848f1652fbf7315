import { defineConfig } from 'vitest/config';

// Three projects: unit (pure TS), native (the addon on the CPU), gpu (needs CUDA; it skips
// itself, loudly, where there is none). `npm test` runs unit + native.
export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 120_000 } },
      {
        test: {
          name: 'native',
          include: ['test/native/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          testTimeout: 600_000,
          hookTimeout: 600_000,
          // Each file loads LibTorch and uses every core: run the files one at a time.
          fileParallelism: false,
        },
      },
      { test: { name: 'gpu', include: ['test/gpu/**/*.test.ts'], testTimeout: 600_000, fileParallelism: false } },
    ],
  },
});
